"""A search pipeline: retrievers (fused when several), rescorers, and a collapse, in that order.

A chain spec is one composition (:meth:`Pipeline.from_chain`): the first tier's
:class:`~tiervec.search.retrieve.TierRetriever`, then a
:class:`~tiervec.search.rescore.TierRescorer` per later tier. Stage ``i`` hands
``k * oversample_i`` candidates to stage ``i + 1``; the last returns ``k``. Results are rows
(positions); the collection turns them into user ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tiervec.search.filtered import FilterPolicy, FilterStrategy
from tiervec.search.query import Query, SearchOptions
from tiervec.search.rescore import TierRescorer
from tiervec.search.retrieve import TierRetriever
from tiervec.search.spec import Chain
from tiervec.search.stages import Candidates, Collapse, Fusion, Rescorer, Retriever
from tiervec.search.tiers import TierRuntime
from tiervec.store.codes import CodeSource


@dataclass
class Pipeline:
    """Stages composed into one search. ``oversample[i]`` is the candidates stage ``i`` (the
    retrieval, then each rescorer but the last) hands on, as a multiple of ``k``.

    ``chain`` and ``tiers`` are set for a pipeline made from a chain (the tiers' codes grow with
    the collection through :meth:`append`).
    """

    retrievers: Sequence[Retriever]
    rescorers: Sequence[Rescorer] = ()
    oversample: Sequence[int] = ()
    fusion: Fusion | None = None
    collapse: Collapse | None = None
    #: a last stage over the top ``rerank_depth`` of the others (MaxSim over token vectors)
    rerank: Rescorer | None = None
    rerank_depth: int = 0
    chain: Chain | None = None
    tiers: list[TierRuntime] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.retrievers:
            raise ValueError("a pipeline needs a retriever")
        if len(self.retrievers) > 1 and self.fusion is None:
            raise ValueError("several retrievers need a fusion stage")
        if len(self.oversample) != len(self.rescorers):
            raise ValueError("one oversampling factor per stage that hands candidates on")

    @classmethod
    def from_chain(
        cls, chain: Chain, tiers: Sequence[TierRuntime], count: int,
        full: CodeSource | None = None,
    ) -> Pipeline:
        """The chain's composition over ``tiers`` (one per chain tier, sharing one row
        numbering of ``count`` rows); ``full``: the full-precision vectors of those rows."""
        tiers = list(tiers)
        first = TierRetriever(tiers[0], full if full is not None else CodeSource(), count)
        return cls(retrievers=[first], rescorers=[TierRescorer(t) for t in tiers[1:]],
                   oversample=[t.oversample for t in chain.tiers[:-1]], chain=chain,
                   tiers=tiers)

    def with_chain(self, chain: Chain) -> Pipeline:
        """The same stages (fitted codecs, built scanners) under ``chain``'s oversampling; the
        chain must differ from this pipeline's in oversampling only."""
        if self.chain is None or chain.shape() != self.chain.shape():
            raise ValueError(f"{chain} differs from {self.chain} in more than oversampling")
        return Pipeline(self.retrievers, self.rescorers, [t.oversample for t in chain.tiers[:-1]],
                        self.fusion, self.collapse, self.rerank, self.rerank_depth, chain,
                        self.tiers)

    @property
    def first(self) -> TierRetriever:
        """A chain's first-tier retriever."""
        first = self.retrievers[0]
        assert isinstance(first, TierRetriever)
        return first

    @property
    def count(self) -> int:
        """Rows the pipeline searches (its first retriever's)."""
        return self.retrievers[0].count

    def append(
        self, codes_by_tier: Sequence[np.ndarray], rows: int, vectors: np.ndarray | None = None
    ) -> None:
        """Add a segment: ``codes_by_tier[i]`` are tier ``i``'s codes for ``rows`` new vectors
        (``vectors``: their full-precision vectors, memory-mapped)."""
        self.first.append(codes_by_tier[0], rows, vectors)
        for tier, codes in zip(self.tiers[1:], codes_by_tier[1:], strict=True):
            tier.append(codes)

    def build_first(self) -> None:
        """Make the first tier scannable (an ANN index fits on the full-precision vectors)."""
        self.first.scanner()

    def depths(self, k: int, options: SearchOptions | None = None) -> list[int]:
        """Candidates each stage hands on for a top-``k`` search, the last stage's ``k``. A
        pipeline of retrievers alone (hybrid's) leaves the oversampling to its chain."""
        if self.chain is None and not self.oversample:
            return [k]
        factors = (options or SearchOptions()).factors(self.oversample)
        return [k * f for f in factors] + [k]

    def strategy(self, n_allowed: int, policy: FilterPolicy | None = None) -> FilterStrategy:
        """How a search restricted to ``n_allowed`` rows runs (its first retriever's way)."""
        return self.retrievers[0].strategy(n_allowed, policy or FilterPolicy())

    def run(
        self, query: Query, allowed: np.ndarray | None = None, policy: FilterPolicy | None = None
    ) -> tuple[Candidates, FilterStrategy]:
        """Top ``query.k`` rows per query among the ``allowed`` ones (a boolean mask over rows,
        ``None``: all), and the filter strategy that ran. Exact results of few allowed rows
        are final: the later stages are skipped.

        With a collapse, the stages find ``k * oversample`` parts (chunks) and the collapse
        turns them into owners (documents); a query left with fewer than ``k`` owners while
        more parts exist is searched again 4x deeper (so ``k`` documents always come back)."""
        policy = policy or FilterPolicy()
        k = query.k
        n_allowed = self.count if allowed is None else int(np.count_nonzero(allowed))
        if self.count == 0 or len(query) == 0 or n_allowed == 0:
            strategy = FilterStrategy.SCAN if self.count == 0 or len(query) == 0 else \
                self.strategy(0, policy)
            return Candidates.empty(len(query), k), strategy
        if self.collapse is None:
            return self._stages(query, allowed, policy, n_allowed)
        depth = k * self.collapse.oversample
        while True:
            parts, strategy = self._stages(query.with_k(min(depth, n_allowed)), allowed,
                                           policy, n_allowed)
            found = self.collapse.collapse(parts, k)
            found = Candidates(found.scores.astype(np.float32), found.rows, found.parts)
            short = (found.rows[:, -1] < 0) & (parts.rows[:, -1] >= 0)
            if not short.any() or depth >= n_allowed:
                return found, strategy
            depth *= 4

    def _stages(
        self, query: Query, allowed: np.ndarray | None, policy: FilterPolicy, n_allowed: int
    ) -> tuple[Candidates, FilterStrategy]:
        if self.rerank is not None:
            k = query.k
            found, strategy = self._first_stages(query.with_k(max(k, self.rerank_depth)),
                                                 allowed, policy, n_allowed)
            out = self.rerank.rescore(query, found, k).padded(k)
            return Candidates(out.scores.astype(np.float32), out.rows.astype(np.int64)), \
                strategy
        return self._first_stages(query, allowed, policy, n_allowed)

    def _first_stages(
        self, query: Query, allowed: np.ndarray | None, policy: FilterPolicy, n_allowed: int
    ) -> tuple[Candidates, FilterStrategy]:
        k, depths = query.k, self.depths(query.k, query.options)
        final = len(self.retrievers) == 1 and \
            self.retrievers[0].strategy(n_allowed, policy) is FilterStrategy.EXACT
        found = [r.retrieve(query, k if final else depths[0], allowed, policy)
                 for r in self.retrievers]
        strategy = found[0][1]
        if final:
            return found[0][0].padded(k), strategy
        candidates = found[0][0] if self.fusion is None else self.fusion.fuse(
            [c for c, _ in found], depths[0])
        for rescorer, m in zip(self.rescorers, depths[1:], strict=True):
            candidates = rescorer.rescore(query, candidates, m)
        out = candidates.padded(k)
        return Candidates(out.scores.astype(np.float32), out.rows.astype(np.int64)), strategy

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
        policy: FilterPolicy | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row-level search of query vectors ``(n, d)``: ``(scores, rows)``, each ``(n, k)``;
        ``-inf`` / ``-1`` pad short lists."""
        candidates, _ = self.run(Query(vectors=queries, k=k), allowed, policy)
        return candidates.scores, candidates.rows
