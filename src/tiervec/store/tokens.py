"""A multi-vector collection's token vectors: per segment ``tokens.npy`` (float32, every token
of every document, in row order), ``tokens.ptr.npy`` (each row's first token; ``rows + 1``
offsets) and, with a token codec, ``tokens.<key>.npy`` (a compressed copy of each token)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tiervec.codecs import Codec
from tiervec.store.codes import CodeSource
from tiervec.store.layout import CollectionFiles
from tiervec.store.manifest import SegmentEntry


class TokenStore:
    """The token vectors of a snapshot's segments, by position: full precision (memory-mapped)
    and, with ``codec``, their codes (memory-mapped, or in RAM)."""

    def __init__(self, files: CollectionFiles, segments: Sequence[SegmentEntry],
                 codec: tuple[str, Codec] | None = None, in_ram: bool = False,
                 from_codes: bool = False) -> None:
        ptrs = files.token_ptrs(segments)
        counts = np.array([p[-1] for p in ptrs], dtype=np.int64)
        offsets = np.cumsum(counts) - counts
        parts = [np.asarray(p[:-1], np.int64) + o for p, o in zip(ptrs, offsets, strict=True)]
        self.ptr = np.concatenate([*parts, [int(counts.sum())]]).astype(np.int64)
        self.full = CodeSource(files.tokens(segments))
        self.codec = None if codec is None else codec[1]
        self.codes = None if codec is None else CodeSource(
            files.token_codes(segments, codec[0], mmap=not in_ram))
        self.from_codes = from_codes and codec is not None

    @property
    def count(self) -> int:
        """Tokens stored."""
        return int(self.ptr[-1])

    def ranges(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts, sizes = self.ptr[rows], self.ptr[rows + 1] - self.ptr[rows]
        index = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(sizes.sum())
        return index, sizes

    def similarities(self, query: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        if self.from_codes:
            assert self.codec is not None and self.codes is not None
            return self.codec.score(query, self.codes.take(tokens)).T.astype(np.float32)
        return self.full.take(tokens) @ query.T.astype(np.float32)

    def ram_bytes(self) -> int:
        """RAM the token codes hold (0 when memory-mapped or absent)."""
        if self.codes is None or not self.codes.arrays or \
                isinstance(self.codes.arrays[0], np.memmap):
            return 0
        return sum(a.nbytes for a in self.codes.arrays)
