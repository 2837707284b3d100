"""Binary codes: one sign bit per dimension, 32x smaller than float32.

Codes are ``np.packbits(x > 0, axis=1, bitorder="little")``: bit ``i`` of byte ``j`` is the sign
of dimension ``8j + i``. Two ways to score them:

- ``binary`` (asymmetric): the float query against the signs,
  ``score(q, c) = <q, s(c)> / sqrt(d)`` with ``s(c)`` in ``{-1, +1}^d``. Far better candidates than
  Hamming at the same 1 bit/dim. The exhaustive scan runs on FAISS's 4-bit fast-scan PQ kernel
  (:mod:`tiervec.codecs._fastscan`): SIMD table look-ups instead of floats.
- ``hamming`` (symmetric): the query is binarised too,
  ``score = (d - 2 * hamming(q_bits, c)) / d``; FAISS ``IndexBinaryFlat`` scans it.
"""

from __future__ import annotations

import math

import numpy as np

from tiervec.codecs._faiss import faiss_module
from tiervec.codecs._fastscan import SignFastScanScanner
from tiervec.codecs.base import Codec, Scanner


def pack_signs(x: np.ndarray) -> np.ndarray:
    """``(n, ceil(d / 8))`` uint8 sign bits of ``x`` (bit set where ``x > 0``), little bit order."""
    return np.packbits(x > 0, axis=1, bitorder="little")


def unpack_signs(codes: np.ndarray, dim: int) -> np.ndarray:
    """``(n, dim)`` float32 in ``{-1, +1}`` from packed sign bits."""
    bits = np.unpackbits(codes, axis=1, count=dim, bitorder="little")
    return bits.astype(np.float32) * 2.0 - 1.0


class BinaryCodec(Codec):
    """Sign bits scored asymmetrically: float query x sign codes (FAISS fast-scan kernel)."""

    name = "binary"

    code_dtype = np.dtype(np.uint8)

    @property
    def code_width(self) -> int:
        return (self.dim + 7) // 8

    @property
    def scale(self) -> float:
        """``1 / sqrt(d)``: decoded vectors have unit norm."""
        return 1.0 / math.sqrt(self.dim)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return pack_signs(self._check(x))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return unpack_signs(codes, self.dim) * np.float32(self.scale)

    def scanner(self) -> Scanner:
        return SignFastScanScanner(np.full((1, self.dim), self.scale, np.float32))


class HammingCodec(BinaryCodec):
    """Sign bits scored symmetrically: the query is binarised, scores count agreeing signs."""

    name = "hamming"

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        # (d - 2 * hamming) / d is the inner product of the +-1 sign vectors over d (exact in
        # float32), which BLAS computes without an (n_queries, n, width) intermediate
        signs = unpack_signs(pack_signs(queries), self.dim)
        return (signs @ unpack_signs(codes, self.dim).T) / np.float32(self.dim)

    def score_candidates(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q = pack_signs(queries)
        diff = np.bitwise_count(q[:, None, :] ^ codes).sum(axis=2, dtype=np.int32)
        return ((self.dim - 2 * diff) / self.dim).astype(np.float32)

    def scanner(self) -> Scanner:
        return HammingScanner(self.dim)


class HammingScanner:
    """FAISS ``IndexBinaryFlat`` over packed sign bits."""

    def __init__(self, dim: int) -> None:
        faiss = faiss_module()
        self.dim = dim
        self.index = faiss.IndexBinaryFlat(((dim + 7) // 8) * 8)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, codes: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(codes, dtype=np.uint8))

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        dist, rows = self.index.search(pack_signs(queries), m)
        rows = rows.astype(np.int64)
        scores = ((self.dim - 2 * dist.astype(np.float32)) / self.dim).astype(np.float32)
        scores[rows < 0] = -np.inf
        return scores, rows
