"""Upsert, delete, compact, metadata filters and HNSW tiers, checked against brute force."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import tiervec
from tiervec.errors import (
    DimensionMismatch,
    DuplicateIds,
    FieldTypeError,
    FilterSyntaxError,
    InvalidTierSpec,
    UnknownField,
)

DIM = 24
N = 1200


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    gen = np.random.default_rng(7)
    vectors = unit(gen.standard_normal((N, DIM)))
    queries = unit(vectors[:20] + 0.3 * gen.standard_normal((20, DIM)))
    docs = []
    for i in range(N):
        doc = {"_id": f"d{i:04d}", "text": f"document {i}", "year": 1990 + int(gen.zipf(1.6)) % 35,
               "cat": ["bio", "chem", "phys", "med"][i % 4], "score": float(i % 97) / 7,
               "open": bool(i % 3 == 0), "tags": [t for t in ("a", "b", "c") if gen.random() < .3],
               "when": dt.datetime(2020, 1, 1) + dt.timedelta(days=i)}
        if i % 50 == 0:
            del doc["year"]  # some documents lack a field
        docs.append(doc)
    return vectors, queries, docs


def make(tmp_path, data, tiers="float32@disk", n=N, **kw):
    vectors, _, docs = data
    col = tiervec.create(tmp_path / "col", model=None, dim=DIM, tiers=tiers, **kw)
    for lo in range(0, n, 400):  # several segments
        col.add(docs[lo : min(n, lo + 400)], vectors=vectors[lo : min(n, lo + 400)])
    return col


def brute(vectors, queries, allowed: np.ndarray, k: int) -> list[list[int]]:
    scores = queries @ vectors.T
    scores[:, ~allowed] = -np.inf
    order = np.argsort(-scores, axis=1)[:, :k]
    return [[int(r) for r in row if allowed[r]] for row in order]


def ids_of(rows: list[list[int]]) -> list[list[str]]:
    return [[f"d{r:04d}" for r in row] for row in rows]


FILTERS = [
    ('cat == "bio"', lambda d: d["cat"] == "bio"),
    ({"year": {"$gte": 2000}}, lambda d: d.get("year", -1) >= 2000),
    ('year < 1993 and open == true', lambda d: d.get("year", 9999) < 1993 and d["open"]),
    ({"tags": {"$in": ["a", "c"]}}, lambda d: bool({"a", "c"} & set(d["tags"]))),
    ('tags contains "b" or score > 13', lambda d: "b" in d["tags"] or d["score"] > 13),
    ({"when": {"$lt": "2020-01-20"}}, lambda d: d["when"] < dt.datetime(2020, 1, 20)),
    ('not (cat in ["bio", "chem"])', lambda d: d["cat"] not in ("bio", "chem")),
    ("year exists", lambda d: "year" in d),
    ('cat == "none"', lambda d: False),
]


@pytest.mark.parametrize("tiers", ["float32@disk", "binary*20 -> float32@disk",
                                   "int8*4 -> float32@disk", "int8@hnsw*4 -> float32@disk",
                                   "int8@ivf*4 -> float32@disk", "binary@ivf*20 -> float32@disk"])
@pytest.mark.parametrize("exact_max", [0, 100_000])
def test_filtered_search_matches_brute_force(tmp_path, data, tiers, exact_max):
    vectors, queries, docs = data
    with make(tmp_path, data, tiers) as col:
        col.filter_policy = tiervec.search.filtered.FilterPolicy(
            exact_max=exact_max, exact_max_share=1.0)  # exact_max alone decides
        for flt, pred in FILTERS:
            allowed = np.array([pred(d) for d in docs])
            assert col.count(flt) == allowed.sum()
            res = col.search_vectors(queries, k=10, filter=flt)
            want = ids_of(brute(vectors, queries, allowed, 10))
            got = [[i for i in row if i] for row in res.ids.tolist()]
            assert [len(g) for g in got] == [min(10, allowed.sum())] * len(queries)  # never short
            assert all(set(g) <= {d["_id"] for d, a in zip(docs, allowed, strict=True) if a}
                       for g in got)
            recall = np.mean([len(set(g) & set(w)) / len(w) if w else 1.0
                              for g, w in zip(got, want, strict=True)])
            assert recall >= (0.99 if exact_max or tiers == "float32@disk" else 0.9), (flt, recall)


@pytest.mark.parametrize(("tiers", "medium", "full"), [
    ("binary*4 -> float32@disk", "subset", "scan"),  # fast-scan kernel: no bitmap
    ("int8*4 -> float32@disk", "bitmap", "scan"),  # FAISS SQ scan checks the bitmap
    ("float32@disk", "bitmap", "scan"),  # disk blocks: scored rows are masked
    ("int8@hnsw*4 -> float32@disk", "graph", "graph"),
])
def test_strategy_follows_selectivity(tmp_path, data, tiers, medium, full):
    with make(tmp_path, data, tiers) as col:
        col.filter_policy = tiervec.search.filtered.FilterPolicy(exact_max=150)
        assert col.explain('cat == "bio" and open == true').strategy == "exact"
        assert col.explain('cat == "bio"').strategy == medium
        assert col.explain().strategy == full
        plan = col.explain('cat != "bio"')
        assert plan.matches == 900 and plan.share == pytest.approx(0.75)


def test_subset_scan_takes_over_from_exact_above_subset_min():
    from tiervec.search.filtered import FilterPolicy, strategy_for

    p = FilterPolicy()
    assert strategy_for(1_500, 1_000_000, p, False, has_subset=True) == "exact"
    assert strategy_for(10_000, 1_000_000, p, False, has_subset=True) == "subset"
    assert strategy_for(10_000, 1_000_000, p, False, has_bitmap=True) == "exact"
    assert strategy_for(30_000, 1_000_000, p, False, has_bitmap=True) == "bitmap"
    assert strategy_for(600_000, 1_000_000, p, False, has_subset=True) == "overfetch"
    assert strategy_for(500, 1_000, p, False, has_subset=True, has_exact=False) == "subset"
    assert strategy_for(100, 1_000, p, True, has_exact=False) == "graph"


def test_upsert_replaces_and_delete_reports_unknown_ids(tmp_path, data):
    vectors, _, docs = data
    with make(tmp_path, data, n=800) as col:
        new = {"_id": "d0001", "text": "replaced", "cat": "math"}
        stats = col.upsert([new, docs[900]], vectors=[vectors[500], vectors[900]])
        assert (stats.added, stats.replaced) == (1, 1)
        assert len(col) == 801
        assert col.get(["d0001"])[0].text == "replaced"
        top = col.search_vectors(vectors[500], k=2).ids[0].tolist()
        assert set(top) == {"d0500", "d0001"}
        assert "d0001" not in col.search_vectors(vectors[1], k=5).ids[0].tolist()
        assert col.count('cat == "math"') == 1
        with pytest.raises(DuplicateIds, match="upsert"):
            col.add([docs[2]], vectors=vectors[2:3])
        stats = col.delete(["d0002", "nope", "d0002"])
        assert stats.deleted == 1 and stats.missing == ["nope"]
        assert col.get(["d0002"]) == [None] and len(col) == 800
        assert "d0002" not in col.search_vectors(vectors[2], k=10).ids[0].tolist()
        with pytest.raises(DimensionMismatch):
            col.upsert([docs[3]], vectors=np.ones((1, DIM + 1)))
        assert len(col) == 800 and col.get(["d0003"])[0] is not None


def test_compact_reclaims_space_and_keeps_results(tmp_path, data):
    _, queries, docs = data
    with make(tmp_path, data) as col:
        gone = [d["_id"] for d in docs[::10]]
        col.delete(gone)
        before = col.search_vectors(queries, k=10)
        size = sum(f.stat().st_size for f in (col.path / "segments").rglob("*.npy"))
        col.compact()
        after = col.search_vectors(queries, k=10)
        assert after.ids.tolist() == before.ids.tolist()
        assert len(col) == N - len(gone)
        left = sum(f.stat().st_size for f in (col.path / "segments").rglob("*.npy"))
        assert size - left >= 0.9 * size * len(gone) / N
        assert col.count('cat == "bio"') == sum(
            d["cat"] == "bio" for i, d in enumerate(docs) if i % 10)
    with tiervec.open(tmp_path / "col", read_only=True) as again:
        assert again.search_vectors(queries, k=10).ids.tolist() == before.ids.tolist()


def test_metadata_errors_are_clear_and_write_nothing(tmp_path, data):
    vectors, _, docs = data
    with make(tmp_path, data, n=400, fields={"rank": "int"}, indexes=["rank"]) as col:
        with pytest.raises(FieldTypeError, match="'year'"):
            col.add([{"_id": "x", "text": "t", "year": "1999"}], vectors=vectors[:1])
        with pytest.raises(FieldTypeError, match="rank"):
            col.add([{"_id": "x", "text": "t", "rank": "first"}], vectors=vectors[:1])
        assert len(col) == 400 and col.missing(["x"]) == ["x"]
        with pytest.raises(UnknownField, match="yaer"):
            col.search_vectors(vectors[:1], filter="yaer > 3")
        with pytest.raises(FilterSyntaxError) as info:
            col.search_vectors(vectors[:1], filter="year >= ")
        assert info.value.position == 8
        with pytest.raises(FieldTypeError):
            col.search_vectors(vectors[:1], filter={"year": {"$gt": "1999"}})
        col.add([{"_id": "y", "text": "t", "year": 1999.5}], vectors=vectors[:1])
        assert col.fields["year"].type == "float"  # widened, old ints still compare
        assert col.count({"year": {"$gt": 1999}}) == sum(
            d.get("year", 0) > 1999 for d in docs[:400]) + 1


@pytest.mark.parametrize(("tiers", "floor"), [("int8@hnsw*4 -> float32@disk", 0.9),
                                             ("binary@hnsw*20 -> float32@disk", 0.6),
                                             ("float16@ivf*4 -> float32@disk", 0.4),
                                             ("binary@ivf*20 -> float32@disk", 0.6)])
def test_hnsw_graph_is_saved_and_caught_up(tmp_path, data, tiers, floor):
    """(Random 24-d data is hard: 1 bit per dimension makes poor candidates, and IVF's
    clusters are arbitrary; hence the low floors.)"""
    vectors, queries, docs = data
    exact = ids_of(brute(vectors, queries, np.ones(N, bool), 10))
    with make(tmp_path, data, tiers, n=800) as col:
        col.search_vectors(queries, k=10)
    assert len(list((tmp_path / "col" / "indexes").glob(f"{tiers[tiers.index('@') + 1:][:3]}*"
                                                        ".faiss"))) == 1
    with tiervec.open(tmp_path / "col") as col:
        col.add(docs[800:], vectors=vectors[800:])  # rows the saved graph lacks
        got = col.search_vectors(queries, k=10).ids.tolist()
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, exact, strict=True)])
    assert recall >= floor
    with tiervec.open(tmp_path / "col", read_only=True) as col:
        assert col.search_vectors(queries, k=10).ids.tolist() == got


def test_binary_ivf_scores_the_codecs_own_bits(data):
    """The fast-scan IVF holds the binary codec's sign bits: its scores are the codec's own
    (up to FAISS's 8-bit look-up tables), and its lists are fitted on the full vectors."""
    from tiervec.codecs.registry import make_codec
    from tiervec.index import IVFScanner
    from tiervec.index.ivf import nlist_for
    from tiervec.store.codes import CodeSource

    vectors, queries, _ = data
    codec = make_codec("binary", DIM)
    codes = codec.encode(vectors)
    scanner = IVFScanner(codec)
    scanner.fit(CodeSource([vectors]))
    assert scanner.index.nlist == nlist_for(N) and scanner.ntotal == 0
    for lo in range(0, N, 500):
        scanner.add(codes[lo : lo + 500])
    scores, rows = scanner.search_filtered(queries, 20, np.arange(N) % 3 == 0)
    assert (rows >= 0).all() and (rows % 3 == 0).all()
    want = np.take_along_axis(codec.score(queries, codes), rows, 1)
    np.testing.assert_allclose(scores, want, atol=0.03)


def test_hnsw_only_as_first_tier_and_for_flat_codecs(tmp_path):
    with pytest.raises(InvalidTierSpec, match="first tier"):
        tiervec.create(tmp_path / "a", model=None, dim=DIM, tiers="binary*4 -> int8@ivf")
    with pytest.raises(InvalidTierSpec, match="first tier"):
        tiervec.create(tmp_path / "a", model=None, dim=DIM, tiers="binary*4 -> int8@hnsw")
    for name, dim, tiers, fix in (("b", DIM, "pq4@hnsw*4 -> float32@disk", "ANN index"),
                                  ("c", DIM, "hamming@ivf*4 -> float32@disk", "'binary@ivf'"),
                                  ("d", 26, "binary@ivf*4 -> float32@disk", "4 dimensions")):
        with tiervec.create(tmp_path / name, model=None, dim=dim, tiers=tiers) as col:
            col.add([{"_id": str(i), "text": "t"} for i in range(300)],
                    vectors=unit(np.random.default_rng(0).standard_normal((300, dim))))
            with pytest.raises(InvalidTierSpec, match=fix):
                col.search_vectors(np.ones(dim), k=3)


def test_documents_with_only_list_fields_are_filtered(tmp_path, data):
    vectors, _, _ = data
    docs = [{"_id": "a", "text": "t", "tags": ["x"]}, {"_id": "b", "text": "t", "tags": ["y"]},
            {"_id": "c", "text": "t", "year": 3}, {"_id": "d", "text": "t"}]
    with tiervec.create(tmp_path / "col", model=None, dim=DIM) as col:
        col.add(docs, vectors=vectors[:4])
        found = col.search_vectors(vectors[0], 4, filter='tags == "x"').ids[0]
        assert [i for i in found if i] == ["a"]
        assert col.count({"tags": {"$nin": ["x"]}}) == 3
        assert col.count("not (year == 3)") == 3


def test_folder_whose_documents_lack_meta_rows(tmp_path, data):
    """Collections written before every document had a metadata row: filters stay right
    read-only, and a writer adds the missing rows once."""
    import sqlite3

    vectors, _, _ = data
    docs = [{"_id": "a", "text": "t", "tags": ["x"]}, {"_id": "b", "text": "t", "year": 3},
            {"_id": "c", "text": "t"}]
    with tiervec.create(tmp_path / "col", model=None, dim=DIM) as col:
        col.add(docs, vectors=vectors[:3])
    with sqlite3.connect(tmp_path / "col" / "docs.sqlite") as db:  # the older layout
        db.execute("DELETE FROM meta WHERE row IN (SELECT row FROM docs WHERE id != 'b')")
        db.execute("DROP TABLE info")
    for read_only in (True, False):
        with tiervec.open(tmp_path / "col", read_only=read_only) as col:
            assert col.count('tags == "x"') == 1 and col.count("not (year == 3)") == 2
    with sqlite3.connect(tmp_path / "col" / "docs.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM meta").fetchone() == (3,)


def test_subset_strategy_after_adds_to_a_searched_collection(tmp_path, data):
    """A binary first tier built on an empty collection still scans subsets of later adds."""
    vectors, queries, docs = data
    with tiervec.create(tmp_path / "col", model=None, dim=DIM,
                        tiers="binary*20 -> float32@disk") as col:
        col.add(docs[:10], vectors=vectors[:10])
        col.search_vectors(queries, 5)
        col.add(docs[10:], vectors=vectors[10:])
        col.filter_policy = tiervec.search.filtered.FilterPolicy(exact_max=0)
        assert col.explain('cat == "bio"').strategy == "subset"
        allowed = np.array([d["cat"] == "bio" for d in docs])
        res = col.search_vectors(queries, 10, filter='cat == "bio"')
        want = ids_of(brute(vectors, queries, allowed, 10))
        recall = np.mean([len(set(g) & set(w)) / 10
                          for g, w in zip(res.ids.tolist(), want, strict=True)])
        assert recall >= 0.9


def test_indexed_fields_filter_in_memory_through_writes(tmp_path, data, monkeypatch):
    """Filters on indexed scalar fields run over in-memory columns (SQLite is not asked), and
    stay right across adds, upserts, deletes, compaction and a reader's snapshot moves."""
    from tiervec.store.docstore import DocStore

    vectors, _, docs = data
    scalar = [(f, p) for f, p in FILTERS if "tags" not in str(f)]
    with make(tmp_path, data, n=800, fields={"year": "int", "cat": "str"},
              indexes=["year", "cat"]) as col, \
            tiervec.open(tmp_path / "col", read_only=True) as reader:
        for name in ("score", "open", "when"):
            col.create_index(name)
        sql_calls = []
        real = DocStore.filter_rows
        monkeypatch.setattr(DocStore, "filter_rows",
                            lambda self, *a: sql_calls.append(a) or real(self, *a))
        live = {d["_id"]: d for d in docs[:800]}

        def check() -> None:
            for flt, pred in scalar:
                want = sum(pred(d) for d in live.values())
                assert col.count(flt) == want, flt
                reader.refresh()
                assert reader.count(flt) == want, flt
            assert not sql_calls
            assert col.count('tags contains "a"') == sum("a" in d["tags"] for d in live.values())
            assert sql_calls
            sql_calls.clear()

        check()
        col.add(docs[800:], vectors=vectors[800:])
        live.update({d["_id"]: d for d in docs[800:]})
        check()
        changed = {**docs[5], "cat": "math", "year": 1950}
        col.upsert([changed], vectors=vectors[5:6])
        live[changed["_id"]] = changed
        gone = [d["_id"] for d in docs[::7]]
        col.delete(gone)
        for i in gone:
            live.pop(i)
        check()
        assert col.count('cat == "math" and year < 1960') == 1
        col.compact()
        check()
