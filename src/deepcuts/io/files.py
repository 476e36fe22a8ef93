"""Finding input files and reading delimited text into the store's staging."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb

from deepcuts.io.errors import FormatError


def expand(paths: Iterable[str | Path], patterns: tuple[str, ...]) -> list[Path]:
    """Files named on the command line, with folders expanded to their files matching `patterns`."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted({f for pattern in patterns for f in path.rglob(pattern) if f.is_file()})
            if not found:
                raise FormatError(f"{path}: no files matching {', '.join(patterns)} in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FormatError(f"{path}: no such file or folder")
    return files


_names = itertools.count()


def _header(path: Path, delim: str, quote: str, encoding: str) -> list[str]:
    """Column names from the first line of a delimited file."""
    with open(path, encoding=encoding.replace("-", ""), errors="replace", newline="") as handle:
        first = handle.readline()
    reader = csv.reader(
        [first.rstrip("\r\n")],
        delimiter=delim,
        quotechar=quote or None,
        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
    )
    names = [name.strip() for name in next(reader, [])]
    if not names or not any(names):
        raise FormatError(
            f"{path}: expected a header row naming the columns; the first line is empty"
        )
    if "" in names or len(set(names)) != len(names):
        raise FormatError(
            f"{path}: the header row has an empty or repeated column name: {first.strip()[:200]}"
        )
    return names


def sql_literal(text: str) -> str:
    """A SQL string literal of `text` (for file paths in queries that cannot take parameters)."""
    return "'" + text.replace("'", "''") + "'"


def read_csv_sql(
    path: Path,
    columns: dict[str, str],
    name: str,
    *,
    delim: str = ",",
    quote: str = '"',
    encoding: str = "utf-8",
    strict: bool = True,
) -> str:
    """DuckDB's `read_csv` of a file with a header, each column read as the DuckDB type
    ``columns`` gives it, lines it cannot parse (or whose values it cannot read as those types)
    kept in the temp tables ``{name}_err`` and ``{name}_scan``."""
    types = ", ".join(f"{sql_literal(c)}: {sql_literal(t)}" for c, t in columns.items())
    return (
        f"read_csv({sql_literal(str(path))}, columns = {{{types}}}, header = true, auto_detect = false, "
        f"delim = {sql_literal(delim)}, quote = {sql_literal(quote)}, escape = {sql_literal(quote)}, "
        f"encoding = {sql_literal(encoding)}, strict_mode = {str(strict).lower()}, null_padding = false, "
        f"store_rejects = true, rejects_scan = '{name}_scan', rejects_table = '{name}_err')"
    )


class DirectCsv:
    """A delimited file read straight into the load, without staging it first: the fast way
    for a file that parses cleanly. Columns named in ``types`` are parsed by DuckDB's reader as
    those types (faster than text cast afterwards), the rest are read as text. `clean()` says
    whether DuckDB rejected no line of it, for its syntax or for a value it could not read as
    its type; where it did, the file goes through `stage_csv`, which numbers every line. Use as
    a context manager (it drops DuckDB's reject tables)."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        path: Path,
        types: Mapping[str, str] | None = None,
        *,
        delim: str = ",",
        quote: str = '"',
        encoding: str = "utf-8",
    ):
        self.conn = conn
        self.name = f"_csv_{next(_names)}"
        types = types or {}
        columns = {c: types.get(c, "VARCHAR") for c in _header(path, delim, quote, encoding)}
        self.select = "SELECT * FROM " + read_csv_sql(
            path, columns, self.name, delim=delim, quote=quote, encoding=encoding
        )

    def clean(self) -> bool:
        try:
            return self.conn.execute(f"SELECT count(*) FROM {self.name}_err").fetchall()[0][0] == 0
        except duckdb.CatalogException:  # no read has made the table: nothing was rejected
            return True

    def __enter__(self) -> DirectCsv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {self.name}_err")
        self.conn.execute(f"DROP TABLE IF EXISTS {self.name}_scan")


def stage_csv(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    delim: str = ",",
    quote: str = '"',
    encoding: str = "utf-8",
) -> tuple[str, list[tuple[int, str, str]]]:
    """Read a delimited text file with a header into a temp table of VARCHAR columns.

    Returns the name of a temp view of it (with a ``_line`` column: the line each record
    started on) and the lines DuckDB could not parse as records (line, reason, raw text).
    Drop it with `drop_staged`.
    """
    table = f"_csv_{next(_names)}"
    columns = dict.fromkeys(_header(path, delim, quote, encoding), "VARCHAR")
    # Strict parsing rejects rows with extra fields; files it cannot parse at all (stray
    # carriage returns, say) are read again leniently rather than refused.
    for strict in (True, False):
        try:
            conn.execute(
                f"CREATE OR REPLACE TEMP TABLE {table}_raw AS SELECT * FROM "
                + read_csv_sql(
                    path, columns, table, delim=delim, quote=quote, encoding=encoding, strict=strict
                )
            )
            break
        except duckdb.Error as exc:
            if not strict:
                raise FormatError(
                    f"{path}: cannot read as delimited text ({str(exc).splitlines()[0]})"
                ) from exc
    # One reason per rejected line (DuckDB may report a line more than once).
    rejected = conn.execute(
        f"SELECT line, first(error_message ORDER BY column_idx), first(csv_line) FROM {table}_err "
        "GROUP BY line ORDER BY line"
    ).fetchall()
    conn.execute(f"DROP TABLE IF EXISTS {table}_err")
    conn.execute(f"DROP TABLE IF EXISTS {table}_scan")
    # Records are numbered in file order; each rejected line before a record pushes it down one.
    # (A record with a quoted line break spans several lines: its number is then approximate.)
    # (Temp-table rowids are contiguous in insertion order but need not start at 0.)
    record = "_record"
    shifts = sorted(line - 1 - rank for rank, (line, _, _) in enumerate(rejected, start=1))
    if shifts:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {table}_shift AS SELECT unnest(?) AS s", [shifts]
        )
        line_expr = f"{record} + 2 + (SELECT count(*) FROM {table}_shift WHERE s <= {record})"
    else:
        line_expr = f"{record} + 2"
    conn.execute(
        f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * EXCLUDE (_record), {line_expr} AS _line "
        f"FROM (SELECT *, rowid - (SELECT min(rowid) FROM {table}_raw) AS _record FROM {table}_raw)"
    )
    return table, [(int(line), reason, raw) for line, reason, raw in rejected]


def drop_staged(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop what `stage_csv` made."""
    conn.execute(f"DROP VIEW IF EXISTS {name}")
    conn.execute(f"DROP TABLE IF EXISTS {name}_shift")
    conn.execute(f"DROP TABLE IF EXISTS {name}_raw")
