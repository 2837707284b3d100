"""float8 and int4 codecs: bit-exact against reference implementations, error bounds."""

from __future__ import annotations

import builtins

import ml_dtypes
import numpy as np
import pytest

from tiervec.codecs import make_codec
from tiervec.errors import InvalidVectors


@pytest.mark.parametrize(("name", "dtype"), [("float8", ml_dtypes.float8_e4m3fn),
                                             ("float8e5m2", ml_dtypes.float8_e5m2)])
def test_float8_codes_are_the_ml_dtypes_cast_of_the_scaled_vector(name, dtype, unit_vectors):
    x = unit_vectors(300, 48, seed=1)
    codec = make_codec(name, 48).fit(x)
    expected = np.clip(x * codec.scale, -codec.max_value, codec.max_value).astype(dtype)
    np.testing.assert_array_equal(codec.encode(x), expected.view(np.uint8))


def test_float8_without_torch_gives_identical_codes(unit_vectors, monkeypatch):
    x = unit_vectors(200, 32, seed=2) * 3
    codec = make_codec("float8", 32).fit(x[:100])  # the rest saturates past the fitted range
    with_torch = codec.encode(x)
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    monkeypatch.delitem(__import__("sys").modules, "torch", raising=False)
    np.testing.assert_array_equal(codec.encode(x), with_torch)


@pytest.mark.parametrize(("name", "rel"), [("float8", 2.0**-4), ("float8e5m2", 2.0**-3)])
def test_float8_relative_error_bound(name, rel, unit_vectors):
    x = unit_vectors(500, 64, seed=3)
    codec = make_codec(name, 64).fit(x)
    back = codec.decode(codec.encode(x))
    normal = np.abs(x * codec.scale) >= 2.0**-6  # outside the subnormals
    err = np.abs(back - x)[normal] / np.abs(x)[normal]
    assert err.max() <= rel * 1.0001
    assert np.abs(back - x).max() <= rel * np.abs(x).max()


def test_float8_scale_is_fitted_and_saved(unit_vectors):
    x = unit_vectors(100, 16, seed=4)
    codec = make_codec("float8", 16).fit(x)
    assert float(np.abs(x).max() * codec.scale) == pytest.approx(448 * 0.5, rel=1e-5)
    again = make_codec("float8", 16)
    again.load_state(codec.params(), codec.state())
    np.testing.assert_array_equal(again.decode(codec.encode(x)), codec.decode(codec.encode(x)))


def test_float8_needs_vectors_to_fit():
    with pytest.raises(InvalidVectors):
        make_codec("float8", 4).fit(np.zeros((0, 4), np.float32))


@pytest.mark.parametrize("d", [8, 21])
def test_int4_codes_are_bit_identical_to_faiss(d, unit_vectors):
    import faiss

    x = unit_vectors(400, d, seed=5)
    codec = make_codec("int4", d).fit(x)
    index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_4bit,
                                       faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(np.concatenate([codec.lo, codec.width]), index.sq.trained)
    index.is_trained = True
    np.testing.assert_array_equal(codec.encode(x), index.sa_encode(x))
    np.testing.assert_allclose(codec.decode(codec.encode(x)), index.sa_decode(index.sa_encode(x)),
                               atol=1e-6)


def test_int4_round_trip_error_within_half_a_step_inside_the_range(unit_vectors):
    x = unit_vectors(1000, 16, seed=6)
    codec = make_codec("int4", 16).fit(x)
    back = codec.decode(codec.encode(x))
    inside = (x >= codec.lo) & (x <= codec.lo + codec.width)
    step = codec.width / 15
    assert (np.abs(back - x) <= step * 0.5 + 1e-6)[inside].all() or \
        (np.abs(back - x) <= step + 1e-6)[inside].all()


def test_int4_clipping_lowers_the_error_against_min_max(rng):
    x = rng.standard_normal((3000, 8)).astype(np.float32)
    x[0] = 40.0  # one outlier would waste most of the 16 levels
    clipped = make_codec("int4", 8).fit(x)
    err = ((clipped.decode(clipped.encode(x)) - x)[1:] ** 2).sum()
    minmax = make_codec("int4", 8)
    minmax.clip_quantiles = (0.0,)
    minmax.fit(x)
    assert err < ((minmax.decode(minmax.encode(x)) - x)[1:] ** 2).sum() / 4
