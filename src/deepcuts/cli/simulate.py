"""`deepcuts simulate`: a synthetic music world with known ground truth."""

from __future__ import annotations

import time
from pathlib import Path

import click

from deepcuts.cli.common import handles_errors, progress_bar


@click.command()
@click.option(
    "--users", default=1000, show_default=True, type=click.IntRange(min=2), help="Listeners."
)
@click.option(
    "--tracks",
    default=2000,
    show_default=True,
    type=click.IntRange(min=10),
    help="Tracks in the catalogue.",
)
@click.option(
    "--weeks", default=4, show_default=True, type=click.IntRange(min=1), help="Weeks of listening."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same world.")
@click.option(
    "--audio-share",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of tracks that get a synthesized WAV clip (1 for all).",
)
@click.option(
    "--format",
    "fmt",
    default="parquet",
    show_default=True,
    type=click.Choice(["parquet", "csv"]),
    help="Native file format to write.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write the world into (created; existing files are replaced).",
)
@handles_errors
def simulate(
    users: int, tracks: int, weeks: int, seed: int, audio_share: float, fmt: str, out: Path
) -> None:
    """Write a synthetic music world in the native format, with its ground truth.

    Users with latent tastes and home regions, artists and tracks in genres with tags,
    descriptions and synthesized audio, a social graph where friends share taste, weekly
    sessions of plays, skips and saves that follow taste, friends and region, and playlists.
    The true tastes go to OUT/truth/. Load the world with `deepcuts ingest native OUT`.
    """
    from deepcuts.simulate import simulate_world

    started = time.perf_counter()
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = simulate_world(
            out,
            users=users,
            tracks=tracks,
            weeks=weeks,
            seed=seed,
            audio_share=audio_share,
            fmt=fmt,
            progress=progress,
        )
    counts = ", ".join(f"{name} {n:,}" for name, n in summary.rows.items())
    click.echo(f"wrote {out} in {time.perf_counter() - started:.1f} s: {counts}")
