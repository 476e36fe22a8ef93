"""The events layout: what a store holds, as Parquet that a cluster reads.

`export_events` writes one folder (``deepcuts export-events --out PATH``)::

    PATH/manifest.json                 format, version, counts, the confidence settings used
    PATH/listens/day=YYYY-MM-DD/*.parquet        plays (streams that are not skips, count rows)
    PATH/skips/day=YYYY-MM-DD/*.parquet          listens ended before skip_ms (30 s)
    PATH/saves/day=YYYY-MM-DD/*.parquet          save and unsave actions
    PATH/bans/day=YYYY-MM-DD/*.parquet           ban and hide actions
    PATH/playlist_items/day=YYYY-MM-DD/*.parquet memberships: playlist items and playlist adds
    PATH/follows/day=YYYY-MM-DD/*.parquet        follows of artists and users
    PATH/users.parquet, PATH/items.parquet       the id maps: idx (int32), user_id / item_id
    PATH/confidence/*.parquet          user_idx, item_idx (int32), confidence (float32)

``day`` is the UTC date of the event (Hive-style partitions, so Spark, DuckDB and PyArrow read
``day`` as a column and prune by it); rows without a time (play counts, undated actions) are in
``day=undated``. ``confidence`` is the user x item confidence matrix computed by
`deepcuts.signals.confidence` (the one implementation of the weighting: log scaling, skips,
saves, playlist adds, follows, bans, recency) with the settings in the manifest; the Spark
training job reads it and the id maps. The event folders are the raw evidence behind it.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deepcuts.signals import ConfidenceConfig, Interactions, build_interactions
from deepcuts.signals.confidence import skip_condition
from deepcuts.store import Store, StoreError

log = logging.getLogger(__name__)

LAYOUT = "deepcuts-events"
LAYOUT_VERSION = 1
UNDATED = "undated"

Step = Callable[[str], None]


def _day(column: str) -> str:
    return f"coalesce(strftime({column}, '%Y-%m-%d'), '{UNDATED}') AS day"


def event_queries(config: ConfidenceConfig) -> dict[str, str]:
    """The SELECT behind each event folder (each with a ``day`` column to partition by)."""
    skip = skip_condition(config)
    listen_cols = "user_id, item_id, played_at, ms_played, play_count, incognito, platform, country"
    return {
        "listens": f"SELECT {listen_cols}, {_day('played_at')} FROM listens WHERE NOT {skip}",
        "skips": f"SELECT {listen_cols}, {_day('played_at')} FROM listens WHERE {skip}",
        "saves": "SELECT user_id, target_id AS item_id, action, acted_at, "
        f"{_day('acted_at')} FROM actions WHERE action IN ('save', 'unsave')",
        "bans": "SELECT user_id, target_id, action, acted_at, "
        f"{_day('acted_at')} FROM actions WHERE action IN ('ban', 'hide')",
        "playlist_items": (
            "SELECT pi.playlist_id, p.owner_id, pi.item_id, pi.position, "
            "coalesce(pi.added_at, p.created_at) AS added_at, "
            f"{_day('coalesce(pi.added_at, p.created_at)')} "
            "FROM playlist_items pi LEFT JOIN playlists p USING (playlist_id) "
            "UNION ALL "
            "SELECT context_id, user_id, target_id, NULL, acted_at, "
            f"{_day('acted_at')} FROM actions WHERE action = 'playlist_add'"
        ),
        "follows": "SELECT user_id, target_id, replace(action, 'follow_', '') AS kind, acted_at, "
        f"{_day('acted_at')} FROM actions WHERE action IN ('follow_artist', 'follow_user')",
    }


def export_events(
    store: Store,
    out: str | Path,
    confidence: ConfidenceConfig | None = None,
    *,
    overwrite: bool = False,
    step: Step | None = None,
) -> dict[str, Any]:
    """Write the store's events, id maps and confidence matrix in the events layout (module
    docstring). Returns the manifest."""
    report = step or (lambda _: None)
    config = confidence or ConfidenceConfig()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out} exists and is not empty: give another folder, or overwrite"
            )
        if not (out / "manifest.json").is_file():
            raise FileExistsError(
                f"{out} is not an events folder (no manifest.json): not overwriting it"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, sql in event_queries(config).items():
        report(f"writing {name}")
        counts[name] = int(store.conn.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0])
        if counts[name]:
            store.conn.execute(
                f"COPY ({sql}) TO '{_quote(out / name)}' (FORMAT parquet, PARTITION_BY (day))"
            )
        else:
            (out / name).mkdir()
    report("building the confidence matrix")
    inter = build_interactions(store, config)
    if inter.matrix.nnz == 0:
        raise StoreError("the store has no listening data to export: ingest some first")
    report("writing the confidence matrix")
    write_confidence(inter, out)
    manifest = {
        "layout": LAYOUT,
        "version": LAYOUT_VERSION,
        "confidence": config.to_dict(),
        "data_until": inter.now.isoformat() if inter.now else None,
        "users": len(inter.users),
        "items": len(inter.items),
        "pairs": int(inter.matrix.nnz),
        "events": counts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("exported %s events and %d pairs to %s", sum(counts.values()), inter.matrix.nnz, out)
    return manifest


def write_confidence(inter: Interactions, out: Path, rows_per_file: int = 5_000_000) -> None:
    """``confidence/`` and the id maps of an `Interactions` (see the module docstring)."""
    coo = inter.matrix.tocoo()
    folder = out / "confidence"
    folder.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, max(coo.nnz, 1), rows_per_file)):
        sl = slice(start, start + rows_per_file)
        pq.write_table(
            pa.table(
                {
                    "user_idx": pa.array(coo.row[sl].astype(np.int32)),
                    "item_idx": pa.array(coo.col[sl].astype(np.int32)),
                    "confidence": pa.array(coo.data[sl].astype(np.float32)),
                }
            ),
            folder / f"part-{n:05d}.parquet",
        )
    for name, ids in (("users", inter.users), ("items", inter.items)):
        column = "user_id" if name == "users" else "item_id"
        pq.write_table(
            pa.table(
                {
                    "idx": pa.array(np.arange(len(ids), dtype=np.int32)),
                    column: pa.array(ids.ids.tolist(), pa.string()),
                }
            ),
            out / f"{name}.parquet",
        )


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of an events folder, checked to be one this deepcuts reads."""
    file = Path(path) / "manifest.json"
    if not file.is_file():
        raise FileNotFoundError(
            f"{path}: no manifest.json; write the folder with `deepcuts export-events --out PATH`"
        )
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not JSON ({exc})") from exc
    if manifest.get("layout") != LAYOUT or manifest.get("version") != LAYOUT_VERSION:
        raise ValueError(
            f"{file}: layout {manifest.get('layout')!r} version {manifest.get('version')!r}; "
            f"this deepcuts reads {LAYOUT!r} version {LAYOUT_VERSION}"
        )
    return manifest


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
