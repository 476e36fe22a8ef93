"""A synthetic music world with known ground truth, written in the native formats.

``simulate_world`` writes the store tables, audio clips and ``truth/``; ``load_truth`` reads
the truth back and ``true_stream_probability`` gives the true chance that a play streams.
"""

from .genres import GENRE_NAMES, REGION_CODES
from .truth import StreamModel, Truth, load_truth, true_stream_probability
from .world import DEFAULT_START, WorldSummary, simulate_world

__all__ = [
    "DEFAULT_START",
    "GENRE_NAMES",
    "REGION_CODES",
    "StreamModel",
    "Truth",
    "WorldSummary",
    "load_truth",
    "simulate_world",
    "true_stream_probability",
]
