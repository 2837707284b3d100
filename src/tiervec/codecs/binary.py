"""Binary codes: one sign bit per dimension, 32x smaller than float32.

Codes are ``np.packbits(x > 0, axis=1, bitorder="little")``: bit ``i`` of byte ``j`` is the sign
of dimension ``8j + i``. Two ways to score them:

- ``binary`` (asymmetric): the float query against the signs,
  ``score(q, c) = <q, s(c)> / sqrt(d)`` with ``s(c)`` in ``{-1, +1}^d``. Far better candidates than
  Hamming at the same 1 bit/dim. The exhaustive scan runs on FAISS's 4-bit fast-scan PQ kernel:
  every 4 dimensions are one sub-quantizer whose 16 centroids are the 16 sign patterns, so each
  code byte holds exactly two PQ codes, and the scan is SIMD table look-ups instead of floats.
- ``hamming`` (symmetric): the query is binarised too,
  ``score = (d - 2 * hamming(q_bits, c)) / d``; FAISS ``IndexBinaryFlat`` scans it.
"""

from __future__ import annotations

import math

import numpy as np

from tiervec.codecs._faiss import faiss_module
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
        return FastScanSignScanner(self.dim, self.scale)


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


class FastScanSignScanner:
    """Asymmetric sign-code scan on FAISS ``IndexPQFastScan`` (4-bit PQ, SIMD look-ups).

    The PQ has ``M = 2 * code_width`` sub-quantizers of 4 dimensions; centroid ``c`` of each is
    ``scale * (2 * bits(c) - 1)``, so the PQ code of a vector is its sign nibble and our packed
    sign bytes are valid PQ codes as they are. They are packed into FAISS's block layout
    directly (``CodePacker``): nothing is re-encoded. Query look-up tables are quantised to 8 bits
    by FAISS, so scores are approximate (rescore with a later tier for exact ones).
    """

    def __init__(self, dim: int, scale: float) -> None:
        faiss = faiss_module()
        self.dim = dim
        width = (dim + 7) // 8
        self.padded_dim = width * 8
        m = self.padded_dim // 4
        pq = faiss.IndexPQ(self.padded_dim, m, 4, faiss.METRIC_INNER_PRODUCT)
        patterns = (np.arange(16)[:, None] >> np.arange(4)[None, :]) & 1
        centroids = (patterns * 2.0 - 1.0) * scale
        faiss.copy_array_to_vector(
            np.tile(centroids[None], (m, 1, 1)).astype(np.float32).ravel(), pq.pq.centroids
        )
        pq.is_trained = True
        self.index = faiss.IndexPQFastScan(pq, 32)
        self._packer = self.index.get_CodePacker()

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, codes: np.ndarray) -> None:
        faiss = faiss_module()
        packer, table = self._packer, self.index.codes
        nvec, block_size = int(packer.nvec), int(packer.block_size)
        n0 = self.ntotal
        first_block, kept = divmod(n0, nvec)
        if kept:  # re-pack the partially filled last block together with the new codes
            block = faiss.rev_swig_ptr(table.get(), table.size())[first_block * block_size :]
            old = np.empty((kept, codes.shape[1]), np.uint8)
            for i in range(kept):
                packer.unpack_1_c(faiss.swig_ptr(block), i, faiss.swig_ptr(old[i]))
            codes = np.concatenate([old, codes])
        n_total = first_block * nvec + len(codes)
        n_blocks = -(-n_total // nvec)
        padded = np.zeros(((n_blocks - first_block) * nvec, codes.shape[1]), np.uint8)
        padded[: len(codes)] = codes
        table.resize(n_blocks * block_size)
        out = faiss.rev_swig_ptr(table.get(), n_blocks * block_size)
        buf = np.empty(block_size, np.uint8)
        for b in range(n_blocks - first_block):
            packer.pack_all(faiss.swig_ptr(padded[b * nvec : (b + 1) * nvec]), faiss.swig_ptr(buf))
            start = (first_block + b) * block_size
            out[start : start + block_size] = buf
        self.index.ntotal = n_total
        self.index.ntotal2 = n_blocks * nvec

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros((len(queries), self.padded_dim), np.float32)
        q[:, : self.dim] = queries
        scores, rows = self.index.search(q, m)
        rows = rows.astype(np.int64)
        scores = scores.astype(np.float32)
        scores[rows < 0] = -np.inf
        return scores, rows
