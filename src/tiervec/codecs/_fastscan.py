"""Scanning sign codes against float queries on FAISS's 4-bit fast-scan PQ kernel.

A vector coded as ``L`` levels of sign bits ``s_l in {-1, +1}^d`` with per-dimension scales
``a_l`` decodes to ``x' = sum_l a_l * s_l``, so ``<q, x'> = sum_l <a_l * q, s_l>``. Every 4
dimensions of every level are one PQ sub-quantizer whose 16 centroids are the 16 sign patterns
times that level's scales: a packed sign byte holds two PQ codes as it is, and FAISS's SIMD
look-up-table kernel scores the float query against the codes without decoding them. Used by the
``binary``, residual ``bin<b>`` and learned ``lbin<b>`` codecs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tiervec.codecs._faiss import faiss_module
from tiervec.codecs.base import empty_top


def set_sign_centroids(pq: Any, scales: np.ndarray) -> None:
    """Make the 4-bit product quantizer ``pq`` (one sub-quantizer per 4 dimensions) a sign
    code: centroid ``c`` of sub-quantizer ``j`` is the sign pattern of ``c``'s bits times the
    ``scales`` (one per dimension) of dimensions ``4j .. 4j + 3``."""
    faiss = faiss_module()
    patterns = ((np.arange(16)[:, None] >> np.arange(4)[None, :]) & 1) * 2.0 - 1.0
    centroids = patterns[None, :, :] * np.asarray(scales, np.float32).reshape(-1, 1, 4)
    faiss.copy_array_to_vector(centroids.astype(np.float32).ravel(), pq.centroids)
    if pq.transposed_centroids.size():
        pq.sync_transposed_centroids()


class SignFastScanScanner:
    """Exhaustive asymmetric scan of ``L``-level sign codes ``(n, L * ceil(d / 8))`` uint8.

    ``scales`` is ``(L, d)``: the scale of every dimension at every level. Query look-up tables
    are quantised to 8 bits by FAISS, so scores are approximate (rescore with a later tier).
    """

    def __init__(self, scales: np.ndarray) -> None:
        faiss = faiss_module()
        scales = np.atleast_2d(np.asarray(scales, np.float32))
        self.scales = scales
        self.levels, self.dim = scales.shape
        width = (self.dim + 7) // 8
        self.padded_dim = width * 8
        padded = np.zeros((self.levels, self.padded_dim), np.float32)
        padded[:, : self.dim] = scales
        m = self.levels * self.padded_dim // 4
        pq = faiss.IndexPQ(self.levels * self.padded_dim, m, 4, faiss.METRIC_INNER_PRODUCT)
        set_sign_centroids(pq.pq, padded)
        pq.is_trained = True
        self.index = faiss.IndexPQFastScan(pq, 32)
        self.code_size = self.levels * width
        self._layout = _BlockLayout.of(self.index.get_CodePacker(), self.code_size)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def _table(self) -> np.ndarray:
        """The packed codes, as a numpy view of FAISS's buffer (valid until the next add)."""
        faiss = faiss_module()
        table = self.index.codes
        return faiss.rev_swig_ptr(table.get(), table.size())

    def add(self, codes: np.ndarray) -> None:
        layout = self._layout
        n0 = self.ntotal
        first_block, kept = divmod(n0, layout.nvec)
        codes = np.asarray(codes, np.uint8).reshape(-1, self.code_size)
        if not len(codes):
            return
        if kept:  # re-pack the partially filled last block together with the new codes
            old = layout.unpack(self._table(), np.arange(first_block * layout.nvec, n0))
            codes = np.concatenate([old, codes])
        n_total = first_block * layout.nvec + len(codes)
        n_blocks = -(-n_total // layout.nvec)
        self.index.codes.resize(n_blocks * layout.block_size)
        self._table()[first_block * layout.block_size :] = layout.pack(codes)
        self.index.ntotal = n_total
        self.index.ntotal2 = n_blocks * layout.nvec

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """The codes of ``rows`` ``(n, code_size)``, read back from the packed blocks."""
        return self._layout.unpack(self._table(), np.asarray(rows, np.int64))

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros((len(queries), self.levels, self.padded_dim), np.float32)
        q[:, :, : self.dim] = np.asarray(queries, np.float32)[:, None, :]
        scores, rows = self.index.search(q.reshape(len(queries), -1), m)
        rows = rows.astype(np.int64)
        scores = scores.astype(np.float32)
        scores[rows < 0] = -np.inf
        return _fill_dropped(scores, rows, self.ntotal)

    def search_subset(
        self, queries: np.ndarray, m: int, rows: np.ndarray, source: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` of ``rows`` only (a :class:`~tiervec.codecs.base.SubsetScanner`: cheaper than
        a full scan when they are a small share of the rows): their codes (from ``source``, a
        :class:`~tiervec.search.CodeSource`, or else unpacked from this scanner's blocks) are
        copied into a scanner of their own."""
        part = SignFastScanScanner(self.scales)
        part.add(self.codes(rows) if source is None else source.take(rows))
        out_s, out_r = empty_top(len(queries), m)
        scores, found = part.search(queries, min(m, len(rows)))
        out_s[:, : found.shape[1]] = scores
        out_r[:, : found.shape[1]] = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
        return out_s, out_r


class _BlockLayout:
    """Where FAISS's fast-scan packing puts each 4-bit code of a block of ``nvec`` vectors,
    learned once from the packer itself, so that whole tables are packed and read with numpy
    (FAISS's Python API packs one block per call)."""

    _cache: ClassVar[dict[tuple[int, int, int], _BlockLayout]] = {}

    def __init__(self, packer: object, code_size: int) -> None:
        faiss = faiss_module()
        self.nvec = int(packer.nvec)  # type: ignore[attr-defined]
        self.block_size = int(packer.block_size)  # type: ignore[attr-defined]
        self.code_size = code_size
        nibbles = self.nvec * code_size * 2
        index = np.arange(nibbles)
        held = np.zeros(self.block_size * 2, np.int64)  # packed nibble -> input nibble
        out = np.empty(self.block_size, np.uint8)
        digit = 0
        while 16**digit < nibbles:  # pack the input nibbles' indices, one hex digit at a time
            nib = (index >> (4 * digit)) & 15
            codes = (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)
            packer.pack_all(faiss.swig_ptr(codes), faiss.swig_ptr(out))  # type: ignore[attr-defined]
            held += np.stack([out & 15, out >> 4], axis=1).ravel().astype(np.int64) << (4 * digit)
            digit += 1
        # FAISS's layout: for each 4-bit code position, the block's vectors in one fixed order;
        # so packing is a permutation of the block's rows and a transpose
        self.order = held[: self.nvec] // (code_size * 2)
        vec, pos = np.meshgrid(self.order, np.arange(code_size * 2))
        if not np.array_equal(held, (vec * code_size * 2 + pos).ravel()):
            raise RuntimeError("unexpected FAISS fast-scan block layout")
        self.where = np.argsort(held).reshape(self.nvec, code_size * 2)  # input -> packed

    @classmethod
    def of(cls, packer: object, code_size: int) -> _BlockLayout:
        key = (int(packer.nvec), int(packer.block_size), code_size)  # type: ignore[attr-defined]
        if key not in cls._cache:
            cls._cache[key] = cls(packer, code_size)
        return cls._cache[key]

    def pack(self, codes: np.ndarray) -> np.ndarray:
        """Blocks for ``codes`` ``(n, code_size)`` (the last block padded with zero codes)."""
        n_blocks = -(-len(codes) // self.nvec)
        padded = np.zeros((n_blocks * self.nvec, self.code_size), np.uint8)
        padded[: len(codes)] = codes
        nib = np.stack([padded & 15, padded >> 4], axis=2)  # (n, 2 * code_size) nibbles
        nib = nib.reshape(n_blocks, self.nvec, -1)[:, self.order].transpose(0, 2, 1)
        nib = np.ascontiguousarray(nib).reshape(n_blocks, -1)
        return (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8).ravel()

    def unpack(self, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The codes of ``rows`` from packed ``table``."""
        block, slot = np.divmod(rows, self.nvec)
        where = self.where[slot]  # (n, 2 * code_size) packed nibble positions in the block
        nib = (table[block[:, None] * self.block_size + where // 2] >> (4 * (where % 2))) & 15
        return (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8)


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
