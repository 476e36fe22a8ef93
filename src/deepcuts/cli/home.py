"""`deepcuts home`: serve one listener's home screen (themed shelves ordered by the bandit)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from deepcuts.cli.common import PolicyChoice, handles_errors, log, open_store, progress_bar

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
STEPS = 4  # the steps `serve_home` reports


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
    "and LinUCB keep models of their own beside the shared one, made the first time they "
    "serve from every reward logged so far.",
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
    help="Serve as of this ISO time (UTC unless it says otherwise) [default: now]: when the page "
    "is served and up to when plays are joined to earlier pages.",
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

    Every shelf source (Your Discover Weekly, Because you listened to <artist>, Best of
    <artist>, Keep the vibe going, Jump back in, Popular in <country>, Your friends are
    listening, Fresh finds, <genre> mix, New releases for you) offers shelves for the visit's
    context (hour, weekday, device, country, the listener's taste vector and their current
    session); the policy picks and orders the shelves and the cards on each. Every shown card
    is logged to the store's impressions with its propensities. Before serving, plays since
    the last page are joined to logged impressions as rewards (a stream of 30 s or more) and
    the reward model, kept in models/home-bandit.npz beside the store, learns from them, so
    the next page reflects them. Needs a trained model (`deepcuts train`).
    """
    from deepcuts.bandit.types import BanditInputError, PageLayout
    from deepcuts.store import StoreError
    from deepcuts.store.ids import resolve_user
    from deepcuts.surfaces.home import UnknownListener, serve_home

    when = _at(at)
    with open_store(ctx) as store, progress_bar(transient=True) as bar:
        user_id = resolve_user(store, user_id)  # before any model work: `me` -> spotify:user:me
        task = bar.add_task("home", total=STEPS)

        def step(message: str) -> None:
            if bar.tasks[task].description != "home":
                bar.advance(task)
            bar.update(task, description=message)
            log.debug(message)

        try:
            served = serve_home(
                store,
                user_id,
                policy=policy,
                epsilon=epsilon,
                layout=PageLayout(shelves, cards),
                at=when,
                hour=hour,
                weekday=weekday,
                device=device,
                country=country,
                log_page=not no_log,
                step=step,
            )
        except UnknownListener as exc:
            raise StoreError(
                f"listener {user_id!r} is not in the trained model: after ingesting their "
                "listens, run `deepcuts train`"
            ) from exc
        except BanditInputError as exc:
            raise click.UsageError(str(exc)) from exc
        bar.update(task, completed=STEPS)
    fb = served.feedback
    if fb.streamed or fb.not_streamed or fb.learned:
        log.info(
            "feedback: %d streamed, %d not streamed; learnt from %d impressions in %d micro-batches",
            fb.streamed, fb.not_streamed, fb.learned, fb.batches,
        )  # fmt: skip
    data = served.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
        return
    c = served.page.context
    session = c.features.get("session_genre")
    click.echo(
        f"Home for {c.user_id}: {WEEKDAYS[c.weekday]} {c.hour:02d}:00, {c.device}, {c.country}"
        + (f", listening to {session}" if session else "")
    )
    click.echo(
        f"page {served.page.page_id} by {served.policy.policy_id} v{served.policy.version}"
        f" from {served.n_candidates} candidate shelves"
        + ("" if served.logged else " (not logged)")
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
