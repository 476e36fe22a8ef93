"""Short synthesized clips whose tempo, timbre and key come from the track's genre and artist.

A clip is a melody in the track's key and the genre's scale, one note per one or a few beats,
each note a sum of harmonics shaped by the genre's brightness and the artist's timbre; a drone
on the root under it; an accent on every beat that decays at the genre's rate; and for
rhythmic genres a drum hit (a low thump and a burst of noise) on the beat or off it.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .catalogue import N_HARMONICS, Catalogue
from .genres import GENRES, Sound

SAMPLE_RATE = 16_000
CLIP_SECONDS = 3.0
AUDIO_DIR = "audio"


def synthesize(
    rng: np.random.Generator, sound: Sound, bpm: float, key: int, timbre: np.ndarray
) -> np.ndarray:
    """One mono clip as int16 samples at ``SAMPLE_RATE``.

    ``key`` is the root's pitch class (0 = C), ``timbre`` (N_HARMONICS,) the artist's
    multipliers of the genre's harmonic amplitudes.
    """
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    beats = t * bpm / 60.0
    since_beat = (beats % 1.0) * 60.0 / bpm

    # Melody: a random walk over two octaves of the scale, one note every few beats.
    scale = np.array(sound.scale)
    n_notes = int(beats[-1] / sound.beats_per_note) + 1
    degree = np.clip(
        rng.integers(0, len(scale)) + np.cumsum(rng.integers(-2, 3, n_notes)), 0, 2 * len(scale) - 1
    )
    midi = sound.octave + key + 12 * (degree // len(scale)) + scale[degree % len(scale)]
    freq = (440.0 * 2.0 ** ((midi - 69) / 12.0))[(beats / sound.beats_per_note).astype(int)]
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE

    # Harmonics k = 1..H by the recurrence sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x):
    # one sin and one cos per sample instead of H sines; none above the Nyquist frequency.
    amps = np.arange(1, N_HARMONICS + 1) ** -sound.brightness * timbre
    two_cos = 2 * np.cos(phase)
    prev, cur = np.zeros(n), np.sin(phase)
    tone = amps[0] * cur
    for k in range(2, N_HARMONICS + 1):
        prev, cur = cur, two_cos * cur - prev
        tone += amps[k - 1] * cur * (k * freq < 0.45 * SAMPLE_RATE)
    tone /= np.abs(tone).max()

    root = 440.0 * 2.0 ** ((sound.octave - 12 + key - 69) / 12.0)
    drone = 0.3 * np.sin(2 * np.pi * root * t)
    accent = sound.sustain + (1 - sound.sustain) * np.exp(-since_beat / sound.decay_s)
    signal = accent * tone + drone

    if sound.percussion > 0:
        since_drum = ((beats + 0.5 * sound.offbeat) % 1.0) * 60.0 / bpm
        thump = np.sin(2 * np.pi * 55.0 * since_drum) * np.exp(-since_drum / 0.06)
        hiss = rng.normal(size=n) * np.exp(-since_drum / 0.02)
        signal += sound.percussion * (1.5 * thump + 0.6 * hiss)
    if sound.drive > 1:
        signal = np.tanh(sound.drive * signal / np.abs(signal).max())
    signal = signal / np.abs(signal).max() + sound.noise * rng.normal(size=n)
    return (0.9 * 32767 * signal / np.abs(signal).max()).astype("<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write int16 mono samples as a PCM WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.astype("<i2").tobytes())


def render_clips(
    rng: np.random.Generator,
    out_dir: Path,
    catalogue: Catalogue,
    tracks: np.ndarray,
    track_ids: list[str],
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Write a clip for each track index in ``tracks`` under ``out_dir/audio/``.

    Returns the paths relative to ``out_dir``, in the order of ``tracks``.
    """
    if len(tracks):
        (out_dir / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    cat = catalogue
    paths = []
    for done, t in enumerate(tracks, 1):
        artist = cat.track_artist[t]
        sound = GENRES[cat.artist_genre[artist]].sound
        samples = synthesize(
            rng, sound, cat.track_bpm[t], int(cat.track_key[t]), cat.artist_timbre[artist]
        )
        relative = f"{AUDIO_DIR}/{track_ids[t]}.wav"
        write_wav(out_dir / relative, samples)
        paths.append(relative)
        if progress and (done % 50 == 0 or done == len(tracks)):
            progress(done, len(tracks))
    return paths
