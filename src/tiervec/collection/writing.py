"""The write side of a collection: each write commits through :mod:`tiervec.store.writes` and
moves the in-memory state (snapshot, pipeline) to the committed manifest."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tiervec._validate import as_vectors, documents_to_write
from tiervec.codecs import Codec, make_codec
from tiervec.collection import multivector
from tiervec.collection.chunks import chunk_rows
from tiervec.collection.groups import PendingWrite, WriteQueue, admit, already_stored, answer
from tiervec.collection.reading import Reading
from tiervec.corpus import Document
from tiervec.encode.base import ProgressFn, truncated_count
from tiervec.encode.chunking import embed_chunks
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.errors import CollectionError, InvalidChunking, InvalidMultiVector
from tiervec.index import ANNScanner
from tiervec.lexical import LexicalConfig
from tiervec.search import Chain, FusionConfig
from tiervec.search.assemble import segment_codes
from tiervec.search.cutoff import RelevanceModel
from tiervec.store import writes
from tiervec.store.fields import fields_from_manifest
from tiervec.store.locks import WriterLock
from tiervec.store.manifest import Manifest, SegmentEntry
from tiervec.store.writes import WriteStats

log = logging.getLogger(__name__)

#: Trainable codecs are fitted on at most this many vectors (a seeded random sample).
FIT_SAMPLE = writes.FIT_SAMPLE
#: Segments beyond which :meth:`Writing.compact_if_fragmented` merges them (32 rather than 16:
#: half the merges under many small writes; SciFact's mix at 32 clients, p99 133 vs 166 ms).
MERGE_SEGMENTS = 32


class Writing(Reading):
    """Adds, upserts, deletes, compactions and re-compressions (one writer per collection)."""

    _lock: WriterLock | None
    _write_mutex: threading.Lock
    _queue: WriteQueue
    #: Documents written by this object that the model read only the start of (not chunked).
    truncated: int = 0

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
        if self.chunking is not None or self.multivector is not None:
            return self._write_encoded_in_commit(docs, vectors, progress, replace=replace)
        truncated = 0
        if vectors is None:  # encoded in the caller's thread, while others commit
            texts = [d.embedding_text() for d in docs]
            truncated = truncated_count(self.encoder, texts)
            if truncated and not self.truncated:
                log.warning(TRUNCATED, truncated, len(texts),
                            getattr(self.encoder, "max_length", "?"))
            self.truncated += truncated
            vectors = as_vectors(self.encoder.encode_documents(texts, progress), self.dim,
                                 rows=len(docs))
        write = PendingWrite(docs, vectors, replace, truncated)
        self._queue.put(write)
        with self._write_mutex:
            while not write.done:  # no commit took it yet: commit it and all queued since
                self._commit_queued()  # (again if it waited behind a write of its ids)
        return write.result()

    def _commit_queued(self) -> None:
        """Commit every queued write that can go together as one segment (group commit, see
        :mod:`tiervec.collection.groups`); the writer mutex is held."""
        group = self._queue.take()
        if self._lock is None:  # closed while these waited
            for write in group:
                write.finish(error=CollectionError(
                    f"collection {str(self.path)!r} was closed before this write committed"))
            return
        existing = self._docs.rows_of([i for write in group for i in write.ids])
        accepted = admit(group, existing, fields_from_manifest(self._manifest.fields))
        self._queue.put_back([w for w in group if not w.done and w not in accepted])
        if not accepted:
            return
        rows = [d for write in accepted for d in write.docs]
        vectors = accepted[0].vectors if len(accepted) == 1 else \
            np.concatenate([write.vectors for write in accepted])
        replaced = sorted(r for write in accepted if write.replace for i in write.ids
                          for r in existing.get(i, ()))
        try:
            self._commit_rows(rows, vectors, replaced)
        except BaseException as exc:
            for write in accepted:
                write.finish(error=exc)
            raise
        self._queue.commits += 1
        self._queue.writes += len(accepted)
        answer(accepted, existing)

    def _commit_rows(self, rows: list[Document], vectors: np.ndarray, replaced: list[int],
                     **extra: Any) -> None:
        """Commit ``rows`` as one new segment (replacing rows ``replaced``) and adopt it."""
        postings = None
        if self._manifest.lexical is not None:
            postings = writes.segment_postings(self._lexical_for(self._snap).analyzer,
                                               ((d.title, d.text) for d in rows))
        manifest, appended = writes.commit_segment(
            self._files, self._manifest, self._docs, self._stored_codecs(),
            writes.NewRows(rows, vectors, replaced, postings, **extra))
        self._adopt(manifest, appended)

    def _write_encoded_in_commit(
        self, docs: list[Document], vectors: np.ndarray | None, progress: ProgressFn | None,
        *, replace: bool,
    ) -> WriteStats:
        """A chunked or multi-vector collection's write: one commit of its own, encoded under
        the writer mutex (chunks and token codecs depend on the collection's state)."""
        chunking, mv = self.chunking, self.multivector
        if chunking is not None and vectors is not None:
            raise InvalidChunking(
                "this collection cuts documents into chunks and embeds each chunk itself; "
                "pass the documents without vectors")
        if mv is not None and vectors is not None:
            raise InvalidMultiVector(
                "a multi-vector collection embeds every token of its documents itself; pass "
                "the documents without vectors")
        with self._write_mutex:
            existing = self._docs.rows_of([d.id for d in docs])
            if existing and not replace:
                raise already_stored(list(existing))
            if mv is not None:
                vectors, stacked, ptr = multivector.encode_documents(
                    self.encoder, self._muvera(), [d.embedding_text() for d in docs], progress)
                codec = self._token_codec(mv, stacked)
                self._commit_rows(docs, vectors, _rows(existing),
                                  tokens=multivector.segment_tokens(stacked, ptr, codec),
                                  token_codec=codec)
            else:
                chunked = embed_chunks(self.encoder, [d.embedding_text() for d in docs],  # type: ignore[arg-type]
                                       chunking, progress)  # type: ignore[arg-type]
                rows, chunks = chunk_rows(docs, chunked)
                self._commit_rows(rows, chunked.vectors, _rows(existing), chunks=chunks)
        return WriteStats(added=len(docs) - len(existing), replaced=len(existing))

    def delete(self, ids: Iterable[str] | str) -> WriteStats:
        """Delete documents by id. Unknown ids are reported in ``missing``, not an error."""
        self._require_writable()
        ids = list(dict.fromkeys([ids] if isinstance(ids, str) else map(str, ids)))
        with self._write_mutex:
            rows = self._docs.rows_of(ids)
            missing = [i for i in ids if i not in rows]
            if rows:
                manifest = writes.commit_delete(self._files, self._manifest, self._docs,
                                                sorted(r for found in rows.values() for r in found))
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
            new, dropped = self._merge(None)
            writes.finish_compaction(self._files, self._docs, new, dropped, vacuum)
        return WriteStats(deleted=manifest.deleted - new.deleted)

    def _merge(self, segments: list[int] | None) -> tuple[Manifest, list[SegmentEntry]]:
        """Merge the live rows of ``segments`` (numbers; all if ``None``) into one and adopt
        the result (the writer mutex is held): the new manifest, and the segments it dropped
        (their files and rows are the caller's to remove)."""
        alive = self._snap.alive
        new, dropped = writes.commit_compaction(
            self._files, self._manifest, self._docs, self._snap.rows,
            None if alive is None else np.flatnonzero(alive), merge=segments)
        with self._rw.write():
            self._set_snapshot(new)
        return new, dropped

    def is_fragmented(self, max_segments: int = MERGE_SEGMENTS) -> bool:
        """Whether many small writes left more than ``max_segments`` segments (every search
        visits each)."""
        return len(self._manifest.segments) > max_segments

    def compact_if_fragmented(self, max_segments: int = MERGE_SEGMENTS) -> bool:
        """Merge small segments when :meth:`is_fragmented` (searches go on meanwhile): every
        segment but the largest while that one holds more rows than the rest together (so a
        merge costs about what the small writes since the last one cost, not a rewrite of
        the collection), else all of them. ``True`` if it merged."""
        with self._write_mutex:
            if not self.is_fragmented(max_segments):
                return False
            sizes = [s.rows for s in self._manifest.segments]
            largest = int(np.argmax(sizes))
            tail = [i for i in range(len(sizes)) if i != largest]
            new, dropped = self._merge(
                tail if sizes[largest] > sum(sizes) - sizes[largest] else None)
            self._files.remove_stale_graphs(new)
        # the old segments' files and rows go once writers may commit again
        writes.drop_segments(self._files, self._docs, dropped)
        return True

    def save_graph(self) -> None:
        """Save the ANN index of an ``@hnsw``/``@ivf`` first tier if it grew since it was saved
        (done by :meth:`close`; a lost index is rebuilt from the stored codes)."""
        pipeline = self._pipeline
        if self.read_only or self._lock is None or pipeline is None:
            return
        first = pipeline.tiers[0]
        scanner, graph = first.scanner, self._manifest.graph
        if not isinstance(scanner, ANNScanner) or (
                graph and graph["rows"] == scanner.ntotal
                and graph["generation"] == self._manifest.generation):
            return
        with self._write_mutex, self._rw.read():
            self._manifest = writes.commit_graph(self._files, self._manifest, scanner,
                                                 kind=str(first.tier.location))

    def create_lexical_index(self, config: LexicalConfig | None = None) -> None:
        """Build the lexical (BM25) index over every stored document's title and text, for
        lexical and hybrid search (replacing one built with another ``config``); later writes
        keep it up to date in the same commit as the documents."""
        self._require_writable()
        config = config or LexicalConfig()
        with self._write_mutex:
            manifest = writes.commit_lexical(self._files, self._manifest, self._docs, config)
            with self._rw.write():
                self._manifest = manifest
                self._snap.manifest = manifest
                self._lexical = None

    def set_search_defaults(
        self, *, fusion: FusionConfig | None = None,
        calibrations: Mapping[str, RelevanceModel] | None = None,
    ) -> None:
        """Store a hybrid search's default fusion and fitted relevance calibrations (by mode)
        in the collection (what ``tiervec tune --apply`` does); others are kept."""
        self._require_writable()
        with self._write_mutex:
            search = dict(self._manifest.search)
            if fusion is not None:
                search["fusion"] = fusion.to_dict()
            if calibrations:
                search["calibration"] = {**search.get("calibration", {}),
                                         **{k: m.to_dict() for k, m in calibrations.items()}}
            manifest = writes.commit_settings(self._files, self._manifest, search)
            with self._rw.write():
                self._manifest = manifest
                self._snap.manifest = manifest

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

    def set_tiers(self, tiers: str | Chain) -> None:
        """Switch to another chain: fit its codecs on the stored vectors and re-encode them.

        Nothing is re-embedded; the old codes are removed once the new ones are committed.
        """
        self._require_writable()
        chain = Chain.parse(tiers)
        with self._write_mutex:
            codecs = self._fit_codecs(chain)
            manifest, old = writes.commit_codecs(self._files, self._manifest, str(chain), codecs,
                                                 self.vectors().arrays)
            with self._rw.write():
                self._set_snapshot(manifest)
                self._codecs = codecs if manifest.codecs else None
            self._files.remove_codec_files(old, manifest.segments)
            self._files.remove_stale_graphs(manifest)

    def refit(self) -> None:
        """Re-fit the chain's trainable codecs on a sample of all stored vectors, re-encode."""
        self.set_tiers(self.chain)

    # -- internals ------------------------------------------------------------------------------
    def _token_codec(self, config: MultiVectorConfig, tokens: np.ndarray) -> Codec | None:
        """The collection's fitted token codec (fitted on these tokens if none is yet)."""
        entry, dim = self._manifest.token_codec, self._manifest.token_dim
        if entry is not None and dim is not None:
            return writes.load_token_codec(self._files, entry, dim)
        return multivector.fit_token_codec(config, tokens)

    def _require_writable(self) -> None:
        if self.read_only:
            raise CollectionError(
                f"collection {str(self.path)!r} was opened read-only; reopen it with "
                "tiervec.open(path) to write"
            )
        if self._lock is None:
            raise CollectionError(f"collection {str(self.path)!r} is closed; reopen it")

    def _adopt(self, manifest: Manifest, appended: writes.Appended | None) -> None:
        """Switch the in-memory state to a just-committed manifest (a new segment, or only
        new tombstones), updating the pipeline in place rather than rebuilding it."""
        with self._rw.write():
            pipeline, codecs, lexical = self._pipeline, self._codecs, self._lexical
            first_fit = not self._manifest.codecs and bool(manifest.codecs)
            self._set_snapshot(manifest)
            if lexical is not None and manifest.lexical_key is not None:
                if appended is not None:
                    lexical.append(self._files.postings(appended.segment,
                                                        manifest.lexical_key))
                self._lexical = lexical
            if first_fit:  # scanners copy codec state (e.g. int8 ranges): rebuild on next search
                return
            self._codecs = codecs
            if pipeline is not None and appended is not None:
                pipeline.append(
                    segment_codes(self._files, self._manifest, self.chain, appended),
                    appended.segment.rows, self._files.vectors([appended.segment])[0])
            self._pipeline = pipeline



#: The warning given the first time a collection embeds only the start of documents.
TRUNCATED = (
    "%d of %d documents are longer than the model reads (%d word pieces): only their start is "
    "embedded. Their whole text is stored (and indexed for BM25 when the collection has a "
    "lexical index); to embed all of it, index them into a chunked collection (`tiervec index "
    "--chunking late`, or create(chunking=...)). Further such documents are counted in "
    "Collection.truncated, not warned of again")


def _rows(found: Mapping[str, list[int]]) -> list[int]:
    return sorted(r for rows in found.values() for r in rows)
