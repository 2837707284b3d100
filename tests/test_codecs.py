"""Codecs: sizes, round trips and their error bounds, scores, and the exhaustive scanners."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervec.codecs import (
    CODECS,
    BinaryCodec,
    Float8Codec,
    Float8E5M2Codec,
    Float16Codec,
    Float32Codec,
    HammingCodec,
    Int4Codec,
    Int8Codec,
    make_codec,
)
from tiervec.codecs._fastscan import SignFastScanScanner
from tiervec.codecs.base import BlockScanner, empty_top, merge_top_m, top_m
from tiervec.codecs.binary import pack_signs, unpack_signs
from tiervec.errors import DimensionMismatch, InvalidTierSpec, InvalidVectors, UnknownCodec

#: Codecs that work at any dimension (composites with fixed-size reducers included).
ALL = [*CODECS, "bin2", "bin3sym", "center+bin2", "rot+int8"]
#: Exact bytes per vector of each codec, as a function of the dimension.
EXPECTED_BYTES = {
    "float32": lambda d: 4 * d,
    "float16": lambda d: 2 * d,
    "float8": lambda d: d,
    "float8e5m2": lambda d: d,
    "int8": lambda d: d,
    "int4": lambda d: math.ceil(d / 2),
    "binary": lambda d: math.ceil(d / 8),
    "hamming": lambda d: math.ceil(d / 8),
    "bin2": lambda d: 2 * math.ceil(d / 8),
    "bin3sym": lambda d: 3 * math.ceil(d / 8),
    "center+bin2": lambda d: 2 * math.ceil(d / 8),
    "rot+int8": lambda d: d,
}
FAST = settings(max_examples=50, deadline=None)


def fitted(name: str, x: np.ndarray):
    """Codec ``name`` for ``x``'s dimension, fitted on ``x`` where it learns anything."""
    codec = make_codec(name, x.shape[1])
    return codec.fit(x) if codec.trainable else codec


def assert_top_matches_brute(scores, rows, brute, m, atol):
    """``(scores, rows)`` is a correct top-``m`` of ``brute`` ``(nq, n)``, up to ties.

    Each returned row's brute-force score is the score returned, the scores are sorted
    descending, and they equal the ``m`` best brute-force scores.
    """
    nq, n = brute.shape
    assert scores.shape == rows.shape == (nq, m)
    take = min(m, n)
    assert (rows[:, :take] >= 0).all()
    assert (rows[:, take:] == -1).all() and np.isneginf(scores[:, take:]).all()
    for q in range(nq):
        assert len(set(rows[q, :take].tolist())) == take  # no row twice
    got = scores[:, :take]
    np.testing.assert_allclose(np.take_along_axis(brute, rows[:, :take], 1), got, atol=atol)
    assert (np.diff(got, axis=1) <= atol).all()
    best = -np.sort(-brute, axis=1)[:, :take]
    np.testing.assert_allclose(got, best, atol=atol)


# -- construction, sizes, dtypes ----------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("d", [1, 8, 20, 384])
def test_bytes_per_vector_is_exact(name, d):
    codec = make_codec(name, d)
    assert codec.bytes_per_vector == EXPECTED_BYTES[name](d)
    assert codec.dim == d
    assert codec.name == name
    assert name not in CODECS or type(codec) is CODECS[name]


def test_codec_table_names_every_class():
    assert CODECS == {
        "float32": Float32Codec,
        "float16": Float16Codec,
        "float8": Float8Codec,
        "float8e5m2": Float8E5M2Codec,
        "int8": Int8Codec,
        "int4": Int4Codec,
        "binary": BinaryCodec,
        "hamming": HammingCodec,
    }


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("d", [8, 20])
def test_encode_decode_shapes_and_dtypes(name, d, unit_vectors):
    x = unit_vectors(13, d, seed=1)
    codec = fitted(name, x)
    codes = codec.encode(x)
    assert codes.shape == (13, codec.code_width)
    assert codes.dtype == codec.code_dtype
    assert codes.nbytes == 13 * codec.bytes_per_vector
    decoded = codec.decode(codes)
    assert decoded.shape == (13, d)
    assert decoded.dtype == np.float32


