"""A sharded collection's writes: each document to the shard its id routes to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tiervec._validate import as_vectors, documents_to_write
from tiervec.corpus import Document
from tiervec.distribute.actors import ShardActors
from tiervec.encode.base import ProgressFn, truncated_count
from tiervec.errors import CollectionError, DuplicateIds, ShardedUnsupported
from tiervec.filters import Filter
from tiervec.lexical import LexicalConfig
from tiervec.search import Chain, FusionConfig, Page
from tiervec.search.cutoff import RelevanceModel
from tiervec.store.writes import WriteStats


class ShardedWrites(ShardActors):
    """Writes of a :class:`~tiervec.distribute.sharded.ShardedCollection`."""

    #: documents written so far that were longer than the model reads (start embedded only)
    truncated: int = 0

    # -- writes ---------------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
            progress: ProgressFn | None = None) -> int:
        """Add new documents, each to its shard (every shard's part one committed segment;
        texts encoded here, once, with the model that encodes queries, unless the shards
        encode their own: chunked and multi-vector collections). Ids must be new: one the
        collection holds raises :class:`~tiervec.errors.DuplicateIds` before anything is
        written."""
        docs, vectors = documents_to_write(documents, vectors, self._manifests(wait=True)[0].dim)
        held = [i for i in {d.id for d in docs} - set(self._missing([d.id for d in docs],
                                                                   write=True))]
        if held:
            raise DuplicateIds(
                f"{len(held)} ids are already in the collection (e.g. {sorted(held)[:5]}); "
                "skip them (see missing), replace them with upsert(), or give the documents "
                "new ids")
        vectors, _ = self._encoded(docs, vectors)
        # a retried add would find its own documents: not retried (ingest's writes are)
        return int(sum(self._write("add", docs, vectors, progress, max_task_retries=0)))

    def upsert(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
               progress: ProgressFn | None = None) -> WriteStats:
        """Add or replace documents by id, each in its shard."""
        docs, vectors = documents_to_write(documents, vectors, self._manifests(wait=True)[0].dim)
        vectors, truncated = self._encoded(docs, vectors)
        stats = self._write("upsert", docs, vectors, progress)
        return WriteStats(added=sum(s.added for s in stats),
                          replaced=sum(s.replaced for s in stats),
                          truncated=truncated + sum(s.truncated for s in stats))

    def _encoded(self, docs: list[Document], vectors: np.ndarray | None,
                 ) -> tuple[np.ndarray | None, int]:
        """``docs``' vectors (encoded here when not given: one model, loaded once, rather
        than one per shard actor) and how many texts the model read the start of only."""
        manifest = self._manifests(wait=True)[0]
        if vectors is not None or not docs or manifest.encoder is None or \
                manifest.chunking is not None or manifest.multivector is not None:
            return vectors, 0
        encoder = self.encoder  # type: ignore[attr-defined]
        texts = [d.embedding_text() for d in docs]
        truncated = truncated_count(encoder, texts)
        self.truncated += truncated
        return as_vectors(encoder.encode_documents(texts), manifest.dim, rows=len(docs)), \
            truncated

    def ingest(self, documents: Sequence[Document], vectors: Any = None) -> int:
        """Add those of ``documents`` the collection lacks (idempotent; what distributed
        ingest calls, retried by Ray when a shard's actor dies)."""
        return int(sum(self._write("ingest", list(documents), vectors, None)))

    def delete(self, ids: Iterable[str] | str) -> WriteStats:
        ids = list(dict.fromkeys([ids] if isinstance(ids, str) else map(str, ids)))
        routed = self._routed(ids)
        refs = [a.delete.remote([ids[i] for i in rows]) if rows else None
                for a, rows in zip(self._actors, routed, strict=True)]
        stats = [s for s in self._gather_some(refs, write=True) if s is not None]
        missing = set().union(*(s.missing for s in stats)) if stats else set()
        return WriteStats(deleted=sum(s.deleted for s in stats),
                          missing=[i for i in ids if i in missing])

    def delete_where(self, filter: Filter) -> WriteStats:
        """Delete what ``filter`` matches, on every shard at once (one commit each)."""
        self._require_writable()
        stats = self._each(lambda a: a.delete_where.remote(filter), write=True)
        self._forget()
        return WriteStats(deleted=sum(s.deleted for s in stats))

    def set_metadata(self, updates: Mapping[str, Mapping[str, Any]], *,
                     replace: bool = False) -> WriteStats:
        """New metadata for documents by id, each on its shard (nothing encoded again)."""
        self._require_writable()
        ids = list(updates)
        refs = [a.set_metadata.remote({ids[i]: dict(updates[ids[i]]) for i in rows}, replace)
                if rows else None
                for a, rows in zip(self._actors, self._routed(ids), strict=True)]
        stats = [s for s in self._gather_some(refs, write=True) if s is not None]
        missing = set().union(*(s.missing for s in stats)) if stats else set()
        self._forget()
        return WriteStats(replaced=sum(s.replaced for s in stats),
                          missing=[i for i in ids if i in missing])

    def scroll(self, filter: Filter = None, *, limit: int = 100,
               cursor: str | None = None) -> Page:
        """A page of documents in id order across the shards: each shard's page after
        ``cursor``, merged, the first ``limit`` kept (the rest come again next page)."""
        pages = self._reads(lambda a: a.scroll.remote(filter, limit, cursor))
        docs = sorted((d for p in pages for d in p.documents), key=lambda d: d.id)
        more = len(docs) > limit or any(p.cursor is not None for p in pages)
        return Page(documents=docs[:limit], cursor=docs[limit - 1].id if more else None)

    def _write(self, method: str, docs: list[Document], vectors: np.ndarray | None,
               progress: ProgressFn | None, **call: Any) -> list[Any]:
        """``method`` of each shard with its documents (and vectors), all shards at once."""
        self._require_writable()
        routed = self._routed([d.id for d in docs])
        refs = []
        for actor, rows in zip(self._actors, routed, strict=True):
            part = None if vectors is None else vectors[rows]
            refs.append(getattr(actor, method).options(**call).remote(
                [docs[i] for i in rows], part) if rows else None)
        out = [a for a in self._gather_some(refs, write=True) if a is not None]
        if progress is not None:
            progress(len(docs))
        self._forget()
        return out

    def upgrade(self, *_: Any, **__: Any) -> Any:
        """Not yet for a sharded collection (:class:`ShardedUnsupported`)."""
        raise ShardedUnsupported(
            "a sharded collection cannot change model in place yet: upgrade each shard's "
            "folder as a collection, or index the corpus into a new sharded collection with "
            "the new model")

    check_upgrade = backfill = upgrade

    def compact(self, *, vacuum: bool = True) -> WriteStats:
        stats = self._each(lambda a: a.compact.remote(vacuum), write=True)
        self._forget()
        return WriteStats(deleted=sum(s.deleted for s in stats))

    def is_fragmented(self) -> bool:
        """Whether a shard has many small segments (writes over HTTP make them)."""
        return any(self._reads(lambda a: a.is_fragmented.remote()))

    def compact_if_fragmented(self) -> bool:
        merged = any(self._each(lambda a: a.compact_if_fragmented.remote(), write=True))
        self._forget()
        return merged

    def set_tiers(self, tiers: str | Chain) -> None:
        """Search every shard through ``tiers`` from now on (each re-encodes its codes)."""
        self._require_writable()
        chain = str(Chain.parse(tiers))
        self._each(lambda a: a.set_tiers.remote(chain), write=True)
        self._forget()

    def create_lexical_index(self, config: LexicalConfig | None = None) -> None:
        """Build every shard's lexical (BM25) index, for lexical and hybrid search."""
        self._require_writable()
        self._each(lambda a: a.create_lexical_index.remote(config), write=True)
        self._forget()

    def set_search_defaults(
        self, *, fusion: FusionConfig | None = None,
        calibrations: Mapping[str, RelevanceModel] | None = None,
    ) -> None:
        """Store a hybrid search's default fusion and the relevance calibrations (by mode) in
        every shard (what ``tiervec tune --apply`` does)."""
        self._require_writable()
        models = None if calibrations is None else dict(calibrations)
        self._each(lambda a: a.set_search_defaults.remote(fusion, models), write=True)
        self._forget()

    @property
    def fit_is_stale(self) -> bool:
        return any(self._each(lambda a: a.fit_is_stale.remote()))

    def refit(self) -> None:
        self._each(lambda a: a.refit.remote(), write=True)
        self._forget()

    def finish(self) -> bool:
        """After a bulk ingest: every shard re-fits stale codecs and merges small segments."""
        refitted = any(self._each(lambda a: a.finish.remote(), write=True))
        self._forget()
        return refitted

    def _require_writable(self) -> None:
        if self.read_only:
            raise CollectionError(f"collection {str(self.path)!r} was opened read-only")
