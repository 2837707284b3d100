"""The id-level Searchable protocol: a collection, its views through other chains, and what
evaluation and the planner take from them (never rows)."""

from __future__ import annotations

import pytest

import tiervec
from tiervec import Document
from tiervec.eval import QuerySet, measure
from tiervec.hits import to_hits
from tiervec.plan import PlanConfig, make_plan, pseudo_queries
from tiervec.search import Query, Searchable, SearchOptions

DIM = 32
N = 400


@pytest.fixture
def col(tmp_path, unit_vectors):
    """A vectors-only collection with a year field; documents d0..d399, d7 deleted and d8..d11
    replaced by vectors far from their old ones."""
    x = unit_vectors(N, DIM, seed=1)
    c = tiervec.create(tmp_path / "c", model=None, dim=DIM, indexes=["year"],
                       fields={"year": "int"})
    c.add([Document(id=f"d{i}", text=f"doc {i}", title=f"title {i}",
                    metadata={"year": 2000 + i % 20}) for i in range(N)], vectors=x)
    c.delete(["d7"])
    c.upsert([Document(id=f"d{i}", text="new", metadata={"year": 1990}) for i in range(8, 12)],
             vectors=-x[8:12])
    yield c, x
    c.close()


def test_a_collection_and_its_views_are_searchable(col):
    c, _ = col
    assert isinstance(c, Searchable)
    view = c.with_tiers("int8*4 -> float32@disk")
    assert isinstance(view, Searchable)
    assert str(view.chain) == "int8*4 -> float32@disk" and len(view) == len(c) == N - 1
    assert c.with_tiers(c.chain) is c


@pytest.mark.parametrize("tiers", ["float32", "int8", "binary*4 -> float32@disk",
                                   "int8@hnsw*4 -> float32@disk"])
def test_views_never_return_deleted_or_replaced_versions(col, tiers):
    c, x = col
    view = c.with_tiers(tiers)
    old = view.search_vectors(x[7:12], 5).ids  # the vectors of d7 and the old d8..d11
    assert "d7" not in old
    for i in range(8, 12):
        assert f"d{i}" not in old[i - 7]  # the new versions point the other way
    new = view.search_vectors(-x[8:12], 1).ids[:, 0]
    assert new.tolist() == [f"d{i}" for i in range(8, 12)]


def test_views_apply_filters_like_the_collection(col):
    c, x = col
    view = c.with_tiers("int8*4 -> float32@disk")
    for searchable in (c, view):
        ids = searchable.search_vectors(x[:3], 10, filter="year == 1990").ids
        assert sorted(set(ids.ravel()) - {""}) == ["d10", "d11", "d8", "d9"]
    assert view.count("year == 1990") == 4 and view.explain("year < 1995").matches == 4


def test_views_of_one_shape_share_their_stages(col):
    c, _ = col
    a = c.with_tiers("int8*4 -> float32@disk")
    b = a.with_tiers("int8*10 -> float32@disk")
    assert b.pipeline.tiers is a.pipeline.tiers and str(b.chain) == "int8*10 -> float32@disk"
    stored = c.with_tiers("binary*10 -> float32@disk")  # the stored codes, other oversampling
    assert stored.pipeline.tiers is c.pipeline().tiers


def test_per_request_oversampling(col):
    c, x = col
    plain = c.run(Query(vectors=x[:20], k=10))
    wide = c.run(Query(vectors=x[:20], k=10, options=SearchOptions(oversample=50)))
    exact = c.with_tiers("float32").search_vectors(x[:20], 10)
    assert (wide.ids == exact.ids).all()
    assert plain.ids.shape == wide.ids.shape == (20, 10)


def test_stats_count_rows_deletions_and_tier_bytes(col):
    c, _ = col
    stats = c.stats()
    assert (stats.documents, stats.rows, stats.deleted, stats.segments) == (N - 1, N + 4, 5, 2)
    assert stats.deleted_share == pytest.approx(5 / (N + 4))
    ram, disk = stats.tiers
    assert (ram.spec, ram.location, ram.bytes_per_vector, ram.ram_bytes) == (
        "binary*4", "ram", DIM // 8, DIM // 8 * (N + 4))
    assert (disk.location, disk.disk_bytes, disk.ram_bytes) == ("disk", 4 * DIM * (N + 4), 0)
    assert stats.full_precision and stats.to_dict()["chain"] == "binary*4 -> float32@disk"


def test_sample_ids_are_live_and_seeded(col):
    c, _ = col
    ids = c.sample_ids(N, seed=3)
    assert len(ids) == N - 1 and "d7" not in ids
    assert c.sample_ids(20, seed=1) == c.sample_ids(20, seed=1)


def test_measure_and_plan_take_any_searchable(col, unit_vectors):
    c, x = col
    queries = QuerySet("q", [f"q{i}" for i in range(30)], x[100:130])
    found = measure(c.with_tiers("int8"), queries, k=10)
    assert found.ids.shape == (30, 10) and found.ram_bytes_per_vector == DIM
    exact = c.with_tiers("float32").search_vectors(queries.vectors, 10).ids
    assert found.recall_vs_exact(exact, 10).mean() > 0.8
    plan = make_plan(c, queries, None, PlanConfig(chains=("float32", "int8", "binary"),
                                                  min_quality=0.5))
    assert plan.recommended is not None and plan.recommended.tiers in {"int8", "binary"}


def test_pseudo_queries_sample_live_documents(col):
    c, _ = col
    with pytest.raises(tiervec.errors.EncoderRequired):
        pseudo_queries(c, 10)  # titles need the model to become queries


def test_hits_carry_documents(col):
    c, x = col
    [hits] = to_hits(c, c.search_vectors(x[20:21], 3))
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].id == "d20"
    assert hits[0].title == "title 20" and hits[0].metadata == {"year": 2000}
    assert hits[0].to_dict()["score"] == pytest.approx(float(x[20] @ x[20]), abs=1e-5)
