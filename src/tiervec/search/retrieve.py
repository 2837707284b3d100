"""The retriever of a chain's first tier: a scan or an ANN index over its codes, restricted to
the rows a filter allows by the strategy :mod:`tiervec.search.filtered` chooses."""

from __future__ import annotations

import numpy as np

from tiervec.codecs.base import FilteringIndex, MaskedScanner, Scanner, SubsetScanner
from tiervec.search.filtered import (
    FilterPolicy,
    FilterStrategy,
    exact_allowed,
    overfetch,
    strategy_for,
)
from tiervec.search.query import Query
from tiervec.search.stages import Candidates
from tiervec.search.tiers import TierRuntime
from tiervec.store.codes import CodeSource

S = FilterStrategy


class TierRetriever:
    """Top candidates from a first tier's codes (the :class:`~tiervec.search.stages.Retriever`
    of a chain). ``full`` holds the full-precision vectors (exact search of few allowed rows);
    ``count`` is the number of rows."""

    def __init__(self, tier: TierRuntime, full: CodeSource, count: int) -> None:
        self.tier = tier
        self.full = full
        self.count = count

    def append(self, codes: np.ndarray, rows: int, vectors: np.ndarray | None) -> None:
        """Add a segment's codes (and its full-precision vectors, memory-mapped)."""
        self.tier.append(codes)
        if vectors is not None:
            self.full.append(vectors)
        self.count += rows

    def scanner(self) -> Scanner:
        """The first tier's scanner, built (an ANN index fitted) on first use."""
        self.tier.build_scanner(self.full)
        assert self.tier.scanner is not None
        return self.tier.scanner

    def strategy(self, n_allowed: int, policy: FilterPolicy) -> FilterStrategy:
        graph = self.tier.tier.location.indexed
        if n_allowed >= self.count:
            return S.GRAPH if graph else S.SCAN
        if n_allowed == 0 or (
                n_allowed <= min(policy.exact_max, policy.subset_min,
                                 policy.exact_max_share * self.count) and len(self.full)):
            return S.EXACT  # whatever the first tier can do: no need to build its index
        scanner = self.scanner()
        cheap = isinstance(scanner, MaskedScanner) and scanner.masks_cheaply
        subset = isinstance(scanner, SubsetScanner) and len(self.tier.source) > 0
        return strategy_for(n_allowed, self.count, policy, graph, cheap, subset,
                            has_exact=len(self.full) > 0)

    def retrieve(
        self, query: Query, m: int, allowed: np.ndarray | None, policy: FilterPolicy
    ) -> tuple[Candidates, FilterStrategy]:
        queries = query.dense
        if self.count == 0 or len(queries) == 0:
            return Candidates.empty(len(queries), m), S.SCAN
        n_allowed = self.count if allowed is None else int(np.count_nonzero(allowed))
        strategy = self.strategy(n_allowed, policy)
        if n_allowed == 0:
            return Candidates.empty(len(queries), m), strategy
        if strategy is S.EXACT:
            assert allowed is not None
            return Candidates(*exact_allowed(self.full, queries, m, np.flatnonzero(allowed))), \
                strategy
        scanner = self.scanner()
        if strategy is S.SUBSET:
            assert allowed is not None and isinstance(scanner, SubsetScanner)
            found = scanner.search_subset(queries, m, np.flatnonzero(allowed), self.tier.source)
        elif strategy is S.BITMAP:
            assert isinstance(scanner, MaskedScanner)
            found = scanner.search_masked(queries, m, allowed)
        elif strategy is S.SCAN:
            found = scanner.search(queries, min(m, self.count))
        elif strategy is S.GRAPH:  # the bitmap is applied inside the graph traversal
            assert isinstance(scanner, FilteringIndex)
            found = scanner.search_filtered(queries, m,
                                            None if n_allowed == self.count else allowed,
                                            scale=query.options.effort or 1)
        else:
            assert allowed is not None
            found = overfetch(scanner.search, queries, m, allowed, n_allowed, policy)
        return Candidates(*found), strategy
