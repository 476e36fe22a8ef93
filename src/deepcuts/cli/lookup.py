"""`deepcuts users` and `deepcuts tracks`: the ids the store knows, to give to other commands."""

from __future__ import annotations

import json

import click

from deepcuts.cli.common import handles_errors, open_store
from deepcuts.store.ids import find_items, find_users


@click.command()
@click.option("--search", metavar="TEXT", help="Only ids containing TEXT (case-insensitive).")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Rows to show."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines: user_id, listens.")
@click.pass_context
@handles_errors
def users(ctx: click.Context, search: str | None, limit: int, as_json: bool) -> None:
    """Listener ids in the store with their number of listens, most active first.

    Ids carry where they came from (spotify:user:me, lastfm:user:2); commands that take
    --user also accept the part after the last colon (me, 2) where only one listener has it.

    \b
    Example:
      deepcuts users --search me
    """
    with open_store(ctx, read_only=True) as store:
        rows = find_users(store, search, limit)
    for user_id, n in rows:
        click.echo(json.dumps({"user_id": user_id, "listens": n}) if as_json else f"{user_id}\t{n}")


@click.command()
@click.option("--search", metavar="TEXT", help="Only items whose id, name or artist contains TEXT.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Rows to show."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON Lines: item_id, kind, name, artist."
)
@click.pass_context
@handles_errors
def tracks(ctx: click.Context, search: str | None, limit: int, as_json: bool) -> None:
    """Item ids in the catalogue (tracks, then artists) with their names.

    Commands that take an item (similar) also accept the part after the last colon of an id,
    or an exact track or artist name, where only one item has it.

    \b
    Example:
      deepcuts tracks --search "daft punk"
    """
    with open_store(ctx, read_only=True) as store:
        rows = find_items(store, search, limit)
    for item_id, kind, name, artist in rows:
        if as_json:
            click.echo(
                json.dumps({"item_id": item_id, "kind": kind, "name": name, "artist": artist})
            )
        else:
            click.echo(
                "\t".join([item_id, kind, name] + ([artist] if artist and artist != name else []))
            )
