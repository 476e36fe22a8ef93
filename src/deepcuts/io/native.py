"""The native format: one file per store table, columns named as in ``store/schema.py``.

A file's table comes from its name (``listens.csv``, ``listens-2026-11.parquet``,
``tracks.jsonl``) or from ``table=``. CSV files have a header row; JSON Lines files hold one
object per line; Parquet files carry their own types. Any subset of a table's columns may be
given, as long as the required ones are there. Timestamps are ISO 8601 (UTC unless they carry
an offset), dates ``YYYY-MM-DD``, booleans ``true``/``false``.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from deepcuts.io.errors import FormatError
from deepcuts.io.files import DirectCsv, drop_staged, expand, sql_literal, stage_csv
from deepcuts.io.jsonscan import scan_lines
from deepcuts.io.rows import Rows
from deepcuts.store import TABLES, FileLoad, IngestCounts, Store, reader_types

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Catalogue before the events that point into it, so a folder ingests in a sensible order.
_ORDER = {name: rank for rank, name in enumerate(TABLES)}


def table_for(path: Path, table: str | None = None) -> str:
    """The store table a native file fills, from ``table`` or from the file's name."""
    if table is not None:
        if table not in TABLES:
            raise FormatError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        return table
    stem = path.name.split(".")[0]
    for name in sorted(TABLES, key=len, reverse=True):
        if stem == name or re.match(rf"{name}[-_]", stem):
            return name
    raise FormatError(
        f"{path}: cannot tell which table this file fills: name it after a table "
        f"({', '.join(TABLES)}), e.g. listens.csv, or pass --table"
    )


class NativeImporter:
    """Native CSV / Parquet / JSON Lines files, one store table per file."""

    name = "native"
    summary = "deepcuts' own tables as CSV, Parquet or JSON Lines (see docs/native-format.md)"

    def __init__(self, table: str | None = None):
        self.table = table

    def files(self, paths: list[str]) -> list[Path]:
        """The files to ingest, catalogue tables first; folders are searched recursively."""
        files = expand(paths, tuple(f"*{s}" for s in SUFFIXES))
        # The simulator writes its ground truth beside the data; it is not data to ingest.
        files = [f for f in files if f.parent.name != "truth"]
        for f in files:
            if f.suffix.lower() not in SUFFIXES:
                raise FormatError(f"{f}: expected a .csv, .parquet or .jsonl file")
            table_for(f, self.table)
        return sorted(files, key=lambda f: (_ORDER[table_for(f, self.table)], str(f)))

    def ingest_file(self, store: Store, path: Path) -> IngestCounts:
        table = table_for(path, self.table)
        kind = SUFFIXES[path.suffix.lower()]
        with FileLoad(store, self.name, str(path)) as load:
            if kind == "csv":
                _load_csv(store.conn, load, path, table)
            elif kind == "parquet":
                _load_parquet(load, path, table)
            else:
                _load_jsonl(load, path, table)
            if table == "tracks":
                _resolve_audio_paths(store, path.parent)
        return load.counts


def _resolve_audio_paths(store: Store, folder: Path) -> None:
    """Relative audio paths name files beside the ingested file: make them absolute."""
    store.conn.execute(
        "UPDATE tracks SET audio_path = ? || '/' || audio_path WHERE audio_path IS NOT NULL "
        "AND NOT starts_with(audio_path, '/') AND NOT regexp_matches(audio_path, '^[A-Za-z][A-Za-z0-9+.-]*:')",
        [str(folder.resolve())],
    )


def _load_csv(conn: duckdb.DuckDBPyConnection, load: FileLoad, path: Path, table: str) -> None:
    # Straight from the file, numbers and times parsed by the reader, where every line parses
    # and every row is valid (nearly twice as fast); otherwise staged as text first, so that
    # each rejected row is quarantined with its line.
    with DirectCsv(conn, path, reader_types(TABLES[table])) as direct:
        if load.add_sql(table, direct.select, only_if_clean=direct.clean) is not None:
            return
    staged, rejected = stage_csv(conn, path)
    try:
        for line, reason, raw in rejected:
            load.reject(line, reason, raw, table)
        load.add_sql(table, f"SELECT * FROM {staged}")
    finally:
        drop_staged(conn, staged)


def _load_parquet(load: FileLoad, path: Path, table: str) -> None:
    try:
        load.conn.execute("SELECT * FROM read_parquet(?) LIMIT 0", [str(path)])
    except duckdb.Error as exc:
        raise FormatError(f"{path}: not a readable Parquet file ({exc})") from exc
    # Parquet has no lines: the record number (1-based) stands in for one.
    load.add_sql(
        table,
        "SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS _line "
        f"FROM read_parquet({sql_literal(str(path))}, file_row_number = true)",
    )


def _load_jsonl(load: FileLoad, path: Path, table: str) -> None:
    columns = set(TABLES[table].column_names)
    rows = Rows()
    for record in scan_lines(path):
        if record.error:
            load.reject(record.line, record.error, record.raw, table)
            continue
        values = record.value
        if not isinstance(values, dict):
            load.reject(record.line, "expected a JSON object", record.raw, table)
            continue
        unknown = sorted(set(values) - columns)
        if unknown:
            load.reject(
                record.line,
                f"unknown field(s) for {table}: {', '.join(unknown)}",
                record.raw,
                table,
            )
            continue
        nested = [k for k, v in values.items() if isinstance(v, dict | list)]
        if nested:
            load.reject(
                record.line, f"field(s) {', '.join(nested)} must be plain values", record.raw, table
            )
            continue
        rows.add(table, record.line, **values)
    rows.load(load, counted=(table,))
