"""`deepcuts publish`, `deepcuts learn`, `deepcuts keys` and `deepcuts serve`: the live service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from deepcuts.cli.common import (
    Duration,
    PolicyChoice,
    err,
    handles_errors,
    log,
    open_store,
    progress_bar,
    settings,
)
from deepcuts.index import EXACT_MAX_ITEMS
from deepcuts.store.live import LiveLog

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date and time (e.g. 2026-11-02T18:30)",
                                 param_hint=option) from exc  # fmt: skip
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def publish_snapshot(store, index_above: int = EXACT_MAX_ITEMS) -> str:
    """Publish from an open store with a progress bar; returns what was published, in words.
    ``index_above``: see `publish`'s --index-above."""
    from deepcuts.jobs import publish

    with progress_bar(transient=True) as bar:
        task = bar.add_task("publish", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        report = publish.run(store, progress=progress, exact_max_items=index_above)
    return (
        f"published snapshot v{report.version:06d} to {report.root}: {report.users} listeners, "
        f"{report.items} items, {report.shelves} candidate shelves, {report.weekly_rows} weekly "
        f"tracks, reward model v{report.reward_version}"
    )


publish_option = click.option(
    "--publish/--no-publish",
    "publish_after",
    default=None,
    help="Publish a new snapshot for `deepcuts serve` when done [default: yes once the store has "
    "been published, so a served store stays fresh; no before].",
)


def maybe_publish(ctx: click.Context, store, choice: bool | None) -> None:
    """Publish after a job if asked to, or by default where a snapshot is already published."""
    from deepcuts.snapshots.versions import current_version, snapshot_root

    if choice is None:
        choice = current_version(snapshot_root(store.path)) is not None
    if choice:  # on stderr: the job's own output (JSON, a playlist) stays clean on stdout
        log.info("%s", publish_snapshot(store))


@click.command()
@click.option("--from", "from_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              metavar="PATH", help="First load the weekly lists an engine wrote there (`deepcuts weekly "
              "--engine spark --out PATH`: weekly_lists/ and weekly_notes/ Parquet) into the store.")  # fmt: skip
@click.option("--index-above", type=click.IntRange(min=0), default=EXACT_MAX_ITEMS, metavar="N",
              show_default=True, help="Build a nearest-neighbour index (Voyager HNSW) of the item "
              "vectors for similar and radio when more than N items have one (else they search "
              "exactly; 0: always).")  # fmt: skip
@click.pass_context
@handles_errors
def publish(ctx: click.Context, from_path: Path | None, index_above: int) -> None:
    """Publish what serving reads: a new immutable snapshot version, made current atomically.

    \b
    deepcuts publish
    deepcuts publish --from lists/        the Spark engine's weekly lists, loaded then published

    The snapshot (STORE.snapshots/ beside the store) holds the catalogue's names and vectors,
    every listener's taste vector, usual context and candidate home shelves (every shelf
    source run for them), the stored Discover Weekly lists, the text search index and the home
    reward model (and, for a catalogue of more than --index-above items, a nearest-neighbour
    index of the item vectors). `deepcuts serve` switches to it within a second; a publish that dies half
    way is never served. Needs a trained model (`deepcuts train`).
    """
    from deepcuts.surfaces.weekly import WeeklyFilesError, load_weekly_lists

    with open_store(ctx) as store:
        if from_path is not None:
            try:
                rows = load_weekly_lists(store, from_path)
            except WeeklyFilesError as exc:
                raise click.BadParameter(str(exc), param_hint="--from") from exc
            log.info("loaded %d weekly list rows from %s", rows, from_path)
        click.echo(publish_snapshot(store, index_above))


@click.command()
@click.option("--at", "at", metavar="TIMESTAMP",
              help="Learn as of this ISO time [default: now]: impressions served more than the window before it without a stream count as not streamed.")  # fmt: skip
@click.option("--window", type=click.IntRange(min=1), default=60, show_default=True,
              help="Minutes after a page within which a stream counts for its card.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_context
@handles_errors
def learn(ctx: click.Context, at: str | None, window: int, as_json: bool) -> None:
    """Close the bandit's loop: absorb the service's events and served pages into the store,
    join streams (30 s or more) to the cards they answer, update the home reward model in
    micro-batches and publish its new weights.

    \b
    deepcuts learn
    deepcuts serve --learn-every 60s     (runs it every minute beside the server)
    """
    from deepcuts.jobs import learn as job

    live = LiveLog.for_store(settings(ctx).store)
    with open_store(ctx) as store:
        report = job.run(store, live, now=_when(at, "--at"), window=timedelta(minutes=window))
    data = report.__dict__
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(
        f"absorbed {report.events_absorbed} events and {report.impressions_absorbed} impressions; "
        + (
            f"{report.tracks_described} tracks described by ListenBrainz listens, "
            f"{report.listens_deleted} listens deleted; "
            if report.tracks_described or report.listens_deleted
            else ""
        )
        + f"{report.streamed} streamed, {report.not_streamed} not streamed; learnt from "
        f"{report.learned} impressions in {report.batches} micro-batches (reward model "
        f"v{report.reward_version})"
        + (
            f"; published snapshot v{report.published_version:06d}"
            if report.published_version
            else ""
        )
    )


@click.group()
def keys() -> None:
    """API keys for the service: a listener's key reaches only their data; an admin key any."""


@keys.command("create")
@click.option("--user", "user_id", metavar="USER_ID", help="The listener the key is for.")
@click.option(
    "--admin", is_flag=True, help="An admin key (reads and writes every listener's data)."
)
@click.pass_context
@handles_errors
def keys_create(ctx: click.Context, user_id: str | None, admin: bool) -> None:
    """Make a key and print it once (only its hash is kept).

    \b
    deepcuts keys create --user u00042
    deepcuts keys create --admin
    """
    if admin == (user_id is not None):
        raise click.UsageError("give --user USER_ID or --admin (one of them)")
    key, record = LiveLog.for_store(settings(ctx).store).create_key(user_id, admin=admin)
    err.print(
        f"key {record.key_id} for {'admin' if admin else user_id}: shown only now, keep it",
        highlight=False,
    )
    click.echo(key)


@keys.command("list")
@click.pass_context
@handles_errors
def keys_list(ctx: click.Context) -> None:
    """Every key: id, whom it is for, when made, whether revoked."""
    for k in LiveLog.for_store(settings(ctx).store).keys():
        who = "admin" if k.is_admin else k.user_id
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        click.echo(f"{k.key_id}  {who}  created {k.created_at:%Y-%m-%d %H:%M}  {state}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
@handles_errors
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by its id (as `deepcuts keys list` shows it)."""
    if not LiveLog.for_store(settings(ctx).store).revoke_key(key_id):
        raise click.BadParameter(
            f"no active key {key_id!r} (see `deepcuts keys list`)", param_hint="KEY_ID"
        )
    click.echo(f"revoked {key_id}")


def _learn_loop(every: float, store: str, stop: threading.Event) -> None:
    """Run `deepcuts learn` as its own process every ``every`` seconds until ``stop``."""
    while not stop.wait(every):
        result = subprocess.run(
            [sys.executable, "-m", "deepcuts", "--store", store, "learn"],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode == 0:
            log.info("learn: %s", result.stdout.strip())
        else:
            log.warning(
                "learn failed (the events wait in the live log): %s", result.stderr.strip()[-500:]
            )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes."
)
@click.option(
    "--no-auth", is_flag=True, help="No API keys (only on 127.0.0.1: for a demo on this machine)."
)
@click.option("--learn-every", type=Duration(), metavar="DURATION",
              help="Run the learn job this often beside the server: seconds, or with a unit "
              "(60, 60s, 5m, 1h).")  # fmt: skip
@click.option("--policy", type=PolicyChoice(), default="epsilon-greedy", show_default=True,
              help="Who orders the home screen (the policies of deepcuts home).")  # fmt: skip
@click.option("--epsilon", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.pass_context
@handles_errors
def serve(ctx: click.Context, host: str, port: int, workers: int, no_auth: bool,
          learn_every: int | None, policy: str, epsilon: float) -> None:  # fmt: skip
    """Serve the published snapshot over HTTP (OpenAPI at /openapi.json, docs at /docs).

    \b
    deepcuts publish && deepcuts serve --port 8000
    deepcuts keys create --user u00042
    curl -H "Authorization: Bearer $KEY" localhost:8000/v1/users/u00042/home

    Requests read the published snapshot and append to the live log (STORE.live.sqlite); the
    store itself stays free for ingest, train, weekly, learn and publish from other processes.
    """
    import uvicorn

    from deepcuts.serving.config import ServeConfig
    from deepcuts.serving.protocol import HTTP_PROTOCOL

    if no_auth and host not in LOOPBACK:
        raise click.UsageError("--no-auth serves anyone: it is only allowed with --host 127.0.0.1")
    config = ServeConfig(
        settings(ctx).store.resolve(), no_auth=no_auth, policy=policy, epsilon=epsilon
    )
    os.environ.update(config.to_env())
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="deepcuts-metrics-")
    if no_auth:
        err.print("[yellow]serving without API keys (--no-auth): anyone on this machine can read and "
                  "write every listener's data[/yellow]", highlight=False)  # fmt: skip
    stop = threading.Event()
    if learn_every:
        threading.Thread(
            target=_learn_loop, args=(learn_every, str(config.store), stop), daemon=True
        ).start()
    try:
        uvicorn.run("deepcuts.serving.main:served_app", factory=True, host=host, port=port,
                    workers=workers, http=HTTP_PROTOCOL, log_level="warning")  # fmt: skip
    finally:
        stop.set()
