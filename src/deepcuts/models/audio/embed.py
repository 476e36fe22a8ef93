"""One row per audio file: path, status, summary features and an embedding, as an Arrow table.

Vector blocks of the summary (``mfcc_mean``, ``chroma_std``, ...) are list columns, scalar ones
(``tempo_bpm``, ``loudness_db``, ...) plain columns; the order of a block's values is the one
`summary_names` gives. A file that gave no features has its reason in ``error`` and nulls in
the feature columns.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deepcuts.models.audio.cnn import AudioToCF
from deepcuts.models.audio.extract import Extraction
from deepcuts.models.audio.features import summary_blocks, summary_embedding


def embedding_table(
    paths: list[str], result: Extraction, network: AudioToCF | None = None
) -> pa.Table:
    """The table for ``paths`` (in their order) from an extraction over them.

    The embedding is the network's predicted CF vector when ``network`` is given (the
    extraction must have kept spectrograms), else the standardised summary (`summary_embedding`
    over the files of this extraction).
    """
    ok = {f.path: f for f in result.features}
    failed = {f.path: f for f in result.failures}
    if network is not None:
        embeddings = (
            network.predict([f.log_mel for f in result.features]) if result.features else None
        )
    else:
        embeddings = summary_embedding(result.summaries) if result.features else None
    row_of = {f.path: n for n, f in enumerate(result.features)}
    columns: dict[str, list] = {
        k: [] for k in ("path", "sha256", "status", "error", "duration_s", "offset_s", "excerpt_s")
    }
    blocks = summary_blocks(result.config)
    for block in blocks:
        columns[block] = []
    columns["embedding"] = []
    for path in paths:
        f = ok.get(path)
        columns["path"].append(path)
        if f is None:
            failure = failed.get(path)
            columns["sha256"].append(None)
            columns["status"].append(failure.kind if failure else "missing")
            columns["error"].append(failure.reason if failure else "not processed")
            for name in ("duration_s", "offset_s", "excerpt_s", *blocks, "embedding"):
                columns[name].append(None)
            continue
        columns["sha256"].append(f.sha256)
        columns["status"].append("ok")
        columns["error"].append(None)
        columns["duration_s"].append(f.duration_s)
        columns["offset_s"].append(f.offset_s)
        columns["excerpt_s"].append(f.excerpt_s)
        start = 0
        for block, size in blocks.items():
            values = f.summary[start : start + size]
            columns[block].append(
                float(values[0]) if size == 1 else values.astype(np.float32).tolist()
            )
            start += size
        columns["embedding"].append(embeddings[row_of[path]].astype(np.float32).tolist())
    types = {
        "path": pa.string(), "sha256": pa.string(), "status": pa.string(), "error": pa.string(),
        "duration_s": pa.float64(), "offset_s": pa.float64(), "excerpt_s": pa.float64(),
        **{b: pa.float32() if s == 1 else pa.list_(pa.float32()) for b, s in blocks.items()},
        "embedding": pa.list_(pa.float32()),
    }  # fmt: skip
    return pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})


def write_parquet(table: pa.Table, path: str | Path) -> None:
    """Write atomically (a temporary file beside the target, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
