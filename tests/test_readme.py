"""The docs' examples run as written.

Every shell block of README.md and docs/*.md whose opening fence follows the line
``<!-- runnable -->`` is run with bash, block after block (README first, then docs/ in name
order), in one temporary folder that holds ``../shared/data`` (a link to the shared real data),
with this interpreter's ``deepcuts`` first on the PATH. A block fails the test when any of its
commands exits non-zero.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA

MARKER = "<!-- runnable -->"
BLOCK = re.compile(r"^```(?:sh|bash|shell)[^\n]*\n(.*?)^```", re.S | re.M)


def runnable_blocks(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each shell block marked runnable in a Markdown file."""
    text = path.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() == MARKER:
            blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return blocks


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_marked_blocks_are_found():
    marked = sum(
        line.strip() == MARKER for path in doc_files() for line in path.read_text().splitlines()
    )
    found = sum(len(runnable_blocks(path)) for path in doc_files())
    assert found == marked >= 4  # every marker sits before a shell block


@pytest.mark.skipif(not (SHARED_DATA / "hetrec-lastfm-2k").is_dir(), reason="needs the shared data")
def test_runnable_blocks_run_as_written(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA.resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCUTS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    for var, value in (
        ("OPENBLAS_NUM_THREADS", "1"),
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
    ):
        env.setdefault(var, value)
    ran = 0
    for path in doc_files():
        for line, block in runnable_blocks(path):
            result = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", block],
                cwd=work, env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            where = f"{path.relative_to(REPO)}:{line}"
            assert result.returncode == 0, f"{where} failed:\n{block}\n{result.stderr[-3000:]}"
            ran += 1
    assert ran >= 4
    assert (work / "deepcuts.duckdb").is_file() and (work / "hetrec.duckdb").is_file()
    assert (work / "dw.m3u8").read_text().startswith("#EXTM3U")