@pytest.mark.parametrize("name", ALL)
def test_wrong_dimension_raises_dimension_mismatch(name, unit_vectors):
    codec = fitted(name, unit_vectors(10, 8, seed=1))
    with pytest.raises(DimensionMismatch, match=r"\(n, 8\)"):
        codec.encode(np.zeros((3, 9), np.float32))
    with pytest.raises(DimensionMismatch):
        codec.encode(np.zeros(8, np.float32))  # 1-d: not a batch


def test_int8_fit_checks_dimension():
    with pytest.raises(DimensionMismatch):
        Int8Codec(8).fit(np.zeros((5, 7), np.float32))


@pytest.mark.parametrize("d", [0, -3])
def test_non_positive_dimension_raises(d):
    with pytest.raises(InvalidVectors):
        make_codec("float32", d)


def test_unfitted_int8_encode_raises_invalid_vectors():
    codec = Int8Codec(4)
    assert not codec.fitted
    with pytest.raises(InvalidVectors, match="not fitted"):
        codec.encode(np.zeros((2, 4), np.float32))
    with pytest.raises(InvalidVectors, match="not fitted"):
        codec.decode(np.zeros((2, 4), np.uint8))


def test_int8_fit_on_empty_sample_raises_invalid_vectors():
    with pytest.raises(InvalidVectors):
        Int8Codec(4).fit(np.empty((0, 4), np.float32))


def test_fixed_codecs_are_fitted_without_fit():
    for name in ("float32", "float16", "binary", "hamming"):
        assert make_codec(name, 4).fitted


def test_make_codec_unknown_name_lists_valid_codecs():
    with pytest.raises(UnknownCodec) as info:
        make_codec("nope", 8)
    message = str(info.value)
    assert "'nope'" in message
    for name in CODECS:
        assert name in message
    assert isinstance(info.value, InvalidTierSpec)
    assert isinstance(info.value, KeyError)


# -- round trips and error bounds ----------------------------------------------------------------


def vectors(max_n: int = 6, max_d: int = 24, bound: float = 10.0):
    """Hypothesis strategy: small ``(n, d)`` float32 arrays of finite values in ``±bound``."""
    shapes = st.tuples(st.integers(1, max_n), st.integers(1, max_d))
    elements = st.floats(-bound, bound, allow_nan=False, width=32)
    return shapes.flatmap(lambda s: hnp.arrays(np.float32, s, elements=elements))


def test_float32_round_trip_is_exact(unit_vectors):
    x = unit_vectors(20, 16)
    codec = Float32Codec(16)
    np.testing.assert_array_equal(codec.decode(codec.encode(x)), x)


@FAST
@given(x=vectors())
def test_float16_round_trip_relative_error(x):
    codec = Float16Codec(x.shape[1])
    back = codec.decode(codec.encode(x))
    # Round-to-nearest with an 11-bit significand: |x' - x| <= 2**-11 |x| for normal numbers;
    # below float16's smallest normal (2**-14) the absolute error is at most half a subnormal step.
    bound = np.maximum(2.0**-11 * np.abs(x), 2.0**-25)
    assert (np.abs(back - x) <= bound).all()


@FAST
@given(x=vectors(max_n=8))
def test_int8_round_trip_error_at_most_half_a_step(x):
    codec = Int8Codec(x.shape[1]).fit(x)
    codes = codec.encode(x)
    back = codec.decode(codes)
    # code = floor(255 (x - lo) / width) reconstructs at the centre of its cell, so the error is
    # at most half a cell, width / 510 (plus float32 rounding of the arithmetic).
    step = codec.width / 255.0
    slack = 1e-6 * (np.abs(codec.lo) + codec.width) + 1e-30
    assert (np.abs(back - x) <= 0.5 * step + slack).all()


