"""The Spark engine (see `deepcuts.engines`): a session, ALS, training and the weekly job."""

from deepcuts.engines.spark.als import SparkALS, spark_ratings
from deepcuts.engines.spark.session import DEFAULT_MASTER, SparkUnavailable, spark_session
from deepcuts.engines.spark.train import train_on_spark
from deepcuts.engines.spark.weekly import SparkWeeklyResult, run_weekly

__all__ = [
    "DEFAULT_MASTER", "SparkALS", "SparkUnavailable", "SparkWeeklyResult", "run_weekly",
    "spark_ratings", "spark_session", "train_on_spark",
]
