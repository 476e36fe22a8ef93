"""`deepcuts evaluate`: models side by side on a split, with a JSON file and a report."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import click
import numpy as np

from deepcuts.cli.common import EXIT_INPUT, err, handles_errors, log, open_store, progress_bar
from deepcuts.evaluation import (
    STANDARD,
    EvaluationData,
    SplitError,
    evaluate_models,
    standard_specs,
)
from deepcuts.evaluation.catalogue import PEERS
from deepcuts.evaluation.datasets import dataset_store
from deepcuts.evaluation.report import write_json, write_report
from deepcuts.evaluation.splits import SPLITS
from deepcuts.io import FORMATS
from deepcuts.models.cf import MODELS
from deepcuts.signals import ConfidenceConfig
from deepcuts.store import Store


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s != ""]
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, not {text!r}") from exc
    if not seeds:
        raise click.BadParameter("give at least one seed")
    return seeds


def parse_models(text: str | None) -> list[str]:
    if not text:
        return list(STANDARD)
    names = [s.strip() for s in text.split(",") if s.strip()]
    known = [*MODELS, *PEERS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return names


def read_params(value: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Model parameters and confidence settings from a JSON file or inline JSON: either what
    `deepcuts tune --json` wrote ({"params": ..., "confidence": ...}) or a flat object of
    parameters with an optional "confidence" object."""
    if not value:
        return {}, None
    path = Path(value)
    try:
        data = json.loads(path.read_text()) if path.is_file() else json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not a JSON file or JSON object: {value!r} ({exc})") from exc
    if not isinstance(data, dict):
        raise click.BadParameter("--params must hold a JSON object")
    confidence = data.get("confidence")
    params = data.get("params", {k: v for k, v in data.items() if k not in ("confidence", "model")})
    return dict(params), confidence


def data_error(exc: Exception) -> None:
    """The data cannot be evaluated as asked (too little of it, no times): exit 3."""
    err.print(f"[red]error:[/red] {exc}", highlight=False)
    raise SystemExit(EXIT_INPUT) from exc


def open_data(ctx: click.Context, dataset: tuple[str, str] | None, progress) -> tuple[Store, str]:
    """The data to evaluate: a dataset folder loaded into a throwaway store, or the store."""
    if dataset:
        return dataset_store(
            dataset[0], [dataset[1]], progress
        ), f"{dataset[0]} {Path(dataset[1]).name}"
    store = open_store(ctx, read_only=True)
    return store, str(store.path)


def bar_progress(bar, task):
    def update(done: int, total: int, label: str) -> None:
        bar.update(task, completed=done, total=total, description=label)

    return update


