"""`deepcuts weekly`: build, store and export Discover Weekly lists."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from deepcuts.cli.common import handles_errors, log, open_store, progress_bar, settings, week_monday
from deepcuts.cli.engine import check_engine, engine_options, start_spark
from deepcuts.cli.serve import maybe_publish, publish_option
from deepcuts.engines import local
from deepcuts.io.playlists import FORMATS, ExportTrack, PlaylistExport, export, track_location
from deepcuts.store import StoreError
from deepcuts.store.ids import resolve_user
from deepcuts.surfaces.weekly import (
    RANKERS,
    save_lists,
    save_run,
    stored_run,
    week_name,
)


@click.command()
@click.option(
    "--week", metavar="YYYY-Www", help="The ISO week (Monday start) [default: this week]."
)
@click.option(
    "--user",
    metavar="USER_ID",
    help="Print (or --out) this listener's list instead of building everyone's; a full id "
    "(spotify:user:me) or the part after its last colon (me) where unique (see `deepcuts users`).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="json",
    show_default=True,
    help="With --user: the playlist format.",
)
@click.option(
    "--out",
    metavar="PATH",
    help="With --user: write the playlist to this file instead of printing it. Without "
    "--user: write every list as Parquet to this folder (weekly_lists/, "
    "weekly_notes/) instead of storing them; with --engine spark, any URI Spark writes.",
)
@click.option(
    "--model",
    "model_id",
    metavar="MODEL_ID",
    help="A registered model version [default: the default model].",
)
@click.option(
    "--ranker",
    type=click.Choice(RANKERS),
    default="auto",
    show_default=True,
    help="learned: trained on what listeners streamed the week before; blend: hand-weighted; auto: learned where possible.",
)
@click.option(
    "--ranker-model",
    "ranker_id",
    metavar="MODEL_ID",
    help="A registered weekly ranker [default: the newest learnt before the week].",
)
@engine_options
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --engine spark: partitions of listeners [default: Spark's parallelism].",
)
@publish_option
@click.pass_context
@handles_errors
def weekly(ctx, week, user, fmt, out, model_id, ranker, ranker_id, engine, master, spark_conf, partitions,
           publish_after) -> None:  # fmt: skip
    """Discover Weekly: 30 tracks per listener that they have never played.

    \b
    deepcuts weekly --week 2026-W48                      build and store every listener's list
    deepcuts weekly --user U --week 2026-W48 --format jspf   print one stored list (json|jspf|xspf|m3u8)

    Lists are built from the registered models (`deepcuts train`: the default CF model, the
    content vectors, the weekly ranker learnt on streams from before the week; `deepcuts
    models` lists them) with every candidate source (the model, taste clusters, playlists,
    audio and text neighbours, friends, what is rising in the listener's region, new
    releases), ranked, capped at 2 tracks per artist and 1 per album, diversified, and
    explained. A part with no registered version is learnt and registered once. The same week
    gives the same list; a list never repeats the listener's previous 4 weeks.

    With --user, nothing is fitted or built: the list is read from what the week's batch stored.

    \b
    deepcuts weekly --week 2026-W48 --engine spark --master local[2] --out lists/
    builds every list on Spark with the same code, per partition, and writes them as Parquet
    with the columns of the store's weekly_lists and weekly_notes tables.
    """
    monday = week_monday(week)
    check_engine(engine, master, spark_conf)
    if user is None and fmt != "json":
        raise click.UsageError("--format exports one list: give --user too")
    if engine == "spark" and user is not None:
        raise click.UsageError("--engine spark builds every listener's list: leave out --user")
    if engine == "spark" and out is None:
        raise click.UsageError("--engine spark writes the lists as Parquet: give --out PATH")
    if partitions is not None and engine != "spark":
        raise click.UsageError("--partitions goes with --engine spark")
    if engine == "spark":
        from deepcuts.engines.spark.weekly import run_weekly

        spark = start_spark(master, spark_conf)
        with open_store(ctx) as store:
            result = run_weekly(store, spark, monday, out, model_id=model_id, ranker=ranker, ranker_id=ranker_id,
                                partitions=partitions)  # fmt: skip
        click.echo(
            f"{result.week}: {result.lists} lists, {result.rows} tracks written to {result.path}"
            + (f"; {result.short} lists shorter than 30 (see weekly_notes)" if result.short else "")
            + f"; ranker: {result.ranker}"
        )
        return
    with open_store(ctx) as store:
        if user is not None:
            user = resolve_user(store, user)  # `me` -> spotify:user:me
            name = week_name(monday)
            if stored_run(store, name) is None and not _stored(store, "week = ?", [name]):
                raise StoreError(
                    f"no Discover Weekly lists are stored for {name}: run `deepcuts weekly --week {name}` first"
                )
            if not _stored(store, "week = ? AND user_id = ?", [name, user]):
                known = store.conn.execute(
                    "SELECT count(*) FROM users WHERE user_id = ?", [user]
                ).fetchall()[0][0]
                why = "no listener" if not known else "no list stored for listener"
                raise click.BadParameter(f"{why} {user!r} in week {name}", param_hint="--user")
            text = export(load_playlist(store, user, monday, settings(ctx).track_url), fmt)
            if out is None:
                click.echo(text, nl=False)
            else:
                Path(out).write_text(text)
                log.info("wrote %s", out)
            return
        with progress_bar(transient=True) as bar:
            bar.add_task("loading the registered models", total=None)
            dw = local.weekly(store, monday, model_id=model_id, ranker=ranker, ranker_id=ranker_id)
        n_users = dw.interactions.shape[0]
        if out is not None:
            with progress_bar() as bar:
                task = bar.add_task(f"Discover Weekly {dw.week}", total=n_users)
                n_lists, rows, short = local.write_weekly(
                    dw, out, progress=lambda n: bar.advance(task, n)
                )
            click.echo(
                f"{dw.week}: {n_lists} lists, {rows} tracks written to {out}"
                + (f"; {short} lists shorter than 30 (see weekly_notes)" if short else "")
                + f"; ranker: {dw.ranker.kind}"
            )
            return
        lists, short = [], 0
        with progress_bar() as bar:
            task = bar.add_task(f"Discover Weekly {dw.week}", total=n_users)
            for wl in dw.build(progress=lambda n: bar.advance(task, n)):
                lists.append(wl)
                short += bool(wl.note)
        rows = save_lists(store, lists, dw.interactions.users, dw.interactions.items)
        save_run(store, dw.week, dw.model_ids, len(lists))
        used = ", ".join(f"{kind} {mid}" for kind, mid in dw.model_ids.items() if mid)
        click.echo(
            f"{dw.week}: {len(lists)} lists, {rows} tracks stored"
            + (f"; {short} lists shorter than 30 (see weekly_notes)" if short else "")
            + f"; ranker: {dw.ranker.kind}; models: {used}"
        )
        maybe_publish(ctx, store, publish_after)


def _stored(store, where: str, args: list) -> bool:
    return bool(
        store.conn.execute(f"SELECT count(*) FROM weekly_lists WHERE {where}", args).fetchall()[0][
            0
        ]
    )


def load_playlist(store, user: str, monday: date, track_url: str = "") -> PlaylistExport:
    """A stored weekly list with the catalogue's names, as a playlist to export; each track's
    location is `track_location` of its audio file, `track_url` pattern or URI."""
    week = week_name(monday)
    rows = store.conn.execute(
        """
        SELECT w.item_id, coalesce(t.name, a2.name, w.item_id), coalesce(a.name, a2.name), al.name,
               t.duration_ms, t.audio_path, t.uri, w.reason, w.score
        FROM weekly_lists w
        LEFT JOIN tracks t ON t.track_id = w.item_id
        LEFT JOIN artists a ON a.artist_id = t.artist_id
        LEFT JOIN artists a2 ON a2.artist_id = w.item_id
        LEFT JOIN albums al ON al.album_id = t.album_id
        WHERE w.user_id = ? AND w.week = ? ORDER BY w.position
        """,
        [user, week],
    ).fetchall()
    note = store.conn.execute(
        "SELECT note FROM weekly_notes WHERE user_id = ? AND week = ?", [user, week]
    ).fetchall()
    return PlaylistExport(
        title=f"Discover Weekly {week}",
        creator="deepcuts",
        date=datetime.combine(monday, datetime.min.time()),
        annotation=note[0][0] if note else f"{len(rows)} tracks for {user}, new to them this week",
        identifier=f"urn:deepcuts:weekly:{user}:{week}",
        tracks=[
            ExportTrack(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                track_location(r[0], r[5], r[6], track_url),
                r[7],
                r[8],
            )
            for r in rows
        ],
    )