def test_int8_fit_learns_min_and_width():
    x = np.array([[-1.0, 0.0, 2.0], [1.0, 0.5, 2.0], [0.0, 1.0, 2.0]], np.float32)
    codec = Int8Codec(3).fit(x)
    np.testing.assert_array_equal(codec.lo, [-1.0, 0.0, 2.0])
    np.testing.assert_allclose(codec.width[:2], [2.0, 1.0])
    assert 0 < codec.width[2] < 1e-6  # a constant dimension keeps a tiny positive width
    # The smallest value of each dimension is code 0, the largest code 255.
    codes = codec.encode(x)
    np.testing.assert_array_equal(codes[:, 0], [0, 255, 127])
    np.testing.assert_array_equal(codes[:, 1], [0, 127, 255])
    # Hand-computed: code 127 of [-1, 1] decodes to -1 + 127.5 / 255 * 2 = 0.0.
    assert codec.decode(codes)[2, 0] == pytest.approx(0.0, abs=1e-6)


def test_int8_clips_values_outside_the_fitted_range():
    codec = Int8Codec(2).fit(np.array([[0.0, -1.0], [1.0, 1.0]], np.float32))
    codes = codec.encode(np.array([[-5.0, 3.0], [2.0, -2.0]], np.float32))
    np.testing.assert_array_equal(codes, [[0, 255], [255, 0]])
    back = codec.decode(codes)
    # Clipped values decode to the outermost cells' centres: lo + 0.5 step, lo + 255.5 step.
    np.testing.assert_allclose(back, [[0.5 / 255, 1 + 1 / 255], [1 + 0.5 / 255, -1 + 1 / 255]],
                               rtol=1e-6)


def test_int8_state_round_trips_through_load_state(unit_vectors):
    x = unit_vectors(30, 12)
    codec = Int8Codec(12).fit(x)
    other = Int8Codec(12)
    other.load_state(codec.params(), codec.state())
    assert other.fitted
    np.testing.assert_array_equal(other.encode(x), codec.encode(x))


@FAST
@given(x=vectors())
def test_binary_decode_is_sign_over_sqrt_d(x):
    x = np.where(x == 0, np.float32(1.0), x)  # sign(0) is not a bit; keep the bound property
    codec = BinaryCodec(x.shape[1])
    back = codec.decode(codec.encode(x))
    np.testing.assert_allclose(back, np.sign(x) / np.sqrt(x.shape[1]), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), 1.0, rtol=1e-5)


def test_binary_zero_is_a_negative_bit():
    codec = BinaryCodec(3)
    np.testing.assert_array_equal(codec.encode(np.array([[0.0, 1.0, -1.0]], np.float32)), [[2]])


def test_pack_signs_uses_little_bit_order():
    # Dimension 8j + i is bit i of byte j: dims 0 and 9 positive -> bytes [0b1, 0b10].
    x = -np.ones((1, 10), np.float32)
    x[0, [0, 9]] = 1.0
    codes = pack_signs(x)
    np.testing.assert_array_equal(codes, [[1, 2]])
    np.testing.assert_array_equal(unpack_signs(codes, 10), x)


@FAST
@given(x=vectors())
def test_hamming_round_trip_matches_binary(x):
    d = x.shape[1]
    np.testing.assert_array_equal(HammingCodec(d).encode(x), BinaryCodec(d).encode(x))


# -- scores -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["float32", "float16", "int8", "binary"])
@pytest.mark.parametrize("d", [16, 20])
def test_score_is_inner_product_with_decoded(name, d, unit_vectors):
    x = unit_vectors(40, d, seed=2)
    q = unit_vectors(5, d, seed=3)
    codec = fitted(name, x)
    codes = codec.encode(x)
    scores = codec.score(q, codes)
    assert scores.shape == (5, 40) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, q @ codec.decode(codes).T, atol=1e-5)