@click.command()
@click.option(
    "--dataset",
    nargs=2,
    type=(click.Choice(sorted(FORMATS)), click.Path(exists=True)),
    metavar="FORMAT PATH",
    help="Evaluate on a dataset folder instead of the store, e.g. "
    "`--dataset lastfm-hetrec ../shared/data/hetrec-lastfm-2k`.",
)
@click.option(
    "--split",
    "split_kind",
    type=click.Choice(SPLITS),
    default=None,
    help="user-holdout: a random share of each user's items; time: the last "
    "--test-days of listening [default: user-holdout; for --surface weekly, time "
    "where the listens have times].",
)
@click.option(
    "--cold-items",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    metavar="FRACTION",
    help="Hold this share of items out of all training (cold) and measure Recall@K among "
    "them, for the users who played them: text, audio and their hybrid against random.",
)
@click.option(
    "--cold-text",
    type=click.Choice(["others", "editorial"]),
    default="others",
    show_default=True,
    help="--cold-items: a cold item's text is everyone's tags but the scored user's "
    "(others), or only its catalogue text (editorial), as for a new release.",
)
@click.option(
    "--surface",
    type=click.Choice(["models", "weekly"]),
    default="models",
    show_default=True,
    help="models: the models side by side; weekly: Discover Weekly against plain CF top-30 "
    "(same model, same never-played filter).",
)
@click.option(
    "--task",
    type=click.Choice(["recommend", "continuation"]),
    default="recommend",
    show_default=True,
    help="continuation: playlist continuation as in the RecSys Challenge 2018 (with "
    "`--dataset mpd PATH`, or the store's playlists): title only, title + first 1, "
    "first 5, first 25, 25 at random; R-precision (track level, and with the challenge's "
    "artist credit), NDCG@500, clicks; peers popularity, "
    "implicit ALS and same-name popularity.",
)
@click.option(
    "--test-playlists",
    type=click.IntRange(min=5),
    default=500,
    show_default=True,
    help="continuation: test playlists per seed (dealt evenly to the categories).",
)
@click.option("--no-minilm", is_flag=True, help="continuation: compare titles by TF-IDF only.")
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="user-holdout: share of each user's items held out.",
)
@click.option(
    "--min-items",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="user-holdout: users with fewer items are not held out from.",
)
@click.option(
    "--test-days",
    type=click.FloatRange(min=0, min_open=True),
    default=7.0,
    show_default=True,
    help="time: length of the test window.",
)
@click.option(
    "--seeds",
    default=None,
    help="Comma-separated seeds; one split (and model seed) per seed [default: 0,1,2,3,4; "
    "continuation: 0,1,2].",
)
@click.option(
    "--k", type=click.IntRange(min=1), default=20, show_default=True, help="List length K."
)
@click.option(
    "--models",
    "models_text",
    metavar="NAMES",
    help=f"Comma-separated models [default: {','.join(STANDARD)}].",
)
@click.option(
    "--params",
    "params_value",
    metavar="FILE|JSON",
    help="Parameters of the default model (e.g. the file `deepcuts tune --json FILE` wrote).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every figure to this JSON file.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a report: .md (with a PNG plot beside it) or .html.",
)
@click.pass_context
@handles_errors
def evaluate(
    ctx: click.Context,
    dataset: tuple[str, str] | None,
    split_kind: str | None,
    cold_items: float | None,
    cold_text: str,
    surface: str,
    task: str,
    test_playlists: int,
    no_minilm: bool,
    test_fraction: float,
    min_items: int,
    test_days: float,
    seeds: str | None,
    k: int,
    models_text: str | None,
    params_value: str | None,
    json_out: Path | None,
    report: Path | None,
) -> None:
    """Measure the models side by side: Recall, NDCG, MAP and HitRate at K, coverage, novelty,
    diversity, and results by user activity, as mean ± std over seeds.

    \b
    Example (the HetRec protocol):
      deepcuts evaluate --dataset lastfm-hetrec ../shared/data/hetrec-lastfm-2k \\
          --split user-holdout --test-fraction 0.2 --seeds 0,1,2,3,4 --k 20 --json out.json

    Without --dataset the store's data is evaluated (e.g. a simulated world). Peers
    (implicit-als, implicit-bm25) are implicit's own models with its default hyperparameters
    on raw play counts.
    """
    if task == "continuation":
        _evaluate_continuation(
            ctx, dataset, parse_seeds(seeds or "0,1,2"), test_playlists, no_minilm, json_out
        )
        return
    seed_list = parse_seeds(seeds or "0,1,2,3,4")
    if cold_items is not None:
        _evaluate_cold(ctx, dataset, cold_items, cold_text, seed_list, k, json_out)
        return
    if surface == "weekly":
        _evaluate_weekly(
            ctx,
            dataset,
            split_kind,
            test_fraction,
            min_items,
            test_days,
            seed_list,
            params_value,
            json_out,
        )
        return
    split_kind = split_kind or "user-holdout"
    names = parse_models(models_text)
    params, confidence = read_params(params_value)
    conf = ConfidenceConfig.from_dict(confidence) if confidence else None
    warnings.filterwarnings("ignore", module="implicit")
    with progress_bar() as bar:
        task = bar.add_task("loading data", total=None)
        store, name = open_data(ctx, dataset, bar_progress(bar, task))
        try:
            try:
                specs = standard_specs(names, default_params=params, default_confidence=conf)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--params") from exc
            data = EvaluationData(store, name)
            result = evaluate_models(
                data,
                specs,
                split=split_kind,
                seeds=seed_list,
                k=k,
                test_fraction=test_fraction,
                min_items=min_items,
                test_days=test_days,
                progress=bar_progress(bar, task),
            )
        except SplitError as exc:
            data_error(exc)
        finally:
            store.close()
    summary = result.summary()
    written = []
    if json_out:
        written.append(write_json(summary, json_out))
    if report:
        written += write_report(summary, report)
    _print_table(summary)
    for path in written:
        log.info("wrote %s", path)
        err.print(f"wrote {path}", highlight=False)


def _evaluate_cold(ctx, dataset, fraction, cold_text, seeds, k, json_out) -> None:
    """`evaluate --cold-items`: ranking items nobody played in training, from text and audio."""
    from deepcuts.cli.content import run_cold_items

    with progress_bar(transient=True) as bar:
        task = bar.add_task("loading data", total=None)
        store, _ = open_data(ctx, dataset, bar_progress(bar, task))
    try:
        summary = {
            "cold_items": run_cold_items(
                ctx, store, fraction, seeds=seeds, k=k, cold_text=cold_text
            )
        }
    except SplitError as exc:
        data_error(exc)
    finally:
        store.close()
    if json_out:
        err.print(f"wrote {write_json(summary, json_out)}", highlight=False)


