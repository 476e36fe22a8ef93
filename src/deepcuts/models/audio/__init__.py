"""Audio: decoding, log-mel and summary features, a CNN from audio to CF vectors."""

from deepcuts.models.audio.cnn import AudioToCF
from deepcuts.models.audio.decode import AUDIO_EXTENSIONS, AudioError, Excerpt, decode
from deepcuts.models.audio.extract import AudioFailure, AudioFeatures, Extraction, extract
from deepcuts.models.audio.features import (
    AudioConfig,
    analyse,
    log_mel,
    summary_embedding,
    summary_names,
)

__all__ = [
    "AUDIO_EXTENSIONS", "AudioConfig", "AudioError", "AudioFailure", "AudioFeatures", "AudioToCF",
    "Excerpt", "Extraction", "analyse", "decode", "extract", "log_mel", "summary_embedding",
    "summary_names",
]  # fmt: skip
