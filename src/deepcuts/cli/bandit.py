"""`deepcuts ope` and `deepcuts simulate-home`: the home screen's bandit, offline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from deepcuts.cli.common import (
    PolicyChoice,
    handles_errors,
    open_store,
    policy_names,
    progress_bar,
    settings,
)


def _comma_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


@click.command()
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A logged table, Parquet or CSV (by suffix). Default: the store's impressions with rewards.",
)
@click.option("--policy", type=PolicyChoice(), help="Evaluate this deepcuts policy.")
@click.option(
    "--target-column",
    help="Evaluate a policy from elsewhere: the column with its probability of each logged card at its position.",
)
@click.option(
    "--epsilon", type=click.FloatRange(0, 1), help="Exploration of epsilon-greedy [default: 0.1]."
)
@click.option(
    "--candidates",
    type=click.Choice(["page", "all"]),
    help="How a page's candidates are rebuilt for --policy: the cards logged on each shelf of the page, or "
    "every card ever logged on that shelf [default: page if the log has a page_id column, else all].",
)
@click.option(
    "--action-column",
    default="action",
    show_default=True,
    help="Column of the card (action) shown.",
)
@click.option(
    "--position-column",
    default="position",
    show_default=True,
    help="Column of its 0-based position.",
)
@click.option("--reward-column", default="reward", show_default=True, help="Column of the reward.")
@click.option(
    "--propensity-column",
    default="propensity",
    show_default=True,
    help="Column of the logging propensity.",
)
@click.option(
    "--page-column",
    help="Column grouping rows served together [default: page_id or slate_id if present].",
)
@click.option(
    "--context-columns",
    help="Comma-separated context feature columns [default: every other column].",
)
@click.option(
    "--feature-columns",
    help="Comma-separated context columns for DR's reward model with --target-column "
    "[default: every context column; with --policy, DR's model uses every context and card.* column].",
)
@click.option("--logging-policy", help="With the store: only impressions served by this policy id.")
@click.option(
    "--epochs",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Training passes for learned policies.",
)
@click.option(
    "--alpha",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="1 - confidence level.",
)
@click.option(
    "--bootstrap",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Use a page bootstrap with this many resamples instead of the normal interval.",
)
@click.option(
    "--seed", type=int, help="Seed of the folds and policies [default: the settings' seed]."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the results as JSON here ('-' for stdout only).",
)
@click.pass_context
@handles_errors
def ope(
    ctx: click.Context,
    log_path: Path | None,
    policy: str | None,
    target_column: str | None,
    epsilon: float | None,
    candidates: str | None,
    action_column: str,
    position_column: str,
    reward_column: str,
    propensity_column: str,
    page_column: str | None,
    context_columns: str | None,
    feature_columns: str | None,
    logging_policy: str | None,
    epochs: int,
    alpha: float,
    bootstrap: int,
    seed: int | None,
    json_path: Path | None,
) -> None:
    """Estimate a policy's value from logged impressions: IPS, SNIPS and doubly robust, each
    with a confidence interval (95% by default).

    \b
    The log is a table with columns action, position, reward and propensity (the logging
    policy's probability of that card at that position), optionally page_id, shelf_id,
    shelf_position, shelf_type, context columns (user_id, hour, weekday, device, country, ...)
    and card.<feature> columns; or, without --log, the store's impressions.
    The value is the expected reward per shown card (the stream rate).
    DR's reward model is cross-fitted (each half of the pages scored by a model fitted on the
    other half): on the context and card features with --policy, on the context columns
    (--feature-columns) and slot with --target-column, the slot's mean reward without any.
    A target that puts probability on cards the logging policy could never have shown (a
    logged propensity of 1 where the target's is below 1) is refused: no estimate exists.
    \b
    Examples:
      deepcuts ope --log out/uniform_log.parquet --policy epsilon-greedy
      deepcuts ope --log clicks.csv --target-column new_policy_prob --json ope.json
    """
    from deepcuts.bandit.feedback import LogColumns, feedback_from_frame, read_table
    from deepcuts.bandit.impressions import read_store
    from deepcuts.bandit.ope import evaluate
    from deepcuts.bandit.types import BanditInputError
    from deepcuts.io.errors import FormatError
    from deepcuts.store import StoreError

    if (policy is None) == (target_column is None):
        raise click.UsageError("give exactly one of --policy and --target-column")
    if epsilon is not None and policy != "epsilon-greedy":
        raise click.UsageError("--epsilon applies to --policy epsilon-greedy only")
    if log_path is None and target_column is not None:
        raise click.UsageError("--target-column needs --log (the store holds no target columns)")
    seed = settings(ctx).seed if seed is None else seed
    source = str(log_path) if log_path else f"store {settings(ctx).store}"
    if log_path is not None:
        frame = read_table(log_path)
        if target_column is not None and target_column not in frame.columns:
            raise FormatError(f"{log_path}: no target column {target_column!r}")
        columns = LogColumns(
            action=action_column,
            position=position_column,
            reward=reward_column,
            propensity=propensity_column,
            page=page_column,
            context=_comma_list(context_columns),
            exclude=(target_column,) if target_column else (),
        )
        log = feedback_from_frame(frame, columns, source=str(log_path))
    else:
        with open_store(ctx, read_only=True) as store:
            try:
                log, frame = read_store(store, logging_policy)
            except BanditInputError as exc:
                raise StoreError(f"{source}: {exc}") from exc
    params = {"epsilon": epsilon} if epsilon is not None else {}
    started = time.perf_counter()
    try:
        report = evaluate(
            log,
            policy=policy,
            target=frame[target_column].to_numpy() if target_column else None,
            target_name=target_column or "target",
            candidates=candidates,
            policy_params=params,
            n_epochs=epochs,
            alpha=alpha,
            method="bootstrap" if bootstrap else "normal",
            seed=seed,
            feature_columns=_comma_list(feature_columns),
        )
    except BanditInputError as exc:
        raise FormatError(f"{source}: {exc}") from exc
    result = {"log": source, **report.to_dict(), "seconds": round(time.perf_counter() - started, 2)}
    if bootstrap:
        result["bootstrap_resamples"] = bootstrap
    if json_path is not None and str(json_path) == "-":
        click.echo(json.dumps(result, indent=1))
        return
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1) + "\n")
    level = round(100 * (1 - alpha), 1)
    click.echo(
        f"{report.target} on {source}: {report.n_rows:,} impressions on {report.n_pages:,} pages; logged mean reward {report.logged_value:.4f}"
    )
    click.echo(f"{'estimator':<10} {'value':>9} {f'{level:g}% interval':>22} {'std err':>9}")
    for name, iv in report.estimates.items():
        click.echo(
            f"{name:<10} {iv.estimate:>9.4f} {f'[{iv.low:.4f}, {iv.high:.4f}]':>22} {iv.std_error:>9.4f}"
        )
    for note in report.notes:
        click.echo(f"note: {note}")


@click.command("simulate-home")
@click.option(
    "--world",
    "world_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="A simulated world (from `deepcuts simulate --out DIR`) whose truth/ to use. Default: simulate a small one into OUT/world.",
)
@click.option(
    "--users",
    default=400,
    show_default=True,
    type=click.IntRange(min=2),
    help="Listeners of the world simulated without --world.",
)
@click.option(
    "--tracks",
    default=3000,
    show_default=True,
    type=click.IntRange(min=100),
    help="Tracks of the world simulated without --world.",
)
@click.option(
    "--impressions",
    default=50_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Cards shown per policy.",
)
@click.option(
    "--policies",
    help="Comma-separated policies to run [default: every policy].",
)
@click.option(
    "--epsilon",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Exploration of epsilon-greedy.",
)
@click.option(
    "--position-model",
    default="examination",
    show_default=True,
    type=click.Choice(["examination", "logit"]),
    help="How the learned policies' reward model treats a card's slot: a position-based "
    "examination model, or BaRT's additive bias on the logit.",
)
@click.option(
    "--shelf-decay",
    type=click.FloatRange(0, 1, min_open=True),
    help="Simulated attention: the chance a listener looks one shelf further down the page "
    "[default: 0.8].",
)
@click.option(
    "--card-decay",
    type=click.FloatRange(0, 1, min_open=True),
    help="Simulated attention: the chance a listener looks one card further along a shelf "
    "[default: 0.85].",
)
@click.option(
    "--shelves", default=4, show_default=True, type=click.IntRange(min=1), help="Shelves per page."
)
@click.option(
    "--cards", default=5, show_default=True, type=click.IntRange(min=1), help="Cards per shelf."
)
@click.option(
    "--update-every",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Pages per micro-batch of feedback.",
)
@click.option(
    "--pages-per-day",
    default=250,
    show_default=True,
    type=click.IntRange(min=1),
    help="Pages served per simulated day (new tracks are released every day).",
)
@click.option(
    "--eval-pages",
    default=2000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Fresh pages for the frozen epsilon-greedy policy's true value and each learned policy's final model.",
)
@click.option("--seed", type=int, help="Seed of everything random [default: the settings' seed].")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for home_simulation.json, home_curves.png and uniform_log.parquet.",
)
@click.option(
    "--log-format",
    default="parquet",
    show_default=True,
    type=click.Choice(["parquet", "csv"]),
    help="Format of the uniform policy's log.",
)
@click.option(
    "--store-log", is_flag=True, help="Also write the uniform policy's impressions into the store."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
@handles_errors
def simulate_home(
    ctx: click.Context,
    world_dir: Path | None,
    users: int,
    tracks: int,
    impressions: int,
    policies: str | None,
    epsilon: float,
    position_model: str,
    shelf_decay: float | None,
    card_decay: float | None,
    shelves: int,
    cards: int,
    update_every: int,
    pages_per_day: int,
    eval_pages: int,
    seed: int | None,
    out: Path,
    log_format: str,
    store_log: bool,
    as_json: bool,
) -> None:
    """Run bandit policies on a simulated home screen and write reward and regret curves.

    Every policy serves the same contexts and candidate shelves, day after simulated day (new
    tracks are released daily, their appeal learnable only from feedback); streams are drawn
    from the world's true probabilities (the same draw for the same slot of the same page),
    and each policy learns from them as it goes. Then, on fresh pages: what each learned
    policy's final model is worth when exploited greedily (what it learnt, apart from what
    exploring cost), and the epsilon-greedy policy, frozen at the end of its run, evaluated
    off-policy (IPS, SNIPS, DR) from the uniform policy's log against its true value.
    """
    from deepcuts.bandit.feedback import write_table
    from deepcuts.bandit.impressions import log_impressions
    from deepcuts.bandit.types import BanditInputError, PageLayout
    from deepcuts.simulate.home.runs import SimulationConfig, log_table, write_outputs
    from deepcuts.simulate.home.runs import simulate_home as run
    from deepcuts.simulate.home.world import HomeWorld, HomeWorldConfig

    seed = settings(ctx).seed if seed is None else seed
    known = policy_names()
    names = list(known) if policies is None else _comma_list(policies) or []
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown policy {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}",
            param_hint="--policies",
        )
    try:
        config = SimulationConfig(
            n_impressions=impressions,
            layout=PageLayout(shelves, cards),
            policies=tuple(names),
            epsilon=epsilon,
            update_every=update_every,
            pages_per_day=pages_per_day,
            n_eval_pages=eval_pages,
            seed=seed,
            policy_params={
                name: {"reward_params": {"position_model": position_model}}
                for name in ("epsilon-greedy", "greedy", "thompson")
            },
        )
        decays = {"shelf_decay": shelf_decay, "card_decay": card_decay}
        home = HomeWorldConfig(seed=seed, **{k: v for k, v in decays.items() if v is not None})
        if world_dir is None:
            world = HomeWorld.simulate(
                out / "world", users=users, tracks=tracks, seed=seed, config=home
            )
        else:
            world = HomeWorld.from_world(world_dir, home)
    except BanditInputError as exc:
        raise click.UsageError(str(exc)) from exc
    per_page = shelves * cards
    n_pages = -(-impressions // per_page)
    started = time.perf_counter()
    with progress_bar() as bar:
        tasks = {n: bar.add_task(n, total=n_pages) for n in names}
        result, log = run(
            world, config, progress=lambda name, k: bar.update(tasks[name], advance=k)
        )
    paths = write_outputs(result, out)
    if log:
        paths["log"] = write_table(log_table(log).to_frame(), out / f"uniform_log.{log_format}")
        if store_log:
            with open_store(ctx, create=True) as store:
                n = log_impressions(store, (im for lp in log for im in lp.page.impressions))
            click.echo(f"wrote {n:,} impressions to {store.path}", err=True)
    summary = result.to_dict()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "summary": summary["summary"],
                    "ope": summary["ope"],
                    "files": {k: str(v) for k, v in paths.items()},
                },
                indent=1,
            )
        )
        return
    click.echo(
        f"{len(names)} policies x {impressions:,} impressions in {time.perf_counter() - started:.0f} s "
        f"({world.n_users} users, {world.n_tracks} tracks)"
    )
    uniform = result.runs.get("uniform")
    greedy = result.runs.get("greedy")
    for name, r in result.runs.items():
        ratio = (
            f"  {r.stream_rate / uniform.stream_rate:.2f}x uniform"
            if uniform and uniform.stream_rate > 0
            else ""
        )
        if greedy and name != "greedy":
            ratio += f", {r.stream_rate - greedy.stream_rate:+.4f} vs greedy"
        if r.learned_value is not None:
            ratio += f"; its final model, exploited: {r.learned_value:.4f}"
        click.echo(
            f"{name:<15} stream rate {r.stream_rate:.4f} (expected {r.expected_rate:.4f}, best {r.optimal_rate:.4f})  regret {r.regret:,.0f}{ratio}"
        )
    if result.ope is not None:
        o = result.ope
        click.echo(
            f"frozen {o.target}: true value {o.on_policy_value:.4f} (+/- {o.on_policy_std_error:.4f}); from the {o.logging} log:"
        )
        for name, iv in o.estimates.items():
            inside = "contains" if iv.contains(o.on_policy_value) else "MISSES"
            click.echo(f"  {name:<6} {iv.estimate:.4f} [{iv.low:.4f}, {iv.high:.4f}] {inside} it")
    for kind, path in paths.items():
        click.echo(f"{kind}: {path}")
