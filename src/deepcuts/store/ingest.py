"""Loading rows into the store: type checks, quarantine, and idempotent inserts.

Importers (``deepcuts.io``) parse their formats into rows named after the store's columns
(``schema.py``) and hand them here, with the line each row came from. One `FileLoad` covers
one source file and runs in one transaction:

- every value is cast to its column's type; a value that cannot be read, a missing required
  column or a failed check sends the whole row to ``quarantine`` with the file, line and reason;
- a row whose key is already stored, or appears earlier in the same file, is a duplicate and is
  not inserted again, so ingesting a file twice changes no count;
- ``accepted + duplicates + quarantined == rows_read`` for every file.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from deepcuts.store.db import Store
from deepcuts.store.schema import TABLES, Table

log = logging.getLogger(__name__)

LINE = "_line"  # the staged column holding the source line (or record number) of each row
_names = itertools.count()


@dataclass
class IngestCounts:
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0

    def __add__(self, other: IngestCounts) -> IngestCounts:
        return IngestCounts(
            self.rows_read + other.rows_read,
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.quarantined + other.quarantined,
        )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def reader_types(table: Table) -> dict[str, str]:
    """The types a text reader may parse `table`'s columns as, where its parse accepts only what
    the load's casts (`_cast`) read the same way: numbers, booleans and dates as themselves,
    timestamps through TIMESTAMPTZ so an offset is honoured. Text columns are left out: the
    load trims them. A value such a reader refuses is not lost, the caller reads the file
    again as text (see ``io/files.py:DirectCsv``)."""
    return {
        c.name: "TIMESTAMPTZ" if c.type == "TIMESTAMP" else c.type
        for c in table.columns
        if c.type != "VARCHAR"
    }


def _cast(table: Table, staged_types: dict[str, str], fmt: str) -> tuple[list[str], list[str]]:
    """SQL for the value of each column the input has (and ``source``), and for the reason a
    row is rejected (or NULL). Columns the input lacks are left to the table's default (NULL)
    rather than carried through the load."""
    values, reasons = [], []
    for col in table.columns:
        name = _quote(col.name)
        src_type = staged_types.get(col.name)
        if src_type is None and col.name == "source":
            values.append(f"'{fmt}' AS source")
            continue
        if src_type is None:
            if col.required:
                reasons.append(f"'{col.name} is missing'")
            continue
        if col.type == "VARCHAR":
            value = f"NULLIF(trim(CAST({name} AS VARCHAR)), '')"
        elif src_type == col.type:
            value = name
        elif src_type == "VARCHAR" and col.type == "TIMESTAMP":
            # Through TIMESTAMPTZ so that an offset ("+02:00", "Z", "UTC") is honoured (the
            # session is UTC): a TIMESTAMP cast would drop it. Text with no sign after the
            # date and a digit last has none, and takes the TIMESTAMP cast (three times faster).
            text = f"NULLIF(trim({name}), '')"
            plain = (
                f"NOT contains(substr({text}, 11), '+') AND NOT contains(substr({text}, 11), '-') "
                f"AND right({text}, 1) BETWEEN '0' AND '9'"
            )
            value = (
                f"CASE WHEN {plain} THEN TRY_CAST({text} AS TIMESTAMP) "
                f"ELSE CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP) END"
            )
        elif src_type == "VARCHAR":
            value = f"TRY_CAST(NULLIF(trim({name}), '') AS {col.type})"
        elif src_type.startswith("TIMESTAMP") and col.type == "TIMESTAMP":
            value = f"CAST({name} AS TIMESTAMP)"
        else:
            value = f"TRY_CAST({name} AS {col.type})"
        values.append(f"{value} AS {name}")
        if src_type == "VARCHAR":
            present = f"NULLIF(trim({name}), '') IS NOT NULL"
        else:
            present = f"{name} IS NOT NULL"
        unreadable = (
            f"'{col.name}: cannot read ' || left(CAST({name} AS VARCHAR), 80) || ' as {col.type}'"
        )
        missing = f"'{col.name} is missing'" if col.required else "NULL"
        reasons.append(
            f"CASE WHEN ({value}) IS NULL THEN CASE WHEN {present} THEN {unreadable} "
            f"ELSE {missing} END END"
        )
    return values, reasons


class FileLoad:
    """Everything ingested from one source file, committed together.

    Use as a context manager; rows are added with `add_arrow`, `add_sql` (a SQL query whose
    columns are store columns plus ``_line``) and `reject` (a row the importer could not parse).
    The counts are in `counts` once the block ends.
    """

    def __init__(self, store: Store, fmt: str, source_file: str):
        self.store = store
        self.conn: duckdb.DuckDBPyConnection = store.conn
        self.fmt = fmt
        # The absolute path, so that the same file named two ways is still the same file.
        # A URL (a music server read over its API) is kept as it is.
        self.source_file = (
            source_file
            if source_file == "-" or "://" in source_file
            else str(Path(source_file).resolve())
        )
        self.counts = IngestCounts()
        self._rejects: list[tuple[int | None, str | None, str, str | None]] = []
        self._started = datetime.now(UTC).replace(tzinfo=None)
        self._in_transaction = False

    def __enter__(self) -> FileLoad:
        return self

    def begin(self) -> None:
        """Begin the file's transaction now, for an importer's own statements on ``conn``
        (bookkeeping of its own tables) to commit or roll back with the rows."""
        self._begin()

    def _begin(self) -> None:
        # Begun at the first write, so an importer can stage its input (which may fail and
        # abort a transaction) before anything is written.
        if not self._in_transaction:
            self.conn.execute("BEGIN TRANSACTION")
            self._in_transaction = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            if self._in_transaction:
                self.conn.execute("ROLLBACK")
            return
        self._begin()
        try:
            self._write_rejects()
            self._log()
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # -- rows the importer could not even parse -------------------------------------------
    def reject(
        self, line: int | None, reason: str, raw: str | None = None, table: str | None = None
    ) -> None:
        """Quarantine a record the importer could not turn into a row (counted as read)."""
        self._rejects.append((line, table, reason, None if raw is None else raw[:4000]))
        self.counts.rows_read += 1
        self.counts.quarantined += 1

    def _write_rejects(self) -> None:
        if not self._rejects:
            return
        lines, tables, reasons, raws = zip(*self._rejects, strict=True)
        batch = pa.table(
            {
                "line": pa.array(lines, pa.int64()),
                "table_name": pa.array(tables, pa.string()),
                "reason": pa.array(reasons, pa.string()),
                "raw": pa.array(raws, pa.string()),
            }
        )
        self._insert_quarantine(
            "SELECT line, table_name, reason, raw FROM _rejects", _rejects=batch
        )

    def _insert_quarantine(self, select_sql: str, **frames: pa.Table) -> int:
        """Insert (line, table_name, reason, raw) rows into quarantine unless already there."""
        for name, frame in frames.items():
            self.conn.register(name, frame)
        try:
            return self.conn.execute(
                f"""
                INSERT INTO quarantine (source_file, line, format, table_name, reason, raw)
                SELECT ?, q.line, ?, q.table_name, q.reason, q.raw FROM ({select_sql}) q
                WHERE NOT EXISTS (
                    SELECT 1 FROM quarantine x
                    WHERE x.source_file = ? AND x.line IS NOT DISTINCT FROM q.line
                      AND x.reason = q.reason
                      AND x.table_name IS NOT DISTINCT FROM q.table_name)
                """,
                [self.source_file, self.fmt, self.source_file],
            ).fetchall()[0][0]
        finally:
            for name in frames:
                self.conn.unregister(name)

    # -- rows ------------------------------------------------------------------------------
    def add_arrow(self, table: str, rows: pa.Table, *, counted: bool = True) -> IngestCounts:
        """Load an Arrow table whose columns are store columns of `table` plus ``_line``.

        ``counted=False`` is for rows an importer derives (the catalogue entries named by a
        listening history): they are stored and deduplicated but not counted as rows read.
        """
        name = f"_arrow_{next(_names)}"
        self.conn.register(name, rows)
        try:
            return self.add_sql(table, f"SELECT * FROM {name}", counted=counted)
        finally:
            self.conn.unregister(name)

    def add_sql(
        self,
        table: str,
        select_sql: str,
        *,
        counted: bool = True,
        only_if_clean: Callable[[], bool] | None = None,
    ) -> IngestCounts | None:
        """Load the rows of a SQL query (store columns of `table` plus ``_line``).

        With ``only_if_clean`` the load is all or nothing: where a row would be rejected, the
        query fails, or ``only_if_clean()`` (asked after the query has run) says its input was
        not clean, nothing is loaded and the answer is None, so the importer can read the
        input again the careful way (with line numbers for the quarantine). Only before the
        file's first write: a failed query must not abort the file's transaction. Into an
        empty table such a load goes straight in, in one pass (see `_insert_into_empty`).
        """
        target = TABLES[table]
        if only_if_clean is not None and self._in_transaction:
            return None
        if only_if_clean is None:
            self._begin()
        stage = f"_stage_{next(_names)}"
        checked = f"_checked_{next(_names)}"
        self.conn.execute(f"CREATE TEMP VIEW {stage} AS {select_sql}")
        try:
            described = self.conn.execute(f"DESCRIBE {stage}").fetchall()
            staged_types = {row[0]: row[1] for row in described}
            unknown = sorted(set(staged_types) - set(target.column_names) - {LINE})
            if unknown:
                raise ValueError(
                    f"{self.source_file}: unknown column(s) {', '.join(unknown)} for table "
                    f"{table}; expected some of: {', '.join(target.column_names)}"
                )
            values, reasons = _cast(target, staged_types, self.fmt)
            loaded = set(staged_types) | {"source"}
            checks = [
                f"CASE WHEN NOT coalesce({expr}, true) THEN '{why}' END"
                for expr, why in target.checks
                # a check on a column the input lacks holds: the column will be NULL
                if all(
                    c.name in loaded for c in target.columns if re.search(rf"\b{c.name}\b", expr)
                )
            ]
            line = LINE if LINE in staged_types else "NULL::BIGINT"

            def checked_rows(raw: bool) -> str:
                """Each row cast, with why it is rejected (NULL if it is not)."""
                return f"""
                    SELECT * EXCLUDE (_cast_reason),
                           NULLIF(concat_ws('; ', _cast_reason, {", ".join(checks) or "NULL"}), '')
                           AS _reason
                    FROM (
                        SELECT {", ".join(values)}, {line} AS {LINE},
                               NULLIF(concat_ws('; ', {", ".join(reasons) or "NULL"}), '')
                               AS _cast_reason
                               {", left(to_json(_src)::VARCHAR, 4000) AS _raw" if raw else ""}
                        FROM {stage} _src
                    )"""

            columns = [c for c in target.column_names if c in loaded]
            # The key columns the input has; a valid row has the required ones (an input with
            # none of them has no valid row).
            key = ", ".join(k for k in target.key if k in columns)
            if only_if_clean is not None and self._is_empty(target.name):
                inserted = self._insert_into_empty(
                    target, checked_rows(raw=False), columns, key, only_if_clean
                )
                if inserted == "not clean":
                    return None
                if inserted != "keys repeat":
                    counts = IngestCounts(inserted, inserted, 0, 0)
                    if counted:
                        self.counts = self.counts + counts
                    return counts
            try:
                self.conn.execute(f"CREATE TEMP TABLE {checked} AS {checked_rows(raw=False)}")
            except duckdb.Error:
                if only_if_clean is None:
                    raise
                return None
            distinct_keys = (
                f"count(DISTINCT ({key})) FILTER (WHERE _reason IS NULL)" if key else "0"
            )
            n_rows, n_bad, n_keys = self.conn.execute(
                f"SELECT count(*), count(_reason), {distinct_keys} FROM {checked}"
            ).fetchall()[0]
            if only_if_clean is not None:
                if n_bad or not only_if_clean():
                    return None
                self._begin()
            if n_bad:  # rare: read the input again for the raw text of the rejected rows
                self._insert_quarantine(
                    f"SELECT {LINE} AS line, '{table}' AS table_name, _reason AS reason, "
                    f"_raw AS raw FROM ({checked_rows(raw=True)}) WHERE _reason IS NOT NULL"
                )
            accepted = self._insert_new(target, checked, columns, key, n_rows - n_bad, n_keys)
        finally:
            self.conn.execute(f"DROP TABLE IF EXISTS {checked}")
            self.conn.execute(f"DROP VIEW IF EXISTS {stage}")
        counts = IngestCounts(n_rows, accepted, n_rows - n_bad - accepted, n_bad)
        if counted:
            self.counts = self.counts + counts
        log.debug("%s -> %s: %s", self.source_file, table, counts)
        return counts

    def _is_empty(self, table: str) -> bool:
        return not self.conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)"
        ).fetchall()[0][0]

    def _insert_into_empty(
        self,
        target: Table,
        checked_sql: str,
        columns: list[str],
        key: str,
        only_if_clean: Callable[[], bool],
    ) -> int | Literal["not clean", "keys repeat"]:
        """Insert a clean input into an empty table in one pass, with no checked copy first
        (a first bulk load, a fifth faster). Begins the file's transaction; returns the rows
        inserted. Where a row is invalid or the input not clean, or where the input repeats a
        key (the caller then keeps each key's first row the usual way), rolls back and says
        so."""
        cols = ", ".join(columns)
        self._begin()
        self.conn.execute("SET preserve_insertion_order = false")
        try:
            # error() stops the statement at the first invalid row.
            inserted = self.conn.execute(
                f"INSERT INTO {target.name} ({cols}) SELECT {cols} FROM ({checked_sql}) "
                "WHERE CASE WHEN _reason IS NULL THEN true ELSE error('a row is invalid') END"
            ).fetchall()[0][0]
            clean = only_if_clean()
            repeats = (
                clean
                and bool(key)
                and self.conn.execute(
                    f"SELECT count(*) > count(DISTINCT ({key})) FROM {target.name}"
                ).fetchall()[0][0]
            )
        except duckdb.Error:
            clean = repeats = False
        if not clean or repeats:
            self.conn.execute("ROLLBACK")
            self._in_transaction = False
        self.conn.execute("RESET preserve_insertion_order")
        if not clean:
            return "not clean"
        return "keys repeat" if repeats else inserted

    def _insert_new(
        self, target: Table, checked: str, columns: list[str], key: str, n_valid: int, n_keys: int
    ) -> int:
        """Insert the valid rows whose key is new; return how many were inserted.

        ``columns`` are the columns the input has (key columns it lacks are NULL in every row);
        ``key`` those of the key it has; ``n_keys`` the distinct keys among the valid rows."""
        if n_valid == 0:
            return 0
        cols = ", ".join(columns)
        # rowid: the order of the input, where it has no line numbers (the checked table was
        # made from it in order).
        valid = f"SELECT *, rowid AS _order FROM {checked} WHERE _reason IS NULL"
        if n_keys < n_valid:  # repeats within the file: keep each key's first row
            valid = (
                f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY {LINE}, _order) "
                f"AS _rn FROM ({valid})) WHERE _rn = 1"
            )
        if not self._is_empty(target.name):
            same_key = " AND ".join(
                f"t.{k} IS NOT DISTINCT FROM v.{k}" if k in columns else f"t.{k} IS NULL"
                for k in target.key
            )
            valid = f"SELECT * FROM ({valid}) v WHERE NOT EXISTS (SELECT 1 FROM {target.name} t WHERE {same_key})"
        # Row order in the table carries no meaning: let DuckDB insert in parallel.
        self.conn.execute("SET preserve_insertion_order = false")
        try:
            return self.conn.execute(
                f"INSERT INTO {target.name} ({cols}) SELECT {cols} FROM ({valid})"
            ).fetchall()[0][0]
        finally:
            self.conn.execute("RESET preserve_insertion_order")

    def _log(self) -> None:
        # One row per file, replaced on each ingest, so re-ingesting a file changes no count.
        c = self.counts
        self.conn.execute(
            "DELETE FROM ingest_log WHERE format = ? AND source_file = ?",
            [self.fmt, self.source_file],
        )
        self.conn.execute(
            "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.fmt,
                self.source_file,
                c.rows_read,
                c.accepted,
                c.duplicates,
                c.quarantined,
                self._started,
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
