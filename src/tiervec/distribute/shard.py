"""One shard of a sharded collection: an ordinary collection folder behind a Ray actor.

:class:`Shard` is a plain class; :mod:`tiervec.distribute.sharded` runs it as a named Ray actor
(restarted by Ray when its process dies). It opens its folder on first use, so a restarted
actor reopens it by itself; as the folder's writer it holds the single-node writer lock, and a
second writer (another process with ``tiervec.open``) gets the single-node lock error.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from tiervec.collection import Collection
from tiervec.corpus import Document
from tiervec.filters import Filter
from tiervec.lexical import LexicalConfig, TermStats
from tiervec.search import (
    Chain,
    CollectionStats,
    FilterPlan,
    FusionConfig,
    Page,
    Query,
    Searchable,
    SearchOptions,
    SearchResult,
)
from tiervec.search.cutoff import RelevanceModel
from tiervec.store.manifest import Manifest
from tiervec.store.writes import WriteStats


class Shard:
    """A shard's collection, opened on first use; what a sharded collection calls on it."""

    def __init__(self, path: str, name: str, read_only: bool = False) -> None:
        self.path, self.name, self.read_only = path, name, read_only
        self._collection: Collection | None = None
        #: a view per chain, with the committed state it was made of
        self._views: dict[str, tuple[tuple[int, int, int], Searchable]] = {}
        self._lock = threading.Lock()
        #: the open ShardedCollection handles using this actor (in any process); the last to
        #: close stops it. A restarted actor starts again from 0.
        self._users = 0

    def attach(self) -> int:
        """A handle starts using this actor; how many use it now."""
        with self._lock:
            self._users += 1
            return self._users

    def detach(self) -> int:
        """A handle stops using this actor; how many still do."""
        with self._lock:
            self._users = max(0, self._users - 1)
            return self._users

    @property
    def collection(self) -> Collection:
        with self._lock:
            if self._collection is None:
                self._collection = Collection.open(self.path, read_only=self.read_only)
            return self._collection

    def _searchable(self, chain: str | None) -> Searchable:
        """The collection, or its view through ``chain``: made again once a write committed
        since (a view is a snapshot; one made after a write must see it, as on one node)."""
        col = self.collection
        if chain is None:
            return col
        col.refresh()
        manifest = col._manifest
        state = (manifest.epoch, manifest.generation, manifest.count)
        with self._lock:
            cached = self._views.get(chain)
            if cached is None or cached[0] != state:
                cached = self._views[chain] = (state, col.with_tiers(chain))
            return cached[1]

    # -- reads --------------------------------------------------------------------------------
    def ping(self) -> int:
        """The actor's process id (opening the folder first)."""
        self.collection  # noqa: B018 - opens the folder
        return os.getpid()

    def node(self) -> str:
        """The id of the Ray node this actor runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def folder(self) -> str:
        """The folder this actor serves, resolved (opening it first)."""
        self.collection  # noqa: B018 - opens the folder
        return str(os.path.realpath(self.path))

    def threads(self) -> dict[str, int]:
        """The threads a search call gets here: FAISS's (OpenMP) and NumPy's BLAS (both set by
        the actor's ``OMP_NUM_THREADS``)."""
        import faiss
        from threadpoolctl import threadpool_info

        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        return {"faiss": faiss.omp_get_max_threads(), "blas": max(blas, default=1)}

    def manifest(self) -> Manifest:
        col = self.collection
        col.refresh()
        return col._manifest

    def run(self, query: Query, chain: str | None = None) -> SearchResult:
        """The shard's own search (its chain, filter and deletions) of a prepared query."""
        return self._searchable(chain).run(query)

    def run_all(self, queries: Sequence[Query], chain: str | None = None) -> list[SearchResult]:
        """:meth:`run` of each of ``queries`` (a hybrid search's dense and lexical sides: one
        call)."""
        return [self.run(q, chain) for q in queries]

    def run_timed(self, query: Query, chain: str | None = None) -> tuple[SearchResult, float]:
        """:meth:`run` and its seconds inside the shard (what benchmarks compare the
        scatter-gather's wall time to)."""
        start = time.perf_counter()
        found = self.run(query, chain)
        return found, time.perf_counter() - start

    # the reads a sharded collection makes of each shard (``chain``: through that view)
    def size(self, chain: str | None = None) -> int:
        return len(self._searchable(chain))

    def count(self, filter: Filter, chain: str | None = None) -> int:
        return self._searchable(chain).count(filter)

    def explain(self, filter: Filter, options: SearchOptions | None,
                chain: str | None = None) -> FilterPlan:
        return self._searchable(chain).explain(filter, options)

    def stats(self, of: Chain | None = None, chain: str | None = None) -> CollectionStats:
        """The shard's stats (``of``: another chain's costs; ``chain``: a view's)."""
        if of is not None:
            return self.collection.stats(of)
        return self._searchable(chain).stats()

    def get(self, ids: Sequence[str]) -> list[Document | None]:
        return self.collection.get(ids)

    def missing(self, ids: Sequence[str]) -> list[str]:
        return self.collection.missing(ids)

    def sample_ids(self, n: int, seed: int) -> list[str]:
        return self.collection.sample_ids(n, seed)

    def scroll(self, filter: Filter, limit: int, cursor: str | None) -> Page:
        return self.collection.scroll(filter, limit=limit, cursor=cursor)

    def lexical_stats(self, texts: Sequence[str]) -> TermStats:
        return self.collection.lexical_stats(texts)

    def is_fragmented(self) -> bool:
        return self.collection.is_fragmented()

    # -- writes -------------------------------------------------------------------------------
    def add(self, docs: Sequence[Document], vectors: Any = None) -> int:
        return self.collection.add(docs, vectors=vectors)

    def upsert(self, docs: Sequence[Document], vectors: Any = None) -> WriteStats:
        return self.collection.upsert(docs, vectors=vectors)

    def delete(self, ids: Sequence[str]) -> WriteStats:
        return self.collection.delete(ids)

    def ingest(self, docs: Sequence[Document], vectors: Any = None) -> int:
        """Add those of ``docs`` the shard lacks (idempotent: a retried or repeated batch adds
        nothing twice); how many were added."""
        col = self.collection
        missing = set(col.missing([d.id for d in docs]))
        keep = [i for i, d in enumerate(docs) if d.id in missing]
        if not keep:
            return 0
        if vectors is not None and len(keep) < len(docs):
            vectors = vectors[keep]
        return col.add([docs[i] for i in keep], vectors=vectors)

    def fit_is_stale(self) -> bool:
        return self.collection.fit_is_stale

    def finish(self) -> bool:
        """After an ingest: re-fit codecs first fitted on a small share, merge small
        segments; whether the codecs were re-fitted."""
        col = self.collection
        stale = col.fit_is_stale
        if stale:
            col.refit()
        col.compact_if_fragmented()
        self._views.clear()
        return stale

    # the writes of settings and upkeep: each drops the views made before it
    def compact(self, vacuum: bool) -> WriteStats:
        self._views.clear()
        return self.collection.compact(vacuum=vacuum)

    def compact_if_fragmented(self) -> bool:
        self._views.clear()
        return self.collection.compact_if_fragmented()

    def set_tiers(self, tiers: str) -> None:
        self._views.clear()
        self.collection.set_tiers(tiers)

    def refit(self) -> None:
        self._views.clear()
        self.collection.refit()

    def delete_where(self, filter: Filter) -> WriteStats:
        self._views.clear()
        return self.collection.delete_where(filter)

    def set_metadata(self, updates: dict[str, dict[str, Any]], replace: bool) -> WriteStats:
        self._views.clear()
        return self.collection.set_metadata(updates, replace=replace)

    def create_lexical_index(self, config: LexicalConfig | None) -> None:
        self._views.clear()
        self.collection.create_lexical_index(config)

    def set_search_defaults(self, fusion: FusionConfig | None,
                            calibrations: dict[str, RelevanceModel] | None) -> None:
        self.collection.set_search_defaults(fusion=fusion, calibrations=calibrations)

    def close(self) -> None:
        with self._lock:
            if self._collection is not None:
                self._collection.close()
                self._collection = None
            self._views.clear()
