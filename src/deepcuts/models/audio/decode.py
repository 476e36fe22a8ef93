"""Decoding audio files into a mono excerpt at one sample rate, with a clear reason on failure.

WAV, FLAC, Ogg Vorbis, Opus and MP3 are decoded by libsndfile (through ``soundfile``; MP3 needs
libsndfile 1.1 or later, Opus 1.0.29 or later); anything libsndfile cannot open is tried once
more through librosa's audioread fallback (FFmpeg or GStreamer where the machine has them).
Only the excerpt is decoded: libsndfile seeks to the middle of the file, so a ten-minute FLAC
costs no more than its 30 seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
AUDIO_PATTERNS = tuple(f"*{ext}" for ext in AUDIO_EXTENSIONS) + tuple(
    f"*{ext.upper()}" for ext in AUDIO_EXTENSIONS
)

# Why a file yields no features; the first word of every recorded reason.
MISSING, UNREADABLE, CORRUPT, EMPTY, SILENT = "missing", "unreadable", "corrupt", "empty", "silent"
# A file this much shorter than its header says is cut off, not just imprecisely measured.
TRUNCATED_SHARE = 0.5


class AudioError(Exception):
    """A file that yields no audio. ``kind`` is one of missing, unreadable, corrupt, empty, silent;
    the message says what was found."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class Excerpt:
    """Decoded mono samples (float32 in [-1, 1]) at ``sample_rate``.

    ``duration_s`` is the whole file's length as its header gives it, ``offset_s`` where the
    excerpt starts in it.
    """

    samples: np.ndarray
    sample_rate: int
    duration_s: float
    offset_s: float

    @property
    def excerpt_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(
    path: str | Path,
    sample_rate: int = 22050,
    excerpt_s: float | None = 30.0,
    silence_db: float = -70.0,
) -> Excerpt:
    """Decode up to ``excerpt_s`` seconds from the middle of an audio file.

    Parameters
    ----------
    path : the file.
    sample_rate : the rate to resample to.
    excerpt_s : the longest excerpt; ``None`` decodes the whole file.
    silence_db : a file whose peak is below this level (dB full scale) is silent.

    Returns
    -------
    Excerpt, mono, resampled.

    Raises
    ------
    AudioError
        With ``kind`` missing (no such file), empty (no bytes or no samples), unreadable (not a
        format any decoder recognises), corrupt (recognised, but the data does not decode or
        is cut off) or silent.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(MISSING, "no such file")
    if path.stat().st_size == 0:
        raise AudioError(EMPTY, "the file has no bytes")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        text = str(exc)
        if "malformed" in text:
            raise AudioError(
                CORRUPT, f"{info_format(path)} header found but the file is malformed"
            ) from exc
        return _fallback(path, sample_rate, excerpt_s, silence_db, text)
    except OSError as exc:  # permission denied and the like
        raise AudioError(UNREADABLE, str(exc)) from exc
    if info.frames <= 0:
        raise AudioError(EMPTY, f"{info.format} file holds no audio samples")
    want = (
        info.frames
        if excerpt_s is None
        else min(info.frames, int(round(excerpt_s * info.samplerate)))
    )
    start = (info.frames - want) // 2
    try:
        data, file_rate = sf.read(
            str(path), start=start, frames=want, dtype="float32", always_2d=True
        )
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(
            CORRUPT, f"{info.format}/{info.subtype} data does not decode ({exc})"
        ) from exc
    if len(data) < TRUNCATED_SHARE * want:
        raise AudioError(
            CORRUPT,
            f"truncated: the header promises {info.frames / info.samplerate:.1f} s but the excerpt "
            f"from {start / info.samplerate:.1f} s decodes to {len(data) / info.samplerate:.1f} s",
        )
    return _finish(
        data,
        file_rate,
        sample_rate,
        info.frames / info.samplerate,
        start / info.samplerate,
        silence_db,
    )


def info_format(path: Path) -> str:
    return path.suffix.lstrip(".").upper() or "audio"


def _fallback(
    path: Path, sample_rate: int, excerpt_s: float | None, silence_db: float, why: str
) -> Excerpt:
    """librosa/audioread for what libsndfile cannot open (e.g. MP3 on an old libsndfile)."""
    import warnings

    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            duration = librosa.get_duration(path=str(path))
            offset = 0.0 if excerpt_s is None else max(0.0, (duration - excerpt_s) / 2)
            data, rate = librosa.load(
                str(path), sr=None, mono=False, offset=offset, duration=excerpt_s
            )
    except Exception as exc:  # audioread raises many types; every one means "cannot decode"
        raise AudioError(UNREADABLE, f"not a format any decoder recognises ({why})") from exc
    data = np.atleast_2d(np.asarray(data, np.float32)).T  # (frames, channels)
    if len(data) == 0:
        raise AudioError(EMPTY, "the file holds no audio samples")
    return _finish(data, int(rate), sample_rate, float(duration), offset, silence_db)


def _finish(
    data: np.ndarray,
    file_rate: int,
    sample_rate: int,
    duration_s: float,
    offset_s: float,
    silence_db: float,
) -> Excerpt:
    if not np.isfinite(data).all():
        raise AudioError(CORRUPT, "the decoded samples contain NaN or infinity")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if file_rate != sample_rate:
        import librosa

        mono = librosa.resample(mono, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if len(mono) == 0:
        raise AudioError(EMPTY, "the file holds no audio samples")
    peak = float(np.abs(mono).max())
    if peak <= 10 ** (silence_db / 20):
        level = "digital silence" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise AudioError(SILENT, f"silent ({level}, below {silence_db:.0f} dBFS)")
    return Excerpt(mono, sample_rate, duration_s, offset_s)