def _evaluate_weekly(
    ctx, dataset, split_kind, test_fraction, min_items, test_days, seeds, params_value, json_out
) -> None:
    """`evaluate --surface weekly`: Discover Weekly against plain CF top-30, per seed and mean."""
    from deepcuts.evaluation.weekly import FIGURES, evaluate_weekly

    params, confidence = read_params(params_value)
    conf = ConfidenceConfig.from_dict(confidence) if confidence else None
    warnings.filterwarnings("ignore", module="implicit")
    runs = []
    with progress_bar() as bar:
        task = bar.add_task("loading data", total=None)
        store, name = open_data(ctx, dataset, bar_progress(bar, task))
        try:
            if split_kind is None:
                timed = store.conn.execute("SELECT count(played_at) FROM listens").fetchall()[0][0]
                split_kind = "time" if timed else "user-holdout"
            data = EvaluationData(store, name)
            for seed in seeds:
                runs.append(
                    evaluate_weekly(
                        data,
                        split_kind=split_kind,
                        seed=seed,
                        test_fraction=test_fraction,
                        min_items=min_items,
                        test_days=test_days,
                        params=params or None,
                        confidence=conf,
                        progress=bar_progress(bar, task),
                    )
                )
        except SplitError as exc:
            data_error(exc)
        finally:
            store.close()
    summary: dict[str, Any] = {"protocol": {**runs[0]["protocol"], "seeds": seeds}}
    for side in ("weekly", "plain_cf"):
        summary[side] = {name: float(np.mean([r[side][name] for r in runs])) for name in FIGURES}
        summary[side]["per_seed"] = [r[side] for r in runs]
    w, p = summary["weekly"], summary["plain_cf"]
    summary["hit_rate_ratio"] = w["hit_rate"] / p["hit_rate"] if p["hit_rate"] else None
    click.echo(f"{'':<22}{'weekly':>10}{'plain_cf':>10}")
    for name in FIGURES:
        click.echo(f"{name:<22}{w[name]:>10.4f}{p[name]:>10.4f}")
    if summary["hit_rate_ratio"] is not None:
        click.echo(f"hit rate ratio weekly / plain_cf: {summary['hit_rate_ratio']:.3f}")
    if json_out:
        path = write_json(summary, json_out)
        err.print(f"wrote {path}", highlight=False)


def _evaluate_continuation(ctx, dataset, seeds, n_test, no_minilm, json_out) -> None:
    """`evaluate --task continuation`: the RecSys Challenge 2018 protocol, per category."""
    from deepcuts.evaluation.continuation import METRICS, evaluate_continuation
    from deepcuts.signals.playlists import load_playlists

    warnings.filterwarnings("ignore", module="implicit")
    with progress_bar() as bar:
        task = bar.add_task("loading data", total=None)
        store, name = open_data(ctx, dataset, bar_progress(bar, task))
        try:
            data = load_playlists(store)
            summary = evaluate_continuation(
                data,
                seeds=seeds,
                n_test=n_test,
                model_params={"minilm_weight": 0.0} if no_minilm else None,
                progress=bar_progress(bar, task),
            )
        except SplitError as exc:
            data_error(exc)
        finally:
            store.close()
    summary["protocol"]["dataset"] = name
    widths = {m: max(20, len(m) + 2) for m in METRICS}
    click.echo(f"{'category':<24}{'model':<22}" + "".join(f"{m:>{widths[m]}}" for m in METRICS))
    for cat, models in summary["categories"].items():
        for model, figures in models.items():
            cells = "".join(
                f"{figures[m]['mean']:>{widths[m] - 9}.4f} ± {figures[m]['std']:.4f}"
                for m in METRICS
            )
            click.echo(f"{cat:<24}{model:<22}{cells}")
    for goal, verdict in summary["goals"].items():
        ratio = ""
        if "ratio" in verdict:
            ratio = f" (ratio {verdict['ratio']:.3f}, goal {verdict['goal']}"
            if "ratio_95ci" in verdict:
                lo, hi = verdict["ratio_95ci"]
                ratio += f" [95% interval over the test playlists {lo:.3f}-{hi:.3f}]"
            if "ratio_with_artist_credit" in verdict:
                credited = verdict["ratio_with_artist_credit"]
                ratio += f"; {credited:.3f} with the challenge's artist credit"
            ratio += ")"
        click.echo(f"{goal}: {'met' if verdict['met'] else 'NOT met'}{ratio}")
    if json_out:
        err.print(f"wrote {write_json(summary, json_out)}", highlight=False)


def _print_table(summary: dict[str, Any]) -> None:
    k = summary["protocol"]["k"]
    rows = sorted(summary["models"].items(), key=lambda kv: -kv[1][f"ndcg@{k}"]["mean"])
    width = max(len(n) for n, _ in rows) + 10
    click.echo(f"{'model':<{width}} {'recall@' + str(k):>17} {'ndcg@' + str(k):>17} {'seconds':>8}")
    for name, m in rows:
        label = name + (" (default)" if m["default"] else "")
        r, n = m[f"recall@{k}"], m[f"ndcg@{k}"]
        click.echo(
            f"{label:<{width}} {r['mean']:.4f} ± {r['std']:.4f} {n['mean']:.4f} ± {n['std']:.4f} "
            f"{m['seconds']:>8.1f}"
        )
    if "default_beats_all" in summary:
        verdict = "beats" if summary["default_beats_all"] else "does NOT beat"
        if len(summary["protocol"].get("seeds", [])) > 1:
            click.echo(
                f"{summary['default_model']} {verdict} every other model on mean NDCG@{k} by more "
                "than the larger standard deviation"
            )
        else:  # one seed: no spread to compare the margin with
            click.echo(
                f"{summary['default_model']} {verdict} every other model on NDCG@{k} on this one "
                "seed (no standard deviation from one seed: give --seeds 0,1,2 to compare "
                "margins with the spread)"
            )
