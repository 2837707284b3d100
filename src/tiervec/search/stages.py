"""The stages a search pipeline composes, as small protocols, and the list they pass along.

::

    retrievers ──> fusion ──> rescorers ──> collapse
    (a tier's scan     (several     (later tiers,     (chunk hits to
     or index; BM25,    candidate    MaxSim over       document hits)
     an FDE tier)       lists)       token vectors)

Every stage works on :class:`Candidates`: ``(n_queries, m)`` scores and rows (positions in the
collection's current snapshot, ``-1`` padding), best first. Rows become user ids only at the
collection's edge. A chain spec (``"binary*4 -> float32@disk"``) is one composition: the first
tier's retriever, then one rescorer per later tier (:mod:`tiervec.search.pipeline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from tiervec.codecs.base import empty_top, top_m
from tiervec.search.filtered import FilterPolicy, FilterStrategy
from tiervec.search.query import Query


class Candidates(NamedTuple):
    """Top lists of a batch: ``scores`` float32 and ``rows`` int64, each ``(n_queries, m)``,
    best first; ``-inf`` / ``-1`` pad lists shorter than ``m``."""

    scores: np.ndarray
    rows: np.ndarray

    @classmethod
    def empty(cls, n_queries: int, m: int) -> Candidates:
        return cls(*empty_top(n_queries, m))

    def padded(self, m: int) -> Candidates:
        """Exactly ``m`` columns: cut, or padded with ``-inf`` / ``-1``."""
        have = self.scores.shape[1]
        if have >= m:
            return Candidates(self.scores[:, :m], self.rows[:, :m])
        pad = ((0, 0), (0, m - have))
        return Candidates(np.pad(self.scores, pad, constant_values=-np.inf),
                          np.pad(self.rows, pad, constant_values=-1))


class Retriever(Protocol):
    """Produces candidates from the whole collection (or the rows a filter allows)."""

    def strategy(self, n_allowed: int, policy: FilterPolicy) -> FilterStrategy:
        """How a retrieval restricted to ``n_allowed`` rows runs."""
        ...

    def retrieve(
        self, query: Query, m: int, allowed: np.ndarray | None, policy: FilterPolicy
    ) -> tuple[Candidates, FilterStrategy]:
        """Top ``m`` rows per query among the ``allowed`` ones (a boolean mask over rows;
        ``None``: every row); every query gets ``min(m, allowed rows)`` of them."""
        ...


class Rescorer(Protocol):
    """Rescores the candidates of the stage before and keeps the best ``m``."""

    def rescore(self, query: Query, candidates: Candidates, m: int) -> Candidates:
        ...


class Fusion(Protocol):
    """Merges the candidate lists of several retrievers into one."""

    def fuse(self, lists: Sequence[Candidates], m: int) -> Candidates:
        ...


class Collapse(Protocol):
    """Turns hits on parts (chunks) into hits on their owners (documents)."""

    #: The stage before it hands on ``oversample * m`` hits for ``m`` owners.
    oversample: int

    def collapse(self, candidates: Candidates, m: int) -> Candidates:
        ...


class ReciprocalRankFusion:
    """``score(d) = sum over lists of 1 / (c + rank(d))`` (ranks from 1; Cormack et al.):
    rank-based, so lists on different score scales fuse without calibration."""

    def __init__(self, c: float = 60.0) -> None:
        self.c = float(c)

    def fuse(self, lists: Sequence[Candidates], m: int) -> Candidates:
        rows = np.concatenate([c.rows for c in lists], axis=1)
        ranks = np.concatenate([np.broadcast_to(np.arange(1, c.rows.shape[1] + 1), c.rows.shape)
                                for c in lists], axis=1)
        gains = np.where(rows >= 0, 1.0 / (self.c + ranks), 0.0)
        return _sum_by_row(rows, gains, m)


class MaxCollapse:
    """Each owner's best part: ``score(doc) = max over its hits``; ``owner[row]`` is the row of
    the document (or any key) that part ``row`` belongs to."""

    def __init__(self, owner: np.ndarray, oversample: int = 4) -> None:
        self.owner = np.asarray(owner, dtype=np.int64)
        self.oversample = oversample

    def collapse(self, candidates: Candidates, m: int) -> Candidates:
        owners = np.where(candidates.rows >= 0, self.owner[np.maximum(candidates.rows, 0)], -1)
        out = Candidates.empty(len(owners), m)
        for i, (keys, scores) in enumerate(zip(owners, candidates.scores, strict=True)):
            valid = keys >= 0
            unique, first = np.unique(keys[valid], return_index=True)  # hits are best first
            best = scores[valid][first]
            order = np.argsort(-best, kind="stable")[:m]
            out.scores[i, : len(order)], out.rows[i, : len(order)] = best[order], unique[order]
        return out


def _sum_by_row(rows: np.ndarray, gains: np.ndarray, m: int) -> Candidates:
    """Per query, the sum of ``gains`` of each distinct row; the best ``m`` rows."""
    out = Candidates.empty(len(rows), m)
    for i, (r, g) in enumerate(zip(rows, gains, strict=True)):
        valid = r >= 0
        unique, inverse = np.unique(r[valid], return_inverse=True)
        totals = np.bincount(inverse, weights=g[valid], minlength=len(unique))
        best, cols = top_m(totals[None].astype(np.float32), m)
        keep = cols[0] >= 0
        out.scores[i, : keep.sum()] = best[0][keep]
        out.rows[i, : keep.sum()] = unique[cols[0][keep]]
    return out
