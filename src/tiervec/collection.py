"""A collection: documents, their full-precision vectors on disk, and compressed tiers.

On disk a collection is a folder of plain files (see :mod:`tiervec.store.layout`). Writes
(add, upsert, delete, compact, set_tiers) are committed by atomically replacing the manifest;
see :mod:`tiervec.store.writes` for the order of operations and the fsync policy.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._validate import as_vectors, documents_to_write
from tiervec.codecs import Codec, make_codec
from tiervec.corpus import Document
from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig, load_encoder
from tiervec.encode.base import ProgressFn
from tiervec.errors import (
    CollectionError,
    DuplicateIds,
    EncoderRequired,
)
from tiervec.filters import Field
from tiervec.index import ANNScanner
from tiervec.search import Chain, CodeSource, Searcher, SearchResult
from tiervec.search.filtered import FilterPlan, FilterPolicy
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.store import opening, runtime, writes
from tiervec.store.docstore import DB, DocStore
from tiervec.store.fields import fields_from_manifest
from tiervec.store.filtering import Filter, FilterRunner
from tiervec.store.layout import CollectionFiles
from tiervec.store.locks import RWLock, WriterLock
from tiervec.store.manifest import Manifest, manifest_stamp
from tiervec.store.rows import RowMap
from tiervec.store.writes import WriteStats

log = logging.getLogger(__name__)

#: Trainable codecs are fitted on at most this many vectors (a seeded random sample).
FIT_SAMPLE = writes.FIT_SAMPLE


class Collection:
    """Documents and vectors in a folder, searched through a chain of tiers.

    Create one with :func:`tiervec.create` and reopen it with :func:`tiervec.open`; the
    constructor is private. One writer per collection (a lock file enforces it), any number of
    readers; a collection object may be shared by threads.
    """

    def __init__(
        self, path: Path, manifest: Manifest, *, read_only: bool, encoder: Encoder | None,
        lock: WriterLock | None = None,
    ) -> None:
        self.path = path
        self._files = CollectionFiles(path)
        self.read_only = read_only
        self._encoder = encoder
        self._lock = lock
        self._rw = RWLock()
        self._write_mutex = threading.Lock()
        self._build_lock = threading.Lock()
        self._stamp = manifest_stamp(path)
        immutable = read_only and not os.access(path, os.W_OK)
        self._docs = DocStore(path / DB, next_row=manifest.next_row, epoch=manifest.epoch,
                              read_only=read_only, immutable=immutable)
        self.filter_policy = FilterPolicy()
        self._filters = FilterRunner(self._docs)
        self._set_snapshot(manifest)

    def _set_snapshot(self, manifest: Manifest) -> None:
        """Adopt ``manifest`` (a newly committed or re-read one): rows, tombstones, codecs."""
        self._manifest = manifest
        self._docs.next_row, self._docs.epoch = manifest.next_row, manifest.epoch
        self._rows = RowMap(manifest.segments)
        self._alive: np.ndarray | None = None
        if manifest.deleted:
            self._alive = np.ones(manifest.count, dtype=bool)
            self._alive[self._rows.positions(self._docs.deleted_rows())] = False
        self._codecs: dict[str, Codec] | None = None
        self._searcher: Searcher | None = None

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        model: str | EncoderConfig | None = DEFAULT_MODEL,
        dim: int | None = None,
        tiers: str | Chain = DEFAULT_CHAIN,
        encoder: Encoder | None = None,
        fields: Mapping[str, Any] | None = None,
        indexes: Sequence[str] = (),
    ) -> Collection:
        """A new, empty collection in ``path`` (a new or empty folder).

        ``model=None`` makes a vectors-only collection (``dim`` required); otherwise ``dim`` is
        the model's. ``tiers`` is a chain spec such as ``"binary*4 -> float32@disk"``.
        ``fields`` declares metadata field types (``{"year": "int", "tags": "list[str]"}``;
        undeclared fields get the type of their first value) and ``indexes`` the fields to
        index in SQLite.
        """
        path = Path(path).expanduser()
        manifest, encoder, lock = opening.new_folder(
            path, model=model, dim=dim, tiers=tiers, encoder=encoder, fields=fields,
            indexes=indexes)
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
        path = Path(path).expanduser()
        manifest, lock = opening.existing_folder(path, read_only)
        return cls(path, manifest, read_only=read_only, encoder=encoder, lock=lock)

    def close(self) -> None:
        """Save an updated HNSW graph (writers), release the database and the writer lock."""
        if self._lock is not None:
            self.save_graph()
        self._docs.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._manifest.live

    def __repr__(self) -> str:
        return (
            f"Collection({str(self.path)!r}, count={len(self)}, dim={self.dim}, "
            f"tiers={self._manifest.chain!r}, model={self.model!r})"
        )

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
                changed = manifest.fields != self._manifest.fields  # create_index
                self._manifest.fields = manifest.fields
                return changed
            self._set_snapshot(manifest)
        return True

    # -- properties -----------------------------------------------------------------------------
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
        enc = self._manifest.encoder
        return EncoderConfig.from_dict(enc) if enc else None

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

    # -- writing --------------------------------------------------------------------------------
    def add(
        self,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        vectors: Any = None,
        progress: ProgressFn | None = None,
    ) -> int:
        """Add new documents as one new segment; returns how many were added.

        Without ``vectors`` the texts are encoded with the collection's model (``progress(n)``
        is called as documents are encoded). Ids must be new: duplicates within the batch or
        with the collection raise :class:`~tiervec.errors.DuplicateIds` and nothing is written
        (use :meth:`upsert` to replace documents).
        """
        return self._write_documents(documents, vectors, progress, replace=False).added

    def upsert(
        self,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        vectors: Any = None,
        progress: ProgressFn | None = None,
    ) -> WriteStats:
        """Add documents, replacing those whose id the collection already holds, atomically."""
        return self._write_documents(documents, vectors, progress, replace=True)

    def _write_documents(
        self, documents: Iterable[Document | Mapping[str, Any]], vectors: Any,
        progress: ProgressFn | None, *, replace: bool,
    ) -> WriteStats:
        self._require_writable()
        docs, vectors = documents_to_write(documents, vectors, self.dim)
        if not docs:
            return WriteStats()
        with self._write_mutex:
            existing = self._docs.live_rows([d.id for d in docs])
            if existing and not replace:
                found = list(existing)
                raise DuplicateIds(
                    f"{len(found)} ids are already in the collection (e.g. {found[:5]}); "
                    "skip them (see Collection.missing), replace them with upsert(), or give "
                    "the documents new ids"
                )
            if vectors is None:
                texts = [d.embedding_text() for d in docs]
                vectors = as_vectors(self.encoder.encode_documents(texts, progress), self.dim,
                                     rows=len(docs))
            manifest, appended = writes.commit_segment(
                self._files, self._manifest, self._docs, self._stored_codecs(), docs, vectors,
                replaced=sorted(existing.values()),
            )
            self._adopt(manifest, appended)
        return WriteStats(added=len(docs) - len(existing), replaced=len(existing))

    def delete(self, ids: Iterable[str] | str) -> WriteStats:
        """Delete documents by id. Unknown ids are reported in ``missing``, not an error."""
        self._require_writable()
        ids = list(dict.fromkeys([ids] if isinstance(ids, str) else map(str, ids)))
        with self._write_mutex:
            rows = self._docs.live_rows(ids)
            missing = [i for i in ids if i not in rows]
            if rows:
                manifest = writes.commit_delete(self._files, self._manifest, self._docs,
                                                sorted(rows.values()))
                self._adopt(manifest, None)
        return WriteStats(deleted=len(rows), missing=missing)

    def compact(self, *, vacuum: bool = True) -> WriteStats:
        """Rewrite the live documents into one segment, reclaiming the space of deleted ones
        (and of replaced versions). ``vacuum`` also shrinks the SQLite file."""
        self._require_writable()
        with self._write_mutex:
            manifest = self._manifest
            if not manifest.deleted and len(manifest.segments) <= 1:
                return WriteStats()
            alive = np.flatnonzero(self._alive) if self._alive is not None else None
            new, old_segments = writes.commit_compaction(
                self._files, manifest, self._docs, self._rows, alive)
            with self._rw.write():
                self._set_snapshot(new)
            writes.finish_compaction(self._files, self._docs, new, old_segments, vacuum)
        return WriteStats(deleted=manifest.deleted)

    def save_graph(self) -> None:
        """Save the ANN index of an ``@hnsw``/``@ivf`` first tier if it grew since it was saved
        (done by :meth:`close`; a lost index is rebuilt from the stored codes)."""
        searcher = self._searcher
        if self.read_only or self._lock is None or searcher is None:
            return
        scanner = searcher.tiers[0].scanner
        graph = self._manifest.graph
        if not isinstance(scanner, ANNScanner) or (
                graph and graph["rows"] == scanner.ntotal
                and graph["generation"] == self._manifest.generation):
            return
        with self._write_mutex, self._rw.read():
            self._manifest = writes.commit_graph(self._files, self._manifest, scanner)

    def create_index(self, name: str) -> None:
        """Index a metadata field in SQLite (faster filters on it)."""
        self._require_writable()
        with self._write_mutex:
            self._manifest = writes.commit_index(self._files, self._manifest, self._docs,
                                                 self.fields, name)

    @property
    def fit_is_stale(self) -> bool:
        """Whether a trainable codec was fitted on far fewer vectors than the collection now
        holds (e.g. on the first small batch); :meth:`refit` fixes it."""
        target = min(len(self), FIT_SAMPLE)
        return any(
            make_codec(e.codec, self.dim).trainable and e.fitted_on < target / 2
            for e in self._manifest.codecs.values()
        )

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that the collection does not hold yet."""
        have = set(self._docs.existing_ids(ids))
        return [i for i in ids if i not in have]

    def set_tiers(self, tiers: str | Chain) -> None:
        """Switch to another chain: fit its codecs on the stored vectors and re-encode them.

        Nothing is re-embedded; the old codes are removed once the new ones are committed.
        """
        self._require_writable()
        chain = Chain.parse(tiers)
        with self._write_mutex:
            codecs = self._fit_codecs(chain)
            manifest, old = writes.commit_codecs(self._files, self._manifest, chain, codecs,
                                                 self.vectors().arrays)
            with self._rw.write():
                self._set_snapshot(manifest)
                self._codecs = codecs if manifest.codecs else None
            self._files.remove_codec_files(old, manifest.segments)
            self._files.remove_stale_graphs(manifest)

    def refit(self) -> None:
        """Re-fit the chain's trainable codecs on a sample of all stored vectors, re-encode."""
        self.set_tiers(self.chain)

    # -- reading --------------------------------------------------------------------------------
    def search(
        self, queries: str | Sequence[str], k: int = 10, *, filter: Filter = None
    ) -> SearchResult:
        """Top ``k`` documents for each query text: ``ids`` and ``scores`` ``(n_queries, k)``.

        ``filter`` restricts results to documents whose metadata match, as a dict
        (``{"year": {"$gte": 2020}, "tags": {"$in": ["a"]}}``) or a string
        (``'year >= 2020 and lang == "en"'``); a filtered search returns
        ``min(k, matching documents)`` results per query.
        """
        texts = [queries] if isinstance(queries, str) else list(queries)
        return self.search_vectors(self.encoder.encode_queries(texts), k, filter=filter)

    def search_vectors(self, vectors: Any, k: int = 10, *, filter: Filter = None) -> SearchResult:
        """Top ``k`` documents for each query vector ``(n_queries, dim)`` (or one ``(dim,)``)."""
        queries = as_vectors(vectors, self.dim, what="query vectors")
        k = _check_k(k)
        for attempt in range(3):
            self.refresh()
            try:
                with self._rw.read():
                    allowed = self._allowed(filter)
                    scores, rows = self.searcher().search(queries, k, allowed,
                                                          self.filter_policy)
                    ids = self.ids_for_rows(rows)
            except FileNotFoundError:
                if not self.read_only or attempt == 2:
                    raise
                continue  # a compaction removed the files of the snapshot just adopted
            if attempt == 2 or not np.any((ids == "") & (rows >= 0)):
                break  # else a compaction purged rows of this reader's snapshot: catch up
        return SearchResult(ids=ids, scores=scores)

    def count(self, filter: Filter = None) -> int:
        """Number of documents, or of those matching ``filter``."""
        if filter is None:
            return len(self)
        with self._rw.read():
            mask = self._allowed(filter)
            return len(self) if mask is None else int(np.count_nonzero(mask))

    def explain(self, filter: Filter = None) -> FilterPlan:
        """How a search with ``filter`` would run (see :mod:`tiervec.search.filtered`)."""
        self.refresh()
        with self._rw.read():
            count = self._manifest.count
            mask = self._allowed(filter)
            n = count if mask is None else int(np.count_nonzero(mask))
            strategy = self.searcher().strategy(n, self.filter_policy) if count else "scan"
        return FilterPlan(matches=n, share=n / count if count else 0.0, strategy=strategy)

    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        """The documents for ``ids`` (``None`` for unknown ids), e.g. ``get(result.ids[0])``.

        A reader first moves to the newest committed state (as searches do)."""
        self.refresh()
        return self._docs.get([str(i) for i in np.asarray(ids, dtype=object).ravel()])

    def ids_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """User ids for the rows (positions) a :class:`~tiervec.search.Searcher` returns."""
        return self._docs.ids_for_rows(self._rows.rows(rows))

    def searcher(self, tiers: str | Chain | None = None) -> Searcher:
        """A :class:`~tiervec.search.Searcher` (results are internal rows) for the collection's
        chain, or for another chain built in memory from the stored vectors (for evaluation)."""
        chain = self.chain if tiers is None else Chain.parse(tiers)
        if str(chain) == self._manifest.chain:
            with self._build_lock:
                if self._searcher is None:
                    searcher = self._build_searcher(chain, self._stored_codecs(), stored=True)
                    searcher.build_first()
                    self._searcher = searcher
                return self._searcher
        codecs = self._fit_codecs(chain)
        return self._build_searcher(chain, codecs, stored=False)

    def vectors(self) -> CodeSource:
        """The full-precision vectors of every segment, memory-mapped (rows in order)."""
        return CodeSource(self._files.vectors(self._manifest.segments))

    # -- internals ------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if self.read_only:
            raise CollectionError(
                f"collection {str(self.path)!r} was opened read-only; reopen it with "
                "tiervec.open(path) to write"
            )
        if self._lock is None:
            raise CollectionError(f"collection {str(self.path)!r} is closed; reopen it")

    def _allowed(self, filter: Filter) -> np.ndarray | None:
        """The boolean mask over positions a search may return (``None``: every one)."""
        return self._filters.allowed(filter, self.fields, self._manifest.segments, self._alive)

    def _adopt(self, manifest: Manifest, appended: writes.Appended | None) -> None:
        """Switch the in-memory state to a just-committed manifest (a new segment, or only
        new tombstones), updating the searcher in place rather than rebuilding it."""
        with self._rw.write():
            searcher, codecs = self._searcher, self._codecs
            first_fit = not self._manifest.codecs and bool(manifest.codecs)
            self._set_snapshot(manifest)
            if first_fit:  # scanners copy codec state (e.g. int8 ranges): rebuild on next search
                return
            self._codecs = codecs
            if searcher is not None and appended is not None:
                searcher.append(
                    runtime.segment_codes(self._files, self._manifest, self.chain, appended),
                    appended.segment.rows, self._files.vectors([appended.segment])[0])
            self._searcher = searcher

    def _stored_codecs(self) -> dict[str, Codec]:
        if self._codecs is None:
            codecs = self._files.load_codecs(self._manifest)
            for tier in self.chain.tiers:  # codecs not fitted yet (empty collection)
                codecs.setdefault(tier.codec, make_codec(tier.codec, self.dim))
            self._codecs = codecs
        return self._codecs

    def _fit_codecs(self, chain: Chain) -> dict[str, Codec]:
        """New codecs for ``chain``, trainable ones fitted on a sample of the stored vectors."""
        return writes.fit_codecs(chain, self.dim, self.vectors(), self._alive)

    def _build_searcher(self, chain: Chain, codecs: dict[str, Codec], stored: bool) -> Searcher:
        """Stored codes (``stored``) or codes encoded now from the stored vectors."""
        return runtime.build_searcher(self._files, self._manifest, chain, codecs, stored,
                                      self.read_only)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise CollectionError(f"k must be a positive integer, got {k!r}")
    return int(k)
