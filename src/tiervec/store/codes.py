"""Codes of one codec over every segment of a collection, read in place where they live.

Storage-level: searches, evaluation and writes all read vectors and codes through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np


class CodeSource:
    """One codec's codes over every segment: in-RAM arrays or read-only memory maps.

    :meth:`take` reads only the rows asked for, in ascending row order (sequential-ish reads on a
    memory-mapped file), and returns them in the order asked.
    """

    def __init__(self, arrays: Sequence[np.ndarray] = ()) -> None:
        self.arrays: list[np.ndarray] = []
        self.starts: list[int] = []
        for array in arrays:
            self.append(array)

    def __len__(self) -> int:
        return self.starts[-1] + len(self.arrays[-1]) if self.arrays else 0

    def append(self, array: np.ndarray) -> None:
        """Add the codes of the next segment (rows ``len(self) ..``)."""
        self.starts.append(len(self))
        self.arrays.append(array)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Codes for ``rows`` (any shape, ``-1`` allowed: zeros): ``rows.shape + (width,)``."""
        first = self.arrays[0]
        flat = rows.ravel()
        valid = flat >= 0
        all_valid = bool(valid.all())
        unique, inverse = np.unique(flat if all_valid else flat[valid], return_inverse=True)
        if len(self.arrays) == 1:
            gathered = np.take(first, unique, axis=0)
        else:
            gathered = np.empty((len(unique), *first.shape[1:]), first.dtype)
            segment = np.searchsorted(self.starts, unique, side="right") - 1
            bounds = np.searchsorted(segment, np.arange(len(self.arrays) + 1))
            for s, (lo, hi) in enumerate(pairwise(bounds)):
                if hi > lo:
                    np.take(self.arrays[s], unique[lo:hi] - self.starts[s], axis=0,
                            out=gathered[lo:hi])
        if all_valid:
            out = np.take(gathered, inverse, axis=0)
        else:
            out = np.zeros((len(flat), *first.shape[1:]), first.dtype)
            out[valid] = gathered[inverse]
        return out.reshape(*rows.shape, *first.shape[1:])
