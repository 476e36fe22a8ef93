"""Implicit ALS on Spark (``pyspark.ml.recommendation.ALS(implicitPrefs=True)``), fed the same
confidence values as the embedded ALS and giving a model of the same kind.

How the confidence values map onto Spark's parameterisation. The embedded ALS (implicit's)
reads a matrix value ``v`` as: ``v > 0``, preference 1 with confidence ``c = alpha * v``;
``v < 0``, preference 0 with confidence ``c = alpha * |v|``; an empty cell, preference 0 with
confidence 1. Spark's implicit ALS reads a rating ``r`` (its own ``alpha`` left at 1) as
preference ``r > 0`` with confidence ``1 + |r|``. So Spark gets ``r = c - 1`` for positives
and ``r = -(c - 1)`` for negatives: the same objective's confidence terms, pair by pair. A
positive whose confidence is at or below 1 (possible with linear scaling and recency decay)
keeps preference 1 with confidence just above 1, the nearest Spark can express.

What differs, and cannot be set alike: Spark scales the L2 penalty of each user (item) by
that user's (item's) number of positive ratings (ALS-WR, Zhou et al. 2008), implicit does not;
Spark solves each least-squares problem exactly (Cholesky), the embedded ALS by a few
conjugate-gradient steps. ``tests/test_spark.py`` measures what that does to NDCG on HetRec.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from deepcuts.engines.spark.ratings import spark_ratings
from deepcuts.models.cf.als import ALS
from deepcuts.signals.side import SideInfo

log = logging.getLogger(__name__)


def ratings_frame(spark, matrix: sp.csr_matrix, alpha: float = 1.0):
    """A Spark DataFrame (user int, item int, rating float) from a confidence matrix."""
    coo = matrix.tocoo()
    frame = pd.DataFrame(
        {
            "user": coo.row.astype(np.int32),
            "item": coo.col.astype(np.int32),
            "rating": spark_ratings(coo.data, alpha),
        }
    )
    return spark.createDataFrame(frame, schema="user int, item int, rating float")


def fit_factors(
    ratings,
    n_users: int,
    n_items: int,
    *,
    factors: int,
    regularization: float,
    iterations: int,
    seed: int | None = 0,
    blocks: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit Spark's implicit ALS on ``ratings`` (user, item, rating) and bring the factors back
    as float32 arrays in index order; users and items with no rating get zero vectors."""
    from pyspark.ml.recommendation import ALS as SparkALSEstimator

    began = time.perf_counter()
    spark = ratings.sparkSession
    n_blocks = blocks or max(2, spark.sparkContext.defaultParallelism)
    estimator = SparkALSEstimator(
        rank=factors,
        maxIter=iterations,
        regParam=regularization,
        implicitPrefs=True,
        alpha=1.0,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        nonnegative=False,
        seed=0 if seed is None else int(seed),
        numUserBlocks=n_blocks,
        numItemBlocks=n_blocks,
    )
    model = estimator.fit(ratings)
    users = _collect(model.userFactors, n_users, factors)
    items = _collect(model.itemFactors, n_items, factors)
    log.info(
        "Spark ALS: %d users x %d items, %d factors, %d iterations in %.1f s",
        n_users,
        n_items,
        factors,
        iterations,
        time.perf_counter() - began,
    )
    return users, items


def _collect(frame, n: int, factors: int) -> np.ndarray:
    pdf = frame.toPandas()
    out = np.zeros((n, factors), np.float32)
    if len(pdf):
        out[pdf["id"].to_numpy()] = np.stack(pdf["features"].to_numpy()).astype(np.float32)
    return out


class SparkALS(ALS):
    """The embedded `ALS` fitted on Spark: same parameters, same saved format (it saves as
    ``als`` and loads as `ALS`), same recommendation code; only `fit` differs.

    Parameters
    ----------
    spark : the SparkSession to fit on.
    blocks : Spark's user and item blocks (default: the session's parallelism, at least 2).
    The others are `ALS`'s; ``cg_steps``, ``use_cg`` and ``num_threads`` only matter to it.
    """

    def __init__(self, spark=None, *, blocks: int | None = None, **params):
        super().__init__(**params)
        self.spark = spark
        self.blocks = blocks

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> SparkALS:
        self._validate()
        if self.spark is None:
            raise ValueError("SparkALS needs a SparkSession (spark=...)")
        matrix = user_items.tocsr()
        ratings = ratings_frame(self.spark, matrix, self.alpha)
        self.user_factors_, self.item_factors_ = fit_factors(
            ratings,
            matrix.shape[0],
            matrix.shape[1],
            factors=self.factors,
            regularization=self.regularization,
            iterations=self.iterations,
            seed=self.random_state,
            blocks=self.blocks,
        )
        self.n_users_, self.n_items_ = matrix.shape
        self._yty = None
        return self

    def as_als(self) -> ALS:
        """The same model as a plain `ALS` (no Spark session inside), to save or ship."""
        model = ALS(**self.get_params())
        model.user_factors_, model.item_factors_ = self.user_factors_, self.item_factors_
        model.n_users_, model.n_items_ = self.n_users_, self.n_items_
        model._after_load()
        return model
