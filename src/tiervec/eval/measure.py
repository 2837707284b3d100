"""Measuring one chain on one query set: what ``tiervec eval`` prints and the planner weighs.

:func:`measure` searches a :class:`~tiervec.search.Searchable` (a collection, or a view of it
through another chain) with a query set, times the batch, and keeps the ids it returned; the
per-query quality (metrics against judgements, recall against exact search) is computed from
those ids. Deleted documents and filters apply as in any search: nothing here sees rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tiervec.eval.metrics import evaluate_per_query, recall_vs_exact_per_query, run_from_arrays
from tiervec.eval.queries import QuerySet
from tiervec.search import Searchable


@dataclass(frozen=True)
class Measurement:
    """A chain's costs, its batch throughput and what it returned for each query."""

    tiers: str
    ram_bytes_per_vector: int
    disk_bytes_per_vector: int
    disk_reads_per_query: int
    qps: float
    ids: np.ndarray
    scores: np.ndarray

    def recall_vs_exact(self, exact_ids: np.ndarray, k: int) -> np.ndarray:
        """Each query's share of the exact top ``k`` found in this top ``k``."""
        return recall_vs_exact_per_query(self.ids, exact_ids, k)

    def per_query(
        self, queries: QuerySet, metrics: Sequence[str], by_rank: bool = False
    ) -> dict[str, np.ndarray]:
        """Each metric for each of ``queries`` (labelled), in query order (see :func:`judge`)."""
        return judge(queries, self.ids, self.scores, metrics, by_rank)


def judge(
    queries: QuerySet, ids: np.ndarray, scores: np.ndarray, metrics: Sequence[str],
    by_rank: bool = False,
) -> dict[str, np.ndarray]:
    """Each metric (``"ndcg@10"``...) for each of ``queries`` (labelled) of the results
    ``ids``/``scores`` ``(n_queries, k)``, in query order. ``by_rank`` judges the order returned
    as it is (ties in score are not re-sorted by document id, as trec_eval would)."""
    if queries.qrels is None:
        raise ValueError("judging needs labelled queries")
    if by_rank:
        scores = -np.arange(ids.shape[1], dtype=np.float32)[None].repeat(len(ids), 0)
    per = evaluate_per_query(queries.qrels, run_from_arrays(queries.ids, ids, scores), metrics)
    return {name: np.array([values[q] for q in queries.ids]) for name, values in per.items()}


def measure(searchable: Searchable, queries: QuerySet, k: int = 10) -> Measurement:
    """Search ``searchable`` with every query of ``queries`` (one batch, after a two-query
    warm-up that builds lazy structures), top ``k``."""
    chain, dim, n = searchable.chain, searchable.dim, len(searchable)
    q = queries.vectors
    searchable.search_vectors(q[:2], k)
    start = time.perf_counter()
    result = searchable.search_vectors(q, k)
    qps = len(q) / max(time.perf_counter() - start, 1e-9)
    return Measurement(
        tiers=str(chain), ram_bytes_per_vector=chain.ram_bytes_per_vector(dim),
        disk_bytes_per_vector=chain.disk_bytes_per_vector(dim),
        disk_reads_per_query=chain.disk_reads_per_query(k, n), qps=qps, ids=result.ids,
        scores=result.scores,
    )
