"""Late interaction: MaxSim (Chamfer) scores of query token sets against documents' token
sets, and the stage that re-ranks a multi-vector collection's FDE candidates by it.

``MaxSim(Q, D) = sum over q in Q of max over d in D of <q, d>``. Scores are computed for all the
candidates of a query in one matrix product (their tokens stacked) and one
``maximum.reduceat`` over each document's rows.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tiervec.search.query import Query
from tiervec.search.stages import Candidates


class TokenSource(Protocol):
    """Where documents' token vectors are read (full precision on disk, or codes)."""

    def ranges(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The token indices of documents ``rows`` stacked, and each one's token count."""
        ...

    def similarities(self, query: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """``(len(tokens), len(query))`` inner products of the tokens at indices ``tokens``
        with the query's token vectors."""
        ...


def maxsim(similarities: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each document's MaxSim from the stacked similarities of its tokens (``sizes[i]`` rows
    each); a document without tokens scores ``-len(query)`` (below any unit-vector score)."""
    out = np.full(len(sizes), -float(similarities.shape[1]), np.float32)
    full = sizes > 0
    if full.any():
        starts = (np.cumsum(sizes) - sizes)[full]
        best = np.maximum.reduceat(similarities, starts, axis=0)
        out[full] = best.sum(axis=1)
    return out


def brute_force(query: np.ndarray, tokens: np.ndarray, ptr: np.ndarray,
                block: int = 1 << 18) -> np.ndarray:
    """Exact MaxSim of one query against every document (``tokens[ptr[i]:ptr[i+1]]``), read a
    block of tokens at a time."""
    sims = np.empty((len(tokens), len(query)), np.float32)
    for lo in range(0, len(tokens), block):
        sims[lo : lo + block] = np.asarray(tokens[lo : lo + block], np.float32) @ query.T
    return maxsim(sims, np.diff(ptr))


class MaxSimRescorer:
    """Re-ranks candidate documents by exact MaxSim of ``query.tokens`` against their stored
    token vectors (``source``)."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def rescore(self, query: Query, candidates: Candidates, m: int) -> Candidates:
        tokens = query.tokens
        if tokens is None:
            raise ValueError("a multi-vector search needs the query's token vectors")
        out = Candidates.empty(len(candidates.rows), m)
        for i, row in enumerate(candidates.rows):
            rows = row[row >= 0]
            if not len(rows):
                continue
            index, sizes = self.source.ranges(rows)
            scores = maxsim(self.source.similarities(tokens[i], index), sizes)
            order = np.lexsort((rows, -scores))[:m]
            out.scores[i, : len(order)], out.rows[i, : len(order)] = scores[order], rows[order]
        return out
