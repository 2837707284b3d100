"""Scanning sign codes against float queries on FAISS's 4-bit fast-scan PQ kernel.

A vector coded as ``L`` levels of sign bits ``s_l in {-1, +1}^d`` with per-dimension scales
``a_l`` decodes to ``x' = sum_l a_l * s_l``, so ``<q, x'> = sum_l <a_l * q, s_l>``. Every 4
dimensions of every level are one PQ sub-quantizer whose 16 centroids are the 16 sign patterns
times that level's scales: a packed sign byte holds two PQ codes as it is, and FAISS's SIMD
look-up-table kernel scores the float query against the codes without decoding them. Used by the
``binary``, residual ``bin<b>`` and learned ``lbin<b>`` codecs.
"""

from __future__ import annotations

import numpy as np

from tiervec.codecs._faiss import faiss_module


class SignFastScanScanner:
    """Exhaustive asymmetric scan of ``L``-level sign codes ``(n, L * ceil(d / 8))`` uint8.

    ``scales`` is ``(L, d)``: the scale of every dimension at every level. Query look-up tables
    are quantised to 8 bits by FAISS, so scores are approximate (rescore with a later tier).
    """

    def __init__(self, scales: np.ndarray) -> None:
        faiss = faiss_module()
        scales = np.atleast_2d(np.asarray(scales, np.float32))
        self.levels, self.dim = scales.shape
        width = (self.dim + 7) // 8
        self.padded_dim = width * 8
        padded = np.zeros((self.levels, self.padded_dim), np.float32)
        padded[:, : self.dim] = scales
        m = self.levels * self.padded_dim // 4
        pq = faiss.IndexPQ(self.levels * self.padded_dim, m, 4, faiss.METRIC_INNER_PRODUCT)
        patterns = ((np.arange(16)[:, None] >> np.arange(4)[None, :]) & 1) * 2.0 - 1.0
        # centroid c of sub-quantizer j: the sign pattern of c times the scales of its 4 dims
        centroids = patterns[None, :, :] * padded.reshape(m, 1, 4)
        faiss.copy_array_to_vector(centroids.astype(np.float32).ravel(), pq.pq.centroids)
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
        q = np.zeros((len(queries), self.levels, self.padded_dim), np.float32)
        q[:, :, : self.dim] = np.asarray(queries, np.float32)[:, None, :]
        scores, rows = self.index.search(q.reshape(len(queries), -1), m)
        rows = rows.astype(np.int64)
        scores = scores.astype(np.float32)
        scores[rows < 0] = -np.inf
        return _fill_dropped(scores, rows, self.ntotal)


def _fill_dropped(
    scores: np.ndarray, rows: np.ndarray, ntotal: int
) -> tuple[np.ndarray, np.ndarray]:
    """Asked for (nearly) every code, FAISS's fast-scan kernel leaves the worst few out (``-1``):
    put the missing rows in those slots, ranked last with the lowest score found."""
    want = min(rows.shape[1], ntotal)
    for i in np.flatnonzero((rows[:, :want] < 0).any(axis=1)):
        found = rows[i][rows[i] >= 0]
        missing = np.setdiff1d(np.arange(ntotal), found)[: want - len(found)]
        floor = scores[i][rows[i] >= 0].min() if len(found) else 0.0
        rows[i, len(found) : len(found) + len(missing)] = missing
        scores[i, len(found) : len(found) + len(missing)] = floor
    return scores, rows
