"""The learn job: close BaRT's loop outside the request path.

1. absorb the live log: accepted events into ``listens`` (plays and skips) and ``actions``
   (saves, unsaves, bans), through the store's normal load (deduplicated, quarantined if bad);
   the tracks the catalogue did not know, which ListenBrainz clients described when they sent
   their listens, into ``tracks``, ``artists`` and ``albums`` (a known track is left as it is);
   listens deleted after an earlier absorb out of ``listens``; and the pages served into
   ``impressions``;
2. join plays to the impressions they answer (a stream of 30 s or more is a success) and update
   the home reward model with the newly rewarded impressions, in micro-batches;
3. publish the new weights as a new snapshot version (the other parts are carried over), so the
   service ranks with them from its next check.

Card clicks are kept in the live log (listed with the listener's events) but are not a store
table: the reward is the stream, not the click.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from deepcuts.bandit.impressions import insert_impression_frame, records_frame
from deepcuts.io.listenbrainz import add_track_rows
from deepcuts.io.rows import Rows
from deepcuts.jobs.publish import bandit_part
from deepcuts.snapshots.published import Published
from deepcuts.snapshots.versions import SnapshotError, current_version, publish, snapshot_root
from deepcuts.store import FileLoad, Store
from deepcuts.store.live import IMPRESSIONS_KEPT_DAYS, LiveLog

log = logging.getLogger(__name__)

SOURCE = "api"
HOME_MODEL_NAME = "home-bandit"


@dataclass
class LearnReport:
    events_absorbed: int = 0
    tracks_described: int = 0  # tracks ListenBrainz clients described (new ones become entries)
    listens_deleted: int = 0
    listens: int = 0
    actions: int = 0
    impressions_absorbed: int = 0
    streamed: int = 0
    not_streamed: int = 0
    learned: int = 0
    batches: int = 0
    reward_version: int = 0
    model_id: str | None = None  # the home models' registered version, when they learnt
    published_version: int | None = None


def absorb_tracks(store: Store, live: LiveLog) -> int:
    """Make the tracks that ListenBrainz clients described (and the catalogue did not know)
    catalogue entries: track, artist and album from the listen's metadata. A track the store
    has already is a duplicate and stays as it was. Returns how many descriptions were read."""
    waiting = live.waiting_tracks()
    if not waiting:
        return 0
    rows = Rows()
    for seq, track in waiting:
        info = track.meta.get("additional_info")
        add_track_rows(rows, seq, track.item_id, track.meta, info if isinstance(info, dict) else {})
    with FileLoad(store, SOURCE, str(live.path)) as load:
        rows.load(load, counted=("tracks",))
    live.mark_absorbed("listen_tracks", [seq for seq, _ in waiting])
    counts = load.counts
    log.info("tracks described by listens: %d new, %d known, %d quarantined",
             counts.accepted, counts.duplicates, counts.quarantined)  # fmt: skip
    return len(waiting)


def absorb_deletions(store: Store, live: LiveLog) -> int:
    """Remove from the store the listens deleted after they were absorbed; returns how many."""
    waiting = live.waiting_deletions()
    if not waiting:
        return 0
    store.conn.executemany(
        "DELETE FROM listens WHERE user_id = ? AND item_id = ? AND played_at = ? AND source = ?",
        [
            [user_id, item_id, at.replace(tzinfo=None), SOURCE]
            for _, user_id, item_id, at in waiting
        ],
    )
    live.mark_absorbed("deleted_listens", [seq for seq, _, _, _ in waiting])
    return len(waiting)


def absorb_events(store: Store, live: LiveLog) -> tuple[int, int, int]:
    """Move waiting events into the store; returns (events, listens accepted, actions accepted)."""
    waiting = live.waiting_events()
    if not waiting:
        return 0, 0, 0
    plays = [(seq, e) for seq, e in waiting if e.type in ("play", "skip")]
    acts = [(seq, e) for seq, e in waiting if e.type in ("save", "unsave", "ban")]
    users = sorted({e.user_id for _, e in waiting})
    with FileLoad(store, SOURCE, str(live.path)) as load:
        load.add_arrow(
            "users",
            pa.table(
                {"user_id": users, "source": [SOURCE] * len(users), "_line": [0] * len(users)}
            ),
            counted=False,
        )
        if plays:
            load.add_arrow(
                "listens",
                pa.table(
                    {
                        "user_id": [e.user_id for _, e in plays],
                        "item_id": [e.item_id for _, e in plays],
                        "played_at": pa.array(
                            [e.at.replace(tzinfo=None) for _, e in plays], pa.timestamp("us")
                        ),
                        "ms_played": pa.array([e.ms_played for _, e in plays], pa.int64()),
                        "play_count": [1] * len(plays),
                        "skipped": [e.type == "skip" for _, e in plays],
                        "context_type": ["home" if e.impression_id else None for _, e in plays],
                        "context_id": pa.array([None] * len(plays), pa.string()),
                        "source": [SOURCE] * len(plays),
                        "_line": [seq for seq, _ in plays],
                    }
                ),
            )
        if acts:
            load.add_arrow(
                "actions",
                pa.table(
                    {
                        "user_id": [e.user_id for _, e in acts],
                        "action": [e.type for _, e in acts],
                        "target_id": [e.item_id for _, e in acts],
                        "acted_at": pa.array(
                            [e.at.replace(tzinfo=None) for _, e in acts], pa.timestamp("us")
                        ),
                        "source": [SOURCE] * len(acts),
                        "_line": [seq for seq, _ in acts],
                    }
                ),
            )
    # Marked only after the store committed; a crash in between re-absorbs them as duplicates.
    live.mark_absorbed("events", [seq for seq, _ in waiting])
    counts = load.counts
    log.info("absorbed %d events: %d accepted, %d duplicates, %d quarantined",
             len(waiting), counts.accepted, counts.duplicates, counts.quarantined)  # fmt: skip
    return len(waiting), len(plays), len(acts)


def absorb_impressions(
    store: Store, live: LiveLog, now: datetime | None = None
) -> tuple[int, set[str]]:
    """Move the served pages' impressions into the store (every card of every page is a row
    there), and delete from the live log the pages absorbed more than
    ``IMPRESSIONS_KEPT_DAYS`` days before ``now``; returns (how many impressions were moved,
    which policies served them)."""
    waiting = live.waiting_impressions()
    if waiting:
        insert_impression_frame(store, records_frame(row for _, row in waiting))
        live.mark_absorbed("pages", sorted({seq for seq, _ in waiting}))
    live.prune_pages((now or datetime.now(UTC)) - timedelta(days=IMPRESSIONS_KEPT_DAYS + 1))
    return len(waiting), {str(row["policy_id"]) for _, row in waiting}


def register_home_models(store: Store, bandit) -> str:  # bandit: HomeBandit
    """Keep this state of the home models as a registered version (kind ``home-reward``, the
    watermark of the latest reward learnt); returns its id."""
    from deepcuts.models.cf.training import model_dir
    from deepcuts.models.registry import next_version, register_model

    path = model_dir(store) / f"{HOME_MODEL_NAME}-v{next_version(store, HOME_MODEL_NAME)}.npz"
    bandit.save(path)
    record = register_model(
        store, HOME_MODEL_NAME, path,
        params={"learning_version": bandit.version, "policies_with_own_models": sorted(bandit.learners)},
        kind="home-reward",
        data_until=None if bandit.watermark is None else bandit.watermark.replace(tzinfo=None),
    )  # fmt: skip
    return record.model_id


def run(
    store: Store,
    live: LiveLog,
    *,
    now: datetime | None = None,
    window: timedelta = timedelta(hours=1),
    batch_size: int = 256,
) -> LearnReport:
    """Absorb the live log, learn from the rewards it brings, publish the new weights."""
    from deepcuts.surfaces.home import OWN_STATE, HomeBandit

    report = LearnReport()
    report.tracks_described = absorb_tracks(store, live)
    report.events_absorbed, report.listens, report.actions = absorb_events(store, live)
    report.listens_deleted = absorb_deletions(store, live)
    report.impressions_absorbed, served_by = absorb_impressions(store, live, now)
    root = snapshot_root(store.path)
    if current_version(root) is None:
        raise SnapshotError(
            "nothing published to learn for: run `deepcuts publish` first (the learn job reads "
            "the listeners' and cards' vectors from the published snapshot)"
        )
    published = Published.load(root)

    def user_vec(user_id: str):
        u = published.user_index.get(user_id)
        return None if u is None else published.user_vector(u)

    def card_vec(item_id: str):
        i = published.item_index.get(item_id)
        return None if i is None or not published.has_vector(i) else published.item_vectors[i]

    bandit = HomeBandit.load(store)
    learned_before = set(bandit.learners)
    # Policies that keep models of their own (Thompson sampling, LinUCB) get one as soon as
    # they have served a page, caught up on every reward logged so far.
    for name in sorted(set(OWN_STATE) & served_by - set(bandit.learners)):
        bandit.policy(name, store=store, vectors=(user_vec, card_vec))
    feedback = bandit.learn(store, vectors=(user_vec, card_vec), now=now, window=window,
                            batch_size=batch_size)  # fmt: skip
    report.streamed, report.not_streamed = feedback.streamed, feedback.not_streamed
    report.learned, report.batches = feedback.learned, feedback.batches
    report.reward_version = bandit.version
    if feedback.learned or bandit.learners.keys() - learned_before:
        bandit.save()
        report.model_id = register_home_models(store, bandit)
        meta = {**published.meta, "reward_version": bandit.version, "published_by": "learn"}
        manifest = publish(
            root,
            {"reward": bandit_part(bandit)},
            meta,
            reuse=published.manifest,
        )
        report.published_version = manifest.version
    return report
