"""Rescoring: a later tier of a chain scores the candidates of the stage before with its own
codes (the :class:`~tiervec.search.stages.Rescorer` of a chain)."""

from __future__ import annotations

import numpy as np

from tiervec.codecs._faiss import inner_products_by_rows
from tiervec.codecs.base import top_m
from tiervec.search.query import Query
from tiervec.search.stages import Candidates
from tiervec.search.tiers import TierRuntime
from tiervec.store.codes import CodeSource


class TierRescorer:
    """Rescores candidates with a tier's codes (float32 vectors in place, other codes gathered
    or, for few distinct rows, scored by one matrix product)."""

    def __init__(self, tier: TierRuntime) -> None:
        self.tier = tier

    def rescore(self, query: Query, candidates: Candidates, m: int) -> Candidates:
        return Candidates(*_rescore(self.tier, query.dense, candidates.rows, m))


#: Candidate codes gathered per block of queries when rescoring (keeps the working set small).
RESCORE_BLOCK_BYTES = 16 << 20
#: Rescore by one matrix product over the distinct candidate rows when there are at most this
#: many per candidate of a query: BLAS scores ~65x more pairs than gathering codes per query
#: scores in the same time (measured on 2 cores, 384 dims), so 32 keeps a 2x margin.
DENSE_RATIO = 32
#: ... and at least this many queries (a matrix product of few queries is memory-bound).
DENSE_MIN_QUERIES = 16


def _rescore(
    tier: TierRuntime, queries: np.ndarray, rows: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rescore candidate ``rows`` ``(nq, c)`` with ``tier``'s codes; keep the best ``m``.

    float32 vectors are scored in place (:func:`vector_scores`). Other codes are gathered per
    query, or, when the batch's candidates can only cover few distinct rows (a small
    collection, many queries), every distinct row is scored against the queries in one matrix
    product."""
    nq, c = rows.shape
    out = np.empty((nq, min(m, c)), np.float32), np.empty((nq, min(m, c)), np.int64)
    if tier.codec.codes_are_vectors:
        _keep_best(vector_scores(queries, rows, tier.source), rows, m, out, 0)
        return out
    dense = (tier.codec.scores_by_matrix_product and nq >= DENSE_MIN_QUERIES
             and len(tier.source) <= DENSE_RATIO * c)
    if dense:
        valid = rows >= 0
        unique, inverse = np.unique(rows[valid], return_inverse=True)
        codes = tier.source.take(unique)
        cols = np.zeros(rows.shape, np.int64)
        cols[valid] = inverse
        block = max(1, RESCORE_BLOCK_BYTES // max(4 * len(unique), 1))
    else:
        block = max(1, RESCORE_BLOCK_BYTES // max(c * tier.codec.bytes_per_vector, 1))
    for start in range(0, nq, block):
        part, q = rows[start : start + block], queries[start : start + block]
        if dense:
            scores = np.take_along_axis(tier.codec.score(q, codes), cols[start : start + block], 1)
        else:
            scores = tier.codec.score_candidates(q, tier.source.take(part))
        scores[part < 0] = -np.inf
        _keep_best(scores, part, m, out, start)
    return out


def _keep_best(
    scores: np.ndarray, rows: np.ndarray, m: int, out: tuple[np.ndarray, np.ndarray], start: int
) -> None:
    """Write the best ``m`` of ``rows`` by ``scores`` into ``out``'s rows from ``start``."""
    best, picked = top_m(scores, m)
    stop = start + len(rows)
    out[0][start:stop] = best[:, : out[0].shape[1]]
    found = np.take_along_axis(rows, np.maximum(picked, 0), 1)
    out[1][start:stop] = np.where(picked >= 0, found, -1)[:, : out[1].shape[1]]


def vector_scores(queries: np.ndarray, rows: np.ndarray, source: CodeSource) -> np.ndarray:
    """Inner products of ``queries`` ``(nq, d)`` with the float32 vectors of ``rows``
    ``(nq, c)`` held by ``source`` (``-inf`` where ``rows < 0``), read in place segment by
    segment."""
    if len(source.arrays) == 1:
        return inner_products_by_rows(queries, source.arrays[0], rows)
    segment = np.searchsorted(source.starts, rows, side="right") - 1
    local = rows - np.asarray(source.starts)[segment]
    out = np.full(rows.shape, -np.inf, np.float32)
    for s, array in enumerate(source.arrays):
        inside = segment == s
        if inside.any():  # rows of other segments are -1: scored -inf, skipped by FAISS
            np.maximum(out, inner_products_by_rows(queries, array, np.where(inside, local, -1)),
                       out=out)
    return out
