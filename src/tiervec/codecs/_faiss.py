"""Exhaustive scanners backed by FAISS kernels (flat codes, scalar quantizers, binary)."""

from __future__ import annotations

from typing import Any

import numpy as np


def faiss_module() -> Any:
    """Import FAISS lazily (it is a core dependency, but importing it is not free)."""
    import faiss

    return faiss


class FlatCodesScanner:
    """Wraps a FAISS ``IndexFlatCodes`` (flat, scalar quantizer) whose codes we already hold.

    Codes are handed over with ``add_sa_codes``: no re-encoding, bit-for-bit the codec's codes.
    """

    def __init__(self, index: Any) -> None:
        self.index = index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, codes: np.ndarray) -> None:
        raw = np.ascontiguousarray(codes).view(np.uint8).reshape(len(codes), -1)
        self.index.add_sa_codes(raw)

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), m)
        return _clean(scores.astype(np.float32), rows)

    @property
    def masks_cheaply(self) -> bool:
        """Whether a bitmap can restrict the scan at no extra cost: FAISS's scalar-quantizer
        scan checks a selector per code, but a selector takes flat float32 off BLAS."""
        return isinstance(self.index, faiss_module().IndexScalarQuantizer)

    def search_masked(
        self, queries: np.ndarray, m: int, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` among the rows where ``mask`` is true (FAISS ``IDSelectorBitmap``)."""
        faiss = faiss_module()
        sel = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), m,
                                         params=faiss.SearchParameters(sel=sel))
        return _clean(scores.astype(np.float32), rows)


def _clean(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = rows.astype(np.int64)
    scores[rows < 0] = -np.inf
    return scores, rows
