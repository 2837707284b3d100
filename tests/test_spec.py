"""Tier chain specs: parsing, canonical spelling, config objects, sizes, errors."""

from __future__ import annotations

import pytest

from tiervec.codecs import CODECS
from tiervec.errors import InvalidTierSpec, TiervecError, UnknownCodec
from tiervec.search import DEFAULT_CHAIN, DEFAULT_OVERSAMPLE, Chain, Location, Tier

BINARY_DISK = Chain(
    (
        Tier(codec="binary", oversample=4),
        Tier(codec="float32", location=Location.DISK),
    )
)


@pytest.mark.parametrize(
    "spec",
    [
        "binary*4 -> float32@disk",
        "binary*4->float32@disk",
        "  binary * 4  ->  float32 @ disk ",
        "binary@ram*4 -> float32@disk",
        "binary*4@ram -> float32@disk",
        "binary -> float32@disk",  # the default oversample is 4
    ],
)
def test_parse_binary_then_float32_on_disk(spec):
    chain = Chain.parse(spec)
    assert chain == BINARY_DISK
    assert str(chain) == "binary*4 -> float32@disk"


def test_parse_single_tier():
    chain = Chain.parse("int8@disk")
    assert chain == Chain((Tier(codec="int8", location=Location.DISK),))
    assert chain.tiers[0].location is Location.DISK
    assert str(chain) == "int8@disk"
    assert str(Chain.parse("float32")) == "float32"
    assert str(Chain.parse("float32@ram")) == "float32"  # ram is the default, not spelled


def test_parse_three_tiers():
    chain = Chain.parse("hamming*10 -> int8*3 -> float32@disk")
    assert chain.tiers == (
        Tier(codec="hamming", oversample=10),
        Tier(codec="int8", oversample=3),
        Tier(codec="float32", location="disk"),
    )
    assert chain.candidates(10) == [100, 30, 10]


@pytest.mark.parametrize(
    "spec",
    [
        "binary*4 -> float32@disk",
        "float16",
        "int8@disk",
        "hamming*16 -> binary*2 -> float32@disk",
        "binary@disk*3 -> float16@disk",
    ],
)
def test_canonical_form_round_trips(spec):
    chain = Chain.parse(spec)
    assert Chain.parse(str(chain)) == chain
    assert str(Chain.parse(str(chain))) == str(chain)


def test_default_chain_is_canonical():
    assert str(Chain.parse(DEFAULT_CHAIN)) == DEFAULT_CHAIN
    assert DEFAULT_OVERSAMPLE == 4


def test_parse_passes_a_chain_through():
    assert Chain.parse(BINARY_DISK) is BINARY_DISK


def test_tier_config_accepts_plain_strings():
    tier = Tier(codec="float16", location="disk", oversample=2)
    assert tier.location is Location.DISK
    assert tier == Tier(codec="float16", location=Location.DISK, oversample=2)
    assert Tier(codec="int8").location is Location.RAM


def test_tier_and_chain_are_frozen_and_keyword_only():
    tier = Tier(codec="binary")
    with pytest.raises(AttributeError):
        tier.codec = "int8"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Tier("binary")  # type: ignore[misc]
    chain = Chain([Tier(codec="binary"), Tier(codec="float32")])  # a list becomes a tuple
    assert isinstance(chain.tiers, tuple)
    assert hash(chain) == hash(Chain.parse("binary*4 -> float32"))


def test_tier_spec_spelling():
    assert Tier(codec="binary", oversample=8).spec() == "binary*8"
    assert Tier(codec="binary", oversample=8).spec(last=True) == "binary"
    assert Tier(codec="float32", location="disk").spec(last=True) == "float32@disk"


def test_candidates():
    assert BINARY_DISK.candidates(10) == [40, 10]
    assert BINARY_DISK.candidates(1) == [4, 1]
    assert Chain.parse("float32").candidates(7) == [7]


def test_sizes_for_384_dims():
    assert BINARY_DISK.ram_bytes_per_vector(384) == 48  # 384 bits
    assert BINARY_DISK.disk_bytes_per_vector(384) == 1536  # 384 float32
    assert BINARY_DISK.disk_reads_per_query(10) == 40  # binary passes 4 * 10 candidates


def test_sizes_of_a_three_tier_chain():
    chain = Chain.parse("hamming*10 -> int8@disk*3 -> float32@disk")
    assert chain.ram_bytes_per_vector(384) == 48
    assert chain.disk_bytes_per_vector(384) == 384 + 1536
    # int8 reads the 100 hamming candidates, float32 the 30 int8 ones.
    assert chain.disk_reads_per_query(10) == 100 + 30
    ram_only = Chain.parse("int8*4 -> float16")
    assert ram_only.ram_bytes_per_vector(20) == 20 + 40
    assert ram_only.disk_bytes_per_vector(20) == 0
    assert ram_only.disk_reads_per_query(10) == 0


def test_tier_bytes_per_vector():
    assert Tier(codec="binary").bytes_per_vector(20) == 3
    assert Tier(codec="float16").bytes_per_vector(20) == 40


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["", "   ", None, 42])
def test_empty_spec(spec):
    with pytest.raises(InvalidTierSpec, match="empty tier spec"):
        Chain.parse(spec)  # type: ignore[arg-type]


def test_unknown_codec_lists_valid_codecs():
    with pytest.raises(UnknownCodec) as info:
        Chain.parse("binry*4 -> float32@disk")
    error = info.value
    assert isinstance(error, InvalidTierSpec)
    assert isinstance(error, ValueError)
    assert isinstance(error, TiervecError)
    message = str(error)
    assert "'binry'" in message
    for name in CODECS:
        assert name in message


def test_unknown_codec_in_a_tier_object():
    with pytest.raises(UnknownCodec, match="valid codecs: float32"):
        Tier(codec="pq")


def test_unknown_location():
    with pytest.raises(InvalidTierSpec, match="'tape'") as info:
        Chain.parse("binary@tape -> float32")
    assert "ram" in str(info.value) and "disk" in str(info.value)
    with pytest.raises(InvalidTierSpec):
        Tier(codec="binary", location="ssd")


@pytest.mark.parametrize("factor", ["0", "x", "", "-2", "1.5"])
def test_bad_oversample(factor):
    with pytest.raises(InvalidTierSpec):
        Chain.parse(f"binary*{factor} -> float32")


def test_superscript_oversample_raises_invalid_tier_spec():
    with pytest.raises(InvalidTierSpec):
        Chain.parse("binary*² -> float32")


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "4"])
def test_bad_oversample_in_a_tier_object(value):
    with pytest.raises(InvalidTierSpec):
        Tier(codec="binary", oversample=value)


def test_oversample_on_the_last_tier():
    with pytest.raises(InvalidTierSpec, match="last tier"):
        Chain.parse("binary*4 -> float32@disk*2")
    with pytest.raises(InvalidTierSpec, match="last tier"):
        Chain.parse("float32*2")


@pytest.mark.parametrize(
    "spec",
    ["binary->->float32", "->float32", "binary->", "binary float32", "binary#4 -> float32",
     "Binary -> float32", "binary*4 => float32"],
)
def test_garbage(spec):
    with pytest.raises(InvalidTierSpec):
        Chain.parse(spec)


def test_chain_needs_tiers():
    with pytest.raises(InvalidTierSpec, match="needs a tier at least"):
        Chain(())
    with pytest.raises(InvalidTierSpec):
        Chain(("binary",))  # type: ignore[arg-type]
