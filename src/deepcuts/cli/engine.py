"""Options shared by the commands that run on an engine (`--engine`, `--master`, `--spark-conf`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from deepcuts.engines import ENGINES


def engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --engine, --master and --spark-conf to a command."""
    func = click.option(
        "--spark-conf",
        "spark_conf",
        multiple=True,
        metavar="KEY=VALUE",
        help="A Spark setting (repeatable), e.g. --spark-conf spark.executor.memory=8g.",
    )(func)
    func = click.option(
        "--master",
        default=None,
        metavar="URL",
        help="With --engine spark: local[2] (default), spark://HOST:7077, yarn or k8s://https://HOST.",
    )(func)
    func = click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="local",
        show_default=True,
        help="local: this process (DuckDB and NumPy); spark: Apache Spark (see docs/scale-out.md).",
    )(func)
    return func


def check_engine(engine: str, master: str | None, spark_conf: tuple[str, ...]) -> None:
    if engine != "spark" and (master or spark_conf):
        raise click.UsageError("--master and --spark-conf go with --engine spark")


def start_spark(master: str | None, spark_conf: tuple[str, ...]):
    """The SparkSession for a command (an error naming what is missing if Spark cannot start)."""
    from deepcuts.engines.spark.session import DEFAULT_MASTER, SparkUnavailable, spark_session

    conf = {}
    for item in spark_conf:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, not {item!r}", param_hint="--spark-conf")
        key, value = item.split("=", 1)
        conf[key.strip()] = value.strip()
    try:
        return spark_session(master or DEFAULT_MASTER, conf)
    except SparkUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
