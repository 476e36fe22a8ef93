"""The model registry: trained model versions recorded in the store's ``models`` table.

Every learnt part is registered here: the collaborative-filtering model (kind ``cf``), the
weekly ranker (``weekly-ranker``), the content vectors and cold-start mapping (``content``),
the audio network (``audio-cnn``) and the home reward model (``home-reward``). Each row names
a saved model file (NumPy ``.npz`` or JSON, never pickle), the parameters it was trained with,
its figures, the watermark of its training data (``data_until``: no event at or after it was
seen) and whether it is the default of its kind, the one the surfaces use. Versions count up
per model name; the id is ``<name>-v<version>``. Loading a version is its kind's business
(`deepcuts.models.cf.training.load_trained`, `deepcuts.ranking.ranker.load_ranker`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from deepcuts.store import Store, StoreError

KINDS = ("cf", "weekly-ranker", "content", "audio-cnn", "home-reward")
"""The kinds of learnt part; each has its own default version."""


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    name: str
    version: int
    params: dict[str, Any]
    metrics: dict[str, Any]
    path: str
    created_at: datetime
    is_default: bool
    kind: str = "cf"
    data_until: datetime | None = None  # the training data's watermark


def register_model(
    store: Store,
    name: str,
    path: str | Path,
    params: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    *,
    kind: str = "cf",
    data_until: datetime | None = None,
    make_default: bool = True,
) -> ModelRecord:
    """Record a saved model as the next version of ``name``; optionally the default of its kind.

    ``data_until``: the watermark of the training data (no event at or after it was used)."""
    _require_registry(store)
    if kind not in KINDS:
        raise ValueError(f"model kind must be one of {', '.join(KINDS)}, not {kind!r}")
    conn = store.conn
    conn.execute("BEGIN TRANSACTION")
    try:
        version = next_version(store, name)
        model_id = f"{name}-v{version}"
        if make_default:
            conn.execute(
                "UPDATE models SET is_default = false WHERE is_default AND kind = ?", [kind]
            )
        conn.execute(
            "INSERT INTO models (model_id, name, version, params, metrics, path, is_default, kind, "
            "data_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                model_id,
                name,
                version,
                json.dumps(params, default=str),
                json.dumps(metrics or {}, default=str),
                str(path),
                make_default,
                kind,
                data_until,
            ],
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return get_model(store, model_id)


def next_version(store: Store, name: str) -> int:
    """The version the next registered model called ``name`` will get."""
    _require_registry(store)
    return int(
        store.conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?", [name]
        ).fetchall()[0][0]
    )


def _require_registry(store: Store) -> None:
    found = store.conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'models' AND column_name = 'kind'"
    ).fetchall()[0][0]
    if not found:
        raise StoreError(
            f"store {store.path} has no model registry (schema version 5); it was made by a "
            "development build that skipped that migration: create the store again"
        )


def _record(row: tuple) -> ModelRecord:
    model_id, name, version, params, metrics, path, created_at, is_default, kind, data_until = row
    return ModelRecord(
        model_id,
        name,
        int(version),
        json.loads(params or "{}"),
        json.loads(metrics or "{}"),
        path,
        created_at,
        bool(is_default),
        kind or "cf",
        data_until,
    )


_COLUMNS = (
    "model_id, name, version, params, metrics, path, created_at, is_default, kind, data_until"
)


def get_model(store: Store, model_id: str) -> ModelRecord:
    _require_registry(store)
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM models WHERE model_id = ?", [model_id]
    ).fetchall()
    if not rows:
        raise StoreError(f"no model {model_id!r} in the registry")
    return _record(rows[0])


def get_model_of_kind(store: Store, model_id: str, kind: str) -> ModelRecord:
    """A registered version, which must be of ``kind`` (a clear error where it is not)."""
    record = get_model(store, model_id)
    if record.kind != kind:
        raise StoreError(
            f"model {model_id!r} is of kind {record.kind}, not {kind} (`deepcuts models` lists them)"
        )
    return record


def list_models(store: Store, kind: str | None = None) -> list[ModelRecord]:
    _require_registry(store)
    where, args = ("WHERE kind = ?", [kind]) if kind else ("", [])
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM models {where} ORDER BY created_at, name, version", args
    ).fetchall()
    return [_record(r) for r in rows]


def default_model(store: Store, kind: str = "cf") -> ModelRecord | None:
    """The default version of a kind, or None if none of that kind has been trained."""
    _require_registry(store)
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM models WHERE is_default AND kind = ? ORDER BY created_at DESC LIMIT 1",
        [kind],
    ).fetchall()
    return _record(rows[0]) if rows else None


def set_default(store: Store, model_id: str) -> ModelRecord:
    """Make a version the default of its kind."""
    kind = get_model(store, model_id).kind
    store.conn.execute("BEGIN TRANSACTION")
    try:
        store.conn.execute(
            "UPDATE models SET is_default = (model_id = ?) WHERE kind = ?", [model_id, kind]
        )
        store.conn.execute("COMMIT")
    except Exception:
        store.conn.execute("ROLLBACK")
        raise
    return get_model(store, model_id)
