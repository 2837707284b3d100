"""An HNSW graph (FAISS) over the compressed codes of a chain's first tier.

``binary@hnsw*10 -> float32@disk`` walks a graph over the 1-bit codes (FAISS
``IndexBinaryHNSW``, Hamming distance) instead of scanning every code, and rescores the
candidates from disk as usual. Codecs whose exhaustive kernel is a FAISS flat-codes index
(``int8``, ``int4``, ``float16``, ``float32``) keep exactly those codes as the graph's
storage (``IndexHNSW`` over that index): the graph adds about ``8 * M`` bytes per vector.

Filtered search applies the allowed-rows bitmap inside the graph traversal (FAISS
``IDSelectorBitmap``) and widens ``efSearch`` until every query has enough allowed results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tiervec.codecs._faiss import FlatCodesScanner, faiss_module
from tiervec.codecs.base import Codec, empty_top
from tiervec.codecs.binary import BinaryCodec, pack_signs
from tiervec.errors import InvalidTierSpec

#: Graph degree (FAISS ``M``): level-0 nodes keep ``2 * M`` neighbours.
HNSW_M = 32
EF_CONSTRUCTION = 64
#: ``efSearch`` is at least this, and at least twice the candidates asked for.
EF_SEARCH_MIN = 64


def graph_bytes_per_vector(m: int = HNSW_M) -> int:
    """RAM the graph adds per vector (level-0 neighbour lists, 4-byte ids)."""
    return 8 * m


class HNSWScanner:
    """Approximate top-``m`` over a tier's codes through an HNSW graph (the Scanner protocol)."""

    def __init__(self, codec: Codec, m: int = HNSW_M, index: Any = None) -> None:
        faiss = faiss_module()
        self.codec = codec
        self.binary = isinstance(codec, BinaryCodec)
        if index is not None:
            self.index = index
        elif self.binary:
            self.index = faiss.IndexBinaryHNSW(codec.code_width * 8, m)
        else:
            flat = codec.scanner()
            storage = (faiss.IndexFlat, faiss.IndexScalarQuantizer)
            if not (isinstance(flat, FlatCodesScanner) and isinstance(flat.index, storage)):
                raise InvalidTierSpec(
                    f"codec {codec.name!r} cannot live in an HNSW graph (@hnsw); use binary, "
                    "hamming, int8, int4, float16 or float32, or scan it (@ram)"
                )
            self._storage = flat.index
            self.index = faiss.IndexHNSW(flat.index, m)
            self.index.own_fields = False
        self.index.hnsw.efConstruction = EF_CONSTRUCTION

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, codes: np.ndarray) -> None:
        codes = np.ascontiguousarray(codes)
        if self.binary:
            self.index.add(codes.view(np.uint8).reshape(len(codes), -1))
        else:  # the storage re-encodes the decoded vectors to the same codes
            self.index.add(np.ascontiguousarray(self.codec.decode(codes), dtype=np.float32))

    def _query(self, queries: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        return pack_signs(q) if self.binary else q

    def _scores(self, dist: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.binary:  # Hamming distance -> agreement of signs, higher is better
            scores = (self.codec.dim - 2.0 * dist).astype(np.float32) / self.codec.dim
        else:
            scores = dist.astype(np.float32)
        rows = rows.astype(np.int64)
        scores[rows < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)

    def search(
        self, queries: np.ndarray, m: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` rows per query; with ``mask`` (bool per row), only allowed rows, widening
        the search until each query has ``min(m, allowed rows)`` of them."""
        faiss = faiss_module()
        n = self.ntotal
        if n == 0 or len(queries) == 0:
            return empty_top(len(queries), m)
        want = n if mask is None else int(np.count_nonzero(mask))
        want = min(m, want)
        sel = None
        if mask is not None:
            bits = np.packbits(mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(bits)
        q = self._query(queries)
        out_s, out_r = empty_top(len(queries), m)
        todo = np.arange(len(queries))
        ef = max(EF_SEARCH_MIN, 2 * m)
        while len(todo):
            params = faiss.SearchParametersHNSW(efSearch=int(ef))
            if sel is not None:
                params.sel = sel
            dist, rows = self.index.search(q[todo], min(m, n), params=params)
            s, r = self._scores(dist, rows)
            out_s[todo, : s.shape[1]], out_r[todo, : r.shape[1]] = s, r
            todo = todo[(r >= 0).sum(axis=1) < want]
            if ef >= n:
                break
            ef = min(n, ef * 4)
        return out_s, out_r

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        faiss = faiss_module()
        write = faiss.write_index_binary if self.binary else faiss.write_index
        write(self.index, str(path))

    @classmethod
    def load(cls, path: Path, codec: Codec, mmap: bool = False) -> HNSWScanner:
        """A saved graph; memory-mapped (read-only) when ``mmap`` and FAISS allows it."""
        faiss = faiss_module()
        binary = isinstance(codec, BinaryCodec)
        read = faiss.read_index_binary if binary else faiss.read_index
        index = None
        if mmap:
            try:
                index = read(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                index = None
        if index is None:
            index = read(str(path))
        return cls(codec, index=index)
