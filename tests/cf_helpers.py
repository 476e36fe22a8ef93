"""Data for the signals, CF-model and evaluation tests: matrices and stores whose right answers
are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepcuts.store import Store


def block_matrix(
    n_users: int = 240,
    n_items: int = 160,
    groups: int = 4,
    per_user: int = 14,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Users in ``groups`` taste groups; each group listens to its own block of items, with
    popularity falling within the block (power law), plus a share ``noise`` of random items.

    Returns (play counts CSR float32, user group, item group).
    """
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % groups
    item_group = np.arange(n_items) % groups
    rows, cols, vals = [], [], []
    for u in range(n_users):
        block = np.flatnonzero(item_group == user_group[u])
        weights = 1.0 / (1.0 + np.arange(len(block))) ** 0.8
        n_noise = int(round(noise * per_user))
        picks = rng.choice(block, per_user - n_noise, replace=False, p=weights / weights.sum())
        others = rng.choice(np.flatnonzero(item_group != user_group[u]), n_noise, replace=False)
        for i in np.concatenate([picks, others]):
            rows.append(u)
            cols.append(i)
            vals.append(float(rng.integers(1, 30)))
    m = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n_users, n_items))
    m.sum_duplicates()
    return m, user_group, item_group


def store_from_matrix(store: Store, counts: sp.csr_matrix, prefix: str = "") -> None:
    """Write a play-count matrix into the store as count-only listens (HetRec style)."""
    coo = counts.tocoo()
    import pyarrow as pa

    table = pa.table(
        {
            "user_id": [f"{prefix}u{r:04d}" for r in coo.row],
            "item_id": [f"{prefix}i{c:04d}" for c in coo.col],
            "play_count": coo.data.astype(np.int64),
        }
    )
    store.conn.register("_t", table)
    store.conn.execute("INSERT INTO listens (user_id, item_id, play_count) SELECT * FROM _t")
    store.conn.unregister("_t")


def simulated_store(tmp: Path, users: int = 300, tracks: int = 600, weeks: int = 3, seed: int = 0):
    """A simulated world ingested into a store file; returns (store path, world folder)."""
    from deepcuts.io.native import NativeImporter
    from deepcuts.simulate import simulate_world

    world = tmp / "world"
    simulate_world(world, users=users, tracks=tracks, weeks=weeks, seed=seed, audio_share=0.0)
    path = tmp / "world.duckdb"
    with Store(path, create=True) as store:
        importer = NativeImporter()
        for f in importer.files([str(world)]):
            importer.ingest_file(store, f)
    return path, world
