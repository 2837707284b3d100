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

from tiervec.codecs.base import empty_top
from tiervec.encode.chunking import Aggregate
from tiervec.search.filtered import FilterPolicy, FilterStrategy
from tiervec.search.query import AGGREGATES, Query


class Candidates(NamedTuple):
    """Top lists of a batch: ``scores`` float32 and ``rows`` int64, each ``(n_queries, m)``,
    best first; ``-inf`` / ``-1`` pad lists shorter than ``m``. After a collapse, ``parts``
    holds each document's best chunk row (else ``None``)."""

    scores: np.ndarray
    rows: np.ndarray
    parts: np.ndarray | None = None

    @classmethod
    def empty(cls, n_queries: int, m: int) -> Candidates:
        return cls(*empty_top(n_queries, m))

    def padded(self, m: int) -> Candidates:
        """Exactly ``m`` columns: cut, or padded with ``-inf`` / ``-1``."""
        have = self.scores.shape[1]
        if have >= m:
            return Candidates(self.scores[:, :m], self.rows[:, :m],
                              None if self.parts is None else self.parts[:, :m])
        pad = ((0, 0), (0, m - have))
        return Candidates(np.pad(self.scores, pad, constant_values=-np.inf),
                          np.pad(self.rows, pad, constant_values=-1),
                          None if self.parts is None else
                          np.pad(self.parts, pad, constant_values=-1))


class Retriever(Protocol):
    """Produces candidates from the whole collection (or the rows a filter allows)."""

    @property
    def count(self) -> int:
        """Rows it searches."""
        ...

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
    """``score(d) = sum over lists i of w_i / (c + rank_i(d))`` (ranks from 1, equal scores
    sharing one; Cormack et al.; every ``w_i = 1`` unless ``weights`` are given): rank-based,
    so lists on different score scales fuse without calibration."""

    def __init__(self, c: float = 60.0, weights: Sequence[float] | None = None) -> None:
        self.c = float(c)
        self.weights = None if weights is None else [float(w) for w in weights]

    def fuse(self, lists: Sequence[Candidates], m: int) -> Candidates:
        weights = self.weights or [1.0] * len(lists)
        rows = np.concatenate([c.rows for c in lists], axis=1)
        gains = np.concatenate([w / (self.c + shared_ranks(c.scores))
                                for c, w in zip(lists, weights, strict=True)], axis=1)
        return _sum_by_row(rows, np.where(rows >= 0, gains, 0.0), m)


def shared_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks from 1 of each row's scores (best first), equal scores sharing the best of their
    ranks (1, 2, 2, 4): a tie's order, which storage decides (and shards cannot agree on),
    changes no fused score."""
    m = scores.shape[1]
    if not m:
        return np.zeros(scores.shape, np.float64)
    place = np.broadcast_to(np.arange(m), scores.shape)
    starts = np.ones(scores.shape, bool)
    starts[:, 1:] = scores[:, 1:] != scores[:, :-1]
    return np.maximum.accumulate(np.where(starts, place, 0), axis=1) + 1.0


class ScoreFusion:
    """``score(d) = sum over lists i of w_i * norm_i(score_i(d))``, each list normalised per
    query: ``minmax`` by its own minimum and maximum, ``dbsf`` (distribution-based) by its
    mean +- 3 standard deviations, clipped to [0, 1]. A list's lone or equal scores become 1."""

    def __init__(self, method: str, weights: Sequence[float]) -> None:
        if method not in ("minmax", "dbsf"):
            raise ValueError(f"unknown score normalisation {method!r}")
        self.method = method
        self.weights = [float(w) for w in weights]

    def normalised(self, candidates: Candidates) -> np.ndarray:
        """Each query's scores mapped to [0, 1] (``0`` at padding)."""
        scores = candidates.scores.astype(np.float64)
        valid = (candidates.rows >= 0) & np.isfinite(scores)
        counts = valid.sum(axis=1, keepdims=True)
        filled = np.where(valid, scores, 0.0)
        if self.method == "minmax":
            lo = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
            hi = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
        else:
            mean = filled.sum(axis=1, keepdims=True) / np.maximum(counts, 1)
            var = (np.where(valid, scores - mean, 0.0) ** 2).sum(axis=1, keepdims=True)
            std = np.sqrt(var / np.maximum(counts, 1))
            lo, hi = mean - 3 * std, mean + 3 * std
        span = np.where(np.isfinite(hi - lo), hi - lo, 0.0)
        safe = np.where(span > 0, span, 1.0)
        scaled = np.where(span > 0, np.clip((filled - np.where(np.isfinite(lo), lo, 0.0)) / safe,
                                            0.0, 1.0), 1.0)
        return np.where(valid, scaled, 0.0)

    def fuse(self, lists: Sequence[Candidates], m: int) -> Candidates:
        rows = np.concatenate([c.rows for c in lists], axis=1)
        gains = np.concatenate([w * self.normalised(c)
                                for c, w in zip(lists, self.weights, strict=True)], axis=1)
        return _sum_by_row(rows, gains, m)


