"""tiervec.search.stages and .query: the stage protocols, fusion, collapse, per-request options."""

from __future__ import annotations

import numpy as np
import pytest

from tiervec.codecs import make_codec
from tiervec.codecs.base import FilteringIndex, MaskedScanner, Scanner, SubsetScanner
from tiervec.errors import CollectionError, InvalidTierSpec
from tiervec.index import HNSWScanner
from tiervec.search import (
    Candidates,
    Chain,
    CodeSource,
    FilterPolicy,
    FilterStrategy,
    Pipeline,
    Query,
    SearchOptions,
    TierRuntime,
)
from tiervec.search.retrieve import TierRetriever
from tiervec.search.stages import ChunkCollapse, ReciprocalRankFusion
from tiervec.search.tiers import SCANNERS


def cands(rows: list[list[int]], scores: list[list[float]] | None = None) -> Candidates:
    r = np.array(rows, dtype=np.int64)
    s = np.array(scores, np.float32) if scores is not None else \
        -np.arange(r.shape[1], dtype=np.float32)[None].repeat(len(r), 0)
    return Candidates(s, r)


def test_rrf_by_hand():
    a = cands([[7, 3, 5]])
    b = cands([[3, 9, -1]])
    fused = ReciprocalRankFusion(c=60).fuse([a, b], 3)
    # 3: 1/(60+2) + 1/(60+1); 7: 1/61; 9: 1/62; 5: 1/63
    assert fused.rows.tolist() == [[3, 7, 9]]
    np.testing.assert_allclose(fused.scores[0], [1 / 62 + 1 / 61, 1 / 61, 1 / 62], rtol=1e-6)


def test_rrf_pads_short_lists():
    fused = ReciprocalRankFusion().fuse([cands([[4, -1]]), cands([[-1, -1]])], 3)
    assert fused.rows.tolist() == [[4, -1, -1]]
    assert np.isneginf(fused.scores[0, 1:]).all()


def test_max_collapse_keeps_each_owners_best_part():
    owner = np.array([0, 0, 2, 2, 4, 4])  # parts 0-1 are document 0, 2-3 document 2 ...
    hits = cands([[3, 0, 2, 1, 5], [-1, -1, -1, -1, -1]], [[0.9, 0.8, 0.7, 0.6, 0.5], [0] * 5])
    out = ChunkCollapse(owner).collapse(hits, 2)
    assert out.rows.tolist() == [[2, 0], [-1, -1]]
    assert out.parts is not None and out.parts.tolist() == [[3, 0], [-1, -1]]
    np.testing.assert_allclose(out.scores[0], [0.9, 0.8])


@pytest.mark.parametrize("aggregate", ["max", "top3", "sum"])
def test_chunk_collapse_equals_a_loop_over_owners(aggregate):
    rng = np.random.default_rng(3)
    owner = np.repeat(np.arange(0, 40, 4), 4)  # 10 documents of 4 chunks
    rows = np.stack([rng.permutation(40)[:25] for _ in range(3)])
    rows[2, 20:] = -1
    scores = -np.sort(-rng.random(rows.shape), axis=1).astype(np.float32)
    out = ChunkCollapse(owner, aggregate).collapse(cands(rows.tolist(), scores.tolist()), 4)
    for q in range(3):
        by_owner: dict[int, list[float]] = {}
        for r, s in zip(rows[q], scores[q], strict=True):
            if r >= 0:
                by_owner.setdefault(int(owner[r]), []).append(float(s))
        agg = {"max": max, "sum": sum, "top3": lambda v: sum(sorted(v)[-3:]) / min(len(v), 3)}
        want = sorted(((agg[aggregate](v), o) for o, v in by_owner.items()),
                      key=lambda t: (-t[0], t[1]))[:4]
        assert out.rows[q].tolist() == [o for _, o in want]
        np.testing.assert_allclose(out.scores[q], [s for s, _ in want], rtol=1e-5)


def test_query_checks_its_fields():
    with pytest.raises(CollectionError, match="k must be a positive integer"):
        Query(vectors=np.ones((1, 4)), k=0)
    with pytest.raises(CollectionError, match="texts or vectors"):
        Query()
    q = Query.of("one text", k=3)
    assert q.texts == ("one text",) and len(q) == 1 and q.mode == "dense"
    with pytest.raises(CollectionError, match="encode the texts"):
        _ = q.dense
    with pytest.raises(InvalidTierSpec, match="whole number >= 1"):
        SearchOptions(oversample=0)