@pytest.mark.parametrize("d", [8, 20, 64])
def test_hamming_score_counts_agreeing_signs(d, unit_vectors):
    x = unit_vectors(30, d, seed=4)
    q = unit_vectors(4, d, seed=5)
    codec = HammingCodec(d)
    scores = codec.score(q, codec.encode(x))
    hamming = ((q[:, None, :] > 0) != (x[None, :, :] > 0)).sum(axis=2)
    np.testing.assert_array_equal(scores, ((d - 2 * hamming) / d).astype(np.float32))


def test_hamming_score_by_hand():
    # d = 4: q signs ++-- , code signs +-+- -> 2 disagreements -> (4 - 2*2) / 4 = 0.
    codec = HammingCodec(4)
    q = np.array([[1.0, 2.0, -1.0, -3.0]], np.float32)
    codes = codec.encode(np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]], np.float32))
    np.testing.assert_array_equal(codec.score(q, codes), [[0.0, 1.0]])


@pytest.mark.parametrize("name", ALL)
def test_score_candidates_equals_score_on_gathered_rows(name, unit_vectors):
    d = 20
    x = unit_vectors(50, d, seed=6)
    q = unit_vectors(4, d, seed=7)
    codec = fitted(name, x)
    codes = codec.encode(x)
    rows = np.random.default_rng(8).integers(0, 50, size=(4, 7))
    got = codec.score_candidates(q, codes[rows])
    full = codec.score(q, codes)
    assert got.shape == (4, 7)
    np.testing.assert_allclose(got, np.take_along_axis(full, rows, 1), atol=1e-6)


# -- top_m and merge_top_m ----------------------------------------------------------------------


def test_top_m_sorted_descending():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]], np.float32)
    best, cols = top_m(scores, 3)
    np.testing.assert_array_equal(cols, [[1, 3, 2], [0, 2, 1]])
    np.testing.assert_array_equal(best, np.array([[0.9, 0.7, 0.5], [3.0, 2.0, 1.0]], np.float32))
    assert best.dtype == np.float32 and cols.dtype == np.int64


def test_top_m_all_columns_when_m_equals_n():
    best, cols = top_m(np.array([[2.0, 5.0, 1.0]]), 3)
    np.testing.assert_array_equal(cols, [[1, 0, 2]])
    np.testing.assert_array_equal(best, [[5.0, 2.0, 1.0]])


def test_top_m_pads_with_minus_inf_and_minus_one():
    best, cols = top_m(np.array([[0.2, 0.4]], np.float32), 4)
    np.testing.assert_array_equal(cols, [[1, 0, -1, -1]])
    np.testing.assert_array_equal(best, np.array([[0.4, 0.2, -np.inf, -np.inf]], np.float32))


def test_top_m_of_no_columns_is_all_padding():
    best, cols = top_m(np.empty((2, 0), np.float32), 3)
    np.testing.assert_array_equal(cols, np.full((2, 3), -1))
    assert np.isneginf(best).all()


def test_merge_top_m_keeps_the_best_rows_of_both():
    a = (np.array([[0.9, 0.3]], np.float32), np.array([[10, 11]]))
    b = (np.array([[0.5, 0.1]], np.float32), np.array([[20, 21]]))
    best, rows = merge_top_m(a, b, 3)
    np.testing.assert_array_equal(rows, [[10, 20, 11]])
    np.testing.assert_array_equal(best, np.array([[0.9, 0.5, 0.3]], np.float32))


def test_merge_top_m_pads_and_keeps_padding_rows_minus_one():
    a = (np.array([[0.9, -np.inf]], np.float32), np.array([[4, -1]]))
    b = (np.full((1, 0), -np.inf, np.float32), np.full((1, 0), -1))
    best, rows = merge_top_m(a, b, 3)
    np.testing.assert_array_equal(rows, [[4, -1, -1]])
    assert best[0, 0] == np.float32(0.9) and np.isneginf(best[0, 1:]).all()


def test_empty_top_shape():
    scores, rows = empty_top(2, 5)
    assert scores.shape == rows.shape == (2, 5)
    assert np.isneginf(scores).all() and (rows == -1).all()


