"""`deepcuts ingest FORMAT PATH...`."""

from __future__ import annotations

import click

from deepcuts.cli.common import err, handles_errors, log, open_store, progress_bar
from deepcuts.io import FORMATS
from deepcuts.store import IngestCounts


@click.command()
@click.argument("fmt", metavar="FORMAT", type=click.Choice(sorted(FORMATS)))
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--table", help="native: the table every given file fills (default: from the file name)."
)
@click.option(
    "--user",
    help="spotify, listenbrainz: the listener of records that name none (stored as "
    "spotify:user:ID or listenbrainz:user:ID); records that name their listener keep it, "
    "with a warning where it differs.",
)
@click.pass_context
@handles_errors
def ingest(
    ctx: click.Context, fmt: str, paths: tuple[str, ...], table: str | None, user: str | None
) -> None:
    """Load listening data, catalogue, playlists or friendships into the store.

    \b
    FORMAT is one of:
      native          deepcuts' own tables as CSV, Parquet or JSON Lines, a file per table
      spotify         Spotify extended streaming history (Streaming_History_Audio_*.json, endsong_*.json)
      listenbrainz    ListenBrainz listens export (JSON Lines, or a JSON array)
      lastfm-hetrec   the HetRec 2011 Last.fm 2K folder
      mpd             Spotify Million Playlist Dataset slices (mpd.slice.*.json)

    Folders are searched for the format's files (lastfm-hetrec takes the folder itself). Ingestion is idempotent: a row already in
    the store counts as a duplicate. A malformed row goes to the quarantine table with its
    file, line and reason; the rest of the file still loads.
    """
    options = {"table": table} if fmt == "native" else {}
    if user is not None:
        if fmt not in ("spotify", "listenbrainz"):
            raise click.UsageError(f"--user applies to spotify and listenbrainz, not {fmt}")
        options["user"] = user
    elif table is not None and fmt != "native":
        raise click.UsageError(f"--table applies to native files, not {fmt}")
    importer = FORMATS[fmt](**options)
    files = importer.files(list(paths))
    n_files = len(files) * getattr(importer, "files_per_path", 1)
    total = IngestCounts()
    with open_store(ctx, create=True) as store, progress_bar() as bar:
        task = bar.add_task(f"ingest {fmt}", total=len(files))
        for path in files:
            bar.update(task, description=f"ingest {path.name}")
            counts = importer.ingest_file(store, path)
            log.debug("%s: %s", path, counts)
            total = total + counts
            bar.advance(task)
    click.echo(
        f"accepted {total.accepted}, duplicates {total.duplicates}, "
        f"quarantined {total.quarantined} (of {total.rows_read} rows read from {n_files} "
        f"{'file' if n_files == 1 else 'files'})"
    )
    if total.quarantined:
        err.print(
            f"[yellow]{total.quarantined} rows quarantined[/yellow]: see them with "
            f"`deepcuts quarantine --store {store.path}`",
            highlight=False,
        )
