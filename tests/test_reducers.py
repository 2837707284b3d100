"""Reducers and composed codecs: inner products carry over, state round trips, fit errors."""

from __future__ import annotations

import numpy as np
import pytest

from tiervec.codecs import make_codec
from tiervec.codecs.reducers import ITQRotation, RandomRotation, make_reducer
from tiervec.errors import InvalidVectors


@pytest.mark.parametrize("name", ["center", "rot", "itq"])
def test_rotations_and_centring_preserve_inner_products(name, unit_vectors):
    x = unit_vectors(400, 32, seed=1)
    q = unit_vectors(5, 32, seed=2)
    r = make_reducer(name, 32, None)
    r.fit(x)
    y = r.apply(x)
    q2, offset = r.apply_query(q)
    np.testing.assert_allclose(q2 @ y.T + offset[:, None], q @ x.T, atol=1e-5)
    np.testing.assert_allclose(r.invert(y), x, atol=1e-5)


def test_rotation_matrices_are_orthogonal(unit_vectors):
    for r in (RandomRotation(24), ITQRotation(24)):
        r.fit(unit_vectors(300, 24))
        assert r.matrix is not None
        np.testing.assert_allclose(r.matrix @ r.matrix.T, np.eye(24), atol=1e-5)


def test_itq_lowers_the_sign_quantization_error(unit_vectors):
    x = unit_vectors(2000, 32, seed=3)
    x = x - x.mean(0)
    rot = RandomRotation(32)
    itq = ITQRotation(32)
    itq.fit(x)

    def error(reducer):
        y = reducer.apply(x)
        b = np.where(y > 0, 1.0, -1.0) * np.abs(y).mean()
        return float(((y - b) ** 2).sum())

    assert error(itq) < error(rot)


def test_pca_keeps_the_top_variance_directions(rng):
    # variance concentrated in 3 known directions of a 10-d space
    basis = np.linalg.qr(rng.standard_normal((10, 10)))[0][:3]
    x = (rng.standard_normal((500, 3)) * [5.0, 3.0, 2.0]) @ basis + 0.01 * rng.standard_normal(
        (500, 10)) + 1.0
    pca = make_reducer("pca", 10, 3)
    pca.fit(x.astype(np.float32))
    y = pca.apply(x.astype(np.float32))
    assert y.shape == (500, 3)
    np.testing.assert_allclose(pca.invert(y), x, atol=0.1)
    # explained variance in decreasing order
    assert np.all(np.diff(y.var(0)) < 0)


def test_pca_scores_approximate_inner_products_with_the_mean_added_back(unit_vectors):
    x = unit_vectors(600, 32, seed=4)
    q = unit_vectors(6, 32, seed=5)
    codec = make_codec("pca24+float32", 32).fit(x)
    approx = codec.score(q, codec.encode(x))
    assert np.abs(approx - q @ x.T).max() < 0.15
    full = make_codec("pca32+float32", 32).fit(x)
    np.testing.assert_allclose(full.score(q, full.encode(x)), q @ x.T, atol=1e-4)


def test_truncation_renormalises_documents_not_queries(unit_vectors):
    x = unit_vectors(50, 16, seed=6)
    q = unit_vectors(3, 16, seed=7)
    codec = make_codec("trunc8+float32", 16)
    assert codec.fitted  # nothing to learn
    codes = codec.encode(x)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
    prefix = x[:, :8] / np.linalg.norm(x[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(codec.score(q, codes), q[:, :8] @ prefix.T, atol=1e-5)


@pytest.mark.parametrize("name", ["pca16+int8", "itq+binary", "center+rot+bin2"])
def test_composite_state_round_trips(name, unit_vectors):
    x = unit_vectors(300, 32, seed=8)
    q = unit_vectors(4, 32, seed=9)
    codec = make_codec(name, 32).fit(x)
    again = make_codec(name, 32)
    again.load_state(codec.params(), codec.state())
    np.testing.assert_array_equal(again.encode(x), codec.encode(x))
    np.testing.assert_allclose(again.score(q, codec.encode(x)), codec.score(q, codec.encode(x)))


@pytest.mark.parametrize("name", ["pca16+int8", "center+bin2", "itq+binary", "trunc20+float16"])
def test_composite_scanner_agrees_with_score(name, unit_vectors):
    x = unit_vectors(500, 32, seed=10)
    q = unit_vectors(5, 32, seed=11)
    codec = make_codec(name, 32).fit(x)
    codes = codec.encode(x)
    scanner = codec.scanner()
    scanner.add(codes[:200])
    scanner.add(codes[200:])
    scores, rows = scanner.search(q, 10)
    brute = codec.score(q, codes)
    # fast-scan look-up tables are 8-bit: compare the scores of the rows returned
    np.testing.assert_allclose(np.take_along_axis(brute, rows, 1), scores, atol=0.02)
    best = np.sort(brute, 1)[:, ::-1][:, :10]
    assert (np.take_along_axis(brute, rows, 1)[:, -1] >= best[:, -1] - 0.02).all()


@pytest.mark.parametrize("name", ["pca32+int8", "itq+binary"])
def test_fit_on_fewer_vectors_than_dimensions_says_how_to_fix_it(name, unit_vectors):
    codec = make_codec(name, 64)
    with pytest.raises(InvalidVectors) as info:
        codec.fit(unit_vectors(20, 64))
    message = str(info.value)
    assert "at least 64 vectors" in message and "got 20" in message
    assert "trunc" in message  # the training-free alternative
