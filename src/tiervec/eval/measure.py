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
from tiervec.search import FusionConfig, Query, Searchable, SearchMode, SearchOptions, SearchResult


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


def measure(
    searchable: Searchable, queries: QuerySet, k: int = 10, *,
    mode: SearchMode | str = SearchMode.DENSE, fusion: FusionConfig | None = None,
) -> Measurement:
    """Search ``searchable`` with every query of ``queries`` (one batch, after a two-query
    warm-up that builds lazy structures), top ``k``, in ``mode`` (lexical and hybrid read the
    query texts; hybrid fuses with ``fusion``, default the collection's)."""
    mode = SearchMode(mode)
    chain, dim, n = searchable.chain, searchable.dim, len(searchable)
    searched(searchable, queries, k, mode, fusion, rows=slice(0, 2))
    start = time.perf_counter()
    result = searched(searchable, queries, k, mode, fusion)
    qps = len(queries) / max(time.perf_counter() - start, 1e-9)
    ram, disk = chain.ram_bytes_per_vector(dim), chain.disk_bytes_per_vector(dim)
    if mode is SearchMode.LEXICAL:
        ram = disk = 0  # postings are memory-mapped: they are not a tier of codes
    return Measurement(
        tiers=search_label(str(chain), mode, fusion), ram_bytes_per_vector=ram,
        disk_bytes_per_vector=disk, disk_reads_per_query=chain.disk_reads_per_query(k, n)
        if mode is not SearchMode.LEXICAL else 0, qps=qps, ids=result.ids,
        scores=result.scores,
    )


def searched(
    searchable: Searchable, queries: QuerySet, k: int, mode: SearchMode | str = SearchMode.DENSE,
    fusion: FusionConfig | None = None, rows: slice = slice(None),
) -> SearchResult:
    """The results of ``queries`` (a slice of them) in ``mode``: dense searches take the query
    vectors, lexical ones the texts, hybrid ones both."""
    mode = SearchMode(mode)
    if mode is SearchMode.DENSE:
        return searchable.search_vectors(queries.vectors[rows], k)
    if queries.texts is None:
        raise ValueError(f"a {mode.value} search needs the query texts; this query set has none")
    vectors = queries.vectors[rows] if mode is SearchMode.HYBRID else None
    return searchable.run(Query(texts=tuple(queries.texts[rows]), vectors=vectors, k=k,
                                mode=mode, options=SearchOptions(fusion=fusion)))


def search_label(chain: str, mode: SearchMode, fusion: FusionConfig | None) -> str:
    """How a row names a search: the chain, ``bm25``, or ``hybrid <fusion> | <chain>``."""
    if mode is SearchMode.LEXICAL:
        return "bm25 (lexical)"
    if mode is SearchMode.HYBRID:
        return f"hybrid {fusion.describe() if fusion else 'default'} | {chain}"
    return chain
