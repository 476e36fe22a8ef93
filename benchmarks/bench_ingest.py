"""Bulk native ingest against DuckDB reading the same file straight into a table.

Writes N listening events (default 1,000,000) as CSV and as Parquet, then for each format
times, in the same run and on a fresh store file each repeat:
  - the limit: DuckDB `CREATE TABLE AS SELECT * FROM read_csv / read_parquet`;
  - deepcuts: `NativeImporter().ingest_file` (casts, checks, quarantine, dedupe, insert).
Prints events/s (median of the repeats) and deepcuts' share of the limit. Goal: >= 0.5.

    python benchmarks/bench_ingest.py [--events 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deepcuts.io import NativeImporter
from deepcuts.store import Store


def make_events(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 100_000, n)
    items = (rng.pareto(1.2, n) * 50).astype(np.int64) % 50_000
    start = np.datetime64("2026-10-05T00:00:00")
    seconds = np.sort(rng.integers(0, 28 * 86400, n))
    ms = rng.integers(1_000, 400_000, n)
    return pa.table(
        {
            "user_id": pa.array(np.char.add("u", users.astype(str))),
            "item_id": pa.array(np.char.add("t", items.astype(str))),
            "played_at": pa.array(
                (start + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
            ),
            "ms_played": pa.array(ms),
            "skipped": pa.array(ms < 30_000),
            "platform": pa.array(rng.choice(["android", "ios", "desktop", "web"], n)),
            "country": pa.array(rng.choice(["SE", "DE", "US", "BR", "JP"], n)),
        }
    )


def time_limit(path: Path, reader: str, db: Path) -> float:
    conn = duckdb.connect(str(db))
    started = time.perf_counter()
    conn.execute(f"CREATE TABLE listens AS SELECT * FROM {reader}('{path}')")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def time_deepcuts(path: Path, db: Path) -> float:
    with Store(db, create=True) as store:
        started = time.perf_counter()
        counts = NativeImporter().ingest_file(store, path)
        elapsed = time.perf_counter() - started
        assert counts.quarantined == 0, counts
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        events = make_events(args.events)
        csv_path, parquet_path = folder / "listens.csv", folder / "listens.parquet"
        pacsv.write_csv(events, csv_path)
        pq.write_table(events, parquet_path)
        print(
            f"{args.events:,} events; CSV {csv_path.stat().st_size / 1e6:.0f} MB, "
            f"Parquet {parquet_path.stat().st_size / 1e6:.0f} MB; median of {args.repeats} runs"
        )
        for label, path, reader in (
            ("CSV", csv_path, "read_csv"),
            ("Parquet", parquet_path, "read_parquet"),
        ):
            limit, ours = [], []
            for repeat in range(args.repeats):
                limit.append(time_limit(path, reader, folder / f"limit-{label}-{repeat}.duckdb"))
                ours.append(time_deepcuts(path, folder / f"ours-{label}-{repeat}.duckdb"))
            lim, our = statistics.median(limit), statistics.median(ours)
            print(
                f"{label:8s} duckdb straight into a table: {args.events / lim:>12,.0f} events/s ({lim:.2f} s)"
            )
            print(
                f"{label:8s} deepcuts ingest:                {args.events / our:>12,.0f} events/s ({our:.2f} s)"
            )
            print(f"{label:8s} deepcuts / limit: {lim / our:.2f} (goal >= 0.50)")


if __name__ == "__main__":
    main()
