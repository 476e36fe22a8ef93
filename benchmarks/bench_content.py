"""Throughput of the content models, stage by stage.

Audio: seconds of audio analysed per wall-clock second (the goal is at least 100x real time
for the summary features on 2 cores), split into decode, spectrogram (STFT and mel) and summary,
and the CNN's forward pass; through `extract` with 1 and 2 worker processes. Text: MiniLM
documents per second (packaged all-MiniLM-L6-v2, offline) and TF-IDF fit and transform.

Inputs are the real files in ../shared/data: the 33 Ogg Vorbis excerpts (30 s each) and the
HetRec Last.fm artists' tag documents.

    .venv/bin/python benchmarks/bench_content.py [--repeat 2] [--docs 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXCERPTS = DATA / "audio-excerpts"
HETREC = DATA / "hetrec-lastfm-2k"


def bench_audio(repeat: int) -> dict:
    from deepcuts.models.audio import AudioConfig, AudioToCF, decode, extract
    from deepcuts.models.audio.features import log_mel, magnitude, summarise

    files = sorted(EXCERPTS.glob("*.ogg"))
    config = AudioConfig()
    # Warm up (librosa's first calls compile with numba).
    warm = decode(files[0], config.sample_rate, config.excerpt_s)
    summarise(magnitude(warm.samples, config), log_mel(warm.samples, config), config)

    stages = {"decode": 0.0, "spectrogram": 0.0, "summary": 0.0}
    audio_s = 0.0
    mels = []
    for _ in range(repeat):
        for path in files:
            t0 = time.perf_counter()
            excerpt = decode(path, config.sample_rate, config.excerpt_s)
            t1 = time.perf_counter()
            S = magnitude(excerpt.samples, config)
            lm = log_mel(excerpt.samples, config, S)
            t2 = time.perf_counter()
            summarise(S, lm, config)
            t3 = time.perf_counter()
            stages["decode"] += t1 - t0
            stages["spectrogram"] += t2 - t1
            stages["summary"] += t3 - t2
            audio_s += excerpt.excerpt_s
            if len(mels) < len(files):
                mels.append(lm)
    wall = sum(stages.values())
    result = {
        "files": len(files) * repeat,
        "audio_seconds": round(audio_s, 1),
        "stage_seconds_per_30s": {k: round(v / audio_s * 30, 4) for k, v in stages.items()},
        "one_process_x_realtime": round(audio_s / wall, 1),
    }

    # The network: a 64-dimensional CNN (untrained weights cost the same) over whole excerpts.
    rng = np.random.default_rng(0)
    model = AudioToCF(epochs=1, threads=1).fit(mels[:4], rng.normal(size=(4, 64)))
    model.predict(mels[:2])
    t0 = time.perf_counter()
    model.predict(mels)
    network = time.perf_counter() - t0
    result["stage_seconds_per_30s"]["network"] = round(network / len(mels), 4)

    # The batch path, as `deepcuts audio embed` runs it (hashing included, no cache).
    for workers in (1, 2):
        t0 = time.perf_counter()
        out = extract(files * repeat, config, workers=workers)
        wall = time.perf_counter() - t0
        result[f"extract_{workers}_worker_x_realtime"] = round(out.audio_seconds / wall, 1)
    # And from the cache.
    with tempfile.TemporaryDirectory() as cache:
        extract(files, config, cache_dir=cache)
        t0 = time.perf_counter()
        out = extract(files, config, cache_dir=cache)
        result["cached_x_realtime"] = round(out.audio_seconds / (time.perf_counter() - t0), 1)
    return result


def hetrec_documents(n: int) -> list[str]:
    from deepcuts.io.hetrec import HetRecImporter
    from deepcuts.models.text import load_item_texts
    from deepcuts.store import Store

    store = Store(":memory:", create=True)
    importer = HetRecImporter()
    for folder in importer.files([str(HETREC)]):
        importer.ingest_file(store, folder)
    texts = load_item_texts(store)
    docs = [d for d in texts.documents() if d]
    store.close()
    return docs[:n] if n else docs


def bench_text(n_docs: int) -> dict:
    from deepcuts.models.text import SentenceEncoder, TfidfEncoder

    docs = hetrec_documents(0)
    result = {"documents": len(docs)}
    t0 = time.perf_counter()
    enc = TfidfEncoder().fit(docs)
    enc.transform(docs)
    result["tfidf_fit_transform_docs_per_s"] = round(len(docs) / (time.perf_counter() - t0))

    sample = docs[:n_docs]
    words = np.mean([len(d.split()) for d in sample])
    result["minilm_documents"] = len(sample)
    result["minilm_mean_words"] = round(float(words), 1)
    for threads in (1, 2):
        encoder = SentenceEncoder(threads=threads)
        t0 = time.perf_counter()
        encoder.encode(["warm up"])
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        encoder.encode(sample)
        result[f"minilm_{threads}_thread_docs_per_s"] = round(
            len(sample) / (time.perf_counter() - t0), 1
        )
        result.setdefault("minilm_load_s", round(load, 2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="passes over the 33 excerpts")
    parser.add_argument("--docs", type=int, default=2000, help="documents for MiniLM")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    figures = {"audio": bench_audio(args.repeat), "text": bench_text(args.docs)}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
