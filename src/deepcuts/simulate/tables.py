"""Writing store tables in the native format: one Parquet or CSV file per table.

Columns are named and typed as ``deepcuts.store.schema`` declares them (a subset of each
table's columns, in its order). Timestamps are UTC: timezone-aware in Parquet, ISO 8601 with a
``Z`` in CSV; dates are ``YYYY-MM-DD``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deepcuts.store.schema import TABLES

FORMATS = ("parquet", "csv")
SOURCE = "simulated"
TIMESTAMP = pa.timestamp("ms", tz="UTC")  # values are ms since the epoch
ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),  # values are days since the epoch
    "TIMESTAMP": TIMESTAMP,
}


def ids(prefix: str, n: int, width: int) -> pa.Array:
    """Readable ids ``prefix`` + a 1-based number zero-padded to ``width`` (or wider)."""
    width = max(width, len(str(n)))
    return pa.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)])


def take(values: pa.Array, index: np.ndarray) -> pa.Array:
    """``values[index]``, null where ``index`` is negative."""
    index = np.asarray(index)
    return values.take(pa.array(index, mask=index < 0))


class NativeWriter:
    """Writes tables into ``out_dir`` as ``<table>.<fmt>``, appending chunk after chunk.

    Every chunk of a table must have the same columns. Each table also gets ``source``.
    """

    def __init__(self, out_dir: Path, fmt: str = "parquet"):
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
        self.out_dir = out_dir
        self.fmt = fmt
        self.rows: dict[str, int] = {}
        self._writers: dict[str, pq.ParquetWriter | pacsv.CSVWriter] = {}

    def write(self, table: str, columns: dict[str, object]) -> None:
        """Append rows to ``table``: ``columns`` maps column names to numpy or arrow arrays."""
        declared = TABLES[table]
        unknown = set(columns) - set(declared.column_names)
        if unknown:
            raise KeyError(f"{table} has no column(s) {sorted(unknown)}")
        n = len(next(iter(columns.values())))
        names, arrays = [], []
        for column in declared.columns:
            if column.name in columns:
                values = columns[column.name]
            elif column.name == "source":
                values = pa.repeat(SOURCE, n)
            else:
                continue
            names.append(column.name)
            arrays.append(self._encode(values, ARROW_TYPES[column.type]))
        chunk = pa.Table.from_arrays(arrays, names=names)
        writer = self._writers.get(table)
        if writer is None:
            path = self.out_dir / f"{table}.{self.fmt}"
            writer = (
                pq.ParquetWriter(path, chunk.schema)
                if self.fmt == "parquet"
                else pacsv.CSVWriter(path, chunk.schema)
            )
            self._writers[table] = writer
        writer.write_table(chunk)
        self.rows[table] = self.rows.get(table, 0) + n

    def _encode(self, values, arrow_type: pa.DataType) -> pa.Array:
        array = values if isinstance(values, pa.Array) else pa.array(values, type=arrow_type)
        if array.type != arrow_type:
            array = array.cast(arrow_type)
        if self.fmt == "csv" and arrow_type == TIMESTAMP:
            return pc.strftime(array, format="%Y-%m-%dT%H:%M:%SZ")
        return array

    def close(self) -> dict[str, int]:
        """Finish every file; returns the rows written per table."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        return dict(self.rows)
