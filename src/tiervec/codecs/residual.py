"""Multi-bit residual binary codes (Tencent's BEBR): ``b`` sign vectors whose weighted sum
approximates the float vector.

Level 1 is the sign of ``x``, level 2 the sign of the residual, and so on, each with a scale
fitted on the corpus (the least-squares scale of a sign vector is the mean absolute residual)::

    r_0 = x,   s_l = sign(r_{l-1}),   r_l = r_{l-1} - a_l * s_l,   x' = sum_l a_l * s_l

``b`` bits per dimension (``b`` = 1..4), codes level after level (``b * ceil(d / 8)`` bytes).

- ``bin<b>`` scores asymmetrically, ``<q, x'>`` with the float query; the exhaustive scan runs
  on FAISS's fast-scan kernel (:mod:`tiervec.codecs._fastscan`).
- ``bin<b>sym`` is BEBR's symmetric distance (SDC): the query is coded too, and
  ``<q', x'> = sum_{l,m} a_l a_m (d - 2 popcount(q_l xor x_m))`` comes from popcounts alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tiervec.codecs._fastscan import SignFastScanScanner
from tiervec.codecs.base import BlockScanner, Codec, Scanner
from tiervec.codecs.binary import unpack_signs
from tiervec.errors import InvalidTierSpec, InvalidVectors

MAX_BITS = 4
#: Rows encoded at a time (bounds the temporaries of the residual loop).
CHUNK = 16384


class SignLevelsCodec(Codec):
    """``b`` levels of sign bits ``s_l`` decoding to ``sum_l a_l * s_l``, scored against the
    float query; ``scales`` holds ``a_l`` per level (``(b,)``) or per level and dimension
    (``(b, d)``). Subclasses choose each level's signs with :meth:`_logits` (``r`` by default:
    plain residual binarization)."""

    trainable = True
    code_dtype = np.dtype(np.uint8)
    family = "bin"
    kind = "residual binary"

    def __init__(self, dim: int, bits: int) -> None:
        if not 1 <= bits <= MAX_BITS:
            valid = ", ".join(f"{self.family}{b}" for b in range(1, MAX_BITS + 1))
            raise InvalidTierSpec(
                f"{self.family}{bits}: {self.kind} codes take 1 to {MAX_BITS} bits per "
                f"dimension (valid: {valid})"
            )
        super().__init__(dim)
        self.bits = bits
        self.name = f"{self.family}{bits}"  # type: ignore[misc]
        self.scales = np.zeros(bits, np.float32)

    @property
    def width(self) -> int:
        """Bytes of one level."""
        return (self.dim + 7) // 8

    @property
    def code_width(self) -> int:
        return self.bits * self.width

    def _logits(self, level: int, r: np.ndarray) -> np.ndarray:
        """What level ``level`` takes the sign of, given the residual ``r``."""
        return r

    def encode(self, x: np.ndarray) -> np.ndarray:
        self._require_fitted()
        x = self._check(x)
        codes = np.empty((len(x), self.code_width), np.uint8)
        for start in range(0, len(x), CHUNK):
            r = x[start : start + CHUNK].copy()
            out = codes[start : start + CHUNK]
            for level in range(self.bits):
                positive = self._logits(level, r) > 0
                out[:, level * self.width : (level + 1) * self.width] = np.packbits(
                    positive, axis=1, bitorder="little")
                if level + 1 < self.bits:
                    r -= self.scales[level] * np.where(positive, np.float32(1), np.float32(-1))
        return codes

    def levels(self, codes: np.ndarray) -> list[np.ndarray]:
        """The packed sign bytes of each level, ``(n, ceil(d / 8))`` each."""
        return [codes[..., i * self.width : (i + 1) * self.width] for i in range(self.bits)]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        out = np.zeros((len(codes), self.dim), np.float32)
        for a, level in zip(self.scales, self.levels(codes), strict=True):
            out += a * unpack_signs(level, self.dim)
        return out

    def scanner(self) -> Scanner:
        self._require_fitted()
        scales = np.broadcast_to(np.asarray(self.scales, np.float32).reshape(self.bits, -1),
                                 (self.bits, self.dim))
        return SignFastScanScanner(np.ascontiguousarray(scales))


class ResidualBinaryCodec(SignLevelsCodec):
    """``b`` levels of residual sign bits (one scale per level), scored against the float
    query."""

    def fit(self, sample: np.ndarray) -> ResidualBinaryCodec:
        r = self._check(sample).copy()
        if len(r) == 0:
            raise InvalidVectors(f"the {self.name} codec needs at least one vector to fit")
        for level in range(self.bits):
            a = np.float32(np.abs(r).mean())
            self.scales[level] = a if a > 0 else np.float32(1e-12)
            r -= self.scales[level] * np.where(r > 0, np.float32(1), np.float32(-1))
        self.fitted = True
        return self

    def params(self) -> dict[str, Any]:
        return {"bits": self.bits, "scales": [float(a) for a in self.scales]}

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.scales = np.asarray(params["scales"], np.float32)
        self.fitted = True


class SymmetricResidualBinaryCodec(ResidualBinaryCodec):
    """``bin<b>sym``: BEBR's symmetric distance; the query is residual-binarised too."""

    def __init__(self, dim: int, bits: int) -> None:
        super().__init__(dim, bits)
        self.name = f"bin{bits}sym"  # type: ignore[misc]

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        # The SDC score is <decode(encode(q)), decode(x)>: BLAS computes it exactly in float32.
        return (self.decode(self.encode(queries)) @ self.decode(codes).T).astype(np.float32)

    def score_candidates(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q_levels = self.levels(self.encode(queries))
        x_levels = self.levels(codes)
        out = np.zeros(codes.shape[:2], np.float32)
        for a, q in zip(self.scales, q_levels, strict=True):
            for b, x in zip(self.scales, x_levels, strict=True):
                diff = np.bitwise_count(q[:, None, :] ^ x).sum(axis=2, dtype=np.int32)
                out += (a * b) * (self.dim - 2 * diff).astype(np.float32)
        return out

    def scanner(self) -> Scanner:
        self._require_fitted()
        return BlockScanner(self)

