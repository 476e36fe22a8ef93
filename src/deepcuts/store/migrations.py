"""Schema versions of the store and the steps between them.

Each migration takes a store from version N-1 to N and is never edited once released: a
change to the tables is a new migration appended here, together with the matching change to
``schema.py``. ``tests/test_store.py`` checks that a fresh store, after all migrations, has
exactly the columns ``schema.py`` declares, and that the store files kept under
``tests/fixtures/`` from earlier versions still open and migrate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


def _v1(conn: duckdb.DuckDBPyConnection) -> None:
    # Frozen copy of the version-1 tables; do not edit, add a migration instead.
    conn.execute(
        """
        CREATE TABLE users (user_id VARCHAR NOT NULL, display_name VARCHAR, country VARCHAR,
            city VARCHAR, created_at TIMESTAMP, source VARCHAR);
        CREATE TABLE artists (artist_id VARCHAR NOT NULL, name VARCHAR, genre VARCHAR,
            country VARCHAR, description VARCHAR, url VARCHAR, image_url VARCHAR, source VARCHAR);
        CREATE TABLE albums (album_id VARCHAR NOT NULL, name VARCHAR, artist_id VARCHAR,
            release_date DATE, source VARCHAR);
        CREATE TABLE tracks (track_id VARCHAR NOT NULL, name VARCHAR, artist_id VARCHAR,
            album_id VARCHAR, release_date DATE, duration_ms BIGINT, genre VARCHAR,
            description VARCHAR, audio_path VARCHAR, uri VARCHAR, source VARCHAR);
        CREATE TABLE item_tags (item_id VARCHAR NOT NULL, tag VARCHAR NOT NULL, user_id VARCHAR,
            tagged_at TIMESTAMP, weight DOUBLE, source VARCHAR);
        CREATE TABLE listens (user_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
            played_at TIMESTAMP, ms_played BIGINT, play_count BIGINT, reason_start VARCHAR,
            reason_end VARCHAR, skipped BOOLEAN, shuffle BOOLEAN, offline BOOLEAN,
            incognito BOOLEAN, platform VARCHAR, country VARCHAR, city VARCHAR,
            context_type VARCHAR, context_id VARCHAR, source VARCHAR);
        CREATE TABLE actions (user_id VARCHAR NOT NULL, action VARCHAR NOT NULL,
            target_id VARCHAR NOT NULL, acted_at TIMESTAMP, context_id VARCHAR, source VARCHAR);
        CREATE TABLE playlists (playlist_id VARCHAR NOT NULL, owner_id VARCHAR, name VARCHAR,
            description VARCHAR, created_at TIMESTAMP, modified_at TIMESTAMP,
            collaborative BOOLEAN, followers BIGINT, source VARCHAR);
        CREATE TABLE playlist_items (playlist_id VARCHAR NOT NULL, position BIGINT NOT NULL,
            item_id VARCHAR NOT NULL, added_at TIMESTAMP, source VARCHAR);
        CREATE TABLE friendships (user_id VARCHAR NOT NULL, friend_id VARCHAR NOT NULL,
            since TIMESTAMP, source VARCHAR);
        CREATE TABLE quarantine (source_file VARCHAR NOT NULL, line BIGINT,
            format VARCHAR NOT NULL, table_name VARCHAR, reason VARCHAR NOT NULL, raw VARCHAR,
            quarantined_at TIMESTAMP DEFAULT current_timestamp);
        CREATE TABLE ingest_log (format VARCHAR NOT NULL, source_file VARCHAR NOT NULL,
            rows_read BIGINT NOT NULL, accepted BIGINT NOT NULL, duplicates BIGINT NOT NULL,
            quarantined BIGINT NOT NULL, started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP NOT NULL);
        """
    )


def _v2(conn: duckdb.DuckDBPyConnection) -> None:
    # Frozen copy of the version-2 model registry: one row per trained model version;
    # do not edit, add a migration instead. See deepcuts.models.registry.
    conn.execute(
        """
        CREATE TABLE models (model_id VARCHAR NOT NULL PRIMARY KEY, name VARCHAR NOT NULL,
            version INTEGER NOT NULL, params JSON, metrics JSON, path VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            is_default BOOLEAN NOT NULL DEFAULT false, UNIQUE (name, version));
        """
    )


def _v3(conn: duckdb.DuckDBPyConnection) -> None:
    # Frozen copy of the version-3 impressions table (home pages served by a bandit policy);
    # do not edit, add a migration instead. See deepcuts.bandit.impressions for each column.
    conn.execute(
        """
        CREATE TABLE impressions (impression_id VARCHAR NOT NULL, page_id VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL, served_at TIMESTAMP NOT NULL, hour INTEGER,
            weekday INTEGER, device VARCHAR, country VARCHAR, context VARCHAR,
            shelf_id VARCHAR NOT NULL, shelf_type VARCHAR NOT NULL, shelf_title VARCHAR,
            item_id VARCHAR NOT NULL, item_kind VARCHAR, content_type VARCHAR,
            card_features VARCHAR, shelf_position INTEGER NOT NULL,
            card_position INTEGER NOT NULL, n_shelf_candidates INTEGER,
            n_card_candidates INTEGER, policy_id VARCHAR NOT NULL, policy_version VARCHAR,
            propensity DOUBLE NOT NULL, shelf_propensity DOUBLE, card_propensity DOUBLE,
            propensity_given_earlier DOUBLE, reward DOUBLE, reward_at TIMESTAMP);
        """
    )


def _v4(conn: duckdb.DuckDBPyConnection) -> None:
    # Frozen copy of the version-4 weekly lists (Discover Weekly); do not edit.
    conn.execute(
        """
        CREATE TABLE weekly_lists (user_id VARCHAR NOT NULL, week VARCHAR NOT NULL,
            position INTEGER NOT NULL, item_id VARCHAR NOT NULL, score DOUBLE, source VARCHAR,
            reason VARCHAR NOT NULL, created_at TIMESTAMP DEFAULT current_timestamp);
        CREATE TABLE weekly_notes (user_id VARCHAR NOT NULL, week VARCHAR NOT NULL,
            note VARCHAR NOT NULL);
        """
    )


def _v5(conn: duckdb.DuckDBPyConnection) -> None:
    # Frozen copy of the version-5 mapping of Subsonic songs to catalogue tracks; do not edit.
    conn.execute(
        """
        CREATE TABLE subsonic_songs (server VARCHAR NOT NULL, song_id VARCHAR NOT NULL,
            track_id VARCHAR NOT NULL, matched_by VARCHAR, path VARCHAR, first_seen TIMESTAMP,
            last_seen TIMESTAMP, gone_at TIMESTAMP, PRIMARY KEY (server, song_id));
        CREATE TABLE subsonic_playlists (server VARCHAR NOT NULL, server_user VARCHAR NOT NULL,
            name VARCHAR NOT NULL, playlist_id VARCHAR NOT NULL, listener VARCHAR, week VARCHAR,
            written_at TIMESTAMP, PRIMARY KEY (server, server_user, name));
        """
    )


def _v6(conn: duckdb.DuckDBPyConnection) -> None:
    # Frozen copy of the version-6 change: every learnt part is a registered model (a kind per
    # part, a default per kind, the watermark of its training data), and each weekly batch
    # records the model versions it used. Do not edit. See deepcuts.models.registry.
    # Stores made by a development build that skipped version 2 get the registry here.
    if not conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'models'"
    ).fetchall()[0][0]:
        _v2(conn)
    conn.execute(
        """
        ALTER TABLE models ADD COLUMN kind VARCHAR;
        ALTER TABLE models ADD COLUMN data_until TIMESTAMP;
        UPDATE models SET kind = 'cf';
        UPDATE models SET data_until = TRY_CAST(json_extract_string(metrics, '$.data_until') AS TIMESTAMP);
        CREATE TABLE weekly_runs (week VARCHAR NOT NULL PRIMARY KEY, models JSON NOT NULL,
            lists INTEGER NOT NULL, built_at TIMESTAMP NOT NULL DEFAULT current_timestamp);
        """
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "listens, actions, catalogue, playlists, social graph, quarantine", _v1),
    Migration(2, "model registry: trained model versions, params, metrics, default", _v2),
    Migration(3, "impressions: home pages served, with propensities and rewards", _v3),
    Migration(4, "weekly_lists: Discover Weekly lists by user and ISO week, with reasons", _v4),
    Migration(
        5,
        "subsonic_songs, subsonic_playlists: Subsonic songs matched to tracks, playlists written",
        _v5,
    ),
    Migration(6, "model kinds with a default each, training-data watermarks, weekly_runs", _v6),
)

LATEST_VERSION = MIGRATIONS[-1].version
