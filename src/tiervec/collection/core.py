"""A collection: documents, their full-precision vectors on disk, and compressed tiers.

On disk a collection is a folder of plain files (see :mod:`tiervec.store.layout`). Writes
(add, upsert, delete, compact, set_tiers) are committed by atomically replacing the manifest;
see :mod:`tiervec.store.writes` for the order of operations and the fsync policy.

:class:`Collection` is the user's object; it holds four parts with one job each and hands
every call to one of them:

* :class:`~tiervec.collection.reading.SnapshotReader`: the committed state this object sees
  (moved by commits and :meth:`Collection.refresh`) and the documents in it;
* :class:`~tiervec.collection.searching.Searcher`: every query, over one snapshot;
* :class:`~tiervec.collection.writing.Writer`: every write and its commit;
* :class:`~tiervec.collection.tuning.RecallTuner`: the recall target, measured as the
  collection grows (told of commits by the writer);
* :class:`~tiervec.collection.upgrading.Upgrader`: a change of model without re-encoding first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._extras import require_engine
from tiervec.collection.reading import SnapshotReader
from tiervec.collection.searching import Searcher
from tiervec.collection.settings import CollectionSettings
from tiervec.collection.transfer import export_parquet, import_parquet
from tiervec.collection.tuning import RecallTuner
from tiervec.collection.upgrading import UpgradeMethods, Upgrader
from tiervec.collection.views import TieredView
from tiervec.collection.writing import MERGE_SEGMENTS, Writer
from tiervec.corpus import Document
from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.base import ProgressFn
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.filters import Field, Filter
from tiervec.lexical import LexicalConfig, TermStats
from tiervec.search import (
    Chain,
    CodeSource,
    CollectionStats,
    FilterPlan,
    FilterPolicy,
    FusionConfig,
    Page,
    Pipeline,
    Query,
    Searchable,
    SearchOptions,
    SearchResult,
)
from tiervec.search.cutoff import RelevanceModel
from tiervec.search.recall import DEFAULT_TARGET, QUERIES, RecallMeasure, RecallTarget
from tiervec.search.searchable import SearchMethods
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.store import opening
from tiervec.store.locks import WriterLock
from tiervec.store.manifest import Manifest
from tiervec.store.writes import WriteStats


class Collection(SearchMethods, UpgradeMethods):
    """Documents and vectors in a folder, searched through a chain of tiers.

    Create one with :func:`tiervec.create` and reopen it with :func:`tiervec.open`; the
    constructor is private. One writer per collection (a lock file enforces it), any number of
    readers; a collection object may be shared by threads. A collection is a
    :class:`~tiervec.search.Searchable`.
    """

    def __init__(
        self, path: Path, manifest: Manifest, *, read_only: bool, encoder: Encoder | None,
        lock: WriterLock | None = None,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self._reader = SnapshotReader(path, manifest, read_only=read_only, encoder=encoder)
        self._recall = RecallTuner(self._reader, writable=lambda: self._writer.writable)
        self._searcher = Searcher(self._reader, self._recall)
        self._writer = Writer(self._reader, lock, listener=self._recall)
        self._upgrader = Upgrader(self._reader, self._writer, self._recall)

    @property
    def _manifest(self) -> Manifest:
        """The committed manifest this object sees (shards and servers key caches by it)."""
        return self._reader.manifest

    @classmethod
    def create(
        cls, path: str | Path, *, model: str | EncoderConfig | None = DEFAULT_MODEL,
        dim: int | None = None, tiers: str | Chain = DEFAULT_CHAIN, encoder: Encoder | None = None,
        fields: Mapping[str, Any] | None = None, indexes: Sequence[str] = (),
        lexical: bool | LexicalConfig | None = None, chunking: ChunkingConfig | str | None = None,
        multivector: MultiVectorConfig | bool | None = None,
        recall_target: float | RecallTarget | None = DEFAULT_TARGET,
    ) -> Collection:
        """A new, empty collection in ``path`` (a new or empty folder), made with the options
        :class:`~tiervec.collection.settings.CollectionSettings` documents one by one (the
        model or ``dim``, the chain, metadata fields and indexes, the lexical index, chunking
        or multi-vector encoding, the recall target); ``encoder``: a loaded encoder to use
        instead of loading the model."""
        require_engine()
        path = Path(path).expanduser()
        manifest, encoder, lock = CollectionSettings(
            model=model, dim=dim, tiers=tiers, fields=fields, indexes=indexes, lexical=lexical,
            chunking=chunking, multivector=multivector, recall_target=recall_target,
        ).new_folder(path, encoder)
        return cls(path, manifest, read_only=False, encoder=encoder, lock=lock)

    @classmethod
    def open(
        cls, path: str | Path, *, read_only: bool = False, encoder: Encoder | None = None
    ) -> Collection:
        """Reopen the collection in ``path``; nothing is re-encoded.

        A writer (``read_only=False``) takes the collection's writer lock (a second writer gets
        :class:`~tiervec.errors.CollectionLocked`) and first removes what an interrupted write
        left behind. A reader sees the collection as of the last committed write, and moves to
        newer ones on :meth:`refresh` (searches refresh by themselves).
        """
        require_engine()
        path = Path(path).expanduser()
        manifest, lock = opening.existing_folder(path, read_only)
        collection = cls(path, manifest, read_only=read_only, encoder=encoder, lock=lock)
        collection._recall.committed()  # grown (or never measured) since: measured when quiet
        return collection

    def close(self) -> None:
        """Stop a recall measurement in flight, save an updated HNSW graph (writers), release
        the database and the writer lock."""
        self._recall.stop()
        writer = self._writer
        if writer.lock is not None:
            writer.save_graph()
        with writer.mutex:  # after a commit in flight
            self._reader.docs.close()
            if writer.lock is not None:
                writer.lock.release()
                writer.lock = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Collection({str(self.path)!r}, count={len(self)}, dim={self.dim}, "
            f"tiers={self._reader.manifest.chain!r}, model={self.model!r})"
        )

    def refresh(self) -> bool:
        """Move a reader to the latest committed state; ``True`` if it changed."""
        return self._reader.refresh()

    # -- what the collection is -----------------------------------------------------------------
    def __len__(self) -> int:
        return self._reader.snap.documents

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._reader.dim

    @property
    def chain(self) -> Chain:
        """The chain searches run through."""
        return self._reader.chain

    @property
    def model(self) -> str | None:
        """The embedding model's name or path (``None`` for a vectors-only collection)."""
        return self._reader.model

    @property
    def encoder_config(self) -> EncoderConfig | None:
        """How texts are encoded for this collection."""
        return self._reader.encoder_config

    @property
    def encoder(self) -> Encoder:
        """The collection's encoder, loaded on first use."""
        return self._reader.encoder

    @property
    def fields(self) -> dict[str, Field]:
        """The metadata fields filters can use (name -> type, indexed)."""
        return self._reader.fields

    @property
    def chunking(self) -> ChunkingConfig | None:
        """How documents are cut into chunks (``None``: one vector per document)."""
        return self._reader.chunking

    @property
    def multivector(self) -> MultiVectorConfig | None:
        """A multi-vector collection's settings (``None``: a vector per document)."""
        return self._reader.multivector

    @property
    def has_lexical(self) -> bool:
        """Whether the collection keeps a lexical (BM25) index for lexical and hybrid search."""
        return self._reader.manifest.lexical is not None

    @property
    def lexical_config(self) -> LexicalConfig | None:
        """How the lexical index analyses texts (``None``: no lexical index)."""
        return self._reader.lexical_config

    @property
    def filter_policy(self) -> FilterPolicy:
        """When a filtered search scans its matches exactly, searches the index with the
        filter, or post-filters (see :mod:`tiervec.search.filtered`); settable."""
        return self._reader.filter_policy

    @filter_policy.setter
    def filter_policy(self, policy: FilterPolicy) -> None:
        self._reader.filter_policy = policy

    @property
    def truncated(self) -> int:
        """Documents written by this object that the model read only the start of (not
        chunked; warned of once)."""
        return self._writer.truncated

    # -- searching ------------------------------------------------------------------------------
    def run(self, query: Query) -> SearchResult:
        """Search with a :class:`~tiervec.search.Query`: the path every search takes (texts
        encoded, deleted documents and the filter applied, rows turned into ids)."""
        return self._searcher.run(query)

    def prepare(self, query: Query) -> Query:
        """``query`` with checked query vectors, its texts encoded where it has none and its
        mode needs them; a lexical or hybrid query is checked against the lexical index."""
        return self._searcher.prepare(query)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors ``(n, dim)`` of ``texts`` from the collection's model."""
        return self._searcher.encode_queries(texts)

    def lexical_stats(self, texts: Sequence[str]) -> TermStats:
        """BM25's statistics of the live documents for the terms of ``texts`` (what a sharded
        collection sums over its shards to score each with the whole collection's)."""
        return self._searcher.lexical_stats(texts)

    def explain(self, filter: Filter = None, options: SearchOptions | None = None) -> FilterPlan:
        """How a search with ``filter`` (and per-request ``options``) would run (see
        :mod:`tiervec.search.filtered`), with the estimated recall of that setting."""
        return self._searcher.explain(filter, options or SearchOptions())

    @property
    def fusion(self) -> FusionConfig:
        """The fusion a hybrid search uses unless told otherwise (``tiervec tune --apply``)."""
        return self._searcher.defaults().fusion

    @property
    def fusion_tuned(self) -> bool:
        """Whether :attr:`fusion` was stored by ``tiervec tune --apply`` (else the default)."""
        return self._searcher.defaults().fusion_tuned

    def calibration(self, kind: str) -> RelevanceModel | None:
        """The fitted relevance calibration of a search mode (``None``: never fitted)."""
        return self._searcher.defaults().calibration(kind)

    def with_tiers(self, tiers: str | Chain) -> Searchable:
        """The collection searched through another chain: its codecs fitted on (a sample of)
        the stored vectors and its codes encoded in memory; nothing is written. The view
        sees the collection as it is now (later writes are not reflected)."""
        chain = Chain.parse(tiers)
        reader = self._reader
        if str(chain) == reader.manifest.chain:
            return self
        pipeline = reader.pipeline().with_chain(chain) \
            if chain.shape() == reader.chain.shape() else reader.pipeline(chain)
        return TieredView(self, self._searcher, reader.snap, pipeline)

    def pipeline(self, tiers: str | Chain | None = None) -> Pipeline:
        """The row-level :class:`~tiervec.search.Pipeline` of the collection's chain, or of
        another chain built in memory from the stored vectors. Low level: results are
        positions of the current snapshot (benchmarks of the kernels use it)."""
        return self._reader.pipeline(tiers)

    # -- documents ------------------------------------------------------------------------------
    def count(self, filter: Filter = None) -> int:
        """Number of documents, or of those matching ``filter``."""
        return self._reader.count(filter)

    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        """The documents for ``ids`` (``None`` for unknown ids), e.g. ``get(result.ids[0])``.
        A reader first moves to the newest committed state (as searches do)."""
        return self._reader.get(ids)

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that the collection does not hold yet."""
        return self._reader.missing(ids)

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        """Ids of ``n`` live documents (all if fewer) drawn at random, in collection order."""
        return self._reader.sample_ids(n, seed)

    def scroll(self, filter: Filter = None, *, limit: int = 100,
               cursor: str | None = None) -> Page:
        """Up to ``limit`` documents matching ``filter`` in id order, after ``cursor`` (the
        ``cursor`` of the page before; ``None`` for the first page). Writes between pages
        neither repeat nor skip the documents that stay: the cursor is an id, not a row."""
        return self._reader.scroll(filter, limit, cursor)

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        """User ids at ``positions`` of :meth:`vectors` (any shape; ``""`` for ``-1``). Low
        level, with :meth:`pipeline`: for comparing other engines fed these vectors."""
        return self._reader.ids_at(positions)

    def vectors(self) -> CodeSource:
        """The full-precision vectors of every segment, memory-mapped (positions in order,
        deleted documents' included until a compaction)."""
        return self._reader.vectors()

    def stats(self, chain: Chain | None = None) -> CollectionStats:
        """Documents, rows, deletions, and the RAM and disk each tier's codes take (of
        ``chain``, default the collection's); a model upgrade's state."""
        return self._reader.stats(chain or self.chain, self._recall.summary())

    def last_plan(self) -> dict[str, Any] | None:
        """The results of the last ``tiervec plan`` run on this collection (``None``: never)."""
        return self._reader.files.read_plan()

    def has_plan(self) -> bool:
        """Whether a plan has been kept with the collection (without reading it)."""
        return self._reader.files.has_plan()

    def save_plan(self, plan: dict[str, Any]) -> None:
        """Keep ``plan`` (a :meth:`Plan.to_dict`) with the collection; a reader may too (the
        plan is a side file, not part of the collection's state)."""
        self._reader.files.write_plan(plan)

    # -- writing --------------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
            progress: ProgressFn | None = None) -> int:
        """Add new documents as one new segment; returns how many were added.

        Without ``vectors`` the texts are encoded with the collection's model (``progress(n)``
        is called as documents are encoded). Ids must be new: duplicates within the batch or
        with the collection raise :class:`~tiervec.errors.DuplicateIds` and nothing is written
        (use :meth:`upsert` to replace documents).
        """
        return self._writer.write_documents(documents, vectors, progress, replace=False).added

    def upsert(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
               progress: ProgressFn | None = None) -> WriteStats:
        """Add documents, replacing those whose id the collection already holds, atomically."""
        return self._writer.write_documents(documents, vectors, progress, replace=True)

    def delete(self, ids: Iterable[str] | str) -> WriteStats:
        """Delete documents by id. Unknown ids are reported in ``missing``, not an error."""
        return self._writer.delete(ids)

    def delete_where(self, filter: Filter) -> WriteStats:
        """Delete every document ``filter`` matches, in one commit; ``deleted`` counts them.
        An empty filter is refused (delete the collection to remove everything)."""
        return self._writer.delete_where(filter)

    def set_metadata(self, updates: Mapping[str, Mapping[str, Any]], *,
                     replace: bool = False) -> WriteStats:
        """Change the metadata of documents by id (``{id: {field: value}}``): merged into what
        they hold (a ``None`` value removes a field), or, with ``replace``, instead of it.
        Nothing is encoded again: each document is written anew with its stored vector, in
        one commit. Unknown ids are listed in ``missing``; ``replaced`` counts the others."""
        return self._writer.set_metadata(updates, replace=replace)

    def compact(self, *, vacuum: bool = True) -> WriteStats:
        """Rewrite the live documents into one segment, reclaiming the space of deleted ones
        (and of replaced versions). ``vacuum`` also shrinks the SQLite file."""
        return self._writer.compact(vacuum=vacuum)

    def is_fragmented(self, max_segments: int = MERGE_SEGMENTS) -> bool:
        """Whether many small writes left more than ``max_segments`` segments (every search
        visits each)."""
        return self._writer.is_fragmented(max_segments)

    def compact_if_fragmented(self, max_segments: int = MERGE_SEGMENTS) -> bool:
        """Merge small segments when :meth:`is_fragmented` (searches go on meanwhile): every
        segment but the largest while that one holds more rows than the rest together (so a
        merge costs about what the small writes since the last one cost, not a rewrite of
        the collection), else all of them. ``True`` if it merged."""
        return self._writer.compact_if_fragmented(max_segments)

    def set_tiers(self, tiers: str | Chain) -> None:
        """Switch to another chain: fit its codecs on the stored vectors and re-encode them.
        Nothing is re-embedded; the old codes are removed once the new ones are committed."""
        self._writer.set_tiers(tiers)

    @property
    def fit_is_stale(self) -> bool:
        """Whether a trainable codec was fitted on far fewer vectors than the collection now
        holds (e.g. on the first small batch); :meth:`refit` fixes it."""
        return self._writer.fit_is_stale()

    def refit(self) -> None:
        """Re-fit the chain's trainable codecs on a sample of all stored vectors, re-encode."""
        self._writer.set_tiers(self.chain)

    def save_graph(self) -> None:
        """Save the ANN index of an ``@hnsw``/``@ivf`` first tier if it grew since it was saved
        (done by :meth:`close`; a lost index is rebuilt from the stored codes)."""
        self._writer.save_graph()

    def create_lexical_index(self, config: LexicalConfig | None = None) -> None:
        """Build the lexical (BM25) index over every stored document's title and text, for
        lexical and hybrid search (replacing one built with another ``config``); later writes
        keep it up to date in the same commit as the documents."""
        self._writer.create_lexical_index(config)

    def create_index(self, name: str) -> None:
        """Index a metadata field in SQLite (faster filters on it)."""
        self._writer.create_index(name)

    def set_search_defaults(
        self, *, fusion: FusionConfig | None = None,
        calibrations: Mapping[str, RelevanceModel] | None = None,
    ) -> None:
        """Store a hybrid search's default fusion and fitted relevance calibrations (by mode)
        in the collection (what ``tiervec tune --apply`` does); others are kept."""
        self._writer.set_search_defaults(fusion, calibrations)

    def export_parquet(self, path: str | Path, *,
                       progress: Callable[[int], None] | None = None) -> int:
        """Write every document, its metadata and (unless chunked or multi-vector) its
        full-precision vector to the Parquet file ``path`` (``tiervec[parquet]``); the
        documents written. :meth:`import_parquet` reads it back, here or in another
        collection."""
        return export_parquet(self._reader, path, progress=progress)

    def import_parquet(self, path: str | Path, *,
                       progress: Callable[[int], None] | None = None) -> WriteStats:
        """Upsert the documents of a Parquet file (``id``, ``text``; ``title``, ``metadata``
        and ``vector`` optional, as :meth:`export_parquet` writes them): given vectors are
        stored as they are, the others encoded."""
        return import_parquet(self, path, progress=progress)

    # -- the recall target ----------------------------------------------------------------------
    def recall(self) -> RecallMeasure | None:
        """The last recall measurement of the collection's chain (``None``: not measured yet;
        see :meth:`measure_recall`)."""
        return self._recall.recall()

    @property
    def recall_target(self) -> RecallTarget | None:
        """The recall@k against exact search the collection keeps (``None``: none kept, the
        chain's own oversampling is used as written)."""
        return self._recall.recall_target

    def set_recall_target(self, target: float | RecallTarget | None, *, k: int = 10) -> None:
        """Keep recall@``k`` against exact search at ``target`` or above (``None``: keep no
        target; searches use the chain's own oversampling). Measured again in the background."""
        kept = target if isinstance(target, RecallTarget) or target is None else \
            RecallTarget(target=target, k=k)
        self._writer.set_search_settings(
            lambda _: {"recall_target": None if kept is None else kept.to_dict()})
        self._recall.changed()

    def measure_recall(self, *, queries: int = QUERIES, seed: int = 0) -> RecallMeasure | None:
        """Measure the chain's recall now (in this thread) and keep the cheapest setting that
        meets the target; ``None`` where no target is kept or the collection is empty."""
        self._writer.require_writable()
        return self._recall.measure_now(queries, seed)

    def wait_for_recall(self, timeout: float | None = None) -> RecallMeasure | None:
        """Wait for a background measurement in flight (if any); the current measurement."""
        return self._recall.wait(timeout)

    @property
    def keep_query_sample(self) -> bool:
        """Whether searches add their query vectors to the sample recall is measured on
        (``queries.npy`` beside the collection; ``False``: made-up queries are used)."""
        return self._recall.keep_query_sample

    @keep_query_sample.setter
    def keep_query_sample(self, keep: bool) -> None:
        self._recall.keep_query_sample = keep
