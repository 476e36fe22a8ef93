"""`deepcuts sync subsonic`: Discover Weekly as a playlist on the listener's own music server."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from deepcuts.cli.common import err, handles_errors, log, open_store, progress_bar, week_monday
from deepcuts.config import secret_from_env
from deepcuts.io.subsonic import (
    SubsonicAuthError,
    SubsonicClient,
    SubsonicError,
    SubsonicUnreachable,
)
from deepcuts.surfaces.subsonic import PLAYLIST_NAME, ListenerError, sync_subsonic
from deepcuts.surfaces.weekly import RANKERS

# Exit codes of the music server (the others are in cli.common).
EXIT_SERVER_UNREACHABLE = 7  # nothing (or no Subsonic server) answered at --url
EXIT_SERVER_AUTH = 8  # the server refused the user name and password
EXIT_SERVER_ERROR = 9  # the server answered a request with an error


@click.group()
def sync() -> None:
    """Keep a music server in step with deepcuts: its library in, playlists out."""


@sync.command()
@click.option(
    "--url",
    required=True,
    metavar="URL",
    help="The server's base URL, e.g. http://localhost:4533 (the part before /rest/).",
)
@click.option(
    "--user", required=True, metavar="NAME", help="The server account the playlist is written for."
)
@click.option(
    "--password-env",
    required=True,
    metavar="VAR",
    help="The environment variable holding that account's password (never the password itself).",
)
@click.option(
    "--listener",
    metavar="USER_ID",
    help="The deepcuts listener whose list it is [default: --user].",
)
@click.option(
    "--music-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The server's music folder, where readable: songs nobody has played get audio vectors from their files.",
)
@click.option("--week", metavar="YYYY-Www", help="The ISO week of the list [default: this week].")
@click.option(
    "--ranker",
    type=click.Choice(RANKERS),
    default="auto",
    show_default=True,
    help="As for `deepcuts weekly`.",
)
@click.option(
    "--because",
    type=click.IntRange(0, 10),
    default=0,
    show_default=True,
    metavar="N",
    help='Also write "Because you listened to <artist>" playlists for the listener\'s N most played '
    "artists (such playlists of earlier syncs not written again are deleted).",
)
@click.pass_context
@handles_errors
def subsonic(ctx, url, user, password_env, listener, music_dir, week, ranker, because) -> None:
    """Read a Subsonic server's library, write the listener's Discover Weekly to it.

    \b
    DC_PASS=... deepcuts sync subsonic --url http://localhost:4533 --user alice --password-env DC_PASS

    Works with servers that speak the Subsonic API: Navidrome, Gonic, Airsonic, Supysonic,
    Jellyfin (with a Subsonic plugin). The server's songs (with their artists, albums, genres,
    durations and MusicBrainz ids where the server gives them) are matched to the tracks the
    store knows (MusicBrainz id first, then artist, title and duration) and the rest are taken
    in as new tracks. The list is built over the server's songs only, and written as the
    playlist "Discover Weekly" of --user, replacing last week's. Run it every Monday.

    Exit codes besides the usual: 7 the server cannot be reached; 8 it refused the user name
    or password (with 7 and 8 the store is unchanged: both are found before anything is
    written); 9 it answered a request with an error (the week's list is then not stored).
    """
    monday = week_monday(week)
    listener = listener or user
    password = secret_from_env(password_env, "--password-env")
    if music_dir is not None and not music_dir.is_dir():
        err.print(
            f"[yellow]warning:[/yellow] --music-dir {music_dir} is not a readable folder: songs nobody "
            "has played get no audio vectors",
            highlight=False,
        )
        music_dir = None
    try:
        client = SubsonicClient(url, user, password)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from exc
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    try:
        with client, open_store(ctx) as store, progress_bar(transient=True) as bar:
            task = bar.add_task("reading the library (albums)", total=None)
            report = sync_subsonic(
                store,
                client,
                listener,
                monday,
                music_dir=music_dir,
                ranker=ranker,
                step=lambda text: log.info("%s", text),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                because=because,
            )
    except SubsonicUnreachable as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(EXIT_SERVER_UNREACHABLE) from exc
    except SubsonicAuthError as exc:
        err.print(
            f"[red]error:[/red] {exc}: check --user and the password in ${password_env}",
            highlight=False,
        )
        raise SystemExit(EXIT_SERVER_AUTH) from exc
    except SubsonicError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(EXIT_SERVER_ERROR) from exc
    except ListenerError as exc:
        raise click.BadParameter(str(exc), param_hint="--listener") from exc
    lib = report.library
    for gone in lib.gone:
        err.print(
            f"[yellow]warning:[/yellow] no longer on the server since the last sync: {gone} "
            "(its track stays in the catalogue, out of the server's playlists)",
            highlight=False,
        )
    if report.note:
        err.print(f"[yellow]note:[/yellow] {report.note}", highlight=False)
    click.echo(
        f"{client.url}: {lib.songs} songs ({lib.known} known from earlier syncs, {lib.by_mbid} matched by "
        f"MusicBrainz id, {lib.by_metadata} by artist, title and duration, {lib.new} new; "
        f"{lib.with_audio} with audio files; {len(lib.gone)} gone)"
    )
    click.echo(
        f"{report.week}: playlist {PLAYLIST_NAME!r} for {user} holds {len(report.song_ids)} songs "
        f"(listener {report.listener}{', model retrained' if report.trained else ''})"
    )
    for name, songs in report.because.items():
        click.echo(f"{report.week}: playlist {name!r} holds {len(songs)} songs")
    for name in report.deleted:
        click.echo(f"deleted the playlist {name!r} of an earlier sync")
