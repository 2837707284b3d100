"""The writer: each write commits through :mod:`tiervec.store.writes` and moves the reader to
the committed manifest. One writer per collection folder (its lock file); in one process,
writes of the same kind that wait together commit as one segment (group commit, see
:mod:`tiervec.collection.groups`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast

import numpy as np

from tiervec._text import check_value
from tiervec._validate import as_vectors, documents_to_write
from tiervec.codecs import Codec, make_codec
from tiervec.collection import multivector
from tiervec.collection.chunks import chunk_rows
from tiervec.collection.groups import PendingWrite, WriteQueue, admit, already_stored, answer
from tiervec.collection.reading import SnapshotReader
from tiervec.corpus import Document
from tiervec.encode.base import Encoder, ProgressFn, TokenEncoder, truncated_count
from tiervec.encode.bridge import UpgradeEncoder
from tiervec.encode.chunking import embed_chunks
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.errors import (
    CollectionError,
    FilterError,
    InvalidChunking,
    InvalidMultiVector,
    InvalidRequest,
)
from tiervec.filters import Filter
from tiervec.index import ANNScanner
from tiervec.lexical import LexicalConfig
from tiervec.search import Chain, FusionConfig
from tiervec.search.cutoff import RelevanceModel
from tiervec.store import writes
from tiervec.store.filtering import is_empty
from tiervec.store.locks import WriterLock
from tiervec.store.manifest import Manifest, SegmentEntry
from tiervec.store.writes import WriteStats

log = logging.getLogger(__name__)

#: Trainable codecs are fitted on at most this many vectors (a seeded random sample).
FIT_SAMPLE = writes.FIT_SAMPLE
#: Segments beyond which :meth:`Writer.compact_if_fragmented` merges them (32 rather than 16:
#: half the merges under many small writes; SciFact's mix at 32 clients, p99 133 vs 166 ms).
MERGE_SEGMENTS = 32


class CommitListener(Protocol):
    """Told of commits (the recall tuner: :class:`~tiervec.collection.tuning.RecallTuner`)."""

    def committed(self) -> None:
        """Documents were written or deleted."""

    def changed(self) -> None:
        """The chain, the recall target or the deletions changed in a way that calls for
        measuring again."""


class Writer:
    """Every write of one collection (see :class:`tiervec.Collection` for each's contract)."""

    def __init__(self, reader: SnapshotReader, lock: WriterLock | None,
                 listener: CommitListener) -> None:
        self.reader = reader
        #: the collection's writer lock (``None``: opened read-only, or closed)
        self.lock = lock
        self.listener = listener
        #: one commit at a time; held by the thread committing
        self.mutex = threading.Lock()
        self.queue = WriteQueue()
        #: documents written by this object that the model read only the start of
        self.truncated = 0

    # -- documents ------------------------------------------------------------------------------
    def write_documents(
        self, documents: Iterable[Document | Mapping[str, Any]], vectors: Any,
        progress: ProgressFn | None, *, replace: bool,
    ) -> WriteStats:
        """Add (or with ``replace``, upsert) documents: encoded in the caller's thread, then
        committed with every write queued meanwhile."""
        self.require_writable()
        reader = self.reader
        docs, vectors = documents_to_write(documents, vectors, reader.dim)
        if not docs:
            return WriteStats()
        if reader.chunking is not None or reader.multivector is not None:
            return self._write_encoded_in_commit(docs, vectors, progress, replace=replace)
        truncated, native, space = 0, None, None
        if vectors is None:  # encoded in the caller's thread, while others commit
            space = reader.manifest.encoder  # the stored space the vectors are made for
            encoder = reader.encoder
            texts = [d.embedding_text() for d in docs]
            truncated = truncated_count(encoder, texts)
            if truncated and not self.truncated:
                log.warning(TRUNCATED, truncated, len(texts), getattr(encoder, "max_length", "?"))
            self.truncated += truncated
            vectors, native = self._encode(encoder, texts, progress)
        write = PendingWrite(docs, vectors, replace, truncated, native, space)
        self.queue.put(write)
        with self.mutex:
            while not write.done:  # no commit took it yet: commit it and all queued since
                self._commit_queued()  # (again if it waited behind a write of its ids)
        return write.result()

    def _commit_queued(self) -> None:
        """Commit every queued write that can go together as one segment; the mutex is held."""
        group = self.queue.take()
        if self.lock is None:  # closed while these waited
            for write in group:
                write.finish(error=CollectionError(
                    f"collection {str(self.reader.path)!r} was closed before this write "
                    "committed"))
            return
        existing = self.reader.docs.rows_of([i for write in group for i in write.ids])
        accepted = admit(group, existing, self.reader.fields)
        self.queue.put_back([w for w in group if not w.done and w not in accepted])
        if not accepted:
            return
        for write in accepted:
            if write.space is not None and write.space != self.reader.manifest.encoder:
                self._to_stored_space(write)
        rows = [d for write in accepted for d in write.docs]
        vectors = accepted[0].vectors if len(accepted) == 1 else \
            np.concatenate([write.vectors for write in accepted])
        natives = [write.native for write in accepted]
        native = None if any(n is None for n in natives) else \
            np.concatenate([n for n in natives if n is not None])
        replaced = sorted(r for write in accepted if write.replace for i in write.ids
                          for r in existing.get(i, ()))
        try:
            self.commit_rows(rows, vectors, replaced, native=native)
        except BaseException as exc:
            for write in accepted:
                write.finish(error=exc)
            raise
        self.queue.commits += 1
        self.queue.writes += len(accepted)
        answer(accepted, existing)

    def _encode(self, encoder: Encoder, texts: list[str],
                progress: ProgressFn | None) -> tuple[np.ndarray, np.ndarray | None]:
        """``texts`` in the stored space, and while an upgrade maps the new model's own
        vectors too (kept for the upgrade's switch)."""
        if isinstance(encoder, UpgradeEncoder):
            vectors, native = encoder.stored_and_native(
                encoder.new.encode_documents(texts, progress))
        else:
            vectors, native = encoder.encode_documents(texts, progress), None
        return as_vectors(vectors, self.reader.dim, rows=len(texts)), native

    def _to_stored_space(self, write: PendingWrite) -> None:
        """A write encoded before an upgrade's switch committed (its vectors are of the
        former space): the new model's own vectors where it kept them, else encoded again
        (under the mutex: a write has to overlap the switch for this)."""
        if write.native is not None and write.native.shape[1] == self.reader.dim:
            write.vectors, write.native = write.native, None
        else:
            write.vectors, write.native = self._encode(
                self.reader.encoder, [d.embedding_text() for d in write.docs], None)
        write.space = self.reader.manifest.encoder

    def commit_rows(self, rows: list[Document], vectors: np.ndarray, replaced: list[int],
                    **extra: Any) -> None:
        """Commit ``rows`` as one new segment (replacing rows ``replaced``) and adopt it; the
        mutex is held."""
        reader = self.reader
        postings = None
        if reader.manifest.lexical is not None:
            postings = writes.segment_postings(reader.lexical_for(reader.snap).analyzer,
                                               ((d.title, d.text) for d in rows))
        manifest, appended = writes.commit_segment(
            reader.files, reader.manifest, reader.docs, reader.stored_codecs(),
            writes.NewRows(rows, vectors, replaced, postings, **extra))
        self._adopt(manifest, appended)

    def _write_encoded_in_commit(
        self, docs: list[Document], vectors: np.ndarray | None, progress: ProgressFn | None,
        *, replace: bool,
    ) -> WriteStats:
        """A chunked or multi-vector collection's write: one commit of its own, encoded under
        the mutex (chunks and token codecs depend on the collection's state)."""
        reader = self.reader
        chunking, mv = reader.chunking, reader.multivector
        if chunking is not None and vectors is not None:
            raise InvalidChunking(
                "this collection cuts documents into chunks and embeds each chunk itself; "
                "pass the documents without vectors")
        if mv is not None and vectors is not None:
            raise InvalidMultiVector(
                "a multi-vector collection embeds every token of its documents itself; pass "
                "the documents without vectors")
        texts = [d.embedding_text() for d in docs]
        with self.mutex:
            existing = reader.docs.rows_of([d.id for d in docs])
            if existing and not replace:
                raise already_stored(list(existing))
            if mv is not None:
                vectors, stacked, ptr = multivector.encode_documents(
                    reader.encoder, reader.muvera(), texts, progress)
                codec = self._token_codec(mv, stacked)
                self.commit_rows(docs, vectors, _rows(existing),
                                 tokens=multivector.segment_tokens(stacked, ptr, codec),
                                 token_codec=codec)
            else:
                assert chunking is not None
                encoder = reader.encoder
                if isinstance(encoder, UpgradeEncoder):  # chunks cut by the new model
                    chunked = embed_chunks(encoder.new, texts, chunking, progress)
                    vectors, native = encoder.stored_and_native(chunked.vectors)
                else:
                    chunked = embed_chunks(cast(TokenEncoder, encoder), texts, chunking,
                                           progress)
                    vectors, native = chunked.vectors, None
                rows, chunks = chunk_rows(docs, chunked)
                self.commit_rows(rows, vectors, _rows(existing), chunks=chunks, native=native)
        return WriteStats(added=len(docs) - len(existing), replaced=len(existing))

    def delete(self, ids: Iterable[str] | str) -> WriteStats:
        self.require_writable()
        ids = list(dict.fromkeys([ids] if isinstance(ids, str) else map(str, ids)))
        reader = self.reader
        with self.mutex:
            rows = reader.docs.rows_of(ids)
            missing = [i for i in ids if i not in rows]
            if rows:
                manifest = writes.commit_delete(reader.files, reader.manifest, reader.docs,
                                                _rows(rows))
                self._adopt(manifest, None)
        return WriteStats(deleted=len(rows), missing=missing)

    def delete_where(self, filter: Filter) -> WriteStats:
        self.require_writable()
        if is_empty(filter):
            raise FilterError("delete_where needs a filter; to remove every document, delete "
                              "the collection (or its documents by id)")
        reader = self.reader
        with self.mutex:
            snap = reader.snap
            mask = reader.allowed(filter, snap)
            positions = np.flatnonzero(mask) if mask is not None else np.empty(0, np.int64)
            if not len(positions):
                return WriteStats()
            heads = snap.heads
            documents = len(positions) if heads is None else int(heads[positions].sum())
            manifest = writes.commit_delete(reader.files, reader.manifest, reader.docs,
                                            sorted(snap.rows.rows(positions).tolist()))
            self._adopt(manifest, None)
        return WriteStats(deleted=documents)

    def set_metadata(self, updates: Mapping[str, Mapping[str, Any]], *,
                     replace: bool = False) -> WriteStats:
        self.require_writable()
        reader = self.reader
        if reader.chunking is not None or reader.multivector is not None:
            raise CollectionError(
                "set_metadata keeps a document's one stored vector; a chunked or multi-vector "
                "collection's documents have several: upsert the documents instead")
        if not isinstance(updates, Mapping):
            raise InvalidRequest(f"updates maps ids to metadata, got {type(updates).__name__}")
        for doc_id, meta in updates.items():
            if not isinstance(meta, Mapping):
                raise InvalidRequest(f"the metadata for {doc_id!r} is {type(meta).__name__}; "
                                     "give a mapping of fields to values")
            check_value(dict(meta), f"the metadata for {doc_id!r}")
        ids = list(updates)
        with self.mutex:
            found = reader.docs.rows_of(ids)
            live = [i for i in ids if i in found]
            if not live:
                return WriteStats(missing=ids)
            stored = {d.id: d for d in reader.docs.get(live) if d is not None}
            rows = [_updated(stored[i], updates[i], replace) for i in live]
            positions = reader.snap.rows.positions(np.array([found[i][0] for i in live]))
            vectors = reader.vectors().take(positions)
            self.commit_rows(rows, vectors, sorted(found[i][0] for i in live))
        return WriteStats(replaced=len(live), missing=[i for i in ids if i not in found])

    # -- compaction -----------------------------------------------------------------------------
    def compact(self, *, vacuum: bool = True) -> WriteStats:
        self.require_writable()
        reader = self.reader
        with self.mutex:
            manifest = reader.manifest
            if not manifest.deleted and len(manifest.segments) <= 1:
                return WriteStats()
            new, dropped = self._merge(None)
            writes.finish_compaction(reader.files, reader.docs, new, dropped, vacuum)
        stats = WriteStats(deleted=manifest.deleted - new.deleted)
        if stats.deleted:
            self.listener.changed()
        return stats

    def _merge(self, segments: list[int] | None) -> tuple[Manifest, list[SegmentEntry]]:
        """Merge the live rows of ``segments`` (numbers; all if ``None``) into one and adopt
        the result (the mutex is held): the new manifest, and the segments it dropped (their
        files and rows are the caller's to remove)."""
        reader = self.reader
        alive = reader.snap.alive
        new, dropped = writes.commit_compaction(
            reader.files, reader.manifest, reader.docs, reader.snap.rows,
            None if alive is None else np.flatnonzero(alive), merge=segments)
        with reader.rw.write():
            reader.adopt(new)
        return new, dropped

    def is_fragmented(self, max_segments: int = MERGE_SEGMENTS) -> bool:
        return len(self.reader.manifest.segments) > max_segments

    def compact_if_fragmented(self, max_segments: int = MERGE_SEGMENTS) -> bool:
        reader = self.reader
        with self.mutex:
            if not self.is_fragmented(max_segments):
                return False
            sizes = [s.rows for s in reader.manifest.segments]
            largest = int(np.argmax(sizes))
            tail = [i for i in range(len(sizes)) if i != largest]
            new, dropped = self._merge(
                tail if sizes[largest] > sum(sizes) - sizes[largest] else None)
            reader.files.remove_stale_graphs(new)
        # the old segments' files and rows go once writers may commit again
        writes.drop_segments(reader.files, reader.docs, dropped)
        return True

    # -- settings and derived state -------------------------------------------------------------
    def save_graph(self) -> None:
        reader = self.reader
        pipeline = reader.built
        if reader.read_only or self.lock is None or pipeline is None:
            return
        first = pipeline.tiers[0]
        scanner, graph = first.scanner, reader.manifest.graph
        if not isinstance(scanner, ANNScanner) or (
                graph and graph["rows"] == scanner.ntotal
                and graph["generation"] == reader.manifest.generation):
            return
        with self.mutex:
            with reader.rw.read():  # the scanner as searches see it
                manifest = writes.commit_graph(reader.files, reader.manifest, scanner,
                                               kind=str(first.tier.location))
            with reader.rw.write():
                reader.adopt_settings(manifest)

    def create_lexical_index(self, config: LexicalConfig | None = None) -> None:
        self.require_writable()
        reader = self.reader
        with self.mutex:
            manifest = writes.commit_lexical(reader.files, reader.manifest, reader.docs,
                                             config or LexicalConfig())
            with reader.rw.write():
                reader.adopt_settings(manifest)

    def set_search_defaults(self, fusion: FusionConfig | None,
                            calibrations: Mapping[str, RelevanceModel] | None) -> None:
        """Store a default fusion and calibrations by mode (others kept)."""
        def changes(search: Mapping[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            if fusion is not None:
                out["fusion"] = fusion.to_dict()
            if calibrations:
                out["calibration"] = {**search.get("calibration", {}),
                                      **{kind: m.to_dict() for kind, m in calibrations.items()}}
            return out

        self.set_search_settings(changes)

    def set_search_settings(
        self, changes: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> None:
        """Store what ``changes`` makes of the stored ``search`` settings (called under the
        mutex) in the manifest; the other settings are kept."""
        self.require_writable()
        reader = self.reader
        with self.mutex:
            current = reader.manifest.search
            search = {**current, **changes(current)}
            manifest = writes.commit_settings(reader.files, reader.manifest, search)
            with reader.rw.write():
                reader.adopt_settings(manifest)

    def create_index(self, name: str) -> None:
        self.require_writable()
        reader = self.reader
        with self.mutex:
            manifest = writes.commit_index(reader.files, reader.manifest, reader.docs,
                                           reader.fields, name)
            with reader.rw.write():
                reader.adopt_settings(manifest)

    def fit_is_stale(self) -> bool:
        reader = self.reader
        target = min(reader.snap.documents, FIT_SAMPLE)
        return any(make_codec(e.codec, reader.dim).trainable and e.fitted_on < target / 2
                   for e in reader.manifest.codecs.values())

    def set_tiers(self, tiers: str | Chain) -> None:
        self.require_writable()
        reader = self.reader
        chain = Chain.parse(tiers)
        with self.mutex:
            codecs = reader.fit_codecs(chain)
            manifest, old = writes.commit_codecs(reader.files, reader.manifest, str(chain),
                                                 codecs, reader.vectors().arrays)
            with reader.rw.write():
                reader.adopt(manifest)
                reader.codecs = codecs if manifest.codecs else None
            reader.files.remove_codec_files(old, manifest.segments)
            reader.files.remove_stale_graphs(manifest)
        self.listener.changed()

    # -- internals ------------------------------------------------------------------------------
    def _token_codec(self, config: MultiVectorConfig, tokens: np.ndarray) -> Codec | None:
        """The collection's fitted token codec (fitted on these tokens if none is yet)."""
        manifest = self.reader.manifest
        entry, dim = manifest.token_codec, manifest.token_dim
        if entry is not None and dim is not None:
            return writes.load_token_codec(self.reader.files, entry, dim)
        return multivector.fit_token_codec(config, tokens)

    @property
    def writable(self) -> bool:
        """Whether writes may commit: opened for writing and not closed."""
        return not self.reader.read_only and self.lock is not None

    def require_writable(self) -> None:
        where = str(self.reader.path)
        if self.reader.read_only:
            raise CollectionError(f"collection {where!r} was opened read-only; reopen it with "
                                  "tiervec.open(path) to write")
        if self.lock is None:
            raise CollectionError(f"collection {where!r} is closed; reopen it")

    def _adopt(self, manifest: Manifest, appended: writes.Appended | None) -> None:
        """Move the reader to a just-committed manifest (the pipeline updated in place) and
        tell the listener."""
        with self.reader.rw.write():
            self.reader.adopt_appended(manifest, appended)
        self.listener.committed()


#: The warning given the first time a collection embeds only the start of documents.
TRUNCATED = (
    "%d of %d documents are longer than the model reads (%d word pieces): only their start is "
    "embedded. Their whole text is stored (and indexed for BM25 when the collection has a "
    "lexical index); to embed all of it, index them into a chunked collection (`tiervec index "
    "--chunking late`, or create(chunking=...)). Further such documents are counted in "
    "Collection.truncated, not warned of again")


def _rows(found: Mapping[str, list[int]]) -> list[int]:
    return sorted(r for rows in found.values() for r in rows)


def _updated(doc: Document, changes: Mapping[str, Any], replace: bool) -> Document:
    metadata = dict(changes) if replace else {**doc.metadata, **changes}
    return Document(id=doc.id, text=doc.text, title=doc.title,
                    metadata={k: v for k, v in metadata.items() if v is not None})
