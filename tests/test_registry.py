"""Codec names: parsing, canonical spellings, composition, and the errors for bad names."""

from __future__ import annotations

import pytest

from tiervec.codecs import canonical_name, make_codec
from tiervec.codecs.reduced import ReducedCodec
from tiervec.errors import InvalidTierSpec, UnknownCodec
from tiervec.search import Chain


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("float8", "float8"),
        ("bin2(pca256)", "pca256+bin2"),
        ("int8(center+rot)", "center+rot+int8"),
        (" PCA256 + Float8 ", "pca256+float8"),
        ("opq48", "opq48+pq48"),
        ("rabitq1", "rabitq"),
        ("rabitq2", "rabitq2"),
        ("trunc192+int8", "trunc192+int8"),
        ("bin3sym", "bin3sym"),
        ("lbin2", "lbin2"),
    ],
)
def test_canonical_names(name, canonical):
    assert canonical_name(name) == canonical


@pytest.mark.parametrize(
    ("name", "bytes_per_vector"),
    [
        ("pca256+float8", 256),
        ("trunc192+int8", 192),
        ("bin2(pca256)", 64),
        ("pca128+binary", 16),
        ("trunc100+int4", 50),
        ("pq48", 48),
        ("opq16", 16),
        ("rabitq", 56),
        ("center+itq+bin4", 192),
    ],
)
def test_composed_bytes_per_vector(name, bytes_per_vector):
    codec = make_codec(name, 384)
    assert codec.bytes_per_vector == bytes_per_vector
    assert codec.name == canonical_name(name)
    assert codec.dim == 384


def test_reducers_make_a_reduced_codec_whose_inner_dimension_is_the_last_output():
    codec = make_codec("center+pca64+trunc32+int8", 128)
    assert isinstance(codec, ReducedCodec)
    assert [r.dim_out for r in codec.reducers] == [128, 64, 32]
    assert codec.inner.dim == 32
    assert codec.trainable and not codec.fitted


def test_fixed_reducers_and_codec_need_no_fit():
    codec = make_codec("rot+trunc8+binary", 16)
    assert not codec.trainable and codec.fitted


@pytest.mark.parametrize(
    ("name", "error", "phrase"),
    [
        ("nope", UnknownCodec, "unknown codec 'nope'"),
        ("pca64+nope", UnknownCodec, "unknown codec 'nope' in 'pca64+nope'"),
        ("foo+int8", UnknownCodec, "unknown reducer 'foo'"),
        ("int8+pca64", UnknownCodec, "only the last part"),
        ("pca64", InvalidTierSpec, "put a codec last"),
        ("", UnknownCodec, "empty codec name"),
    ],
)
def test_bad_names_say_what_is_valid(name, error, phrase):
    with pytest.raises(error) as info:
        make_codec(name, 128)
    assert phrase in str(info.value)


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("pca512+int8", "between 1 and the input dimension 384"),
        ("trunc0+int8", "between 1 and the input dimension"),
        ("bin5", "1 to 4 bits"),
        ("bin0", "1 to 4 bits"),
        ("pq7", "must divide the dimension 384"),
        ("opq7", "must divide the dimension 384"),
        ("rabitq9", "1 to 4 bits"),
        ("center64+int8", "center takes no size"),
    ],
)
def test_bad_parameters_are_tier_spec_errors(name, phrase):
    with pytest.raises(InvalidTierSpec) as info:
        make_codec(name, 384)
    assert phrase in str(info.value)


def test_chains_take_composed_codecs_in_both_spellings():
    chain = Chain.parse("bin2(pca256)*10 -> int8*2 -> float32@disk")
    assert str(chain) == "pca256+bin2*10 -> int8*2 -> float32@disk"
    assert Chain.parse(str(chain)) == chain
    assert chain.tier_bytes(384) == [64, 384, 1536]
    assert chain.ram_bytes_per_vector(384) == 64 + 384
    assert chain.disk_bytes_per_vector(384) == 1536


def test_chain_with_unknown_codec_names_it():
    with pytest.raises(UnknownCodec) as info:
        Chain.parse("binary*4 -> nope@disk")
    assert "unknown codec 'nope'" in str(info.value)
