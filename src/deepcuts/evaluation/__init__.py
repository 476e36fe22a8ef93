"""Offline evaluation: splits, metrics, side-by-side runs of models, tuning and reports."""

from deepcuts.evaluation.catalogue import STANDARD, model_spec, peer_spec, standard_specs
from deepcuts.evaluation.harness import (
    EvaluationData,
    EvaluationResult,
    ModelSpec,
    evaluate_models,
    recommend_filtered,
    summarise,
)
from deepcuts.evaluation.metrics import (
    coverage,
    intra_list_diversity,
    novelty,
    ranking_metrics,
)
from deepcuts.evaluation.splits import SPLITS, Split, SplitError, holdout_pairs, time_split

__all__ = [
    "SPLITS",
    "STANDARD",
    "EvaluationData",
    "EvaluationResult",
    "ModelSpec",
    "Split",
    "SplitError",
    "coverage",
    "evaluate_models",
    "holdout_pairs",
    "intra_list_diversity",
    "model_spec",
    "novelty",
    "peer_spec",
    "ranking_metrics",
    "recommend_filtered",
    "standard_specs",
    "summarise",
    "time_split",
]
