"""Engines: where the heavy batch steps run (the confidence matrix, ALS, the weekly lists).

- `local` (the default): DuckDB and NumPy in this process.
- `spark`: Apache Spark (``local[N]``, a standalone cluster, YARN or Kubernetes); the same
  confidence values, the same model format and registry, the same weekly code run per
  partition (see docs/scale-out.md).

Both keep one contract: `train` registers a model version in the store that `deepcuts weekly`,
`publish` and `serve` use as they are; `weekly` gives rows of the store's ``weekly_lists`` and
``weekly_notes`` tables. Only the CLI and jobs import engines; nothing in the pipeline does.
"""

from __future__ import annotations

ENGINES = ("local", "spark")

__all__ = ["ENGINES"]
