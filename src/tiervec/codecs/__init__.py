"""Codecs: how a tier stores vectors. One module per algorithm; ``make_codec`` builds by name."""

from __future__ import annotations

from tiervec.codecs.base import Codec, Scanner
from tiervec.codecs.binary import BinaryCodec, HammingCodec
from tiervec.codecs.floats import Float16Codec, Float32Codec
from tiervec.codecs.int8 import Int8Codec
from tiervec.errors import UnknownCodec

#: Every codec by name, in order of decreasing size.
CODECS: dict[str, type[Codec]] = {
    c.name: c for c in (Float32Codec, Float16Codec, Int8Codec, BinaryCodec, HammingCodec)
}


def make_codec(name: str, dim: int) -> Codec:
    """A new (unfitted) codec ``name`` for ``dim``-dimensional vectors."""
    try:
        cls = CODECS[name]
    except KeyError:
        raise UnknownCodec(
            f"unknown codec {name!r}; valid codecs: {', '.join(CODECS)}"
        ) from None
    return cls(dim)


__all__ = [
    "CODECS",
    "BinaryCodec",
    "Codec",
    "Float16Codec",
    "Float32Codec",
    "HammingCodec",
    "Int8Codec",
    "Scanner",
    "make_codec",
]
