"""`deepcuts continue`: suggested tracks for a playlist, from its tracks and its title."""

from __future__ import annotations

import json
from pathlib import Path

import click

from deepcuts.cli.common import err, handles_errors, log, open_store
from deepcuts.io.playlists import export
from deepcuts.surfaces.continuation import (
    ContinuationError,
    continue_playlist,
    playlist_seeds,
    prepare_continuation,
    suggestions_playlist,
)

FORMATS = ("table", "json", "jspf", "m3u8")


@click.command("continue")
@click.option(
    "--playlist",
    "playlist_id",
    metavar="ID",
    help="Continue this stored playlist (its title and tracks).",
)
@click.option("--title", metavar="TEXT", help="The playlist's title (alone, or with --track).")
@click.option(
    "--track",
    "tracks",
    multiple=True,
    metavar="ID",
    help="A track of the playlist, in order; repeat for several. Needs --title or stands alone.",
)
@click.option(
    "--n",
    type=click.IntRange(min=1, max=10_000),
    default=500,
    show_default=True,
    help="How many tracks to suggest.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table (for people), json, jspf or m3u8 (playlists, reasons as annotations or comments).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout."
)
@click.option(
    "--no-minilm", is_flag=True, help="Compare titles by TF-IDF only (no sentence model)."
)
@click.pass_context
@handles_errors
def continue_(ctx, playlist_id, title, tracks, n, fmt, out, no_minilm) -> None:
    """Suggest tracks to add to a playlist: a stored one (--playlist) or one being made
    (--title and/or --track), each with the reason it is there.

    \b
    deepcuts continue --playlist mpd:playlist:17 --n 20
    deepcuts continue --title "rainy sunday" --format jspf --out rainy.jspf
    deepcuts continue --title "gym" --track spotify:track:A --track spotify:track:B

    The model is fitted on the store's playlists when the command starts (track and playlist
    neighbours, what follows the last tracks, titles by TF-IDF and MiniLM, the seed artists,
    and content vectors for tracks on no playlist yet). No seed track is ever suggested.
    """
    if playlist_id and (title or tracks):
        raise click.UsageError("give either --playlist, or --title and/or --track, not both")
    if not playlist_id and not title and not tracks:
        raise click.UsageError("give --playlist ID, or --title TEXT and/or --track ID")
    with open_store(ctx, read_only=True) as store:
        with err.status("fitting the continuation model") as status:
            continuer = prepare_continuation(
                store, minilm=not no_minilm, progress=lambda line: status.update(line)
            )
    try:
        if playlist_id:
            title, seeds = playlist_seeds(continuer, playlist_id)
        else:
            seeds = list(tracks)
        suggestions = continue_playlist(continuer, title=title, tracks=seeds, n=n)
    except ContinuationError as exc:
        param = "--playlist" if playlist_id and "playlist" in str(exc) else "--track"
        raise click.BadParameter(str(exc), param_hint=param) from exc
    if fmt == "table":
        text = _table(suggestions)
    else:
        playlist = suggestions_playlist(
            continuer,
            suggestions,
            title,
            identifier=f"urn:deepcuts:continuation:{playlist_id}" if playlist_id else None,
        )
        text = export(playlist, fmt)
        if fmt == "json":
            body = json.loads(text)
            for track, s in zip(body["tracks"], suggestions, strict=True):
                track["source"] = s.source
            text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_text(text if text.endswith("\n") else text + "\n")
        log.info("wrote %s", out)
    if not suggestions:
        err.print("nothing to suggest: no track scores for this playlist", highlight=False)


def _table(suggestions) -> str:
    lines = [f"{'#':>4}  {'track':<48} {'score':>7}  reason"]
    for rank, s in enumerate(suggestions, 1):
        label = f"{s.title} - {s.artist}" if s.artist else s.title
        if len(label) > 48:
            label = label[:47] + "…"
        lines.append(f"{rank:>4}  {label:<48} {s.score:>7.4f}  {s.reason}")
    return "\n".join(lines) + "\n"
