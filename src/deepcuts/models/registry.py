"""The model registry: trained model versions recorded in the store's ``models`` table.

Each row names a saved model file, the parameters it was trained with, its figures (training
statistics, validation metrics where measured) and whether it is the default one that
recommendation surfaces use. Versions count up per model name; the id is ``<name>-v<version>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from deepcuts.store import Store, StoreError


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


def register_model(
    store: Store,
    name: str,
    path: str | Path,
    params: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    *,
    make_default: bool = True,
) -> ModelRecord:
    """Record a saved model as the next version of ``name``; optionally the default one."""
    _require_registry(store)
    conn = store.conn
    conn.execute("BEGIN TRANSACTION")
    try:
        version = next_version(store, name)
        model_id = f"{name}-v{version}"
        if make_default:
            conn.execute("UPDATE models SET is_default = false WHERE is_default")
        conn.execute(
            "INSERT INTO models (model_id, name, version, params, metrics, path, is_default) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [model_id, name, version, json.dumps(params, default=str),
             json.dumps(metrics or {}, default=str), str(path), make_default],
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return get_model(store, model_id)


def next_version(store: Store, name: str) -> int:
    """The version the next registered model called ``name`` will get."""
    _require_registry(store)
    return int(store.conn.execute(
        "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?", [name]
    ).fetchall()[0][0])


def _require_registry(store: Store) -> None:
    found = store.conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'models'"
    ).fetchall()[0][0]
    if not found:
        raise StoreError(
            f"store {store.path} has no model registry (schema version 2); it was made by a "
            "development build that skipped that migration: create the store again"
        )


def _record(row: tuple) -> ModelRecord:
    model_id, name, version, params, metrics, path, created_at, is_default = row
    return ModelRecord(
        model_id, name, int(version), json.loads(params or "{}"), json.loads(metrics or "{}"),
        path, created_at, bool(is_default),
    )


_COLUMNS = "model_id, name, version, params, metrics, path, created_at, is_default"


def get_model(store: Store, model_id: str) -> ModelRecord:
    _require_registry(store)
    rows = store.conn.execute(f"SELECT {_COLUMNS} FROM models WHERE model_id = ?", [model_id]).fetchall()
    if not rows:
        raise StoreError(f"no model {model_id!r} in the registry")
    return _record(rows[0])


def list_models(store: Store) -> list[ModelRecord]:
    _require_registry(store)
    rows = store.conn.execute(f"SELECT {_COLUMNS} FROM models ORDER BY created_at, name, version").fetchall()
    return [_record(r) for r in rows]


def default_model(store: Store) -> ModelRecord | None:
    """The default model version, or None if nothing has been trained."""
    _require_registry(store)
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM models WHERE is_default ORDER BY created_at DESC LIMIT 1"
    ).fetchall()
    return _record(rows[0]) if rows else None


def set_default(store: Store, model_id: str) -> ModelRecord:
    get_model(store, model_id)
    store.conn.execute("BEGIN TRANSACTION")
    try:
        store.conn.execute("UPDATE models SET is_default = (model_id = ?)", [model_id])
        store.conn.execute("COMMIT")
    except Exception:
        store.conn.execute("ROLLBACK")
        raise
    return get_model(store, model_id)
