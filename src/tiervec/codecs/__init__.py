"""Codecs: how a tier stores vectors. One module per algorithm; ``make_codec`` builds by name.

Names compose reducers and a codec (``pca256+float8``); see :mod:`tiervec.codecs.registry`.
"""

from __future__ import annotations

from tiervec.codecs.base import Codec, Scanner
from tiervec.codecs.binary import BinaryCodec, HammingCodec
from tiervec.codecs.float8 import Float8Codec, Float8E5M2Codec
from tiervec.codecs.floats import Float16Codec, Float32Codec
from tiervec.codecs.registry import CODECS, VALID, canonical_name, make_codec
from tiervec.codecs.scalar import Int4Codec, Int8Codec

__all__ = [
    "CODECS",
    "VALID",
    "BinaryCodec",
    "Codec",
    "Float8Codec",
    "Float8E5M2Codec",
    "Float16Codec",
    "Float32Codec",
    "HammingCodec",
    "Int4Codec",
    "Int8Codec",
    "Scanner",
    "canonical_name",
    "make_codec",
]
