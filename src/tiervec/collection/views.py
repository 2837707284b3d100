"""A collection searched through another chain, in memory (what evaluation and plans measure).

A :class:`TieredView` is a :class:`~tiervec.search.Searchable` over one snapshot of its
collection: the same documents, deletions and filters, another pipeline. Views of chains that
differ only in oversampling share their fitted codecs and built scanners.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tiervec.collection.searching import Searcher
from tiervec.collection.snapshot import Snapshot
from tiervec.corpus import Document
from tiervec.filters import Filter
from tiervec.search import (
    Chain,
    CollectionStats,
    FilterPlan,
    Pipeline,
    Query,
    Searchable,
    SearchOptions,
    SearchResult,
)
from tiervec.search.searchable import SearchMethods


class TieredView(SearchMethods):
    """``collection`` as of ``snapshot``, searched through ``pipeline`` (its chain) by
    ``searcher`` (the collection's)."""

    def __init__(self, collection: Searchable, searcher: Searcher, snapshot: Snapshot,
                 pipeline: Pipeline) -> None:
        assert pipeline.chain is not None
        self._collection = collection
        self._searcher = searcher
        self._snap = snapshot
        self.pipeline = pipeline
        self.chain: Chain = pipeline.chain

    def __repr__(self) -> str:
        return f"TieredView({self._collection!r}, tiers={str(self.chain)!r})"

    @property
    def dim(self) -> int:
        return self._collection.dim

    @property
    def model(self) -> str | None:
        return self._collection.model

    def __len__(self) -> int:
        return len(self._collection)

    def run(self, query: Query) -> SearchResult:
        query = self._searcher.prepare(query)
        result, _ = self._searcher.search(query, self._snap, self.pipeline)
        return result

    @property
    def has_lexical(self) -> bool:
        return self._collection.has_lexical

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._collection.encode_queries(texts)

    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        return self._collection.get(ids)

    def missing(self, ids: Sequence[str]) -> list[str]:
        return self._collection.missing(ids)

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        return self._collection.sample_ids(n, seed)

    def count(self, filter: Filter = None) -> int:
        return self._collection.count(filter)

    def explain(self, filter: Filter = None, options: SearchOptions | None = None) -> FilterPlan:
        """How a search would run through this view's chain (its recall is not measured)."""
        count = self._snap.count
        reader = self._searcher.reader
        mask = reader.allowed(filter, self._snap)
        n = count if mask is None else int(np.count_nonzero(mask))
        strategy = self.pipeline.strategy(n, reader.filter_policy)
        return FilterPlan(matches=n, share=n / count if count else 0.0, strategy=strategy)

    def with_tiers(self, tiers: str | Chain) -> Searchable:
        """Another view; one that differs from this in oversampling only shares its stages."""
        chain = Chain.parse(tiers)
        try:
            return TieredView(self._collection, self._searcher, self._snap,
                              self.pipeline.with_chain(chain))
        except ValueError:
            return self._collection.with_tiers(chain)

    def stats(self, chain: Chain | None = None) -> CollectionStats:
        """The collection's stats through this view's chain (or ``chain``)."""
        return self._collection.stats(chain or self.chain)
