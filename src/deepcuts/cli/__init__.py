"""The `deepcuts` command.

Each subcommand lives in its own module of this package and is registered here; commands only
parse options, call the library and report, they hold no logic of their own.
"""

from __future__ import annotations

from pathlib import Path

import click

from deepcuts import __version__
from deepcuts.cli.bandit import ope, simulate_home
from deepcuts.cli.common import EXIT_CODES_HELP, EXIT_CONFIG, GlobalOptionsGroup, err
from deepcuts.cli.content import audio, search, similar
from deepcuts.cli.continuation import continue_
from deepcuts.cli.evaluate import evaluate
from deepcuts.cli.export import export_events_cmd
from deepcuts.cli.home import home
from deepcuts.cli.ingest import ingest
from deepcuts.cli.lookup import tracks, users
from deepcuts.cli.serve import keys, learn, publish, serve
from deepcuts.cli.simulate import simulate
from deepcuts.cli.store import init, quarantine, stats
from deepcuts.cli.sync import sync
from deepcuts.cli.train import models, train, tune
from deepcuts.cli.weekly import weekly
from deepcuts.config import ConfigError, configure_logging, load_settings


@click.group(
    cls=GlobalOptionsGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--store",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The DuckDB store file [default: ./deepcuts.duckdb, or DEEPCUTS_STORE]; "
    "before or after the subcommand.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="How much to log on stderr [default: INFO, or DEEPCUTS_LOG_LEVEL]; "
    "before or after the subcommand.",
)
@click.version_option(__version__, prog_name="deepcuts")
@click.pass_context
def main(ctx: click.Context, store: Path | None, log_level: str | None) -> None:
    """deepcuts: personalised music recommendation on one machine.

    \b
    Typical use:
      deepcuts init                                   create the store
      deepcuts ingest spotify Streaming_History_Audio_*.json --user me
      deepcuts simulate --users 1000 --tracks 2000 --out world/
      deepcuts ingest native world/                   load a simulated world
      deepcuts stats --json                           row counts of every table
      deepcuts users                                  listener ids, most active first
      deepcuts weekly --user me                       a bare id is enough when it is unique
    """
    try:
        ctx.obj = load_settings(store=store, log_level=log_level)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(EXIT_CONFIG) from exc
    configure_logging(ctx.obj.log_level)


for command in (
    init,
    stats,
    quarantine,
    ingest,
    simulate,
    train,
    tune,
    models,
    export_events_cmd,
    evaluate,
    search,
    similar,
    audio,
    weekly,
    home,
    ope,
    simulate_home,
    publish,
    learn,
    keys,
    serve,
    sync,
    continue_,
):
    main.add_command(command)
for command in (users, tracks):
    main.add_command(command)
