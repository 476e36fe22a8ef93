"""Signals: the store's events turned into what models learn from, in integer index space.

`build_interactions` gives the user x item confidence matrix with its id maps; `build_side_info`
gives tags, friends, regions and playlist co-occurrence in the same index space; the aggregates
`friends_listening` and `regional_popularity` serve candidate generation and ranking.
"""

from deepcuts.signals.confidence import (
    RAW_COUNTS,
    ConfidenceConfig,
    Interactions,
    PairEvidence,
    build_interactions,
    gather_evidence,
    interactions_from_evidence,
    positive_part,
    remove_pairs,
    store_id_maps,
)
from deepcuts.signals.ids import IdMap
from deepcuts.signals.side import SideInfo, build_side_info, friends_listening, regional_popularity

__all__ = [
    "RAW_COUNTS",
    "ConfidenceConfig",
    "IdMap",
    "Interactions",
    "PairEvidence",
    "SideInfo",
    "build_interactions",
    "build_side_info",
    "friends_listening",
    "gather_evidence",
    "interactions_from_evidence",
    "positive_part",
    "regional_popularity",
    "remove_pairs",
    "store_id_maps",
]
