"""Search restricted to a set of allowed rows (a metadata filter, minus deleted documents).

No single method wins at every selectivity, so the strategy is chosen per call from the number
of allowed rows ``n`` out of ``N``:

- ``exact``: few allowed rows (``n <= exact_max``, or ``subset_min`` where ``subset`` can
  run): score exactly the full-precision vectors of the allowed rows (read from disk in row
  order). Results are exact.
- ``bitmap``: otherwise, when the first tier's scan can skip rows at no cost (scalar
  quantizer codes in FAISS, codes scanned block by block): the scan scores only allowed rows.
- ``subset``: otherwise, up to ``subset_max_share`` of the rows, when the first tier is a
  fast-scan kernel (binary and residual-binary codes, which cannot skip rows): the allowed rows'
  codes are read from their memory-mapped segment files, packed into a scanner of their own and
  scanned alone.
- ``overfetch``: otherwise: the first tier scans every code for ``m * N / n`` candidates (plus
  a margin), rows outside the bitmap are dropped, and queries left with fewer than ``m`` allowed
  candidates are searched again with four times as many, until they have them or every row was
  a candidate. The rest of the chain rescores the allowed candidates as usual.
- ``graph``: an ANN index over the first tier searches with the bitmap applied inside the graph
  traversal, widening the same way (see :mod:`tiervec.index`).

Guarantee: every strategy returns ``min(k, n)`` results per query.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from tiervec.codecs._faiss import top_inner_products
from tiervec.codecs.base import empty_top, top_m
from tiervec.store.codes import CodeSource


class FilterStrategy(StrEnum):
    """How a search restricted to some rows runs (see the module docstring); ``scan`` and
    ``graph`` with nothing excluded are the unrestricted searches."""

    SCAN = "scan"
    GRAPH = "graph"
    EXACT = "exact"
    BITMAP = "bitmap"
    SUBSET = "subset"
    OVERFETCH = "overfetch"


@dataclass(frozen=True, kw_only=True)
class FilterPolicy:
    """When each filtered-search strategy is used (see the module docstring)."""

    #: At most this many allowed rows: exact scan of their full-precision vectors ...
    exact_max: int = 20_000
    #: ... when they are at most this share of the collection: past it, scanning every code
    #: and skipping the few rows not allowed costs less than reading nearly every vector
    #: (a collection's tombstones are such a filter: SciFact with 5% of its documents
    #: replaced, 8 clients of one query each: 10x the searches/s of the exact scan).
    exact_max_share: float = 0.5
    #: ... but where ``subset`` can run, only up to this many: scanning the allowed rows' binary
    #: codes and rescoring costs ~3 ns a row against ~20 for exact float32 (384-d), plus a
    #: fixed rescoring cost (1M x 384, 1% allowed: 12,892 QPS at recall@10 0.993 vs 5,084
    #: exact; SciFact, 2,585 allowed: 8.9 vs 13 ms for 300 queries; 1,037: 6.6 vs 5.9 ms).
    subset_min: int = 2_000
    #: Allowed share of the collection from which an ANN graph (if any) is searched.
    graph_min_share: float = 0.05
    #: Extra candidates asked for beyond ``m * N / n``.
    margin: float = 1.25
    #: At most this share of the rows allowed: scan only their codes (``subset``), not all
    #: (1M x 384, binary x20: subset 1,392 vs overfetch 873 QPS at 30%, 838 vs 956 at 50%, 580
    #: vs 920 at 70%; SciFact at 50%: 8.9 vs 16.9 ms for 300 queries).
    subset_max_share: float = 0.5


@dataclass(frozen=True)
class FilterPlan:
    """How a filtered search would run: matching documents, their share, the strategy; and,
    where the collection's recall was measured, the setting a search runs with and its
    estimated recall@k against exact search (measured unfiltered; ``None``: not measured)."""

    matches: int
    share: float
    strategy: FilterStrategy
    recall: float | None = None
    oversample: int | None = None
    effort: int | None = None


def strategy_for(
    n_allowed: int, count: int, policy: FilterPolicy, has_graph: bool, has_bitmap: bool = False,
    has_subset: bool = False, has_exact: bool = True,
) -> FilterStrategy:
    """The strategy a filtered search over ``n_allowed`` of ``count`` rows uses."""
    subset = has_subset and n_allowed <= policy.subset_max_share * count
    exact_max = min(policy.exact_max, policy.subset_min) if subset else policy.exact_max
    if has_exact and n_allowed <= exact_max and n_allowed <= policy.exact_max_share * count:
        return FilterStrategy.EXACT
    if has_graph and n_allowed >= policy.graph_min_share * count:
        return FilterStrategy.GRAPH
    if has_bitmap:
        return FilterStrategy.BITMAP
    return FilterStrategy.SUBSET if subset else FilterStrategy.OVERFETCH


def exact_allowed(
    full: CodeSource, queries: np.ndarray, k: int, allowed: np.ndarray, block: int = 32_768
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``allowed`` positions (sorted) by exact inner product with ``queries``."""
    best_s, best_r = empty_top(len(queries), k)
    for start in range(0, len(allowed), block):
        rows = allowed[start : start + block]
        s, cols = top_inner_products(queries, full.take(rows), k)
        r = np.where(cols >= 0, rows[np.maximum(cols, 0)], -1)
        both_s = np.concatenate([best_s, s], axis=1)
        both_r = np.concatenate([best_r, r], axis=1)
        best_s, cols = top_m(both_s, k)
        best_r = np.where(cols >= 0, np.take_along_axis(both_r, np.maximum(cols, 0), 1), -1)
    return best_s, best_r


def overfetch(
    search: Callable[..., tuple[np.ndarray, np.ndarray]],
    queries: np.ndarray,
    m: int,
    mask: np.ndarray,
    n_allowed: int,
    policy: FilterPolicy,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``m`` allowed candidates per query from ``search(queries, m') -> (scores, rows)``,
    a search over every row, widened until every query has ``min(m, n_allowed)`` of them."""
    count = len(mask)
    want = min(m, n_allowed)
    fetch = min(count, math.ceil(m * count / max(n_allowed, 1) * policy.margin) + m)
    out_s, out_r = empty_top(len(queries), m)
    todo = np.arange(len(queries))
    while len(todo):
        scores, rows = search(queries[todo], fetch)
        ok = (rows >= 0) & mask[np.maximum(rows, 0)]
        scores = np.where(ok, scores, -np.inf).astype(np.float32)
        s, cols = top_m(scores, m)
        keep = (cols >= 0) & np.isfinite(s)  # disallowed rows scored -inf: not candidates
        r = np.where(keep, np.take_along_axis(rows, np.maximum(cols, 0), 1), -1)
        out_s[todo], out_r[todo] = s, r
        found = ok.sum(axis=1)
        if fetch >= count:
            break
        todo = todo[found < want]
        fetch = min(count, fetch * 4)
    return out_s, out_r
