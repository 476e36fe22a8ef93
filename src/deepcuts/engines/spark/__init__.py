"""The Spark engine (see `deepcuts.engines`).

- `session`: one SparkSession per process, with deepcuts' defaults;
- `ratings`: the embedded confidence values as Spark implicit-ALS ratings;
- `als`: `SparkALS` (the embedded `ALS`, fitted on Spark) and `fit_factors`;
- `train`: `train_on_spark`, ALS on an events folder, saved and registered;
- `weekly`: `run_weekly`, Discover Weekly per partition with the embedded code.

Nothing is imported here: Spark's Python workers import this package, and each import costs
every worker its time.
"""