def test_options_override_the_chains_oversampling():
    assert SearchOptions().factors([4, 2]) == [4, 2]
    assert SearchOptions(oversample=10).factors([4, 2]) == [10, 10]
    assert SearchOptions(oversample=(8, 3)).factors([4, 2]) == [8, 3]
    with pytest.raises(InvalidTierSpec, match="one per such tier"):
        SearchOptions(oversample=(8,)).factors([4, 2])


def chain_pipeline(spec: str, x: np.ndarray) -> Pipeline:
    chain = Chain.parse(spec)
    tiers = []
    for tier in chain.tiers:
        codec = make_codec(tier.codec, x.shape[1])
        if codec.trainable:
            codec.fit(x)
        tiers.append(TierRuntime(tier=tier, codec=codec, source=CodeSource([codec.encode(x)])))
    return Pipeline.from_chain(chain, tiers, count=len(x), full=CodeSource([x]))


def test_per_request_oversampling_reaches_the_retriever(unit_vectors):
    x, q = unit_vectors(500, 32, seed=1), unit_vectors(20, 32, seed=2)
    pipeline = chain_pipeline("binary*1 -> float32", x)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    narrow, _ = pipeline.run(Query(vectors=q, k=10))
    wide, _ = pipeline.run(Query(vectors=q, k=10, options=SearchOptions(oversample=50)))
    assert pipeline.depths(10, SearchOptions(oversample=50)) == [500, 10]
    assert (wide.rows == exact).all()  # every row rescored exactly
    assert (narrow.rows == exact).mean() < 1.0


def test_fusion_of_two_retrievers_plugs_in_without_editing_them(unit_vectors):
    x, q = unit_vectors(300, 16, seed=3), unit_vectors(5, 16, seed=4)
    a, b = chain_pipeline("float32", x), chain_pipeline("int8", x)
    fused = Pipeline(retrievers=[a.first, b.first], fusion=ReciprocalRankFusion())
    found, strategy = fused.run(Query(vectors=q, k=5))
    assert strategy is FilterStrategy.SCAN and found.rows.shape == (5, 5)
    exact = np.argsort(-(q @ x.T), axis=1)[:, 0]
    assert (found.rows[:, 0] == exact).all()  # both lists agree on the best row
    with pytest.raises(ValueError, match="fusion"):
        Pipeline(retrievers=[a.first, b.first])


def test_filter_strategies_are_an_enum_that_compares_to_strings():
    assert FilterStrategy("subset") is FilterStrategy.SUBSET and FilterStrategy.EXACT == "exact"


@pytest.mark.parametrize(("codec", "abilities"), [
    ("binary", {SubsetScanner}), ("int8", {MaskedScanner}), ("float32", {MaskedScanner}),
    ("float8", {MaskedScanner}),
])
def test_scanners_declare_what_they_can_do(codec, abilities):
    scanner = make_codec(codec, 32).fit(np.random.default_rng(0).standard_normal(
        (64, 32)).astype(np.float32)).scanner()
    assert isinstance(scanner, Scanner)
    for ability in (MaskedScanner, SubsetScanner, FilteringIndex):
        assert isinstance(scanner, ability) == (ability in abilities), ability


def test_one_table_maps_locations_to_scanners():
    codec = make_codec("int8", 16).fit(np.eye(16, dtype=np.float32))
    assert isinstance(SCANNERS["hnsw"].build(codec), HNSWScanner)
    assert isinstance(SCANNERS["hnsw"].build(codec), FilteringIndex)
    assert SCANNERS["ram"].load is None and SCANNERS["ivf"].load is not None


def test_retriever_strategy_follows_the_allowed_rows(unit_vectors):
    x = unit_vectors(300, 16, seed=5)
    first = chain_pipeline("binary*4 -> float32@disk", x).first
    assert isinstance(first, TierRetriever)
    assert first.strategy(300, FilterPolicy()) == "scan"
    assert first.strategy(10, FilterPolicy()) is FilterStrategy.EXACT
