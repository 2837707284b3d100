"""Learned binarization (``lbin<b>``): layout, training-free start, determinism, persistence,
the fast-scan kernel, errors, and that training keeps the float ranking at least as well."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tiervec.codecs._fastscan import SignFastScanScanner
from tiervec.codecs.binary import pack_signs, unpack_signs
from tiervec.codecs.learned import LearnedBinaryCodec, LearnedBinaryConfig, residual_scales
from tiervec.errors import DimensionMismatch, InvalidTierSpec, InvalidVectors

D = 32
#: Small enough to train in about a second.
FAST = LearnedBinaryConfig(hidden=32, batch=512, queries=128, steps=150, lr=3e-3)


def embeddings(n: int, seed: int, d: int = D) -> np.ndarray:
    """Unit vectors with the anisotropy of real embeddings: a shared mean direction and a
    decaying spectrum of correlated directions (the mixing matrix depends on ``d`` only)."""
    mix_rng = np.random.default_rng(d)
    mix = mix_rng.standard_normal((d, d)) * (0.85 ** np.arange(d))[:, None]
    mean = 0.6 * mix_rng.standard_normal(d)
    x = np.random.default_rng(seed).standard_normal((n, d)) @ mix + mean
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return embeddings(2000, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return embeddings(100, seed=2)


@pytest.fixture(scope="module")
def trained(corpus) -> dict[int, LearnedBinaryCodec]:
    return {bits: LearnedBinaryCodec(D, bits, FAST).fit(corpus) for bits in (1, 2)}


def training_free(x: np.ndarray, bits: int) -> LearnedBinaryCodec:
    """The codec before training: zero MLPs, scales ``mean |r_{l-1}|`` per dimension."""
    codec = LearnedBinaryCodec(x.shape[1], bits)
    scales = residual_scales(x, bits)
    codec.load_state({"bits": bits}, {"scales": scales, "norms": scales})
    return codec


def recall_at_10(codec: LearnedBinaryCodec, x: np.ndarray, q: np.ndarray) -> float:
    """Mean overlap of the codec's top 10 with the exact float inner-product top 10."""
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    got = np.argsort(-codec.score(q, codec.encode(x)), axis=1)[:, :10]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, got, strict=True)]))


# -- sizes and layout ----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("d", [1, 8, 20, 384])
def test_code_width_and_bytes_per_vector(bits, d):
    codec = LearnedBinaryCodec(d, bits)
    assert codec.name == f"lbin{bits}"
    assert codec.code_width == codec.bytes_per_vector == bits * math.ceil(d / 8)
    assert codec.code_dtype == np.uint8
    assert codec.trainable and not codec.fitted