class ChunkCollapse:
    """Hits on chunks to hits on documents: ``owner[row]`` is the row of the document (its
    first chunk) that chunk ``row`` belongs to. A document's score is its chunks' scores among
    the hits aggregated (``max``: its best chunk; ``top3``: the mean of its best three;
    ``sum``); ``parts`` of the result is each document's best chunk (the evidence)."""

    def __init__(self, owner: np.ndarray, aggregate: Aggregate | str = Aggregate.MAX,
                 oversample: int = 4) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose one of {AGGREGATES}")
        self.owner = np.asarray(owner, dtype=np.int64)
        self.aggregate = Aggregate(aggregate)
        self.oversample = oversample

    def collapse(self, candidates: Candidates, m: int) -> Candidates:
        rows = candidates.rows
        out = Candidates.empty(len(rows), m)
        parts = np.full(out.rows.shape, -1, np.int64)
        query, col = np.nonzero(rows >= 0)
        if not len(query):
            return Candidates(out.scores, out.rows, parts)
        part = rows[query, col]
        owner = self.owner[part]
        scores = candidates.scores[query, col].astype(np.float64)
        width = int(self.owner.max()) + 1
        # group by (query, owner), best chunk first within each group
        order = np.lexsort((-scores, query * width + owner))
        keys = (query * width + owner)[order]
        scores, part = scores[order], part[order]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        size = np.diff(np.r_[first, len(keys)])
        if self.aggregate is Aggregate.MAX:
            totals = scores[first]
        elif self.aggregate is Aggregate.SUM:
            totals = np.add.reduceat(scores, first)
        else:  # top3: the mean of each group's best three
            rank = np.arange(len(keys)) - np.repeat(first, size)
            totals = np.add.reduceat(np.where(rank < 3, scores, 0.0), first) / np.minimum(size, 3)
        group_query, group_owner = np.divmod(keys[first], width)
        best = part[first]
        ranked = np.lexsort((group_owner, -totals, group_query))
        group_query, group_owner = group_query[ranked], group_owner[ranked]
        totals, best = totals[ranked], best[ranked]
        place = np.arange(len(ranked)) - np.searchsorted(group_query, group_query)
        keep = place < m
        q, c = group_query[keep], place[keep]
        out.scores[q, c], out.rows[q, c], parts[q, c] = totals[keep], group_owner[keep], best[keep]
        return Candidates(out.scores, out.rows, parts)


def _sum_by_row(rows: np.ndarray, gains: np.ndarray, m: int) -> Candidates:
    """Per query, the sum of ``gains`` of each distinct row; the best ``m`` rows (ties by
    row). One pass over the whole batch: ``(query, row)`` keys summed, then ranked."""
    out = Candidates.empty(len(rows), m)
    query, col = np.nonzero(rows >= 0)
    if not len(query):
        return out
    keys = query * (int(rows.max()) + 1) + rows[query, col]
    unique, inverse = np.unique(keys, return_inverse=True)
    totals = np.bincount(inverse, weights=gains[query, col], minlength=len(unique))
    owner, row = np.divmod(unique, int(rows.max()) + 1)
    order = np.lexsort((row, -totals, owner))  # by query, best first, then by row
    owner, row, totals = owner[order], row[order], totals[order]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner)  # place within its query
    keep = rank < m
    out.scores[owner[keep], rank[keep]] = totals[keep]
    out.rows[owner[keep], rank[keep]] = row[keep]
    return out
