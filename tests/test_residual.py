"""Multi-bit residual binary codes: levels, scales, asymmetric and symmetric (SDC) scores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tiervec.codecs import make_codec
from tiervec.codecs.binary import pack_signs, unpack_signs
from tiervec.errors import InvalidVectors


def test_level_one_is_the_sign_of_x_and_level_two_the_sign_of_the_residual(unit_vectors):
    x = unit_vectors(200, 20, seed=1)
    codec = make_codec("bin2", 20).fit(x)
    codes = codec.encode(x)
    w = codec.width
    np.testing.assert_array_equal(codes[:, :w], pack_signs(x))
    a1 = codec.scales[0]
    residual = x - a1 * unpack_signs(pack_signs(x), 20)
    np.testing.assert_array_equal(codes[:, w:], pack_signs(residual))


def test_scales_are_the_mean_absolute_residual_of_each_level(unit_vectors):
    x = unit_vectors(300, 16, seed=2)
    codec = make_codec("bin3", 16).fit(x)
    r = x.copy()
    for level in range(3):
        assert codec.scales[level] == pytest.approx(np.abs(r).mean(), rel=1e-5)
        r = r - codec.scales[level] * np.where(r > 0, 1.0, -1.0)
    assert codec.scales[0] > codec.scales[1] > codec.scales[2] > 0


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_more_bits_reconstruct_better(bits, unit_vectors):
    x = unit_vectors(500, 32, seed=3)
    errors = []
    for b in range(1, bits + 1):
        codec = make_codec(f"bin{b}", 32).fit(x)
        errors.append(float(((codec.decode(codec.encode(x)) - x) ** 2).sum()))
    assert all(a > b for a, b in itertools.pairwise(errors))


def test_asymmetric_score_is_the_inner_product_with_the_decoded_vector(unit_vectors):
    x = unit_vectors(100, 24, seed=4)
    q = unit_vectors(3, 24, seed=5)
    codec = make_codec("bin3", 24).fit(x)
    codes = codec.encode(x)
    np.testing.assert_allclose(codec.score(q, codes), q @ codec.decode(codes).T, atol=1e-5)


def test_symmetric_score_equals_popcount_formula_by_hand():
    # d = 8, one level: scores are a^2 (d - 2 * hamming)
    codec = make_codec("bin1sym", 8).fit(np.array([[1, -1, 1, -1, 1, -1, 1, -1]], np.float32))
    a = codec.scales[0]
    q = np.array([[1, 1, 1, 1, 1, 1, 1, 1]], np.float32)
    x = np.array([[1, 1, 1, 1, -1, -1, -1, -1]], np.float32)
    got = codec.score_candidates(q, codec.encode(x)[None])
    assert got[0, 0] == pytest.approx(a * a * (8 - 2 * 4))


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_symmetric_candidates_match_symmetric_full_scores(bits, unit_vectors):
    x = unit_vectors(60, 20, seed=6)
    q = unit_vectors(4, 20, seed=7)
    codec = make_codec(f"bin{bits}sym", 20).fit(x)
    codes = codec.encode(x)
    rows = np.random.default_rng(0).integers(0, 60, (4, 9))
    np.testing.assert_allclose(
        codec.score_candidates(q, codes[rows]),
        np.take_along_axis(codec.score(q, codes), rows, 1), rtol=1e-5, atol=1e-6)
    expected = codec.decode(codec.encode(q)) @ codec.decode(codes).T
    np.testing.assert_allclose(codec.score(q, codes), expected, atol=1e-6)


@pytest.mark.parametrize("bits", [2, 3])
def test_fast_scan_over_levels_matches_brute_force(bits, unit_vectors):
    x = unit_vectors(700, 40, seed=8)
    q = unit_vectors(5, 40, seed=9)
    codec = make_codec(f"bin{bits}", 40).fit(x)
    codes = codec.encode(x)
    scanner = codec.scanner()
    scanner.add(codes[:333])
    scanner.add(codes[333:])
    scores, rows = scanner.search(q, 20)
    brute = codec.score(q, codes)
    np.testing.assert_allclose(np.take_along_axis(brute, rows, 1), scores, atol=0.02)
    exact_top = np.argsort(-brute, 1)[:, :20]
    overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(rows, exact_top, strict=True)])
    assert overlap >= 0.8


def test_state_round_trip(unit_vectors):
    x = unit_vectors(100, 16, seed=10)
    codec = make_codec("bin4", 16).fit(x)
    again = make_codec("bin4", 16)
    again.load_state(codec.params(), codec.state())
    np.testing.assert_array_equal(again.encode(x), codec.encode(x))
    np.testing.assert_array_equal(again.scales, codec.scales)


def test_fit_on_no_vectors_raises(unit_vectors):
    with pytest.raises(InvalidVectors):
        make_codec("bin2", 8).fit(np.zeros((0, 8), np.float32))
