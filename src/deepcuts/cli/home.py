"""`deepcuts home`: serve one listener's home screen (themed shelves ordered by the bandit)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from deepcuts.cli.common import PolicyChoice, handles_errors, open_store, settings
from deepcuts.store import StoreError

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO date and time (e.g. 2026-11-02T18:30)", param_hint="--at"
        ) from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@click.command()
@click.option(
    "--user",
    "user_id",
    required=True,
    metavar="USER_ID",
    help="The listener: a full id (spotify:user:me) or the part after its last colon (me) "
    "where unique (see `deepcuts users`).",
)
@click.option("--hour", type=click.IntRange(0, 23), help="Local hour of the visit [default: now].")
@click.option(
    "--weekday",
    type=click.IntRange(0, 6),
    help="Weekday of the visit, 0 = Monday [default: today].",
)
@click.option(
    "--device",
    metavar="PLATFORM",
    help="android, ios, desktop, web, ... [default: the listener's most used platform].",
)
@click.option(
    "--country",
    metavar="CC",
    help="ISO 3166-1 alpha-2 country [default: the listener's home country].",
)
@click.option(
    "--policy",
    type=PolicyChoice(),
    default="epsilon-greedy",
    show_default=True,
    help="Who orders shelves and cards: epsilon-greedy over the factorization machine (BaRT), "
    "greedy (the same model without exploration), uniformly random order, thompson (bootstrap "
    "Thompson sampling over an ensemble of those models) or linucb (LinUCB). Thompson sampling "
    "and LinUCB keep models of their own, which `deepcuts learn` makes once they have served a "
    "page (from every reward logged so far) and publishes.",
)
@click.option(
    "--epsilon",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Exploration of epsilon-greedy at each position.",
)
@click.option(
    "--shelves", default=4, show_default=True, type=click.IntRange(min=1), help="Shelves per page."
)
@click.option(
    "--cards", default=5, show_default=True, type=click.IntRange(min=1), help="Cards per shelf."
)
@click.option(
    "--at",
    "at",
    metavar="TIMESTAMP",
    help="Serve as of this ISO time (UTC unless it says otherwise) [default: now]: the page's "
    "time, and its hour and weekday unless given.",
)
@click.option("--no-log", is_flag=True, help="Do not log the page's impressions.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
@click.pass_context
@handles_errors
def home(
    ctx: click.Context,
    user_id: str,
    hour: int | None,
    weekday: int | None,
    device: str | None,
    country: str | None,
    policy: str,
    epsilon: float,
    shelves: int,
    cards: int,
    at: str | None,
    no_log: bool,
    as_json: bool,
) -> None:
    """A listener's home screen: themed shelves of cards, as Spotify's BaRT builds it.

    \b
    deepcuts home --user u00042
    deepcuts home --user u00042 --hour 7 --device ios --country SE --json

    The same page `GET /v1/users/{user}/home` serves, built the same way from the published
    snapshot (`deepcuts publish`): every shelf kind's candidate shelves for the listener (Your
    Discover Weekly, Because you listened to <artist>, Best of <artist>, Keep the vibe going,
    Jump back in, Popular in <country>, Your friends are listening, Fresh finds, <genre> mix,
    New releases for you), chosen and ordered for the visit's context (hour, weekday, device,
    country, taste vector, session) by the policy with the published models. Every shown card
    is logged with its propensities to the live log; `deepcuts learn` joins the plays that
    follow to them and teaches the models, and the next page reflects it. Nothing is trained
    here.
    """
    from deepcuts.bandit.types import BanditInputError, PageLayout
    from deepcuts.serving.pages import NotFound, home_page, page_json
    from deepcuts.snapshots.published import Published
    from deepcuts.snapshots.versions import snapshot_root
    from deepcuts.store.ids import resolve_user
    from deepcuts.store.live import LiveLog

    when = _at(at)
    store_path = settings(ctx).store
    with open_store(ctx, read_only=True) as store:
        user_id = resolve_user(store, user_id)  # `me` -> spotify:user:me
    published = Published.load(snapshot_root(store_path))
    try:
        home = home_page(
            published, user_id, policy=policy, epsilon=epsilon, layout=PageLayout(shelves, cards),
            at=when, hour=hour, weekday=weekday, device=device, country=country,
        )  # fmt: skip
    except NotFound as exc:
        raise StoreError(
            f"{exc}: after ingesting their listens, run `deepcuts train` (it publishes a store "
            "that was published) or `deepcuts publish`"
        ) from exc
    except BanditInputError as exc:
        raise click.UsageError(str(exc)) from exc
    logged = 0 if no_log else LiveLog.for_store(store_path).append_pages([home.log_row])
    data = {**json.loads(page_json(published, home)), "logged": logged}
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
        return
    c = home.served.context
    session = c.features.get("session_genre")
    click.echo(
        f"Home for {c.user_id}: {WEEKDAYS[c.weekday]} {c.hour:02d}:00, {c.device}, {c.country}"
        + (f", listening to {session}" if session else "")
    )
    click.echo(
        f"page {home.served.page_id} by {home.policy.policy_id} v{home.policy.version}"
        f" from {home.n_candidates} candidate shelves (snapshot v{published.version:06d})"
        + ("" if logged else " (not logged)")
    )
    for shelf in data["shelves"]:  # type: ignore[union-attr]
        click.echo("")
        click.echo(f"{shelf['position'] + 1}. {shelf['title']}")
        for card in shelf["cards"]:
            artist = (
                f" - {card['artist']}" if card["artist"] and card["artist"] != card["name"] else ""
            )
            click.echo(
                f"   {card['position'] + 1}. {card['name']}{artist}  [p={card['propensity']:.3g}]"
            )
