"""`deepcuts init` and `deepcuts stats`."""

from __future__ import annotations

import json

import click

from deepcuts.cli.common import handles_errors, log, open_store, settings


@click.command()
@click.pass_context
@handles_errors
def init(ctx: click.Context) -> None:
    """Create the store (a DuckDB file), or migrate an existing one to this version's schema."""
    with open_store(ctx, create=True) as store:
        log.info("store %s ready at schema version %d", store.path, store.schema_version())
        click.echo(f"{settings(ctx).store}: schema version {store.schema_version()}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: table -> row count.")
@click.pass_context
@handles_errors
def stats(ctx: click.Context, as_json: bool) -> None:
    """Row count of every table in the store."""
    with open_store(ctx, read_only=True) as store:
        counts = store.stats()
    if as_json:
        click.echo(json.dumps(counts, sort_keys=True))
    else:
        width = max(map(len, counts))
        for name, count in counts.items():
            click.echo(f"{name:<{width}}  {count:>12,}")


@click.command()
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows to show, newest first.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON Lines, one rejected row per line."
)
@click.pass_context
@handles_errors
def quarantine(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Rows that ingestion rejected: the file, the line and the reason."""
    with open_store(ctx, read_only=True) as store:
        rows = store.conn.execute(
            "SELECT source_file, line, format, table_name, reason, raw FROM quarantine "
            "ORDER BY quarantined_at DESC, source_file, line LIMIT ?",
            [limit],
        ).fetchall()
    keys = ("source_file", "line", "format", "table", "reason", "raw")
    for row in rows:
        if as_json:
            click.echo(json.dumps(dict(zip(keys, row, strict=True))))
        else:
            click.echo(f"{row[0]}:{row[1] if row[1] is not None else '?'}: {row[4]}")
