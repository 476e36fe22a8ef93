"""`deepcuts train` and `deepcuts tune`."""

from __future__ import annotations

import json
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from deepcuts.cli.common import err, handles_errors, log, open_store, progress_bar
from deepcuts.cli.engine import check_engine, engine_options, start_spark
from deepcuts.cli.evaluate import bar_progress, data_error, open_data, read_params
from deepcuts.cli.serve import maybe_publish, publish_option
from deepcuts.evaluation import EvaluationData, SplitError
from deepcuts.evaluation.splits import SPLITS
from deepcuts.evaluation.tuning import SEARCH_SPACES, tune_model
from deepcuts.io import FORMATS
from deepcuts.models.cf import DEFAULT_MODEL, MODELS
from deepcuts.models.registry import KINDS, list_models
from deepcuts.signals import ConfidenceConfig


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_settings(items: tuple[str, ...]) -> dict[str, Any]:
    """NAME=VALUE pairs (VALUE read as JSON where it is JSON, else a string)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected NAME=VALUE, not {item!r}")
        name, value = item.split("=", 1)
        out[name.strip()] = _value(value.strip())
    return out


def split_confidence(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    conf = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("confidence.")}
    return {k: v for k, v in values.items() if not k.startswith("confidence.")}, conf


@click.command()
@click.option(
    "--model",
    "model_name",
    type=click.Choice(list(MODELS)),
    default=DEFAULT_MODEL,
    show_default=True,
    help="The model to fit (the default is the evaluation's best).",
)
@click.option(
    "--params",
    "params_value",
    metavar="FILE|JSON",
    help="Parameters: the file `deepcuts tune --json FILE` wrote, or a JSON object.",
)
@click.option(
    "--set",
    "settings_",
    multiple=True,
    metavar="NAME=VALUE",
    help="One parameter (repeatable), e.g. --set als_factors=64 --set confidence.alpha=2.",
)
@click.option(
    "--half-life",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Recency half-life of plays [default: 180].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The model file [default: models/<name>-v<version>.npz beside the store].",
)
@click.option(
    "--no-default", is_flag=True, help="Register the version without making it the default."
)
@click.option(
    "--cf-only",
    is_flag=True,
    help="Train the CF model only, not the content model and the weekly ranker.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print the CF model\'s registry record as JSON (the other parts under "parts").',
)
@engine_options
@click.option(
    "--events",
    metavar="PATH|URI",
    help="With --engine spark: a folder `deepcuts export-events --out PATH` wrote (on a cluster, one "
    "every executor reads: hdfs://, gs://, s3a://) [default: exported to a temporary folder].",
)
@publish_option
@click.pass_context
@handles_errors
def train(
    ctx: click.Context,
    model_name: str,
    params_value: str | None,
    settings_: tuple[str, ...],
    half_life: float | None,
    out: Path | None,
    no_default: bool,
    cf_only: bool,
    as_json: bool,
    engine: str,
    master: str | None,
    spark_conf: tuple[str, ...],
    events: str | None,
    publish_after: bool | None,
) -> None:
    """Train what the surfaces need on the store's data and register each part in the store's
    model registry (`deepcuts models` lists them):

    \b
    - the CF model (--model): plays (log-scaled), skips before 30 s as negatives, saves,
      playlist adds and artist follows as strong positives, bans excluded, recency decay; the
      default model also uses tags, playlists and friends;
    - the content model: items' text and audio vectors and the cold-start mapping from them
      into the CF space;
    - the weekly ranker, learnt on what listeners streamed in the data's last week (none where
      the data has no listening times).

    The audio network is trained apart: `deepcuts audio train`.

    \b
    --engine spark fits the CF model as ALS (pyspark.ml, implicitPrefs) on the same confidence
    values and saves and registers it as the local engine does, so `deepcuts weekly` uses it
    unchanged:
      deepcuts train --engine spark --master local[2] --set factors=64
    """
    check_engine(engine, master, spark_conf)
    if events and engine != "spark":
        raise click.UsageError("--events goes with --engine spark")
    if engine == "spark":
        if ctx.get_parameter_source("model_name") == click.core.ParameterSource.DEFAULT:
            model_name = "als"
        if model_name != "als":
            raise click.BadParameter(
                f"the Spark engine fits als, not {model_name}", param_hint="--model"
            )
    params, conf_values = read_params(params_value)
    extra, extra_conf = split_confidence(parse_settings(settings_))
    params.update(extra)
    conf_values = {**(conf_values or {}), **extra_conf}
    if half_life is not None:
        conf_values["half_life_days"] = half_life
    try:
        confidence = ConfidenceConfig.from_dict(conf_values)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc
    warnings.filterwarnings("ignore", module="implicit")
    spark = start_spark(master, spark_conf) if engine == "spark" else None
    with open_store(ctx) as store, progress_bar(transient=True) as bar:
        task = bar.add_task("training", total=None)

        def step(label: str) -> None:
            bar.update(task, description=label)

        try:
            if spark is not None:
                from deepcuts.engines.spark.train import train_on_spark

                trained = train_on_spark(
                    store,
                    spark,
                    params,
                    confidence,
                    events=events,
                    out=out,
                    make_default=not no_default,
                    step=step,
                )
            else:
                from deepcuts.engines import local

                trained = local.train(
                    store,
                    model_name,
                    params,
                    confidence,
                    out=out,
                    make_default=not no_default,
                    step=step,
                )
        except FileNotFoundError as exc:
            raise click.BadParameter(str(exc), param_hint="--events") from exc
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        record = trained.record
        assert record is not None
        parts, no_ranker = [], None
        if not cf_only:
            from deepcuts.models.parts import train_content
            from deepcuts.surfaces.weekly import next_monday, train_ranker

            bar.update(task, description="content vectors and the cold-start mapping")
            content, content_record = train_content(store, trained)
            parts.append(content_record)
            if record.data_until is not None:
                # For the week after the data; where its last week is a stub (a few sessions
                # past a Monday), for the week before.
                learnt, vectors = None, content.vectors_for(trained.items)
                for week in (
                    next_monday(record.data_until),
                    next_monday(record.data_until) - timedelta(weeks=1),
                ):
                    bar.update(task, description=f"the weekly ranker for {week}")
                    learnt = learnt or train_ranker(store, trained, week, content_vectors=vectors)
                if learnt is None:
                    no_ranker = (
                        "no weekly ranker: the data's last week has no streams to learn from"
                    )
                else:
                    parts.append(learnt[1])
    if not no_default:  # serving reads the default models: keep a served store's snapshot fresh
        with open_store(ctx) as store:
            maybe_publish(ctx, store, publish_after)
    if as_json:
        click.echo(
            json.dumps(
                {**_record_dict(record), "parts": [_record_dict(r) for r in parts]}, default=str
            )
        )
        return
    m = record.metrics
    click.echo(
        f"{record.model_id}: {m['users']} users x {m['items']} items, {m['interactions']} "
        f"interactions; fit in {m['fit_seconds']:.1f} s; saved to {record.path}"
        + (" (default)" if record.is_default else "")
    )
    for part in parts:
        click.echo(f"{part.model_id}: {part.kind}; saved to {part.path}")
    if no_ranker:
        click.echo(no_ranker)


def _record_dict(record) -> dict[str, Any]:
    return {
        "model_id": record.model_id,
        "kind": record.kind,
        "name": record.name,
        "version": record.version,
        "path": record.path,
        "default": record.is_default,
        "data_until": record.data_until,
        "params": record.params,
        "metrics": record.metrics,
    }


@click.command()
@click.option(
    "--model",
    "model_name",
    type=click.Choice(list(MODELS)),
    default=DEFAULT_MODEL,
    show_default=True,
    help="The model to tune.",
)
@click.option(
    "--dataset",
    nargs=2,
    type=(click.Choice(sorted(FORMATS)), click.Path(exists=True)),
    metavar="FORMAT PATH",
    help="Tune on a dataset folder instead of the store.",
)
@click.option(
    "--split",
    "split_kind",
    type=click.Choice(SPLITS),
    default="user-holdout",
    show_default=True,
    help="The evaluation split whose training part is searched.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the test split (set aside) and of the validation split.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
)
@click.option(
    "--validation-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of each user's training items held out for validation.",
)
@click.option("--min-items", type=click.IntRange(min=2), default=5, show_default=True)
@click.option(
    "--test-days", type=click.FloatRange(min=0, min_open=True), default=7.0, show_default=True
)
@click.option("--k", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Passes of coordinate ascent over the parameters.",
)
@click.option(
    "--param",
    "space_items",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Candidate values of a parameter (repeatable); replaces the built-in search "
    "space. Confidence settings as confidence.alpha, confidence.eps, ...",
)
@click.option("--params", "params_value", metavar="FILE|JSON", help="Starting parameters.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the best parameters and every trial (readable by train --params).",
)
@click.pass_context
@handles_errors
def tune(
    ctx: click.Context,
    model_name: str,
    dataset: tuple[str, str] | None,
    split_kind: str,
    seed: int,
    test_fraction: float,
    validation_fraction: float,
    min_items: int,
    test_days: float,
    k: int,
    rounds: int,
    space_items: tuple[str, ...],
    params_value: str | None,
    json_out: Path | None,
) -> None:
    """Search hyperparameters (factors, regularisation, confidence scaling, iterations, blend
    weights) on a validation split carved from the training data; the test split is never used.

    \b
    Example:
      deepcuts tune --dataset lastfm-hetrec ../shared/data/hetrec-lastfm-2k --json best.json
      deepcuts train --params best.json
    """
    space = None
    if space_items:
        space = {}
        for item in space_items:
            if "=" not in item:
                raise click.BadParameter(f"expected NAME=V1,V2,..., not {item!r}")
            name, values = item.split("=", 1)
            space[name.strip()] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    params, conf_values = read_params(params_value)
    confidence = ConfidenceConfig.from_dict(conf_values) if conf_values else None
    warnings.filterwarnings("ignore", module="implicit")
    with progress_bar() as bar:
        task = bar.add_task("loading data", total=None)
        store, name = open_data(ctx, dataset, bar_progress(bar, task))
        try:
            data = EvaluationData(store, name)
            result = tune_model(
                data,
                model_name,
                space=space,
                base_params=params,
                confidence=confidence,
                split=split_kind,
                seed=seed,
                test_fraction=test_fraction,
                validation_fraction=validation_fraction,
                min_items=min_items,
                test_days=test_days,
                k=k,
                rounds=rounds,
                progress=bar_progress(bar, task),
            )
        except SplitError as exc:
            data_error(exc)
        except ValueError as exc:  # a parameter or value the model does not have
            raise click.BadParameter(str(exc), param_hint="--param/--params") from exc
        finally:
            store.close()
    searched = list(space or SEARCH_SPACES.get(model_name, {}))
    click.echo(
        f"best {result.metric} on validation: {result.score:.4f} ({len(result.trials)} trials)"
    )
    for key in searched:
        value = (
            result.confidence.get(key.split(".", 1)[1])
            if key.startswith("confidence.")
            else result.params.get(key)
        )
        click.echo(f"  {key} = {value}")
    if json_out:
        result.save(json_out)
        log.info("wrote %s", json_out)
        err.print(f"wrote {json_out}", highlight=False)


@click.command("models")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind of model.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.pass_context
@handles_errors
def models(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """The registered model versions: every learnt part, its kind, whether it is the default of
    its kind (the one the surfaces use), the watermark of its training data and its file.

    \b
    Kinds: cf (the recommender), content (content vectors and the cold-start mapping),
    weekly-ranker, audio-cnn (`deepcuts audio train`), home-reward.
    """
    with open_store(ctx) as store:
        records = list_models(store, kind)
    if as_json:
        click.echo(json.dumps([_record_dict(r) for r in records], default=str))
        return
    if not records:
        click.echo(
            "no registered models" + (f" of kind {kind}" if kind else "") + ": run `deepcuts train`"
        )
        return
    header = ("id", "kind", "default", "data until", "created", "size", "path")
    rows = [
        (r.model_id, r.kind, "*" if r.is_default else "", _time(r.data_until), _time(r.created_at),
         _size(r.path), r.path)
        for r in records
    ]  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def _time(value) -> str:
    return "" if value is None else str(value)[:19]


def _size(path: str) -> str:
    try:
        size = Path(path).stat().st_size
    except OSError:
        return "missing"
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
