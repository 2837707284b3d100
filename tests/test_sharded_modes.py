"""Every search mode on a sharded collection: lexical and hybrid results (ids and scores) over
1, 2 and 4 shards equal one collection's after adds, upserts and deletes, with BM25
statistics gathered from every shard; a calibrated cut-off behaves as on one collection."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

import tiervec
from tiervec import Document
from tiervec.errors import CalibrationMissing, LexicalIndexMissing, ShardedUnsupported
from tiervec.search import FusionConfig, Query, SearchOptions
from tiervec.search.cutoff import RelevanceModel

pytestmark = pytest.mark.ray

DIM, N, TOL = 32, 900, 1e-5


@pytest.fixture(scope="module")
def ray_cluster():
    from tiervec.distribute.cluster import connect

    yield connect(num_cpus=2)


@pytest.fixture(scope="module")
def corpus(shared_data: Path):
    with gzip.open(shared_data / "beir" / "scifact" / "corpus.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for _, line in zip(range(N), fh, strict=False)]
    with gzip.open(shared_data / "beir" / "scifact" / "queries.jsonl.gz", "rt") as fh:
        queries = [json.loads(line)["text"] for _, line in zip(range(40), fh, strict=False)]
    docs = [Document(id=r["_id"], title=r.get("title", ""), text=r["text"],
                     metadata={"year": 2000 + i % 20}) for i, r in enumerate(rows)]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((len(queries), DIM)).astype(np.float32)
    return docs, x, queries, q


def _write_history(col, docs, x) -> None:
    """Adds, upserts (new texts for old ids) and deletes, in several commits."""
    col.add(docs[:600], vectors=x[:600])
    moved = [Document(id=docs[i].id, text=docs[700 + i].text, metadata={"year": 1990})
             for i in range(40)]
    col.upsert(moved, vectors=x[700:740])
    col.delete([d.id for d in docs[100:160]])
    col.add(docs[600:700], vectors=x[600:700])


@pytest.fixture(scope="module")
def single(tmp_path_factory, corpus):
    docs, x, _, _ = corpus
    col = tiervec.create(tmp_path_factory.mktemp("one") / "c", model=None, dim=DIM,
                         tiers="float32", lexical=True)
    _write_history(col, docs, x)
    yield col
    col.close()


def assert_same_ranking(got, want) -> None:
    """Scores equal at every rank (to float tolerance), ids equal up to the order of tied
    scores (one collection breaks ties by storage order, shards cannot know it)."""
    np.testing.assert_allclose(got.scores, want.scores, rtol=TOL, atol=TOL)
    for g_ids, w_ids, w_scores in zip(got.ids, want.ids, want.scores, strict=True):
        for c, (g, w) in enumerate(zip(g_ids, w_ids, strict=True)):
            if g == w:
                continue
            tied = np.isclose(w_scores, w_scores[c], rtol=TOL, atol=TOL)
            if tied[-1]:  # tied with the last: its equals past k may take the place
                continue
            assert g in set(w_ids[tied]) and tied.sum() > 1, \
                f"rank {c}: {g!r} where one collection has {w!r}"


def _find(col, texts, q, mode: str, k: int = 10, **fields):
    """A search of query texts with their vectors (the collections keep no model)."""
    return col.run(Query(texts=tuple(texts), vectors=q, mode=mode, k=k, **fields))


FUSIONS = [None, FusionConfig(method="minmax", weight=0.3),
           FusionConfig(method="dbsf", weight=0.7, dense_depth=30, lexical_depth=50)]


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_lexical_and_hybrid_equal_one_collection(tmp_path, corpus, single, ray_cluster,
                                                  shards):
    docs, x, queries, q = corpus
    with tiervec.create_sharded(tmp_path / "s", shards=shards, model=None, dim=DIM,
                                tiers="float32", lexical=True) as col:
        _write_history(col, docs, x)
        with pytest.raises(ShardedUnsupported, match="cannot change model in place"):
            col.upgrade("minilm")
        assert col.has_lexical and len(col) == len(single)
        for k in (1, 10, 25):
            assert_same_ranking(col.search(queries, k=k, mode="lexical"),
                                single.search(queries, k=k, mode="lexical"))
        for fusion in FUSIONS:
            options = SearchOptions(fusion=None if fusion is None else fusion.to_dict())
            assert_same_ranking(_find(col, queries, q, "hybrid", options=options),
                                _find(single, queries, q, "hybrid", options=options))
        where = {"year": {"$gte": 2010}}
        for mode in ("lexical", "hybrid"):
            assert_same_ranking(_find(col, queries, q, mode, filter=where),
                                _find(single, queries, q, mode, filter=where))


def test_the_default_fusion_scales_by_the_read_share_of_the_whole_sharded_collection(
        tmp_path, corpus, ray_cluster):
    """With a model that reads 256 word pieces, SciFact's longer abstracts are read in part:
    the default hybrid's dense weight follows the share read over every shard (summed with
    BM25's statistics), so its results equal one collection's. Vectors are given, so nothing
    is encoded (the window comes from the model's folder)."""
    docs, _, queries, _ = corpus
    rng = np.random.default_rng(5)
    x = rng.standard_normal((len(docs), 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((len(queries), 384)).astype(np.float32)
    one = tiervec.create(tmp_path / "one", tiers="float32", lexical=True)
    one.add(docs[:400], vectors=x[:400])
    one.delete([d.id for d in docs[:30]])
    share = one._reader.read_share(one._reader.snap)
    assert 0.5 < share < 1.0  # some abstracts are longer than the model reads
    with tiervec.create_sharded(tmp_path / "s", shards=2, tiers="float32",
                                lexical=True) as col:
        col.add(docs[:400], vectors=x[:400])
        col.delete([d.id for d in docs[:30]])
        assert_same_ranking(_find(col, queries, q, "hybrid"), _find(one, queries, q, "hybrid"))
        unscaled = SearchOptions(fusion=FusionConfig(coverage=False))
        assert_same_ranking(_find(col, queries, q, "hybrid", options=unscaled),
                            _find(one, queries, q, "hybrid", options=unscaled))
    scaled = _find(one, queries, q, "hybrid")
    assert not np.array_equal(scaled.scores, _find(one, queries, q, "hybrid",
                                                    options=unscaled).scores)
    one.close()


def _fitted(single, mode: str, queries, q, fusion=None) -> RelevanceModel:
    """A relevance model fitted on one collection's own lists (the top 3 taken as relevant)."""
    found = _find(single, queries, q, mode, k=100)
    relevant = np.zeros(found.scores.shape, bool)
    relevant[:, :3] = True
    return RelevanceModel.fit(np.asarray(found.scores), relevant, mode,
                              fusion=None if fusion is None else fusion.to_dict())


def test_a_calibrated_cut_off_behaves_as_on_one_collection(tmp_path, corpus, single,
                                                           ray_cluster):
    docs, x, queries, q = corpus
    with tiervec.create_sharded(tmp_path / "s", shards=2, model=None, dim=DIM,
                                tiers="float32", lexical=True) as col:
        _write_history(col, docs, x)
        with pytest.raises(CalibrationMissing, match="tiervec tune"):
            col.search(queries, k=5, mode="lexical", min_relevance=0.5)
        models = {m: _fitted(single, m, queries, q, FusionConfig() if m == "hybrid" else None)
                  for m in ("dense", "lexical", "hybrid")}
        col.set_search_defaults(fusion=FusionConfig(), calibrations=models)
        copy = tiervec.create(tmp_path / "one", model=None, dim=DIM, tiers="float32",
                              lexical=True)
        _write_history(copy, docs, x)
        copy.set_search_defaults(fusion=FusionConfig(), calibrations=models)
        assert col.calibration("lexical") == models["lexical"] and col.fusion_tuned
        kept = 0
        for mode in ("dense", "lexical", "hybrid"):
            for level in (0.2, 0.5, 0.9):
                got = _find(col, queries, q, mode, min_relevance=level)
                want = _find(copy, queries, q, mode, min_relevance=level)
                assert_same_ranking(got, want)
                np.testing.assert_array_equal(got.ids == "", want.ids == "")
                kept += int((want.ids != "").sum())
        assert 0 < kept < 9 * len(queries) * 10  # the cut-off cut, and kept some
        copy.close()


def test_lexical_needs_an_index_on_the_shards(tmp_path, corpus, ray_cluster):
    docs, x, queries, _ = corpus
    with tiervec.create_sharded(tmp_path / "s", shards=2, model=None, dim=DIM) as col:
        col.add(docs[:50], vectors=x[:50])
        with pytest.raises(LexicalIndexMissing, match="tiervec lexical"):
            col.search(queries[:1], k=3, mode="lexical")
        col.create_lexical_index()
        assert col.has_lexical
        found = col.search(queries[:3], k=3, mode="lexical")
        assert found.shards is not None and len(found.shards.answered) == 2


def test_served_sharded_collections_offer_lexical_and_hybrid(tmp_path, corpus, single,
                                                               ray_cluster):
    from fastapi.testclient import TestClient

    from tiervec.serve import ServerConfig, create_app

    docs, x, queries, q = corpus
    root = tmp_path / "data"
    with tiervec.create_sharded(root / "big", shards=2, model=None, dim=DIM, tiers="float32",
                                lexical=True) as col:
        _write_history(col, docs, x)
    with TestClient(create_app(root, ServerConfig(ray_address=""))) as api:
        info = api.get("/v1/collections/big").json()
        assert info["lexical"]
        for mode in ("lexical", "hybrid"):
            body = {"queries": queries[:5], "k": 10, "mode": mode, "include_documents": False}
            if mode == "hybrid":
                body["vectors"] = q[:5].tolist()
            answer = api.post("/v1/collections/big/search", json=body)
            assert answer.status_code == 200, answer.text
            got = answer.json()["results"]
            want = _find(single, queries[:5], q[:5], mode)
            for hits, w_ids, w_scores in zip(got, want.ids, want.scores, strict=True):
                np.testing.assert_allclose([h["score"] for h in hits],
                                           w_scores[w_ids != ""], rtol=TOL)


def _long_doc(i: int) -> Document:
    topics = ["cats purr and sleep in the sun", "rockets burn fuel to reach orbit",
              "bread rises when yeast ferments sugar", "rivers carve valleys over ages"]
    text = " ".join(f"Sentence {s} of document {i} says that {topics[(i + s // 10) % 4]}."
                    for s in range(30))
    return Document(id=f"d{i}", title=f"Document {i}", text=text)


@pytest.mark.parametrize("kind", ["chunked", "multivector"])
def test_chunked_and_multi_vector_collections_shard(tmp_path, ray_cluster, kind):
    """The real model; dense (with its chunk evidence) and hybrid searches on 2 shards equal
    one collection's."""
    from tiervec.encode.chunking import ChunkingConfig
    from tiervec.encode.muvera import MultiVectorConfig, MuveraConfig

    options = {"chunking": ChunkingConfig(tokens=48, overlap=8)} if kind == "chunked" else \
        {"multivector": MultiVectorConfig(muvera=MuveraConfig(k_sim=3, reps=8, dim_proj=8),
                                          candidates=12)}
    docs = [_long_doc(i) for i in range(12)]
    queries = ["why does bread rise", "what carves a river valley", "cats in the sun"]
    one = tiervec.create(tmp_path / "one", tiers="float32", lexical=True, **options)
    one.add(docs)
    with tiervec.create_sharded(tmp_path / "s", shards=2, tiers="float32", lexical=True,
                                **options) as col:
        col.add(docs)
        for mode in ("dense", "hybrid"):
            got, want = col.search(queries, k=5, mode=mode), one.search(queries, k=5, mode=mode)
            assert_same_ranking(got, want)
            if kind == "chunked":
                assert got.spans is not None and want.spans is not None
                for q in range(len(queries)):
                    spans = {i: tuple(s) for i, s in zip(want.ids[q], want.spans[q],
                                                         strict=True)}
                    for i, s in zip(got.ids[q], got.spans[q], strict=True):
                        assert tuple(s) == spans.get(i, tuple(s)), (mode, i)
    one.close()
