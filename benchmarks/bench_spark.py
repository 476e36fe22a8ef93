"""The Spark engine on local[N] against the embedded engine, on the same simulated world.

Simulates a world (default 100,000 listeners x 50,000 tracks, 1 week), ingests it, then in one
run, for each engine, times separately:
  - train: the confidence matrix and ALS (64 factors, lambda 1, 15 iterations unless set),
    saved and registered. Spark: exporting the confidence matrix (the events layout) and
    fitting pyspark.ml's implicit ALS on it; the session's start is timed apart.
  - weekly: every listener's Discover Weekly for the week after the data (setup included),
    with the hand-weighted blend ranker unless --ranker says otherwise. Embedded: the lists
    as Parquet (`engines.local.write_weekly`); Spark: `run_weekly` (the same code per
    partition), written as Parquet.
Prints both and the ratio Spark / embedded. A report, not a goal: on a small machine Spark
pays for its JVM, its scheduler and the Python workers it starts.

    python benchmarks/bench_spark.py [--users 100000] [--tracks 50000] [--weeks 1]
        [--master local[2]] [--factors 64] [--iterations 15] [--ranker blend]
        [--driver-memory 8g] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from deepcuts.engines import local  # noqa: E402
from deepcuts.engines.spark.session import spark_session  # noqa: E402
from deepcuts.engines.spark.train import train_on_spark  # noqa: E402
from deepcuts.engines.spark.weekly import run_weekly  # noqa: E402
from deepcuts.io import NativeImporter  # noqa: E402
from deepcuts.simulate import simulate_world  # noqa: E402
from deepcuts.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--weeks", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--ranker", default="blend", choices=("blend", "auto", "learned"))
    parser.add_argument(
        "--driver-memory",
        default="8g",
        help="the local JVM's heap (Spark's 1g default is too small for the full-size world)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = {"factors": args.factors, "regularization": 1.0, "iterations": args.iterations}
    figures: dict = {
        "users": args.users,
        "tracks": args.tracks,
        "weeks": args.weeks,
        "master": args.master,
        "params": params,
        "ranker": args.ranker,
        "driver_memory": args.driver_memory,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        simulate_world(
            folder / "world",
            users=args.users,
            tracks=args.tracks,
            weeks=args.weeks,
            seed=0,
            audio_share=0.0,
        )
        store = Store(folder / "store.duckdb", create=True)
        importer = NativeImporter()
        for f in importer.files([str(folder / "world")]):
            importer.ingest_file(store, f)
        latest = store.conn.execute("SELECT max(played_at) FROM listens").fetchall()[0][0]
        monday = (latest + timedelta(days=7 - latest.weekday())).date()
        figures["setup_seconds"] = round(time.perf_counter() - began, 1)

        t = time.perf_counter()
        embedded = local.train(store, "als", params, out=folder / "embedded.npz")
        figures["local_train_seconds"] = round(time.perf_counter() - t, 2)
        figures["pairs"] = embedded.record.metrics["interactions"]
        t = time.perf_counter()
        dw = local.weekly(store, monday, model_id=embedded.record.model_id, ranker=args.ranker)
        n_lists, rows, _ = local.write_weekly(dw, folder / "lists-local")
        figures["local_weekly_seconds"] = round(time.perf_counter() - t, 2)
        figures["local_lists"] = n_lists
        del dw

        t = time.perf_counter()
        spark = spark_session(
            args.master,
            {
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                "spark.driver.memory": args.driver_memory,
            },
        )
        figures["spark_start_seconds"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        on_spark = train_on_spark(store, spark, params, out=folder / "spark.npz")
        figures["spark_train_seconds"] = round(time.perf_counter() - t, 2)
        figures["spark_train_export_seconds"] = on_spark.record.metrics["signals_seconds"]
        figures["spark_train_fit_seconds"] = on_spark.record.metrics["fit_seconds"]
        t = time.perf_counter()
        result = run_weekly(
            store,
            spark,
            monday,
            str(folder / "lists-spark"),
            model_id=on_spark.record.model_id,
            ranker=args.ranker,
        )
        figures["spark_weekly_seconds"] = round(time.perf_counter() - t, 2)
        figures["spark_weekly_prepare_seconds"] = round(result.prepare_seconds, 2)
        figures["spark_weekly_build_seconds"] = round(result.build_seconds, 2)
        figures["spark_lists"] = result.lists
        spark.stop()
        store.close()
    figures["train_ratio"] = round(
        figures["spark_train_seconds"] / figures["local_train_seconds"], 2
    )
    figures["weekly_ratio"] = round(
        figures["spark_weekly_seconds"] / figures["local_weekly_seconds"], 2
    )
    print(
        f"world: {args.users:,} users x {args.tracks:,} tracks, {args.weeks} week(s), {figures['pairs']:,} pairs "
        f"(set up in {figures['setup_seconds']:.0f} s); ALS {params}; ranker {args.ranker}"
    )
    print(f"{'':8} {'embedded':>10} {'spark ' + args.master:>18} {'ratio':>7}")
    for step in ("train", "weekly"):
        print(
            f"{step:8} {figures[f'local_{step}_seconds']:>9.1f}s {figures[f'spark_{step}_seconds']:>17.1f}s "
            f"{figures[f'{step}_ratio']:>6.2f}x"
        )
    print(
        f"spark: session start {figures['spark_start_seconds']:.1f} s (not counted); train = export "
        f"{figures['spark_train_export_seconds']:.1f} s + fit {figures['spark_train_fit_seconds']:.1f} s; "
        f"weekly = prepare {figures['spark_weekly_prepare_seconds']:.1f} s + build "
        f"{figures['spark_weekly_build_seconds']:.1f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
