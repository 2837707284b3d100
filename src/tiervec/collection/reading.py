"""The read side of a collection: its snapshot, the one search path, documents, stats."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.codecs import Codec, make_codec
from tiervec.collection import multivector
from tiervec.collection.chunks import evidence
from tiervec.collection.defaults import SearchDefaults
from tiervec.collection.measured import MeasuredRecall
from tiervec.collection.prepare import prepare_query
from tiervec.collection.snapshot import Snapshot
from tiervec.collection.views import TieredView
from tiervec.corpus import Document
from tiervec.encode import Encoder, EncoderConfig, load_encoder
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig, Muvera
from tiervec.errors import (
    EncoderRequired,
    InvalidRequest,
    LexicalIndexMissing,
)
from tiervec.filters import Field, Filter
from tiervec.lexical import LexicalConfig, LexicalIndex, TermStats
from tiervec.search import (
    Chain,
    CodeSource,
    CollectionStats,
    FilterPlan,
    FilterPolicy,
    FilterStrategy,
    Pipeline,
    Query,
    Searchable,
    SearchMode,
    SearchOptions,
    SearchResult,
)
from tiervec.search.assemble import build_pipeline
from tiervec.search.cutoff import cut
from tiervec.search.hybrid import mode_pipeline
from tiervec.search.maxsim import MaxSimRescorer
from tiervec.search.recall import tuned_options
from tiervec.search.searchable import SearchMethods, tier_stats
from tiervec.search.stages import ChunkCollapse
from tiervec.store import writes
from tiervec.store.docstore import DocStore
from tiervec.store.fields import fields_from_manifest
from tiervec.store.filtering import FilterRunner
from tiervec.store.layout import VECTORS, CollectionFiles
from tiervec.store.locks import RWLock
from tiervec.store.manifest import Manifest, manifest_stamp
from tiervec.store.tokens import TokenStore


class Reading(MeasuredRecall, SearchDefaults, SearchMethods):
    """Snapshot state and every read of a collection (see :class:`tiervec.Collection`)."""

    path: Path
    read_only: bool
    filter_policy: FilterPolicy
    _files: CollectionFiles
    _docs: DocStore
    _filters: FilterRunner
    _encoder: Encoder | None
    _rw: RWLock
    _build_lock: threading.Lock
    _stamp: tuple[int, int, int] | None
    #: a multi-vector collection's FDE maps, made on first use
    _muvera_maps: Muvera | None = None

    #: How often a reader searches again when a writer's compaction raced it (see :meth:`run`).
    READER_RETRIES = 3

    def _set_snapshot(self, manifest: Manifest) -> None:
        """Adopt ``manifest`` (a newly committed or re-read one): rows, tombstones, codecs."""
        self._manifest = manifest
        self._docs.next_row, self._docs.epoch = manifest.next_row, manifest.epoch
        parts = None
        if manifest.chunking is not None:
            tables = self._files.chunks(manifest.segments)
            parts = np.concatenate([np.asarray(t[:, 0], dtype=np.int32) for t in tables]) \
                if tables else np.empty(0, np.int32)
        self._snap = Snapshot(manifest, self._docs, parts)
        self._codecs: dict[str, Codec] | None = None
        self._pipeline: Pipeline | None = None
        self._lexical: LexicalIndex | None = None
        self._tokens: TokenStore | None = None

    def refresh(self) -> bool:
        """Move a reader to the latest committed state; ``True`` if it changed."""
        stamp = manifest_stamp(self.path)
        if stamp == self._stamp or not self.read_only:
            return False
        manifest = Manifest.read(self.path)
        with self._rw.write():
            self._stamp = stamp
            if (manifest.epoch, manifest.generation, manifest.count) == (
                self._manifest.epoch, self._manifest.generation, self._manifest.count):
                current = self._manifest  # only settings changed: adopt them in place
                changed = (manifest.fields, manifest.lexical, manifest.search) != (
                    current.fields, current.lexical, current.search)
                if manifest.lexical != current.lexical:  # create_lexical_index
                    self._lexical = None
                current.fields, current.lexical = manifest.fields, manifest.lexical
                current.search = manifest.search
                return changed
            self._set_snapshot(manifest)
        return True

    # -- properties -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._snap.documents

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._manifest.dim

    @property
    def chain(self) -> Chain:
        """The chain searches run through."""
        return Chain.parse(self._manifest.chain)

    @property
    def model(self) -> str | None:
        """The embedding model's name or path (``None`` for a vectors-only collection)."""
        return self._manifest.encoder["model"] if self._manifest.encoder else None

    @property
    def encoder_config(self) -> EncoderConfig | None:
        """How texts are encoded for this collection."""
        return self._manifest.encoder_config()

    @property
    def fields(self) -> dict[str, Field]:
        """The metadata fields filters can use (name -> type, indexed)."""
        return fields_from_manifest(self._manifest.fields)

    @property
    def encoder(self) -> Encoder:
        """The collection's encoder, loaded on first use."""
        if self._encoder is None:
            config = self.encoder_config
            if config is None:
                raise EncoderRequired(
                    f"collection {str(self.path)!r} has no embedding model; pass vectors "
                    "(search_vectors, add(..., vectors=...)) instead of text"
                )
            self._encoder = load_encoder(config)
        return self._encoder

    @property
    def chunking(self) -> ChunkingConfig | None:
        """How documents are cut into chunks (``None``: one vector per document)."""
        return self._manifest.chunking_config()

    @property
    def multivector(self) -> MultiVectorConfig | None:
        """A multi-vector collection's settings (``None``: a vector per document)."""
        return self._manifest.multivector_config()

    def _muvera(self) -> Muvera:
        if self._muvera_maps is None:
            self._muvera_maps = multivector.muvera_of(self._manifest)
        return self._muvera_maps

    def _token_store(self, snap: Snapshot) -> TokenStore:
        """The token vectors of ``snap`` (the current one's kept)."""
        with self._build_lock:
            if snap is self._snap and self._tokens is not None:
                return self._tokens
            found = multivector.token_store(self._files, snap.manifest)
            if snap is self._snap:
                self._tokens = found
            return found

    @property
    def has_lexical(self) -> bool:
        """Whether the collection keeps a lexical (BM25) index for lexical and hybrid search."""
        return self._manifest.lexical is not None

    @property
    def lexical_config(self) -> LexicalConfig | None:
        """How the lexical index analyses texts (``None``: no lexical index)."""
        return self._manifest.lexical_config()

    def _stored_search(self) -> dict[str, Any]:
        return self._manifest.search

    # -- searching ------------------------------------------------------------------------------
    def run(self, query: Query) -> SearchResult:
        """Search with a :class:`~tiervec.search.Query`: the path every search takes (texts
        encoded, deleted documents and the filter applied, rows turned into ids)."""
        query = self.prepare(query)
        self._offer(query)
        return self._search_latest(query)

    def _search_latest(self, query: Query) -> SearchResult:
        """``query`` (prepared) over the latest committed state: the readers' contract with a
        writer in another process. A reader adopts the newest manifest, then searches under
        the read lock; a compaction committed in between may have removed the segment files
        of the snapshot just adopted (``FileNotFoundError``) or purged rows whose ids are gone
        (an empty id at a found row): the reader adopts the newer state and searches again,
        up to :attr:`READER_RETRIES` times. A writer's own snapshot never goes stale."""
        for attempt in range(self.READER_RETRIES):
            last = attempt == self.READER_RETRIES - 1
            self.refresh()
            try:
                with self._rw.read():
                    result, rows = self._search(query, self._snap, self.pipeline())
            except FileNotFoundError:
                if not self.read_only or last:
                    raise
                continue
            if last or not np.any((result.ids == "") & (rows >= 0)):
                return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def prepare(self, query: Query) -> Query:
        """``query`` with checked query vectors, its texts encoded where it has none and its
        mode needs them; a lexical or hybrid query is checked against the lexical index."""
        if query.min_relevance is not None:
            self._relevance_model(query)  # fail before encoding
        manifest = self._manifest
        return prepare_query(
            query, where=str(self.path), dim=self.dim, lexical=manifest.lexical is not None,
            multivector=manifest.multivector is not None, encoder=lambda: self.encoder,
            muvera=self._muvera, encode_queries=self.encode_queries)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors ``(n, dim)`` of ``texts`` from the collection's model."""
        return self.encoder.encode_queries(list(texts))

    def _search(
        self, query: Query, snap: Snapshot, pipeline: Pipeline
    ) -> tuple[SearchResult, np.ndarray]:
        """``query`` (prepared) over ``snap``, its dense side through ``pipeline``; also the
        rows found."""
        allowed = self._allowed(query.filter, snap)
        if pipeline is self._pipeline:  # the chain as stored: its measured setting applies
            query = replace(query, options=tuned_options(query.options, self.recall(),
                                                         pipeline.oversample))
        model = None if query.min_relevance is None else self._relevance_model(query)
        fusion = self._fusion(query)
        lexical = self._lexical_for(snap) if query.mode.needs_texts else None
        chunking = snap.manifest.chunking_config()
        if chunking is not None and query.mode.needs_vectors:
            aggregate = query.options.aggregate or chunking.aggregate
            assert snap.owners is not None
            pipeline = replace(pipeline, collapse=ChunkCollapse(snap.owners, aggregate))
        mv = snap.manifest.multivector_config()
        if mv is not None and query.mode.needs_vectors:
            depth = query.options.candidates or mv.candidates
            pipeline = replace(pipeline, rerank=MaxSimRescorer(self._token_store(snap)),
                               rerank_depth=depth)
        mode = SearchMode.DENSE if query.mode is SearchMode.MULTIVECTOR else query.mode
        stages = mode_pipeline(mode, pipeline, lexical, snap.documents_alive, fusion)
        inner = query if model is None else query.with_k(max(query.k, model.depth))
        candidates, _ = stages.run(inner, allowed, self.filter_policy)
        scores, rows = candidates.scores, candidates.rows
        if model is not None:
            assert query.min_relevance is not None
            scores, rows = cut(scores, rows, model.probabilities(scores), query.min_relevance)
            scores, rows = scores[:, : query.k], rows[:, : query.k]
        ids = snap.ids(self._docs, rows)
        spans = None
        if chunking is not None:
            spans = evidence(self._files, snap, query.vectors, rows, candidates.parts)
        return SearchResult(ids=ids, scores=scores, spans=spans), rows

    def _lexical_for(self, snap: Snapshot) -> LexicalIndex:
        """The lexical index of ``snap`` (the current one, kept; an older one, loaded)."""
        lexical = snap.manifest.lexical
        if lexical is None:
            raise LexicalIndexMissing(f"collection {str(self.path)!r} has no lexical index")
        if snap is self._snap:
            with self._build_lock:
                if self._lexical is None:
                    self._lexical = self._load_lexical(snap.manifest)
                return self._lexical
        return self._load_lexical(snap.manifest)

    def _load_lexical(self, manifest: Manifest) -> LexicalIndex:
        assert manifest.lexical is not None
        key, config = manifest.lexical_key, manifest.lexical_config()
        assert key is not None and config is not None
        return LexicalIndex(config,
                            [self._files.postings(s, key) for s in manifest.segments])

    def lexical_stats(self, texts: Sequence[str]) -> TermStats:
        """BM25's statistics of the live documents for the terms of ``texts`` (what a sharded
        collection sums over its shards to score each with the whole collection's)."""
        self.refresh()
        with self._rw.read():
            snap = self._snap
            return self._lexical_for(snap).term_stats(texts, snap.documents_alive)

    def count(self, filter: Filter = None) -> int:
        """Number of documents, or of those matching ``filter``."""
        if filter is None:
            return len(self)
        with self._rw.read():
            snap = self._snap
            mask = self._allowed(filter, snap)
            if mask is None:
                return len(self)
            return int(np.count_nonzero(mask if snap.heads is None else mask & snap.heads))

    def explain(self, filter: Filter = None, options: SearchOptions | None = None) -> FilterPlan:
        """How a search with ``filter`` (and per-request ``options``) would run (see
        :mod:`tiervec.search.filtered`), with the estimated recall of that setting."""
        self.refresh()
        with self._rw.read():
            snap, count = self._snap, self._manifest.count
            mask = self._allowed(filter, snap)
            n = count if mask is None else int(np.count_nonzero(mask))
            strategy = self.pipeline().strategy(n, self.filter_policy) if count else \
                FilterStrategy.SCAN
            if snap.heads is not None:  # a chunked collection: documents, not chunks
                count = snap.documents
                n = count if mask is None else int(np.count_nonzero(mask & snap.heads))
        plan = FilterPlan(matches=n, share=n / count if count else 0.0, strategy=strategy)
        return self._with_recall(plan, options or SearchOptions())

    def _allowed(self, filter: Filter, snap: Snapshot) -> np.ndarray | None:
        """The boolean mask over ``snap``'s positions a search may return (``None``: all)."""
        fields = fields_from_manifest(self._manifest.fields)
        return self._filters.allowed(filter, fields, snap.manifest.segments, snap.alive)

    # -- documents ------------------------------------------------------------------------------
    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        """The documents for ``ids`` (``None`` for unknown ids), e.g. ``get(result.ids[0])``.

        A reader first moves to the newest committed state (as searches do)."""
        self.refresh()
        return self._docs.get([str(i) for i in np.asarray(ids, dtype=object).ravel()])

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that the collection does not hold yet."""
        have = set(self._docs.existing_ids(ids))
        return [i for i in ids if i not in have]

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        """Ids of ``n`` live documents (all if fewer) drawn at random, in collection order."""
        for name, value in (("n", n), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise InvalidRequest(f"{name} must be a whole number >= 0, got {value!r}")
        snap = self._snap
        live = snap.live_positions()
        chosen = np.sort(np.random.default_rng(seed).choice(len(live), min(n, len(live)),
                                                            replace=False))
        return [str(i) for i in snap.ids(self._docs, live[chosen]) if i != ""]

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        """User ids at ``positions`` of :meth:`vectors` (any shape; ``""`` for ``-1``). Low
        level, with :meth:`pipeline`: for comparing other engines fed these vectors."""
        return self._snap.ids(self._docs, np.asarray(positions))

    def vectors(self) -> CodeSource:
        """The full-precision vectors of every segment, memory-mapped (positions in order,
        deleted documents' included until a compaction)."""
        return CodeSource(self._files.vectors(self._manifest.segments))

    def last_plan(self) -> dict[str, Any] | None:
        """The results of the last ``tiervec plan`` run on this collection (``None``: never)."""
        return self._files.read_plan()

    def has_plan(self) -> bool:
        """Whether a plan has been kept with the collection (without reading it)."""
        return self._files.has_plan()

    def save_plan(self, plan: dict[str, Any]) -> None:
        """Keep ``plan`` (a :meth:`Plan.to_dict`) with the collection; a reader may too (the
        plan is a side file, not part of the collection's state)."""
        self._files.write_plan(plan)

    # -- other chains, internals ------------------------------------------------------------------
    def with_tiers(self, tiers: str | Chain) -> Searchable:
        """The collection searched through another chain: its codecs fitted on (a sample of)
        the stored vectors and its codes encoded in memory; nothing is written. The view
        sees the collection as it is now (later writes are not reflected)."""
        chain = Chain.parse(tiers)
        if str(chain) == self._manifest.chain:
            return self  # type: ignore[return-value]
        if chain.shape() == self.chain.shape():  # the stored codes will do
            return TieredView(self, self._snap, self.pipeline().with_chain(chain))
        return TieredView(self, self._snap, self.pipeline(chain))

    def pipeline(self, tiers: str | Chain | None = None) -> Pipeline:
        """The row-level :class:`~tiervec.search.Pipeline` of the collection's chain, or of
        another chain built in memory from the stored vectors. Low level: results are
        positions of the current snapshot (benchmarks of the kernels use it)."""
        chain = self.chain if tiers is None else Chain.parse(tiers)
        if str(chain) == self._manifest.chain:
            with self._build_lock:
                if self._pipeline is None:
                    pipeline = self._build_pipeline(chain, self._stored_codecs(), stored=True)
                    pipeline.build_first()
                    self._pipeline = pipeline
                return self._pipeline
        return self._build_pipeline(chain, self._fit_codecs(chain), stored=False)

    def stats(self, chain: Chain | None = None) -> CollectionStats:
        """Documents, rows, deletions, and the RAM and disk each tier's codes take (of
        ``chain``, default the collection's)."""
        self.refresh()
        manifest, dim = self._manifest, self.dim
        chain = chain or self.chain
        rows = manifest.count
        tiers = tier_stats(chain, dim, rows)
        full = all((self._files.segment_dir(s) / VECTORS).is_file() for s in manifest.segments)
        return CollectionStats(
            documents=self._snap.documents, rows=rows, deleted=manifest.deleted,
            segments=len(manifest.segments), dim=dim, model=self.model, chain=str(chain),
            tiers=tiers, ram_bytes=sum(t.ram_bytes for t in tiers),
            disk_bytes=sum(t.disk_bytes for t in tiers),
            ram_bytes_per_vector=chain.ram_bytes_per_vector(dim), full_precision=full,
            recall=self._recall_summary() if str(chain) == manifest.chain else None,
        )

    def _stored_codecs(self) -> dict[str, Codec]:
        if self._codecs is None:
            codecs = self._files.load_codecs(self._manifest)
            for tier in self.chain.tiers:  # codecs not fitted yet (empty collection)
                codecs.setdefault(tier.codec, make_codec(tier.codec, self.dim))
            self._codecs = codecs
        return self._codecs

    def _fit_codecs(self, chain: Chain) -> dict[str, Codec]:
        """New codecs for ``chain``, trainable ones fitted on a sample of the stored vectors."""
        return writes.fit_codecs([t.codec for t in chain.tiers], self.dim, self.vectors(),
                                 self._snap.alive)

    def _build_pipeline(self, chain: Chain, codecs: dict[str, Codec], stored: bool) -> Pipeline:
        """Stored codes (``stored``) or codes encoded now from the stored vectors."""
        return build_pipeline(self._files, self._manifest, chain, codecs, stored,
                              self.read_only)
