"""Audio: decoding every claimed format, failures with reasons, features, the cache, the CNN,
`deepcuts audio embed`, and nearest neighbours on the 33 real excerpts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from click.testing import CliRunner

from deepcuts.cli import main
from deepcuts.models.audio import (
    AudioConfig,
    AudioError,
    AudioToCF,
    analyse,
    decode,
    extract,
    summary_embedding,
    summary_names,
)
from deepcuts.models.audio.features import summary_blocks
from tests.conftest import AUDIO_EXCERPTS as EXCERPTS

SR = 22050


def tone(seconds: float, freq: float = 440.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# -- decoding ---------------------------------------------------------------------------------
FORMATS = [
    ("wav", "WAV", "PCM_16", SR),
    ("flac", "FLAC", "PCM_16", SR),
    ("ogg", "OGG", "VORBIS", SR),
    ("opus", "OGG", "OPUS", 48000),  # Opus only runs at 8, 12, 16, 24 or 48 kHz
    ("mp3", "MP3", "MPEG_LAYER_III", SR),
]


@pytest.mark.parametrize("ext,fmt,subtype,rate", FORMATS, ids=[f[0] for f in FORMATS])
def test_decodes_every_claimed_format(tmp_path, ext, fmt, subtype, rate):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(3.0, sr=rate), rate, format=fmt, subtype=subtype)
    excerpt = decode(path, sample_rate=SR, excerpt_s=30.0)
    assert excerpt.sample_rate == SR
    assert excerpt.duration_s == pytest.approx(3.0, abs=0.1)
    assert len(excerpt.samples) == pytest.approx(3.0 * SR, rel=0.05)
    # Still a 440 Hz tone after the codec and the resampler.
    spectrum = np.abs(np.fft.rfft(excerpt.samples[SR // 2 : SR // 2 + SR]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=3)


def test_excerpt_comes_from_the_middle_and_stereo_is_mixed(tmp_path):
    # 10 s of stereo: the sample value encodes the time (left) and is mirrored (right).
    n = 10 * SR
    ramp = np.linspace(-0.9, 0.9, n, dtype=np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(path, np.stack([ramp, ramp * 0.5], axis=1), SR, subtype="FLOAT")
    excerpt = decode(path, sample_rate=SR, excerpt_s=4.0)
    assert excerpt.offset_s == pytest.approx(3.0, abs=1e-3)
    assert excerpt.excerpt_s == pytest.approx(4.0, abs=1e-3)
    start = 3 * SR
    np.testing.assert_allclose(excerpt.samples, 0.75 * ramp[start : start + 4 * SR], atol=1e-5)


def test_resamples_to_the_configured_rate(tmp_path):
    path = tmp_path / "tone44k.wav"
    sf.write(path, tone(2.0, sr=44100), 44100)
    excerpt = decode(path, sample_rate=16000)
    assert excerpt.sample_rate == 16000
    assert len(excerpt.samples) == pytest.approx(32000, abs=2)


def _bad_files(folder: Path) -> dict[str, str]:
    """Broken files of each kind, by file name -> the kind of failure expected."""
    (folder / "empty.wav").write_bytes(b"")
    (folder / "junk.mp3").write_bytes(bytes(range(256)) * 20)
    (folder / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really" * 10)
    sf.write(folder / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(folder / "hiss.wav", np.full(SR, 1e-5, np.float32), SR)  # -100 dBFS
    sf.write(folder / "noframes.wav", np.zeros(0, np.float32), SR)
    good = folder / "cut.ogg"
    sf.write(good, tone(3.0), SR, format="OGG", subtype="VORBIS")
    data = good.read_bytes()
    (folder / "truncated.ogg").write_bytes(data[: len(data) // 3])
    good.unlink()
    flac = folder / "full.flac"
    sf.write(flac, tone(3.0), SR, format="FLAC")
    data = bytearray(flac.read_bytes())
    rng = np.random.default_rng(0)
    data[len(data) // 4 : 3 * len(data) // 4] = rng.integers(
        0, 256, len(data) // 2, dtype=np.uint8
    ).tobytes()
    (folder / "garbled.flac").write_bytes(bytes(data))
    flac.unlink()
    return {
        "empty.wav": "empty",
        "junk.mp3": "unreadable",
        "junk.wav": "unreadable",
        "silent.wav": "silent",
        "hiss.wav": "silent",
        "noframes.wav": "empty",
        "truncated.ogg": "corrupt",
        "garbled.flac": "corrupt",
        "nowhere.wav": "missing",
    }


def test_each_broken_file_fails_with_its_reason(tmp_path):
    for name, kind in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as caught:
            decode(tmp_path / name)
        assert caught.value.kind == kind, (name, str(caught.value))
        assert str(caught.value).startswith(kind + ": ")


# -- features ---------------------------------------------------------------------------------
def test_summary_features_measure_what_they_say():
    config = AudioConfig()
    summary, mel = analyse(tone(5.0, 440.0, amp=0.5), config)
    names = summary_names(config)
    assert len(names) == len(summary) == sum(summary_blocks(config).values())
    assert len(set(names)) == len(names)
    assert np.isfinite(summary).all()
    assert mel.shape[0] == config.n_mels and mel.dtype == np.float32
    value = dict(zip(names, summary, strict=True))
    # A sine of amplitude 0.5 has an RMS of 0.354: -9.0 dB full scale.
    assert value["loudness_db"] == pytest.approx(-9.03, abs=0.3)
    chroma = [
        value[f"chroma_mean_{p}"]
        for p in ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")
    ]
    assert int(np.argmax(chroma)) == 9  # A

    clicks = np.zeros(8 * SR, np.float32)
    for beat in np.arange(0, 8, 0.5):  # 120 bpm
        start = int(beat * SR)
        clicks[start : start + 200] = np.hanning(200) * 0.8
    value = dict(zip(names, analyse(clicks, config)[0], strict=True))
    assert value["tempo_bpm"] == pytest.approx(120, rel=0.05)


def test_summary_embedding_is_standardised_unit_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, size=(20, 7))
    emb = summary_embedding(x)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    same = summary_embedding(x, mean=x.mean(0), std=x.std(0))
    np.testing.assert_allclose(emb, same, rtol=1e-5)


# -- extraction in batches, with a cache --------------------------------------------------------
def test_batch_records_failures_goes_on_and_caches_by_content(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    expected = _bad_files(folder)
    sf.write(folder / "a.wav", tone(2.0, 330.0), SR)
    sf.write(folder / "b.flac", tone(2.0, 550.0), SR, format="FLAC")
    paths = sorted(str(p) for p in folder.iterdir()) + [str(folder / "nowhere.wav")]
    cache = tmp_path / "cache"
    calls = []
    first = extract(paths, cache_dir=cache, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(paths), len(paths)) and len(calls) == len(paths)
    assert sorted(Path(f.path).name for f in first.features) == ["a.wav", "b.flac"]
    assert {Path(f.path).name: f.kind for f in first.failures} == expected
    assert all(f.reason.startswith(f.kind) for f in first.failures)
    assert first.from_cache == 0
    assert len(list(cache.rglob("*.npz"))) == 2

    second = extract(paths, cache_dir=cache, keep_log_mel=True)
    assert second.from_cache == 2
    assert second.seconds["decode"] == 0.0  # nothing decoded again
    np.testing.assert_array_equal(first.summaries, second.summaries)
    assert all(f.log_mel is not None and f.log_mel.dtype == np.float32 for f in second.features)

    # The cache is keyed by content: a renamed copy is a hit, a changed file is not.
    (folder / "a.wav").rename(folder / "renamed.wav")
    sf.write(folder / "b.flac", tone(2.0, 660.0), SR, format="FLAC")
    third = extract([folder / "renamed.wav", folder / "b.flac"], cache_dir=cache)
    assert [f.cached for f in third.features] == [True, False]


# -- the CNN ---------------------------------------------------------------------------------------
def _toy_spectrograms(rng, n):
    """Two kinds of 'audio': energy in the low bands or in the high bands, with noise."""
    kinds = rng.integers(0, 2, n)
    specs = []
    for kind in kinds:
        s = rng.normal(-60, 3, size=(24, int(rng.integers(40, 80)))).astype(np.float32)
        bands = slice(0, 8) if kind == 0 else slice(16, 24)
        s[bands] += 30 + rng.normal(0, 3, size=(8, s.shape[1]))
        specs.append(s)
    return specs, kinds


def test_cnn_learns_to_predict_cf_directions_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    specs, kinds = _toy_spectrograms(rng, 48)
    directions = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32)
    targets = directions[kinds] * rng.uniform(0.5, 3, size=(48, 1))  # norms do not matter
    model = AudioToCF(
        channels=8, hidden=16, epochs=10, batch_size=16, lr=3e-3, crop_frames=32, threads=1
    )
    model.fit(specs, targets)
    test_specs, test_kinds = _toy_spectrograms(np.random.default_rng(1), 20)
    predicted = model.predict(test_specs)
    assert predicted.shape == (20, 4)
    np.testing.assert_allclose(np.linalg.norm(predicted, axis=1), 1.0, rtol=1e-4)
    cosine = np.sum(predicted * directions[test_kinds], axis=1)
    assert cosine.mean() > 0.9
    assert model.embed(test_specs).shape == (20, 16)

    model.save(tmp_path / "cnn.npz")
    again = AudioToCF.load(tmp_path / "cnn.npz")
    np.testing.assert_allclose(again.predict(test_specs), predicted, rtol=1e-5, atol=1e-6)
    with np.load(tmp_path / "cnn.npz", allow_pickle=False) as data:
        assert "__meta__" in data.files


def test_cnn_rejects_bad_input():
    with pytest.raises(ValueError, match="spectrograms for"):
        AudioToCF().fit([np.zeros((8, 40))] * 3, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="different numbers of mel bands"):
        AudioToCF().fit([np.zeros((8, 40)), np.zeros((9, 40))], np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match="not fitted"):
        AudioToCF().predict([np.zeros((8, 40))])


# -- `deepcuts audio embed` ---------------------------------------------------------------------------
def test_audio_embed_command_writes_a_row_per_file(tmp_path):
    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "one.wav", tone(2.0, 330.0), SR)
    sf.write(folder / "sub" / "two.ogg", tone(2.0, 550.0), SR, format="OGG", subtype="VORBIS")
    (folder / "broken.mp3").write_bytes(b"\x00" * 1000)
    out = tmp_path / "emb.parquet"
    store = tmp_path / "s.duckdb"
    args = ["--store", str(store), "audio", "embed", str(folder), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 of 3 files embedded (0 from the cache), 1 skipped" in result.output
    table = pq.read_table(out).to_pylist()
    by_name = {Path(r["path"]).name: r for r in table}
    assert set(by_name) == {"one.wav", "two.ogg", "broken.mp3"}
    assert (
        by_name["broken.mp3"]["status"] == "unreadable"
        and by_name["broken.mp3"]["embedding"] is None
    )
    ok = by_name["one.wav"]
    assert ok["status"] == "ok" and ok["error"] is None and len(ok["sha256"]) == 64
    assert (
        len(ok["mfcc_mean"]) == 20
        and len(ok["chroma_mean"]) == 12
        and isinstance(ok["tempo_bpm"], float)
    )
    assert len(ok["embedding"]) == len(summary_names(AudioConfig()))
    # The default cache sits beside the store; a second run reads from it.
    assert (tmp_path / "s.duckdb.cache" / "audio").is_dir()
    again = CliRunner().invoke(main, args)
    assert "(2 from the cache)" in again.output


def test_audio_embed_with_a_trained_network(tmp_path):
    rng = np.random.default_rng(0)
    config = AudioConfig()
    specs = [rng.normal(-50, 5, size=(config.n_mels, 60)).astype(np.float32) for _ in range(6)]
    model = AudioToCF(channels=4, hidden=8, epochs=1, crop_frames=32, threads=1)
    model.fit(specs, rng.normal(size=(6, 5))).save(tmp_path / "cnn.npz")
    sf.write(tmp_path / "one.wav", tone(2.0), SR)
    out = tmp_path / "emb.parquet"
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "s.duckdb"), "audio", "embed",
                                       str(tmp_path / "one.wav"), "--out", str(out),
                                       "--model", str(tmp_path / "cnn.npz"), "--no-cache"])  # fmt: skip
    assert result.exit_code == 0, result.output
    row = pq.read_table(out).to_pylist()[0]
    assert len(row["embedding"]) == 5
    assert np.linalg.norm(row["embedding"]) == pytest.approx(1.0, rel=1e-4)


def test_audio_embed_fails_when_nothing_is_audio(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "s.duckdb"), "audio", "embed",
                                       str(tmp_path / "x.wav"), "--out", str(tmp_path / "o.parquet")])  # fmt: skip
    assert result.exit_code == 3
    assert "empty: the file has no bytes" in result.output


def test_audio_train_registers_a_network_that_embed_uses_by_id(tmp_path):
    """`deepcuts audio train` on a simulated world with audio: targets are the CF vectors of
    tracks with plays; `audio embed --model ID` then gives CF-space vectors."""
    import json

    def cli(*args, expect=0):
        result = CliRunner().invoke(
            main, ["--store", str(tmp_path / "s.duckdb"), *[str(a) for a in args]]
        )
        assert result.exit_code == expect, result.output
        return result.output

    cli("simulate", "--users", 60, "--tracks", 80, "--weeks", 2, "--seed", 1, "--audio-share", 0.5,
        "--out", tmp_path / "world")  # fmt: skip
    cli("ingest", "native", tmp_path / "world")
    # no network yet: the hand-made features, and the output says so
    clips = sorted((tmp_path / "world").rglob("*.wav"))
    out = cli("audio", "embed", clips[0], "--out", tmp_path / "plain.parquet")
    assert "embedding: hand-made summary features" in out
    cli("train", "--model", "als", "--set", "factors=8", "--set", "iterations=3", "--cf-only")
    out = cli("audio", "train", "--music-dir", tmp_path / "world", "--epochs", 2, "--set", "channels=4",
              "--set", "hidden=8", "--set", "crop_frames=32")  # fmt: skip
    assert "audio-cnn-v1: trained on" in out and "toward als-v1's item vectors" in out
    listed = json.loads(cli("models", "--kind", "audio-cnn", "--json"))
    assert [r["model_id"] for r in listed] == ["audio-cnn-v1"] and listed[0]["default"]
    assert listed[0]["metrics"]["tracks"] >= 2 and listed[0]["data_until"]
    np.load(listed[0]["path"], allow_pickle=False).close()
    out = cli(
        "audio", "embed", *clips[:3], "--out", tmp_path / "cnn.parquet", "--model", "audio-cnn-v1"
    )
    assert "embedding: audio-cnn-v1's predicted CF vectors" in out
    rows = pq.read_table(tmp_path / "cnn.parquet").to_pylist()
    assert all(len(r["embedding"]) == 8 for r in rows)
    # an id that is not an audio network is a clear error
    out = cli(
        "audio", "embed", clips[0], "--out", tmp_path / "x.parquet", "--model", "als-v1", expect=2
    )
    assert "als-v1" in out and "of kind cf, not audio-cnn" in out


# -- the 33 real excerpts -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_excerpts(tmp_path_factory):
    # The real data is part of the test suite: its absence is a failure, not a skip.
    assert (EXCERPTS / "manifest.csv").is_file(), f"real excerpts not found at {EXCERPTS}"
    rows = list(csv.DictReader(open(EXCERPTS / "manifest.csv", encoding="utf-8")))
    result = extract(
        [EXCERPTS / r["file"] for r in rows], cache_dir=tmp_path_factory.mktemp("cache")
    )
    assert not result.failures, result.failures
    return rows, result


def test_real_excerpts_decode_as_thirty_second_vorbis(real_excerpts):
    rows, result = real_excerpts
    assert len(result.features) == len(rows) == 33
    for f in result.features:
        assert f.excerpt_s == pytest.approx(30.0, abs=0.05)
        assert f.summary.shape == (len(summary_names(AudioConfig())),)


def test_real_excerpts_nearest_neighbour_by_composer_and_album(real_excerpts):
    """Leave-one-out nearest neighbour (cosine of the audio embedding): same source package
    for at least 85% of excerpts (chance about 49%), same album well above chance."""
    rows, result = real_excerpts
    package = np.array([r["source_package"] for r in rows])
    album = np.array([r["album"] for r in rows])
    emb = summary_embedding(result.summaries)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)

    n = len(rows)
    same_package = float(np.mean(package[nearest] == package))
    package_chance = float(np.mean([(np.sum(package == p) - 1) / (n - 1) for p in package]))
    has_album = album != ""
    same_album = float(np.mean((album[nearest] == album)[has_album]))
    album_chance = float(np.mean([(np.sum(album == a) - 1) / (n - 1) for a in album[has_album]]))

    message = (
        f"same package {same_package:.3f} (chance {package_chance:.3f}); "
        f"same album {same_album:.3f} (chance {album_chance:.3f})"
    )
    print(message)  # noqa: T201
    assert package_chance == pytest.approx(0.485, abs=0.01)
    assert same_package >= 0.85
    assert same_album >= album_chance + 0.25
