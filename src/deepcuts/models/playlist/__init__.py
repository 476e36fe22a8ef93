"""Playlist models: continuing a playlist from its tracks and its title.

`PlaylistCF` (track-track and playlist-playlist neighbours), `PlaylistSequence` (what follows
the last tracks), `PlaylistTitle` (playlists named like this one) and `PlaylistContinuation`,
their blend with the seed artists' tracks, popularity and ALS (`deepcuts.models.cf.als`, the
playlist folded in), learnt on held-out playlists and reordered by gradient-boosted trees (`rerank`), with cold
tracks through content vectors.
"""

from deepcuts.models.playlist.blend import (
    BUCKETS,
    PARTS,
    PlaylistContinuation,
    cut_playlist,
    seed_bucket,
)
from deepcuts.models.playlist.cf import PlaylistCF
from deepcuts.models.playlist.sequence import PlaylistSequence
from deepcuts.models.playlist.title import PlaylistTitle, title_terms

__all__ = [
    "BUCKETS", "PARTS", "PlaylistCF", "PlaylistContinuation", "PlaylistSequence", "PlaylistTitle",
    "cut_playlist", "seed_bucket", "title_terms",
]  # fmt: skip
