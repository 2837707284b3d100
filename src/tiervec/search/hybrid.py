"""Lexical and hybrid searches as pipelines: BM25 as a retriever, a whole tier chain as the
dense retriever, and the fusion of the two lists.

::

    ChainRetriever(dense chain: first tier -> rescorers, top dense_depth) ──┐
                                                                            ├─> fusion ─> top k
    LexicalRetriever(BM25 over the postings, top lexical_depth) ────────────┘

The dense side runs through the collection's tier chain as it is (compressed first tier, disk
rescoring), so a hybrid search keeps no more in RAM than a dense one: the lexical index is
memory-mapped. Both sides see the same ``allowed`` mask, so a filter restricts each exactly.
"""

from __future__ import annotations

import numpy as np

from tiervec.lexical import LexicalIndex
from tiervec.search.filtered import FilterPolicy, FilterStrategy
from tiervec.search.pipeline import Pipeline
from tiervec.search.query import FusionConfig, FusionMethod, Query, SearchMode
from tiervec.search.stages import Candidates, Fusion, ReciprocalRankFusion, ScoreFusion


class ChainRetriever:
    """A tier chain's whole pipeline as one retriever: its top ``max(m, depth)``."""

    def __init__(self, pipeline: Pipeline, depth: int) -> None:
        self.pipeline = pipeline
        self.depth = depth

    @property
    def count(self) -> int:
        return self.pipeline.count

    def strategy(self, n_allowed: int, policy: FilterPolicy) -> FilterStrategy:
        return self.pipeline.strategy(n_allowed, policy)

    def retrieve(
        self, query: Query, m: int, allowed: np.ndarray | None, policy: FilterPolicy
    ) -> tuple[Candidates, FilterStrategy]:
        return self.pipeline.run(query.with_k(max(m, self.depth)), allowed, policy)


class LexicalRetriever:
    """BM25 over the query texts: the top ``max(m, depth)`` documents matching a term, with
    statistics of the snapshot's ``alive`` documents; a filter is applied exactly (a mask)."""

    def __init__(self, index: LexicalIndex, alive: np.ndarray | None, depth: int = 0) -> None:
        self.index = index
        self.alive = alive
        self.depth = depth

    @property
    def count(self) -> int:
        return self.index.count

    def strategy(self, n_allowed: int, policy: FilterPolicy) -> FilterStrategy:
        return FilterStrategy.SCAN if n_allowed >= self.count else FilterStrategy.BITMAP

    def retrieve(
        self, query: Query, m: int, allowed: np.ndarray | None, policy: FilterPolicy
    ) -> tuple[Candidates, FilterStrategy]:
        found = self.index.search(query.texts or (), max(m, self.depth), allowed, self.alive,
                                  query.lexical_stats)
        return Candidates(*found), FilterStrategy.SCAN if allowed is None else \
            FilterStrategy.BITMAP


def make_fusion(config: FusionConfig) -> Fusion:
    """The fusion stage of ``config`` over ``[dense, lexical]`` lists."""
    weights = [config.weight, 1.0 - config.weight]
    if config.method is FusionMethod.RRF:
        return ReciprocalRankFusion(c=config.rrf_k, weights=weights)
    return ScoreFusion(config.method.value, weights)


def mode_pipeline(
    mode: SearchMode, dense: Pipeline | None, lexical: LexicalIndex | None,
    alive: np.ndarray | None, fusion: FusionConfig,
) -> Pipeline:
    """The pipeline of a ``lexical`` or ``hybrid`` search (a dense one is the chain's)."""
    if mode is SearchMode.DENSE:
        assert dense is not None
        return dense
    assert lexical is not None
    if mode is SearchMode.LEXICAL:
        return Pipeline(retrievers=[LexicalRetriever(lexical, alive)])
    assert dense is not None
    if dense.count != lexical.count:
        raise RuntimeError(f"the lexical index holds {lexical.count} documents, the chain "
                           f"{dense.count}: the collection's files disagree")
    return Pipeline(
        retrievers=[ChainRetriever(dense, fusion.dense_depth),
                    LexicalRetriever(lexical, alive, fusion.lexical_depth)],
        fusion=make_fusion(fusion))