@pytest.mark.parametrize("bits", [1, 2])
def test_encode_decode_shapes_and_dtypes(bits, trained, corpus):
    codec = trained[bits]
    codes = codec.encode(corpus[:13])
    assert codes.shape == (13, bits * D // 8) and codes.dtype == np.uint8
    assert codes.nbytes == 13 * codec.bytes_per_vector
    decoded = codec.decode(codes)
    assert decoded.shape == (13, D) and decoded.dtype == np.float32
    assert codec.scales.shape == (bits, D)


def test_training_free_start_is_per_dimension_residual_binarization(corpus):
    codec = training_free(corpus, 3)
    codes = codec.encode(corpus)
    w = D // 8
    np.testing.assert_array_equal(codes[:, :w], pack_signs(corpus))  # level 1: signs of x
    r = corpus.copy()
    for level in range(3):  # the reference: r_l = r_{l-1} - a_l * sign(r_{l-1})
        np.testing.assert_array_equal(codes[:, level * w : (level + 1) * w], pack_signs(r))
        r -= codec.scales[level] * np.where(r > 0, 1, -1).astype(np.float32)
    np.testing.assert_allclose(
        np.abs(corpus).mean(axis=0), codec.scales[0], rtol=1e-5
    )  # least-squares scale of the first level


def test_decode_sums_scaled_signs_level_by_level(trained, corpus):
    codec = trained[2]
    codes = codec.encode(corpus[:50])
    levels = [unpack_signs(codes[:, i * D // 8 : (i + 1) * D // 8], D) for i in range(2)]
    expected = codec.scales[0] * levels[0] + codec.scales[1] * levels[1]
    np.testing.assert_allclose(codec.decode(codes), expected, rtol=1e-6)
    q = corpus[:4]
    np.testing.assert_allclose(codec.score(q, codes), q @ expected.T, atol=1e-5)


# -- training --------------------------------------------------------------------------------------


def test_training_is_deterministic(trained, corpus):
    again = LearnedBinaryCodec(D, 2, FAST).fit(corpus)
    first = trained[2].state()
    assert again.state().keys() == first.keys()
    for key, value in again.state().items():
        np.testing.assert_array_equal(value, first[key], err_msg=key)
    np.testing.assert_array_equal(again.encode(corpus), trained[2].encode(corpus))


def test_training_changes_the_codes(trained, corpus):
    before = training_free(corpus, 2).encode(corpus)
    assert (trained[2].encode(corpus) != before).any()


@pytest.mark.parametrize("bits", [1, 2])
def test_training_does_not_hurt_ranking(bits, trained, corpus, queries):
    start = recall_at_10(training_free(corpus, bits), corpus, queries)
    learned = recall_at_10(trained[bits], corpus, queries)
    assert learned >= start - 0.01, (learned, start)


def test_more_bits_rank_better(trained, corpus, queries):
    assert recall_at_10(trained[2], corpus, queries) > recall_at_10(trained[1], corpus, queries)


def test_large_sample_is_subsampled(corpus):
    codec = LearnedBinaryCodec(D, 1, LearnedBinaryConfig(max_sample=400, steps=5, hidden=8))
    codec.fit(corpus)
    assert codec.fitted and codec.encode(corpus).shape == (2000, D // 8)


# -- persistence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2])
def test_state_round_trip_gives_identical_codes_and_scores(bits, trained, corpus, queries):
    codec = trained[bits]
    params = json.loads(json.dumps(codec.params()))  # as the manifest stores it
    assert params["bits"] == bits and params["hidden"] == FAST.hidden
    restored = LearnedBinaryCodec(D, bits)
    restored.load_state(params, {k: v.copy() for k, v in codec.state().items()})
    assert restored.fitted and restored.config == FAST
    codes = codec.encode(corpus)
    np.testing.assert_array_equal(restored.encode(corpus), codes)
    np.testing.assert_array_equal(restored.score(queries, codes), codec.score(queries, codes))


def test_load_state_with_other_bits_raises(trained):
    codec = trained[2]
    with pytest.raises(InvalidTierSpec, match=r"lbin2 \(2 bits.*not lbin1"):
        LearnedBinaryCodec(D, 1).load_state(codec.params(), codec.state())


def test_torch_is_needed_only_to_fit(tmp_path, trained, corpus):
    # A saved codec encodes with numpy alone: torch is blocked in a fresh interpreter.
    codec = trained[2]
    np.savez(tmp_path / "state.npz", **codec.state())
    np.save(tmp_path / "x.npy", corpus[:100])
    script = f"""
import json, sys
sys.modules["torch"] = None
import numpy as np
from tiervec.codecs.learned import LearnedBinaryCodec
codec = LearnedBinaryCodec({D}, 2)
codec.load_state(json.loads({json.dumps(json.dumps(codec.params()))}), dict(np.load(sys.argv[1])))
np.save(sys.argv[3], codec.encode(np.load(sys.argv[2])))
"""
    out = tmp_path / "codes.npy"
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state.npz"), str(tmp_path / "x.npy"),
         str(out)],
        check=True,
    )
    np.testing.assert_array_equal(np.load(out), codec.encode(corpus[:100]))


# -- scanner ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2])
def test_fast_scan_matches_brute_force(bits, trained, corpus, queries):
    codec = trained[bits]
    codes = codec.encode(corpus)
    scanner = codec.scanner()
    assert isinstance(scanner, SignFastScanScanner)
    scanner.add(codes)
    assert scanner.ntotal == len(corpus)
    scores, rows = scanner.search(queries, 20)
    brute = codec.score(queries, codes)
    exact10 = np.argsort(-brute, axis=1, kind="stable")[:, :10]
    recall = np.mean([len(set(exact10[i]) & set(rows[i])) / 10 for i in range(len(queries))])
    assert recall >= 0.9
    # Scores come from 8-bit look-up tables: close to, not equal to, the exact ones.
    assert (rows >= 0).all()
    np.testing.assert_allclose(scores, np.take_along_axis(brute, rows, 1), atol=0.03)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 5, -1])
def test_invalid_bits_raise_and_list_valid_values(bits):
    with pytest.raises(InvalidTierSpec, match="lbin1, lbin2, lbin3, lbin4"):
        LearnedBinaryCodec(D, bits)


def test_too_few_vectors_raise_with_the_fix():
    with pytest.raises(InvalidVectors, match=r"at least 256 vectors.*got 255.*'bin2'"):
        LearnedBinaryCodec(D, 2).fit(embeddings(255, seed=3))
    with pytest.raises(InvalidVectors, match="at least 384 vectors"):
        LearnedBinaryCodec(384, 1).fit(np.zeros((300, 384), np.float32))


def test_unfitted_codec_raises(corpus):
    codec = LearnedBinaryCodec(D, 1)
    with pytest.raises(InvalidVectors, match="not fitted"):
        codec.encode(corpus)
    with pytest.raises(InvalidVectors, match="not fitted"):
        codec.scanner()


def test_wrong_dimension_raises(trained):
    with pytest.raises(DimensionMismatch, match=r"\(n, 32\)"):
        trained[1].encode(np.zeros((3, D + 1), np.float32))
    with pytest.raises(DimensionMismatch):
        LearnedBinaryCodec(D, 1).fit(np.zeros((500, D + 1), np.float32))


def test_module_import_does_not_import_torch():
    code = "import sys, tiervec.codecs.learned; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
