"""Codec names: ``[reducer+]...codec``, parsed into codec objects.

::

    name    := ( reducer "+" )* codec  |  codec "(" reducer ( "+" reducer )* ")"
    reducer := center | rot | itq | pca<k> | trunc<k> | opq<M>
    codec   := float32 | float16 | float8 | float8e5m2 | int8 | int4 | binary | hamming
             | bin<b> | bin<b>sym | lbin<b> | pq<M> | opq<M> | rabitq | rabitq<b>

``bin2(pca256)`` is another spelling of ``pca256+bin2`` (the canonical one). A bare ``opq<M>``
codec means ``opq<M>+pq<M>``. Reducers apply left to right, each to the output of the last.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tiervec.codecs.base import Codec
from tiervec.codecs.binary import BinaryCodec, HammingCodec
from tiervec.codecs.float8 import Float8Codec, Float8E5M2Codec
from tiervec.codecs.floats import Float16Codec, Float32Codec
from tiervec.codecs.pq import OPQRotation, PQCodec, RaBitQCodec
from tiervec.codecs.reduced import ReducedCodec
from tiervec.codecs.reducers import REDUCERS, Reducer, make_reducer
from tiervec.codecs.residual import ResidualBinaryCodec, SymmetricResidualBinaryCodec
from tiervec.codecs.scalar import Int4Codec, Int8Codec
from tiervec.errors import InvalidTierSpec, UnknownCodec

#: Codecs without parameters, by name, in order of decreasing size.
CODECS: dict[str, type[Codec]] = {
    c.name: c
    for c in (Float32Codec, Float16Codec, Float8Codec, Float8E5M2Codec, Int8Codec, Int4Codec,
              BinaryCodec, HammingCodec)
}


def _learned(dim: int, bits: int) -> Codec:
    from tiervec.codecs.learned import LearnedBinaryCodec

    return LearnedBinaryCodec(dim, bits)


#: Codec families that take a number: regex -> factory(dim, number).
FAMILIES: dict[str, Callable[[int, int], Codec]] = {
    r"bin(\d+)": ResidualBinaryCodec,
    r"bin(\d+)sym": SymmetricResidualBinaryCodec,
    r"lbin(\d+)": _learned,
    r"pq(\d+)": PQCodec,
    r"rabitq(\d*)": lambda dim, bits: RaBitQCodec(dim, bits or 1),
}
_REDUCER = re.compile(r"^(center|rot|itq|pca|trunc|opq)(\d*)$")
_PARENS = re.compile(r"^([a-z0-9_]+)\((.+)\)$")

#: How the names read in help and error messages.
VALID = (
    "float32, float16, float8, float8e5m2, int8, int4, binary, hamming, bin<b>, bin<b>sym, "
    "lbin<b>, pq<M>, opq<M>, rabitq[<b>], each optionally after reducers joined by '+' "
    "(center, rot, itq, pca<k>, trunc<k>, opq<M>), e.g. 'pca256+float8'"
)


def canonical_name(name: str) -> str:
    """The canonical spelling of a codec name (``bin2(pca256)`` -> ``pca256+bin2``)."""
    text = name.strip().replace(" ", "").lower() if isinstance(name, str) else ""
    if not text:
        raise UnknownCodec(f"empty codec name {name!r}; valid codecs: {VALID}")
    parens = _PARENS.match(text)
    if parens:
        text = f"{parens[2]}+{parens[1]}"
    parts = text.split("+")
    if parts[-1].startswith("opq") and _REDUCER.match(parts[-1]):
        parts.append("pq" + parts[-1][3:])
    if parts[-1] == "rabitq1":
        parts[-1] = "rabitq"
    for part in parts[:-1]:
        if not _REDUCER.match(part):
            _unknown_reducer(part, name)
    if not _is_codec(parts[-1]):
        _unknown_codec(parts[-1], name)
    return "+".join(parts)


def _is_codec(text: str) -> bool:
    return text in CODECS or any(re.fullmatch(p, text) for p in FAMILIES)


def _unknown_reducer(text: str, full: str) -> None:
    known = ", ".join(f"{r}<k>" if r in ("pca", "trunc") else r for r in REDUCERS)
    raise UnknownCodec(
        f"unknown reducer {text!r} in codec {full!r}: only the last part of a '+' chain is "
        f"a codec; reducers are {known}, opq<M>"
    )


def _unknown_codec(text: str, full: str) -> None:
    if _REDUCER.match(text):
        raise InvalidTierSpec(
            f"codec {full!r} ends with the reducer {text!r}: put a codec last, e.g. '{full}+int8'"
        )
    where = "" if text == full else f" in {full!r}"
    raise UnknownCodec(f"unknown codec {text!r}{where}; valid codecs: {VALID}")


def make_codec(name: str, dim: int) -> Codec:
    """A new (unfitted) codec called ``name`` (see the module docstring) for ``dim`` inputs."""
    canonical = canonical_name(name)
    *reducer_names, codec_name = canonical.split("+")
    reducers: list[Reducer] = []
    current = dim
    for text in reducer_names:
        reducer = _make_reducer(text, current, name)
        reducers.append(reducer)
        current = reducer.dim_out
    inner = _make_inner(codec_name, current, name)
    return ReducedCodec(reducers, inner) if reducers else inner


def _make_reducer(text: str, dim: int, full: str) -> Reducer:
    match = _REDUCER.match(text)
    assert match is not None  # checked by canonical_name
    family, size = match[1], int(match[2]) if match[2] else None
    if family == "opq":
        return OPQRotation(dim, size)
    return make_reducer(family, dim, size)


def _make_inner(text: str, dim: int, full: str) -> Codec:
    cls = CODECS.get(text)
    if cls is not None:
        return cls(dim)
    for pattern, factory in FAMILIES.items():
        match = re.fullmatch(pattern, text)
        if match:
            return factory(dim, int(match[1]) if match[1] else 0)
    raise AssertionError(f"codec {text!r} passed canonical_name but matches no factory")
