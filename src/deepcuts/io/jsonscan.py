"""Reading JSON exports record by record, so one broken record does not lose the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deepcuts.io.errors import FormatError

_decoder = json.JSONDecoder()


@dataclass
class Record:
    line: int
    value: object | None  # the parsed record, or None where it could not be parsed
    raw: str
    error: str | None = None


def _line_of(text: str, offset: int, start: int, line: int) -> int:
    """Line number at `offset`, counting on from `line` at `start`."""
    return line + text.count("\n", start, offset)


def scan_array(path: Path, expected: str) -> Iterator[Record]:
    """The elements of a top-level JSON array, each with the line it starts on.

    A syntactically broken element is yielded with its error and reading resumes at the next
    object; a file that is not a JSON array at all raises `FormatError` naming `expected`.
    """
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    pos = len(text) - len(text.lstrip())
    if pos >= len(text) or text[pos] != "[":
        raise FormatError(f"{path}: expected {expected} (a JSON array), found no '[' at the start")
    pos += 1
    line, counted_to = 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise FormatError(f"{path}: expected {expected}: the JSON array is not closed")
        if text[pos] == "]":
            return
        line = _line_of(text, pos, counted_to, line)
        counted_to = pos
        try:
            value, end = _decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # Resume at the next object start after the broken one.
            nxt = text.find("{", max(exc.pos, pos + 1))
            end = nxt if nxt != -1 else len(text)
            yield Record(line, None, text[pos:end].strip().rstrip(","), f"invalid JSON: {exc.msg}")
            pos = end
            if nxt == -1:
                return
            continue
        yield Record(line, value, text[pos:end])
        pos = end


def scan_lines(path: Path) -> Iterator[Record]:
    """The records of a JSON Lines file (blank lines skipped)."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield Record(number, json.loads(text), text.rstrip("\n"))
            except json.JSONDecodeError as exc:
                yield Record(number, None, text.rstrip("\n"), f"invalid JSON: {exc.msg}")
