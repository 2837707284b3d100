"""The search pipeline: code sources, tier runtimes and the chain runner, over random vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tiervec.codecs import make_codec
from tiervec.codecs.base import BlockScanner
from tiervec.search import Chain, CodeSource, Location, Pipeline, TierRuntime


def build_searcher(spec: str, segments: list[np.ndarray], fit_on: np.ndarray | None = None):
    """A Pipeline over ``segments`` of float32 vectors, as ``Collection._build_pipeline`` builds it.

    Each tier gets its codec (fitted on ``fit_on``, default all vectors) and one code array per
    segment.
    """
    chain = Chain.parse(spec)
    dim = segments[0].shape[1]
    sample = np.concatenate(segments) if fit_on is None else fit_on
    runtimes = []
    for tier in chain.tiers:
        codec = make_codec(tier.codec, dim)
        if codec.trainable:
            codec.fit(sample)
        arrays = [codec.encode(s) for s in segments]
        runtimes.append(TierRuntime(tier=tier, codec=codec, source=CodeSource(arrays)))
    return Pipeline.from_chain(chain, runtimes, count=sum(len(s) for s in segments))


def exact_top(queries: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ x.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, 1), rows


def assert_exact(searcher: Pipeline, queries: np.ndarray, x: np.ndarray, k: int) -> None:
    scores, rows = searcher.search(queries, k)
    want_scores, want_rows = exact_top(queries, x, k)
    assert scores.shape == rows.shape == (len(queries), k)
    assert scores.dtype == np.float32 and rows.dtype == np.int64
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


# -- CodeSource -----------------------------------------------------------------------------------


def segments_of(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(x)
    return [x[a:b] for a, b in itertools.pairwise(bounds)]


def test_code_source_length_and_starts():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    source = CodeSource(segments_of(x, [4, 0, 6]))
    assert len(source) == 10
    assert source.starts == [0, 4, 4]
    assert len(CodeSource()) == 0


def test_code_source_take_keeps_the_requested_order():
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    source = CodeSource(segments_of(x, [3, 4, 3]))
    rows = np.array([[9, 0, 5], [3, 3, 2], [7, 1, 6]])  # across segments, unsorted, repeated
    np.testing.assert_array_equal(source.take(rows), x[rows])


def test_code_source_take_minus_one_is_zeros():
    x = np.arange(1, 13, dtype=np.uint8).reshape(6, 2)
    source = CodeSource(segments_of(x, [2, 4]))
    got = source.take(np.array([[5, -1], [-1, 0]]))
    assert got.shape == (2, 2, 2) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, [[x[5], [0, 0]], [[0, 0], x[0]]])
    np.testing.assert_array_equal(source.take(np.full((1, 3), -1)), np.zeros((1, 3, 2)))


def test_code_source_take_with_an_empty_segment_between():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    source = CodeSource(segments_of(x, [4, 0, 6]))
    rows = np.arange(10)[::-1]
    np.testing.assert_array_equal(source.take(rows), x[rows])


def test_code_source_take_from_memory_maps(tmp_path, unit_vectors):
    x = unit_vectors(25, 6, seed=1)
    arrays = []
    for i, part in enumerate(segments_of(x, [10, 7, 8])):
        np.save(tmp_path / f"seg{i}.npy", part)
        arrays.append(np.load(tmp_path / f"seg{i}.npy", mmap_mode="r"))
    assert all(isinstance(a, np.memmap) for a in arrays)
    source = CodeSource(arrays)
    rows = np.array([[24, 3, 10], [16, 17, -1]])
    got = source.take(rows)
    assert not isinstance(got, np.memmap)
    np.testing.assert_array_equal(got[0], x[[24, 3, 10]])
    np.testing.assert_array_equal(got[1], [x[16], x[17], np.zeros(6, np.float32)])


def test_code_source_append():
    source = CodeSource([np.zeros((2, 1), np.float32)])
    source.append(np.ones((3, 1), np.float32))
    assert len(source) == 5 and source.starts == [0, 2]
    np.testing.assert_array_equal(source.take(np.array([1, 2, 4])).ravel(), [0, 1, 1])


# -- TierRuntime ----------------------------------------------------------------------------------


def test_build_scanner_moves_ram_codes_into_the_scanner(unit_vectors):
    x = unit_vectors(20, 8)
    chain = Chain.parse("float32")
    runtime = TierRuntime(tier=chain.tiers[0], codec=make_codec("float32", 8),
                          source=CodeSource([x[:5], x[5:]]))
    runtime.build_scanner()
    assert runtime.scanner is not None and runtime.scanner.ntotal == 20
    assert len(runtime.source) == 0  # no second copy of the codes
    scanner = runtime.scanner
    runtime.build_scanner()  # idempotent
    assert runtime.scanner is scanner


def test_build_scanner_scans_disk_codes_in_place(unit_vectors):
    x = unit_vectors(20, 8)
    chain = Chain.parse("float32@disk")
    assert chain.tiers[0].location is Location.DISK
    runtime = TierRuntime(tier=chain.tiers[0], codec=make_codec("float32", 8),
                          source=CodeSource([x]))
    runtime.build_scanner()
    assert isinstance(runtime.scanner, BlockScanner)
    assert len(runtime.source) == 20


# -- Pipeline -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["float32", "float32@disk"])
def test_single_float32_tier_is_exact(spec, unit_vectors):
    x = unit_vectors(400, 24, seed=2)
    q = unit_vectors(9, 24, seed=3)
    searcher = build_searcher(spec, segments_of(x, [150, 250]))
    assert_exact(searcher, q, x, 10)


def test_single_float32_tier_on_memory_maps_is_exact(tmp_path, unit_vectors):
    x = unit_vectors(120, 16, seed=4)
    q = unit_vectors(5, 16, seed=5)
    arrays = []
    for i, part in enumerate(segments_of(x, [50, 70])):
        np.save(tmp_path / f"v{i}.npy", part)
        arrays.append(np.load(tmp_path / f"v{i}.npy", mmap_mode="r"))
    chain = Chain.parse("float32@disk")
    runtime = TierRuntime(tier=chain.tiers[0], codec=make_codec("float32", 16),
                          source=CodeSource(arrays))
    assert_exact(Pipeline.from_chain(chain, [runtime], count=120), q, x, 7)


@pytest.mark.parametrize(
    "spec",
    [
        "binary*100 -> float32",  # 5 * 100 >= 300 candidates: the rescoring sees every row
        "binary*60 -> float32@disk",
        "hamming*100 -> float32@disk",
        "int8*60 -> float32",
        "hamming*100 -> int8*60 -> float32@disk",
        "binary*60 -> float16*60 -> float32",
    ],
)
def test_oversample_covering_every_row_is_exact(spec, unit_vectors):
    x = unit_vectors(300, 20, seed=6)
    q = unit_vectors(8, 20, seed=7)
    searcher = build_searcher(spec, segments_of(x, [100, 37, 163]))
    assert searcher.chain.candidates(5)[0] >= len(x)
    assert_exact(searcher, q, x, 5)


def test_rescoring_with_float32_returns_exact_scores_of_the_rows_found(unit_vectors):
    x = unit_vectors(500, 32, seed=8)
    q = unit_vectors(10, 32, seed=9)
    searcher = build_searcher("binary*4 -> float32@disk", [x])
    scores, rows = searcher.search(q, 10)
    assert (rows >= 0).all()
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, rows, 1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    # Clustered data: binary candidates rescored by float32 recover most of the exact top 10.
    _, exact = exact_top(q, x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact, strict=True)])
    assert recall >= 0.7


@pytest.mark.parametrize(
    "spec",
    ["float32", "float32@disk", "binary*4 -> float32@disk", "hamming*2 -> int8*2 -> float32"],
)
def test_pads_when_k_exceeds_count(spec, unit_vectors):
    x = unit_vectors(3, 16, seed=10)
    q = unit_vectors(2, 16, seed=11)
    scores, rows = build_searcher(spec, [x]).search(q, 5)
    assert scores.shape == rows.shape == (2, 5)
    assert (rows[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    want_scores, want_rows = exact_top(q, x, 3)
    np.testing.assert_array_equal(rows[:, :3], want_rows)
    np.testing.assert_allclose(scores[:, :3], want_scores, atol=1e-5)


@pytest.mark.parametrize("spec", ["float32", "binary*4 -> float32@disk", "int8@disk"])
def test_empty_searcher_returns_padding(spec):
    chain = Chain.parse(spec)
    runtimes = [
        TierRuntime(tier=t, codec=make_codec(t.codec, 8), source=CodeSource()) for t in chain.tiers
    ]
    searcher = Pipeline.from_chain(chain, runtimes, count=0)
    scores, rows = searcher.search(np.ones((3, 8), np.float32), 4)
    assert scores.shape == rows.shape == (3, 4)
    assert (rows == -1).all() and np.isneginf(scores).all()


@pytest.mark.parametrize("spec", ["float32", "binary*4 -> float32@disk", "hamming*3 -> float16"])
def test_append_makes_new_rows_findable(spec, unit_vectors):
    x = unit_vectors(200, 16, seed=12)
    old, new = x[:150], x[150:]
    searcher = build_searcher(spec, [old], fit_on=x)
    codes = [rt.codec.encode(new) for rt in searcher.tiers]
    searcher.append(codes, rows=len(new))
    assert searcher.count == 200
    # Each new vector, used as its own query, comes back first with the row it was given.
    _, rows = searcher.search(new[:20], 1)
    np.testing.assert_array_equal(rows[:, 0], np.arange(150, 170))
    if spec == "float32":
        assert_exact(searcher, unit_vectors(6, 16, seed=13), x, 10)


def test_append_to_an_empty_searcher(unit_vectors):
    x = unit_vectors(40, 8, seed=14)
    chain = Chain.parse("binary*10 -> float32@disk")
    codecs = [make_codec(t.codec, 8) for t in chain.tiers]
    runtimes = [
        TierRuntime(tier=t, codec=c, source=CodeSource())
        for t, c in zip(chain.tiers, codecs, strict=True)
    ]
    searcher = Pipeline.from_chain(chain, runtimes, count=0)
    searcher.append([c.encode(x[:25]) for c in codecs], rows=25)
    searcher.append([c.encode(x[25:]) for c in codecs], rows=15)
    q = unit_vectors(4, 8, seed=15)
    assert_exact(searcher, q, x, 4)  # 4 * 10 candidates cover all 40 rows


@pytest.mark.parametrize(
    "spec", ["binary*4 -> int8@disk", "hamming*8 -> int8*4 -> float32", "float16*3 -> int8",
             "binary*50 -> float16"],  # the last: fewer rows than candidates (padding)
)
def test_dense_rescoring_matches_per_query_gathering(spec, unit_vectors, monkeypatch):
    """Many queries over a small collection are rescored by one matrix product over the
    distinct candidate rows; the results are those of gathering each query's codes."""
    import tiervec.search.rescore as pipeline

    x = unit_vectors(40 if "50" in spec else 400, 24, seed=11)
    q = unit_vectors(64, 24, seed=12)
    searcher = build_searcher(spec, segments_of(x, [len(x) // 4, len(x) - len(x) // 4]))
    calls = []
    cls = type(searcher.tiers[1].codec)
    real = cls.score
    monkeypatch.setattr(cls, "score", lambda self, *a: calls.append(1) or real(self, *a))
    dense = searcher.search(q, 10)
    assert calls  # the dense path ran
    monkeypatch.setattr(pipeline, "DENSE_RATIO", 0)
    calls.clear()
    gathered = searcher.search(q, 10)
    assert not calls
    np.testing.assert_array_equal(dense[1], gathered[1])
    np.testing.assert_allclose(dense[0], gathered[0], atol=1e-5)


def test_float32_candidates_are_scored_in_place(unit_vectors):
    """float32 rescoring reads the candidates' vectors where they are, segment by segment, and
    gives the scores of gathering them (``-inf`` for padding)."""
    from tiervec.search.rescore import vector_scores

    x = unit_vectors(300, 24, seed=21)
    q = unit_vectors(7, 24, seed=22)
    rows = np.random.default_rng(23).integers(-1, 300, (7, 40))
    codec = make_codec("float32", 24)
    for cuts in ([300], [10, 290], [100, 100, 99, 1]):
        source = CodeSource([x[a:b] for a, b in zip(np.cumsum([0, *cuts])[:-1],
                                                     np.cumsum(cuts), strict=True)])
        got = vector_scores(q, rows, source)
        want = codec.score_candidates(q, source.take(rows))
        want[rows < 0] = -np.inf
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert make_codec("float32", 8).codes_are_vectors
    assert not any(make_codec(n, 8).codes_are_vectors for n in ("float16", "int8", "binary"))


def test_which_codecs_score_by_matrix_product():
    dense = {name: make_codec(name, 16).scores_by_matrix_product
             for name in ("float32", "int8", "hamming", "bin2sym", "rabitq", "pca8+rabitq")}
    assert dense == {"float32": True, "int8": True, "hamming": True, "bin2sym": True,
                     "rabitq": False, "pca8+rabitq": False}
