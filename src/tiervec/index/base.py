"""What the ANN indexes over a tier's codes share: filtered search with widening, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tiervec.codecs._faiss import FlatCodesScanner, faiss_module
from tiervec.codecs.base import Codec, empty_top
from tiervec.codecs.binary import BinaryCodec, pack_signs
from tiervec.errors import InvalidTierSpec


def flat_storage(codec: Codec, where: str) -> Any:
    """The FAISS flat-codes index (flat or scalar quantizer) that scans ``codec``'s codes."""
    faiss = faiss_module()
    flat = codec.scanner()
    if not (isinstance(flat, FlatCodesScanner)
            and isinstance(flat.index, faiss.IndexFlat | faiss.IndexScalarQuantizer)):
        raise InvalidTierSpec(
            f"codec {codec.name!r} cannot live in an ANN index (@{where}); use binary, "
            "hamming, int8, int4, float16 or float32, or scan it (@ram)"
        )
    return flat.index


class ANNScanner:
    """An ANN index over codes (the Scanner protocol), searched with an "effort" (efSearch,
    nprobe) that is widened until every query has enough results that pass the filter."""

    def __init__(self, codec: Codec, index: Any) -> None:
        self.codec = codec
        self.packed_bits = self.packs_bits(codec)
        self.index = index

    @classmethod
    def packs_bits(cls, codec: Codec) -> bool:
        """Whether the FAISS index holds ``codec``'s packed bits (a binary index: Hamming
        distances, binarised queries) rather than vectors."""
        return isinstance(codec, BinaryCodec)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def _vectors(self, codes: np.ndarray) -> np.ndarray:
        """What the FAISS index takes for ``codes``: packed bits, or decoded floats (its
        storage re-encodes them to the same codes)."""
        codes = np.ascontiguousarray(codes)
        if self.packed_bits:
            return codes.view(np.uint8).reshape(len(codes), -1)
        return np.ascontiguousarray(self.codec.decode(codes), dtype=np.float32)

    def fit(self, vectors: Any) -> None:
        """Fit what the index learns (IVF: its lists) on the full-precision ``vectors`` (an
        object with ``len`` and ``take(rows)``) before the first codes are added; without it,
        on the first codes added."""

    def add(self, codes: np.ndarray) -> None:
        self.index.add(self._vectors(codes))

    # effort: subclasses say where it starts, where it stops, and how it is passed
    def _effort(self, m: int, share: float) -> int:
        """Where the effort starts for ``m`` results when ``share`` of the rows are allowed."""
        raise NotImplementedError

    def _max_effort(self) -> int:
        raise NotImplementedError

    def _params(self, effort: int) -> Any:
        raise NotImplementedError

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` rows per query."""
        return self.search_filtered(queries, m, None)

    def visited(self, m: int, scale: int = 1) -> float:
        """Codes compared per query for ``m`` candidates at ``scale`` times the starting
        effort, unfiltered (the recall tuner's cost model)."""
        raise NotImplementedError

    def search_filtered(
        self, queries: np.ndarray, m: int, mask: np.ndarray | None, scale: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` rows per query; with ``mask`` (bool per row), only allowed rows, widening
        the search until each query has ``min(m, allowed rows)`` of them (a
        :class:`~tiervec.codecs.base.FilteringIndex`). The effort starts at ``scale`` times
        its usual start (the collection's measured recall setting)."""
        faiss = faiss_module()
        n = self.ntotal
        if n == 0 or len(queries) == 0:
            return empty_top(len(queries), m)
        allowed = n if mask is None else int(np.count_nonzero(mask))
        want = min(m, allowed)
        sel = None
        if mask is not None:
            sel = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        q = np.ascontiguousarray(queries, dtype=np.float32)
        q = pack_signs(q) if self.packed_bits else q
        out_s, out_r = empty_top(len(queries), m)
        todo = np.arange(len(queries))
        effort = min(self._max_effort(), self._effort(m, max(allowed, 1) / n) * scale)
        while len(todo):
            params = self._params(effort)
            if sel is not None:
                params.sel = sel
            dist, rows = self.index.search(q[todo], min(m, n), params=params)
            s, r = self._scores(dist, rows)
            out_s[todo, : s.shape[1]], out_r[todo, : r.shape[1]] = s, r
            todo = todo[(r >= 0).sum(axis=1) < want]
            if effort >= self._max_effort():
                break
            effort = min(self._max_effort(), effort * 4)
        return out_s, out_r

    def _scores(self, dist: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.packed_bits:  # Hamming distance -> agreement of signs, higher is better
            scores = (self.codec.dim - 2.0 * dist).astype(np.float32) / self.codec.dim
        else:
            scores = dist.astype(np.float32)
        rows = rows.astype(np.int64)
        scores[rows < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        faiss = faiss_module()
        write = faiss.write_index_binary if self.packed_bits else faiss.write_index
        write(self.index, str(path))

    @classmethod
    def load(cls, path: Path, codec: Codec, mmap: bool = False) -> ANNScanner:
        """A saved index; memory-mapped (read-only) when ``mmap`` and FAISS allows it."""
        faiss = faiss_module()
        read = faiss.read_index_binary if cls.packs_bits(codec) else faiss.read_index
        index = None
        if mmap:
            try:
                index = read(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                index = None
        if index is None:
            index = read(str(path))
        return cls(codec, index=index)
