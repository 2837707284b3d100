"""FAISS quantizers as codecs: PQ, OPQ and RaBitQ codes, scanners, state and training errors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from tiervec.codecs import make_codec
from tiervec.errors import InvalidVectors


@pytest.fixture(scope="module")
def data():
    from conftest import make_unit_vectors

    return make_unit_vectors(600, 16, seed=1), make_unit_vectors(5, 16, seed=2)


@pytest.mark.parametrize(("name", "nbytes"), [("pq4", 4), ("opq4", 4), ("rabitq", 2 + 8)])
def test_codes_have_the_reported_size(name, nbytes, data):
    x, _ = data
    codec = make_codec(name, 16).fit(x)
    codes = codec.encode(x[:10])
    assert codes.shape == (10, codec.bytes_per_vector) and codes.dtype == np.uint8
    assert codec.bytes_per_vector == nbytes


def test_pq_codes_are_faiss_pq_codes(data):
    x, _ = data
    codec = make_codec("pq4", 16).fit(x)
    index = codec.index
    assert isinstance(index, faiss.IndexPQ)
    np.testing.assert_array_equal(codec.encode(x), index.sa_encode(x))


@pytest.mark.parametrize("name", ["pq4", "opq4", "rabitq"])
def test_scanner_agrees_with_decoded_scores(name, data):
    x, q = data
    codec = make_codec(name, 16).fit(x)
    codes = codec.encode(x)
    scanner = codec.scanner()
    scanner.add(codes[:250])
    scanner.add(codes[250:])
    assert scanner.ntotal == 600
    scores, rows = scanner.search(q, 10)
    assert rows.shape == (5, 10) and (rows >= 0).all()
    brute = codec.score(q, codes)
    # the scan and the codec's own scores are the same estimator
    np.testing.assert_allclose(np.take_along_axis(brute, rows, 1), scores, rtol=1e-4, atol=1e-4)
    top = np.argsort(-brute, 1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, top, strict=True)])
    assert overlap >= 0.9


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_rabitq_candidates_are_scored_with_its_own_estimator(bits, data):
    x, q = data
    codec = make_codec(f"rabitq{bits}", 16).fit(x)
    codes = codec.encode(x)
    rows = np.random.default_rng(0).choice(600, (5, 50), replace=True)
    got = codec.score_candidates(q, codes[rows])
    full = codec.score(q, codes)
    np.testing.assert_allclose(got, np.take_along_axis(full, rows, 1), rtol=1e-4, atol=1e-4)


def test_quantizers_rank_close_to_exact_search(data):
    x, q = data
    exact = np.argsort(-(q @ x.T), 1)[:, :10]
    for name in ("pq8", "opq8"):
        codec = make_codec(name, 16).fit(x)
        got = np.argsort(-codec.score(q, codec.encode(x)), 1)[:, :10]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact, strict=True)])
        assert recall >= 0.5, name


@pytest.mark.parametrize("name", ["pq4", "opq4", "rabitq"])
def test_state_round_trips_through_plain_arrays(name, data):
    x, _q = data
    codec = make_codec(name, 16).fit(x)
    state = codec.state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    again = make_codec(name, 16)
    again.load_state(codec.params(), state)
    np.testing.assert_array_equal(again.encode(x), codec.encode(x))


@pytest.mark.parametrize("name", ["pq4", "opq4"])
def test_too_few_training_vectors_is_a_clear_error(name, data):
    x, _ = data
    with pytest.raises(InvalidVectors) as info:
        make_codec(name, 16).fit(x[:100])
    assert "at least 256 vectors" in str(info.value)
