"""`deepcuts export-events`: the store's events as Parquet partitioned by day."""

from __future__ import annotations

from pathlib import Path

import click

from deepcuts.cli.common import handles_errors, open_store, progress_bar
from deepcuts.cli.train import parse_settings, split_confidence
from deepcuts.signals import ConfidenceConfig


@click.command("export-events")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to write (it must be new or empty, unless --overwrite).",
)
@click.option(
    "--set",
    "settings_",
    multiple=True,
    metavar="confidence.NAME=VALUE",
    help="A confidence setting (repeatable), e.g. --set confidence.alpha=2.",
)
@click.option(
    "--half-life",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Recency half-life of plays [default: 180].",
)
@click.option("--overwrite", is_flag=True, help="Replace an events folder written before.")
@click.pass_context
@handles_errors
def export_events_cmd(
    ctx, out: Path, settings_: tuple[str, ...], half_life: float | None, overwrite: bool
) -> None:
    """Write listens, skips, saves, bans, playlist memberships and follows as Parquet
    partitioned by day (OUT/<kind>/day=YYYY-MM-DD/), with the id maps and the confidence matrix
    (OUT/confidence/) that `deepcuts train --engine spark --events OUT` reads.

    The layout is described in docs/scale-out.md.
    """
    from deepcuts.engines.events import export_events

    rest, conf_values = split_confidence(parse_settings(settings_))
    if rest:
        raise click.BadParameter(
            f"only confidence.NAME settings, not {', '.join(rest)}", param_hint="--set"
        )
    if half_life is not None:
        conf_values["half_life_days"] = half_life
    try:
        confidence = ConfidenceConfig.from_dict(conf_values)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from exc
    with open_store(ctx, read_only=True) as store, progress_bar(transient=True) as bar:
        task = bar.add_task("exporting", total=None)
        try:
            manifest = export_events(
                store,
                out,
                confidence,
                overwrite=overwrite,
                step=lambda label: bar.update(task, description=label),
            )
        except FileExistsError as exc:
            raise click.BadParameter(str(exc), param_hint="--out") from exc
    counts = ", ".join(f"{k} {v}" for k, v in manifest["events"].items())
    click.echo(
        f"{out}: {counts}; {manifest['pairs']} confidence pairs "
        f"({manifest['users']} users x {manifest['items']} items)"
    )
