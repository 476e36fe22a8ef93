"""Confidence values as Spark implicit-ALS ratings (see `deepcuts.engines.spark.als` for why).

Kept apart, with NumPy and pandas only, because Spark's Python workers import it: each
worker pays for every import of the module it unpickles a function from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_RATING = 1e-6  # a positive rating that stays positive in Spark's ``r > 0`` test


def spark_ratings(confidence: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Spark ratings carrying the embedded ALS's confidence: ``r = c - 1`` for positives (at
    least `MIN_RATING`), ``r = -(c - 1)`` for negatives (at most 0), ``c = alpha * |v|``."""
    v = np.asarray(confidence, np.float64)
    excess = alpha * np.abs(v) - 1.0
    return np.where(v > 0, np.maximum(excess, MIN_RATING), -np.maximum(excess, 0.0)).astype(
        np.float32
    )


def confidence_to_ratings(confidence_df, alpha: float = 1.0):
    """``user_idx, item_idx, confidence`` rows (the events layout) as Spark ratings (user,
    item, rating), converted per partition by `spark_ratings`."""

    def convert(batches):
        for b in batches:
            yield pd.DataFrame(
                {
                    "user": b["user_idx"].astype(np.int32),
                    "item": b["item_idx"].astype(np.int32),
                    "rating": spark_ratings(b["confidence"].to_numpy(), alpha),
                }
            )

    return confidence_df.mapInPandas(convert, schema="user int, item int, rating float")
