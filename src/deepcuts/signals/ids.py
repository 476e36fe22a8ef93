"""Id maps: external string ids to the dense integer indices that model code works on.

External ids (``lastfm:artist:51``, ``spotify:track:...``) are mapped once, here, when the
signals are built; models only ever see row and column numbers, and the ids travel with a saved
model so that its numbers can be turned back into ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class IdMap:
    """A fixed, ordered list of ids and the index of each.

    Parameters
    ----------
    ids : the ids, in index order; they must be distinct.

    Example
    -------
    >>> m = IdMap(["a", "b"])
    >>> m.index("b"), m.id(0), len(m)
    (1, 'a', 2)
    >>> m.indices(["b", "zz"]).tolist()
    [1, -1]
    """

    def __init__(self, ids: Iterable[str]):
        self._ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=str)
        if self._ids.ndim != 1:
            raise ValueError("ids must be one-dimensional")
        self._index = {key: i for i, key in enumerate(self._ids.tolist())}
        if len(self._index) != len(self._ids):
            raise ValueError("ids must be distinct")
        self._arrow: pa.Array | None = (
            None  # the ids as Arrow, for `indices`, built when first asked
        )

    @property
    def ids(self) -> np.ndarray:
        """The ids as a NumPy string array (index order)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:  # pragma: no cover - maps are not dictionary keys
        return hash(tuple(self._ids.tolist()))

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids)"

    def index(self, key: str) -> int:
        """The index of one id (KeyError if unknown)."""
        return self._index[key]

    def get(self, key: str, default: int = -1) -> int:
        return self._index.get(key, default)

    def indices(self, keys: Sequence[str] | np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Indices of many ids, -1 where an id is unknown (int64 array).

        Arrow's hash lookup does the work (millions of ids a second), so a column fetched from
        the store as Arrow never becomes Python strings.
        """
        if len(keys) == 0:
            return np.zeros(0, np.int64)
        if not isinstance(keys, (pa.Array, pa.ChunkedArray)):
            keys = pa.array(
                keys.tolist() if isinstance(keys, np.ndarray) else list(keys), pa.string()
            )
        elif keys.type != pa.string():
            keys = keys.cast(pa.string())
        found = pc.index_in(keys, value_set=self.arrow())
        return found.fill_null(-1).to_numpy().astype(np.int64)

    def arrow(self) -> pa.Array:
        """The ids as an Arrow string array (index order), made once."""
        if self._arrow is None:
            self._arrow = pa.array(self._ids.tolist(), pa.string())
        return self._arrow

    def table(self, column: str) -> pa.Table:
        """The ids (as ``column``) beside their index (``idx``, int32): an Arrow table to join
        in the store, so that millions of rows come back as indices, never as Python strings."""
        return pa.table(
            {column: self.arrow(), "idx": pa.array(np.arange(len(self), dtype=np.int32))}
        )

    def id(self, index: int) -> str:
        return str(self._ids[index])

    def lookup(self, indices: np.ndarray) -> np.ndarray:
        """Ids of many indices; -1 (padding in recommendation lists) gives ``""``."""
        indices = np.asarray(indices)
        out = np.full(indices.shape, "", dtype=self._ids.dtype if len(self._ids) else "U1")
        ok = indices >= 0
        out[ok] = self._ids[indices[ok]]
        return out

    def extended(self, new_ids: Iterable[str]) -> IdMap:
        """A map with ``new_ids`` not yet known appended at the end (existing indices kept)."""
        extra = [k for k in dict.fromkeys(new_ids) if k not in self._index]
        if not extra:
            return self
        return IdMap(np.concatenate([self._ids, np.asarray(extra, dtype=str)]))