# -- scanners -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["float32", "float16", "float8", "int8", "int4", "hamming", "bin2sym", "rot+int8"]
)
@pytest.mark.parametrize("d", [16, 20])
def test_scanner_matches_brute_force(name, d, unit_vectors):
    x = unit_vectors(300, d, seed=9)
    q = unit_vectors(6, d, seed=10)
    codec = fitted(name, x)
    codes = codec.encode(x)
    scanner = codec.scanner()
    scanner.add(codes[:120])
    scanner.add(codes[120:])
    assert scanner.ntotal == 300
    scores, rows = scanner.search(q, 15)
    assert scores.dtype == np.float32 and rows.dtype == np.int64
    assert_top_matches_brute(scores, rows, codec.score(q, codes), 15, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_scanner_pads_when_fewer_codes_than_m(name, unit_vectors):
    x = unit_vectors(5, 20, seed=11)
    q = unit_vectors(2, 20, seed=12)
    codec = fitted(name, x)
    scanner = codec.scanner()
    scanner.add(codec.encode(x))
    scores, rows = scanner.search(q, 8)
    assert scores.shape == rows.shape == (2, 8)
    assert (rows[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert sorted(rows[0, :5].tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("d", [16, 20, 64])
def test_binary_fast_scan_approximates_brute_force(d, unit_vectors):
    x = unit_vectors(500, d, seed=13)
    q = unit_vectors(10, d, seed=14)
    codec = BinaryCodec(d)
    codes = codec.encode(x)
    scanner = codec.scanner()
    assert isinstance(scanner, SignFastScanScanner)
    scanner.add(codes)
    scores, rows = scanner.search(q, 20)
    brute = codec.score(q, codes)
    exact10 = np.argsort(-brute, axis=1, kind="stable")[:, :10]
    recall = np.mean([len(set(exact10[i]) & set(rows[i])) / 10 for i in range(len(q))])
    assert recall >= 0.9
    # Scores come from 8-bit look-up tables: close to, not equal to, the exact ones.
    assert (rows >= 0).all()
    np.testing.assert_allclose(scores, np.take_along_axis(brute, rows, 1), atol=0.03)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("d", [16, 20])
@pytest.mark.parametrize(
    "chunks", [[5, 40, 1, 100], [31, 1, 32, 33, 49], [1] * 40 + [106], [0, 146, 0]]
)
def test_binary_fast_scan_chunked_adds_equal_one_add(d, chunks, unit_vectors):
    assert sum(chunks) == 146
    x = unit_vectors(146, d, seed=15)
    q = unit_vectors(7, d, seed=16)
    codec = BinaryCodec(d)
    codes = codec.encode(x)
    whole = codec.scanner()
    whole.add(codes)
    parts = codec.scanner()
    start = 0
    for size in chunks:
        parts.add(codes[start : start + size])
        start += size
        assert parts.ntotal == start
    for m in (10, 146, 150):
        a_scores, a_rows = whole.search(q, m)
        b_scores, b_rows = parts.search(q, m)
        np.testing.assert_array_equal(b_rows, a_rows)
        np.testing.assert_array_equal(b_scores, a_scores)


def test_binary_fast_scan_finds_every_row_after_chunked_adds(unit_vectors):
    # Each vector's own code is its best match, wherever its partial block was re-packed.
    d = 32
    x = np.sign(unit_vectors(70, d, seed=17)) / np.sqrt(d)
    codec = BinaryCodec(d)
    codes = codec.encode(x)
    scanner = codec.scanner()
    for start, stop in [(0, 5), (5, 45), (45, 46), (46, 70)]:
        scanner.add(codes[start:stop])
    _, rows = scanner.search(x.astype(np.float32), 1)
    np.testing.assert_array_equal(rows[:, 0], np.arange(70))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("block", [7, 32, 1000])
def test_block_scanner_matches_brute_force(name, block, unit_vectors):
    x = unit_vectors(100, 20, seed=18)
    q = unit_vectors(4, 20, seed=19)
    codec = fitted(name, x)
    codes = codec.encode(x)
    scanner = BlockScanner(codec, block=block)
    assert scanner.ntotal == 0
    for start, stop in [(0, 13), (13, 13), (13, 64), (64, 100)]:
        scanner.add(codes[start:stop])
    assert scanner.ntotal == 100
    scores, rows = scanner.search(q, 12)
    assert_top_matches_brute(scores, rows, codec.score(q, codes), 12, atol=1e-6)


def test_block_scanner_reads_memory_maps(tmp_path, unit_vectors):
    x = unit_vectors(60, 8, seed=20)
    np.save(tmp_path / "a.npy", x[:25])
    np.save(tmp_path / "b.npy", x[25:])
    codec = Float32Codec(8)
    scanner = BlockScanner(codec, block=10)
    scanner.add(np.load(tmp_path / "a.npy", mmap_mode="r"))
    scanner.add(np.load(tmp_path / "b.npy", mmap_mode="r"))
    q = unit_vectors(3, 8, seed=21)
    scores, rows = scanner.search(q, 5)
    assert_top_matches_brute(scores, rows, q @ x.T, 5, atol=1e-6)


def test_block_scanner_empty_and_short():
    codec = Float32Codec(2)
    scanner = BlockScanner(codec, block=2)
    q = np.array([[1.0, 0.0]], np.float32)
    scores, rows = scanner.search(q, 3)
    assert (rows == -1).all() and np.isneginf(scores).all() and rows.shape == (1, 3)
    scanner.add(np.array([[0.5, 0.0], [2.0, 0.0], [-1.0, 0.0]], np.float32))
    scores, rows = scanner.search(q, 5)
    np.testing.assert_array_equal(rows, [[1, 0, 2, -1, -1]])
    np.testing.assert_array_equal(scores, np.array([[2.0, 0.5, -1.0, -np.inf, -np.inf]],
                                                   np.float32))


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_fast_scan_blocks_match_faiss_packing_and_subsets(levels):
    """tiervec packs whole tables with numpy in FAISS's block layout (learned from FAISS's
    packer); codes read back, and a subset scan equals a full scan restricted to the subset."""
    import faiss

    from tiervec.codecs._fastscan import SignFastScanScanner

    gen = np.random.default_rng(levels)
    scanner = SignFastScanScanner(gen.random((levels, 40)).astype(np.float32))
    codes = gen.integers(0, 256, (1000, scanner.code_size), dtype=np.uint8)
    for lo, hi in ((0, 45), (45, 700), (700, 1000)):  # partial blocks re-packed
        scanner.add(codes[lo:hi])
    assert np.array_equal(scanner.codes(np.arange(1000)), codes)
    packer = scanner.index.get_CodePacker()
    nvec, size = packer.nvec, packer.block_size
    padded = np.zeros((-(-1000 // nvec) * nvec, scanner.code_size), np.uint8)
    padded[:1000] = codes
    block = np.empty(size, np.uint8)
    for b in range(len(padded) // nvec):
        packer.pack_all(faiss.swig_ptr(padded[b * nvec : (b + 1) * nvec]), faiss.swig_ptr(block))
        assert np.array_equal(scanner._table()[b * size : (b + 1) * size], block)
    queries = gen.standard_normal((4, 40)).astype(np.float32)
    rows = np.sort(gen.choice(1000, 150, replace=False))
    scores, found = scanner.search_subset(queries, 10, rows)
    full_s, _ = scanner.search(queries, 1000)
    assert set(found.ravel()) <= set(rows)
    part = SignFastScanScanner(scanner.scales)
    part.add(codes[rows])
    ref_s, ref_r = part.search(queries, 10)
    assert np.array_equal(found, rows[ref_r]) and np.allclose(scores, ref_s)
    wide_s, wide_r = scanner.search_subset(queries, 200, rows[:5])  # fewer rows than asked
    assert (wide_r[:, :5] >= 0).all() and (wide_r[:, 5:] == -1).all()
    assert np.isneginf(wide_s[:, 5:]).all() and full_s.shape == (4, 1000)
