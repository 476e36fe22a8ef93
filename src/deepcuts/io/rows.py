"""Collecting parsed rows per store table before handing them to the store in one batch."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

import pyarrow as pa

from deepcuts.io.jsonscan import Record
from deepcuts.store import TABLES, FileLoad

log = logging.getLogger(__name__)


def as_text(value: object) -> str | None:
    """A parsed scalar as text for the store's casts (booleans as true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Rows:
    """Rows for several store tables, each remembered with the line it came from."""

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[int | None, dict[str, object]]]] = defaultdict(list)

    def add(self, table: str, line: int | None, **values: object) -> None:
        self._rows[table].append((line, values))

    def load(self, load: FileLoad, counted: tuple[str, ...]) -> None:
        """Hand every table's rows to `load`; rows of `counted` tables count as rows read."""
        for table in TABLES:  # catalogue tables first
            rows = self._rows.get(table)
            if not rows:
                continue
            names = [c for c in TABLES[table].column_names if any(c in v for _, v in rows)]
            columns = {
                c: pa.array([as_text(v.get(c)) for _, v in rows], pa.string()) for c in names
            }
            columns["_line"] = pa.array([line for line, _ in rows], pa.int64())
            load.add_arrow(table, pa.table(columns), counted=table in counted)


def load_listen_records(
    load: FileLoad,
    records: Iterable[Record],
    check_first: Callable[[dict], None],
    add: Callable[[Rows, int, dict], str | None],
) -> None:
    """Turn JSON listen records into rows: unparseable records and records `add` rejects (it
    returns the reason) are quarantined; `check_first` sees the first object and raises
    `FormatError` if the file is not in the expected format at all."""
    rows = Rows()
    first = True
    for record in records:
        if record.error:
            load.reject(record.line, record.error, record.raw, "listens")
            continue
        if not isinstance(record.value, dict):
            load.reject(record.line, "expected a JSON object", record.raw, "listens")
            continue
        if first:
            check_first(record.value)
            first = False
        reason = add(rows, record.line, record.value)
        if reason:
            load.reject(record.line, reason, record.raw, "listens")
    rows.load(load, counted=("listens",))


def warn_user_disagrees(
    warned: set[tuple[str, str]], path: object, given: str, named: str, stored: str
) -> None:
    """Say, once per file and name, that the export names another listener than --user."""
    if (str(path), named) in warned:
        return
    warned.add((str(path), named))
    log.warning(
        "%s: the export names its listener %r, not --user %r: its listens are stored as %s "
        "(--user names only the listener of records that name none)",
        path,
        named,
        given,
        stored,
    )
