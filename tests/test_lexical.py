"""The lexical index: BM25 equal to bm25s's, exact after any sequence of writes, consistent
after a crash, moving with a reader's snapshot, filtered exactly; and its bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiervec
from tiervec.errors import InvalidSearchOptions, LexicalIndexMissing
from tiervec.lexical import Analyzer, LexicalConfig, LexicalIndex, Postings
from tiervec.lexical.analyze import document_text
from tiervec.lexical.postings import merge
from tiervec.search import Query
from tiervec.store.manifest import Manifest

WORDS = ("cell protein gene cancer tumour virus infection immune response blood pressure "
         "heart brain neuron signal receptor binding enzyme growth factor therapy drug dose "
         "trial patient mouse model risk study").split()
QUERIES = ("cancer cell growth", "immune response to virus infection", "drug dose trial",
           "brain neuron signal receptor", "the of and", "heart")


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    weights /= weights.sum()
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(0, 30)), p=weights))
            for _ in range(n)]


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make(path: Path, n: int = 0, **options) -> tiervec.Collection:
    col = tiervec.create(path, model=None, dim=8, tiers="float32", lexical=True, **options)
    if n:
        col.add([{"id": f"d{i}", "text": t} for i, t in enumerate(texts(n))], vectors=vectors(n))
    return col


def fresh_scores(docs: dict[str, str], query: str, config: LexicalConfig) -> dict[str, float]:
    """BM25 of ``query`` over an index built afresh from ``docs`` (id -> text)."""
    ids = list(docs)
    analyzer = Analyzer(config)
    index = LexicalIndex(config, [Postings.build(analyzer.terms_of(docs[i] for i in ids))])
    scores, rows = index.search([query], len(ids) or 1)
    return {ids[r]: float(s) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0}


def lexical_scores(col: tiervec.Collection, query: str) -> dict[str, float]:
    k = max(len(col), 1)
    found = col.search(query, k=k, mode="lexical")
    return {i: float(s) for i, s in zip(found.ids[0], found.scores[0], strict=True) if i}


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5)


def test_scores_equal_bm25s_on_scifact(shared_data: Path):
    bm25s = pytest.importorskip("bm25s")
    with gzip.open(shared_data / "beir" / "scifact" / "corpus.jsonl.gz", "rt") as fh:
        docs = [json.loads(line) for _, line in zip(range(800), fh, strict=False)]
    with gzip.open(shared_data / "beir" / "scifact" / "queries.jsonl.gz", "rt") as fh:
        queries = [json.loads(line)["text"] for _, line in zip(range(100), fh, strict=False)]
    config = LexicalConfig()
    analyzer = Analyzer(config)
    tokens = analyzer.terms_of(document_text(d["title"], d["text"]) for d in docs)
    ours = LexicalIndex(config, [Postings.build(tokens)])
    peer = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
    peer.index(tokens, show_progress=False)
    query_tokens = [analyzer.terms(q) for q in queries]
    keep = [i for i, q in enumerate(query_tokens) if set(q) & set(peer.vocab_dict)]
    their_rows, their_scores = peer.retrieve([query_tokens[i] for i in keep], k=20,
                                             show_progress=False, n_threads=1)
    scores, rows = ours.search([queries[i] for i in keep], 20)
    for mine, theirs, got, want in zip(rows, their_rows, scores, their_scores, strict=True):
        positive = want > 0
        np.testing.assert_allclose(got[positive], want[positive], rtol=1e-5)
        assert set(mine[positive]) <= set(theirs) or np.isclose(got[positive][-1],
                                                                 got[positive]).sum() > 1


def test_analyzer_stems_and_drops_stop_words():
    analyzer = Analyzer(LexicalConfig())
    assert analyzer.terms("The Cells are running in the studies") == ["cell", "run", "studi"]
    assert Analyzer(LexicalConfig(stemmer=None, stopwords=None)).terms("The cells") == \
        ["the", "cells"]
    assert Analyzer(LexicalConfig(stopwords=("cells",))).terms("the cells") == ["the"]


@pytest.mark.parametrize("bad", [{"stemmer": "klingon"}, {"stopwords": "klingon"},
                                 {"k1": -1}, {"b": 2}, {"token_pattern": "("}])
def test_bad_lexical_config(bad):
    with pytest.raises(tiervec.errors.CollectionError):
        LexicalConfig(**bad)


def test_merge_equals_a_fresh_build():
    analyzer = Analyzer(LexicalConfig())
    a, b = texts(40, seed=1), texts(30, seed=2)
    keep_a, keep_b = np.array([0, 3, 5, 39]), np.arange(0, 30, 2)
    merged = merge([(Postings.build(analyzer.terms_of(a)), keep_a),
                    (Postings.build(analyzer.terms_of(b)), keep_b)])
    fresh = Postings.build(analyzer.terms_of([a[i] for i in keep_a] + [b[i] for i in keep_b]))
    for name in ("terms", "ptr", "docs", "tf", "lengths"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(fresh, name))


write_ops = st.lists(st.tuples(st.sampled_from(["add", "upsert", "delete", "compact"]),
                               st.lists(st.integers(0, 25), min_size=1, max_size=6,
                                        unique=True), st.integers(0, 1000)),
                     min_size=1, max_size=8)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=write_ops)
def test_scores_equal_a_fresh_index_after_any_writes(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("lex") / "col"
    col = make(path)
    live: dict[str, str] = {}
    try:
        for op, keys, seed in ops:
            ids = [f"d{k}" for k in keys]
            body = dict(zip(ids, texts(len(ids), seed), strict=True))
            if op == "add":
                ids = [i for i in ids if i not in live]
                if ids:
                    col.add([{"id": i, "text": body[i]} for i in ids], vectors=vectors(len(ids)))
                    live.update({i: body[i] for i in ids})
            elif op == "upsert":
                col.upsert([{"id": i, "text": body[i]} for i in ids], vectors=vectors(len(ids)))
                live.update(body)
            elif op == "delete":
                col.delete(ids)
                for i in ids:
                    live.pop(i, None)
            else:
                col.compact()
            for query in QUERIES:
                assert_same(lexical_scores(col, query), fresh_scores(live, query, LexicalConfig()))
        col.close()
        again = tiervec.open(path, read_only=True)
        for query in QUERIES:
            assert_same(lexical_scores(again, query), fresh_scores(live, query, LexicalConfig()))
        again.close()
    finally:
        col.close()


def test_crash_before_the_commit_leaves_the_index_as_committed(tmp_path, monkeypatch):
    col = make(tmp_path / "col", n=50)
    before = {q: lexical_scores(col, q) for q in QUERIES}
    real = Manifest.write

    def crash(self, folder):
        raise OSError("disk gone")

    monkeypatch.setattr(Manifest, "write", crash)
    with pytest.raises(OSError):
        col.add([{"id": "new", "text": "cancer cancer cancer"}], vectors=vectors(1))
    with pytest.raises(OSError):
        col.delete(["d1", "d2"])
    monkeypatch.setattr(Manifest, "write", real)
    col.close()
    again = tiervec.open(tmp_path / "col")  # a writer: removes the uncommitted files
    assert {q: lexical_scores(again, q) for q in QUERIES} == before
    leftovers = [p.name for p in (tmp_path / "col" / "segments").rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    again.add([{"id": "new", "text": "cancer cancer cancer"}], vectors=vectors(1))
    assert lexical_scores(again, "cancer")["new"] == max(lexical_scores(again, "cancer").values())
    again.close()


def test_a_reader_sees_the_index_move_with_its_snapshot(tmp_path):
    col = make(tmp_path / "col", n=20)
    reader = tiervec.open(tmp_path / "col", read_only=True)
    assert "fresh" not in lexical_scores(reader, "zebra")
    col.add([{"id": "fresh", "text": "zebra zebra"}], vectors=vectors(1))
    assert list(lexical_scores(reader, "zebra")) == ["fresh"]
    col.delete(["fresh"])
    assert lexical_scores(reader, "zebra") == {}
    reader.close()
    col.close()


def test_filters_apply_to_lexical_and_hybrid_exactly(tmp_path):
    n = 300
    col = make(tmp_path / "col", fields={"year": "int"})
    body = texts(n, seed=5)
    col.add([{"id": f"d{i}", "text": t, "year": 2000 + i % 10} for i, t in enumerate(body)],
            vectors=vectors(n, seed=5))
    live = {f"d{i}": t for i, t in enumerate(body)}
    allowed = {f"d{i}" for i in range(n) if i % 10 == 3}
    for query in QUERIES[:4]:
        want = {k: v for k, v in fresh_scores(live, query, LexicalConfig()).items()
                if k in allowed}
        found = col.search(query, k=n, mode="lexical", filter="year == 2003")
        got = {i: float(s) for i, s in zip(found.ids[0], found.scores[0], strict=True) if i}
        assert set(got) == set(want)  # all matching documents: never short
        hybrid = col.run(Query(texts=(query,), vectors=vectors(1, seed=9), k=20, mode="hybrid",
                               filter="year == 2003"))
        ids = [i for i in hybrid.ids[0] if i]
        assert len(ids) == min(20, len(allowed)) and set(ids) <= allowed
    col.close()


def test_hybrid_fuses_both_sides_and_survives_an_empty_lexical_query(tmp_path):
    col = make(tmp_path / "col", n=100)
    q = vectors(1, seed=3)
    dense = col.search_vectors(q, k=10)
    for text in ("", "the of and", "cancer"):
        result = col.run(Query(texts=(text,), vectors=q, k=10, mode="hybrid"))
        if text != "cancer":  # nothing lexical: the dense order stands
            assert list(result.ids[0]) == list(dense.ids[0])
            assert not any(col.search(text, k=5, mode="lexical").ids[0])
        else:
            lexical = set(col.search(text, k=100, mode="lexical").ids[0]) - {""}
            assert set(result.ids[0]) & lexical and set(result.ids[0]) & set(dense.ids[0])
    col.close()


def test_lexical_search_without_an_index_says_how_to_build_one(tmp_path):
    col = tiervec.create(tmp_path / "col", model=None, dim=8, tiers="float32")
    col.add([{"id": "a", "text": "cancer cell"}], vectors=vectors(1))
    assert not col.has_lexical
    with pytest.raises(LexicalIndexMissing, match="tiervec lexical"):
        col.search("cancer", mode="lexical")
    with pytest.raises(LexicalIndexMissing):
        col.run(Query(texts=("cancer",), vectors=vectors(1), mode="hybrid"))
    col.create_lexical_index()
    assert col.search("cancer", k=1, mode="lexical").ids[0][0] == "a"
    col.add([{"id": "b", "text": "cancer cancer"}], vectors=vectors(1))
    assert lexical_scores(col, "cancer") == pytest.approx(
        fresh_scores({"a": "cancer cell", "b": "cancer cancer"}, "cancer", LexicalConfig()))
    col.create_lexical_index(LexicalConfig(stemmer=None))  # rebuilt with other settings
    assert col.lexical_config.stemmer is None
    col.close()
    again = tiervec.open(tmp_path / "col", read_only=True)
    assert again.lexical_config.stemmer is None and len(lexical_scores(again, "cancer")) == 2
    again.close()


@pytest.mark.parametrize("fusion", [{"weight": 1.5}, {"weight": -0.1}, {"method": "sum"},
                                    {"dense_depth": 0}, {"rrf_k": -1}, {"colour": 1}])
def test_bad_fusion_options(tmp_path, fusion):
    col = make(tmp_path / "col", n=5)
    with pytest.raises(InvalidSearchOptions):
        col.search("cancer", mode="hybrid", fusion=fusion)
    col.close()


def test_bad_modes_and_relevance(tmp_path):
    col = make(tmp_path / "col", n=5)
    with pytest.raises(InvalidSearchOptions, match="mode"):
        col.search("cancer", mode="sparse")
    with pytest.raises(InvalidSearchOptions, match="texts"):
        col.run(Query(vectors=vectors(1), mode="lexical"))
    with pytest.raises(InvalidSearchOptions, match="probability"):
        col.search_vectors(vectors(1), min_relevance=2)
    col.close()


def test_a_batch_of_queries_scores_as_each_query_alone(tmp_path):
    """Each query of a batch gets the list it gets alone, equal scores by position (also at
    the cut: the lowest positions stay, whatever order the scores were computed in)."""
    col = make(tmp_path / "c", 0)
    same = [{"id": f"s{i}", "text": "apple banana"} for i in range(30)]  # all tie
    col.add(same + [{"id": f"d{i}", "text": t} for i, t in enumerate(texts(120))],
            vectors=vectors(150))
    col.add([{"id": f"e{i}", "text": t} for i, t in enumerate(texts(40, seed=3))],
            vectors=vectors(40, seed=3))  # a second segment
    col.delete(["d3", "s4", "e5"])
    queries = ("apple", "banana apple apple", *texts(6, seed=9), "the of and")
    for k in (1, 5, 50):
        batch = col.run(Query(texts=queries, k=k, mode="lexical"))
        for i, text in enumerate(queries):
            alone = col.run(Query(texts=(text,), k=k, mode="lexical"))
            assert list(alone.ids[0]) == list(batch.ids[i])
            assert np.array_equal(alone.scores[0], batch.scores[i])
    tied = col.run(Query(texts=("apple",), k=5, mode="lexical")).ids[0]
    assert list(tied) == ["s0", "s1", "s2", "s3", "s5"]  # s4 deleted
    assert list(batch.ids[-1]) == [""] * 50  # stop words only: no results
