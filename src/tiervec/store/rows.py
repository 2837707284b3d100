"""Positions (what scanners number: 0 .. count-1 over the segments in order) and database rows.

Segment ``i`` holds rows ``start_i .. start_i + n_i - 1`` at positions ``p_i .. p_i + n_i - 1``.
Rows are never reused, so a compaction (which copies live documents to new rows) leaves readers
of an older snapshot with rows that still mean what they meant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tiervec.store.manifest import SegmentEntry


class RowMap:
    """Maps positions to rows and back for a list of segments."""

    def __init__(self, segments: Sequence[SegmentEntry]) -> None:
        sizes = np.array([s.rows for s in segments], dtype=np.int64)
        self.row_starts = np.array([s.start for s in segments], dtype=np.int64)
        self.pos_starts = (np.cumsum(sizes) - sizes).astype(np.int64)
        self.sizes = sizes
        self.count = int(sizes.sum())
        self.identity = bool(np.array_equal(self.row_starts, self.pos_starts))

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Rows of ``positions`` (any shape; ``-1`` stays ``-1``)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.identity:
            return positions
        seg = np.clip(np.searchsorted(self.pos_starts, positions, side="right") - 1, 0, None)
        out = positions - self.pos_starts[seg] + self.row_starts[seg]
        return np.where(positions >= 0, out, -1)

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions of ``rows`` (1-d); rows outside every segment are dropped."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.identity:
            return rows[(rows >= 0) & (rows < self.count)]
        if not len(self.sizes):
            return np.empty(0, np.int64)
        order = np.argsort(self.row_starts)
        starts, sizes = self.row_starts[order], self.sizes[order]
        seg = np.searchsorted(starts, rows, side="right") - 1
        ok = seg >= 0
        seg = np.clip(seg, 0, None)
        ok &= rows < starts[seg] + sizes[seg]
        return (rows - starts[seg] + self.pos_starts[order][seg])[ok]
