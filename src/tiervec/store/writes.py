"""How each write reaches the disk, in an order that survives a crash at any point.

Every write follows the same three steps:

1. new files (a segment folder, codec state, codes) are written under temporary names, fsynced,
   and renamed into place; nothing points at them yet;
2. the database changes are made in one SQLite transaction (WAL, ``synchronous=FULL``): new rows
   above the manifest's ``next_row``, tombstones stamped with ``epoch + 1`` (steps 1 and 2 touch
   nothing the other reads, so an add runs them at the same time; both finish before step 3);
3. the new manifest is written to a temporary file, fsynced, renamed over ``manifest.json`` and
   the folder is fsynced. **This is the commit**: a write that returned is durable.

A crash before step 3 leaves files and rows the manifest does not know; the next writer to open
the collection removes them (:meth:`CollectionFiles.remove_leftovers`). A crash after it leaves,
at worst, files of segments the manifest no longer lists (after a compaction), removed the same
way. Readers only ever look through a committed manifest.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from tiervec.codecs import Codec, make_codec
from tiervec.corpus import Document
from tiervec.filters import Field
from tiervec.filters.compile import unknown_field
from tiervec.lexical import Analyzer, LexicalConfig, Postings
from tiervec.lexical.analyze import document_text
from tiervec.store.codes import CodeSource
from tiervec.store.docstore import DocStore
from tiervec.store.fields import fields_from_manifest, fields_to_manifest, typed_columns
from tiervec.store.files import fsync_dir, load_npy, save_npy
from tiervec.store.layout import CHUNKS, EXACT_CODEC, VECTORS, CollectionFiles, Tokens
from tiervec.store.manifest import CodecEntry, Manifest, SegmentEntry
from tiervec.store.rows import RowMap

log = logging.getLogger(__name__)

#: Trainable codecs are fitted on at most this many vectors (a seeded random sample).
FIT_SAMPLE = 100_000
#: Fitting on fewer vectors than this logs a warning suggesting :meth:`Collection.refit`.
MIN_FIT = 1_000


@dataclass(frozen=True)
class WriteStats:
    """What a write did: documents added, replaced (upsert), deleted, ids not found, and
    documents longer than the model reads (only their start embedded; not chunked)."""

    added: int = 0
    replaced: int = 0
    deleted: int = 0
    missing: list[str] = field(default_factory=list)
    truncated: int = 0


@dataclass
class Appended:
    """A committed new segment, with its vectors and codes still in memory."""

    segment: SegmentEntry
    vectors: np.ndarray
    codes: dict[str, np.ndarray]


def copy_manifest(manifest: Manifest) -> Manifest:
    return copy.deepcopy(manifest)


class SavedIndex(Protocol):
    """An index over a tier's codes that can be saved (derived data: rebuilt if lost)."""

    @property
    def ntotal(self) -> int: ...

    def save(self, path: Path) -> None: ...


def fit_codecs(
    names: Sequence[str], dim: int, source: CodeSource, alive: np.ndarray | None
) -> dict[str, Codec]:
    """New codecs ``names`` (a chain's, in order), trainable ones fitted on a sample of the
    live stored vectors."""
    rows = np.arange(len(source)) if alive is None else np.flatnonzero(alive)
    if len(rows) > FIT_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(rows, FIT_SAMPLE, replace=False))
    sample = source.take(rows) if len(rows) else None
    codecs = {}
    for name in names:
        if name not in codecs:
            codec = make_codec(name, dim)
            if codec.trainable and sample is not None:
                codec.fit(sample)
            codecs[name] = codec
    return codecs


@dataclass(frozen=True)
class NewRows:
    """What one commit adds: the documents (rows) and their full-precision vectors, the rows
    they replace, and the arrays the collection's settings call for: ``postings`` (its
    lexical index), ``chunks`` (a chunked collection's chunk table; ``docs`` are then its chunk
    rows), ``tokens`` (a multi-vector collection's token vectors, with codes of
    ``token_codec``, whose state is saved with the first segment); ``native``: while a model
    upgrade maps, the new model's own vectors of the rows (``vectors`` are them mapped), kept
    beside the segment for the upgrade's switch."""

    docs: Sequence[Document]
    vectors: np.ndarray
    replaced: Sequence[int] = ()
    postings: Postings | None = None
    chunks: np.ndarray | None = None
    tokens: Tokens | None = None
    token_codec: Codec | None = None
    native: np.ndarray | None = None


def commit_segment(files: CollectionFiles, manifest: Manifest, docs_db: DocStore,
                   codecs: dict[str, Codec], new_rows: NewRows) -> tuple[Manifest, Appended]:
    """Write ``new_rows`` as a new segment (tombstoning the rows they replace) and commit it;
    each array the collection's settings call for must be there."""
    docs, vectors, replaced = new_rows.docs, new_rows.vectors, new_rows.replaced
    postings, chunks, tokens = new_rows.postings, new_rows.chunks, new_rows.tokens
    token_codec = new_rows.token_codec
    lexical = manifest.lexical
    if (postings is None) != (lexical is None):
        raise ValueError("a collection with a lexical index needs the segment's postings")
    if (chunks is None) != (manifest.chunking is None):
        raise ValueError("a chunked collection needs the segment's chunk table")
    if (tokens is None) != (manifest.multivector is None):
        raise ValueError("a multi-vector collection needs the segment's token vectors")
    new = copy_manifest(manifest)
    fields, columns = typed_columns(fields_from_manifest(manifest.fields), docs)  # may raise
    first_fit = not manifest.codecs
    if first_fit:  # first vectors of the collection: fit the chain's codecs on them
        for codec in codecs.values():
            if codec.trainable:
                codec.fit(vectors)
                if len(vectors) < MIN_FIT:
                    log.warning("%s codec fitted on only %d vectors; call refit() once "
                                "more are added", codec.name, len(vectors))
    segment = files.next_segment(manifest, rows=len(docs), start=manifest.next_row)
    codes = {name: c.encode(vectors) for name, c in codecs.items() if name != EXACT_CODEC}
    try:
        if first_fit:
            new.codecs = files.save_codecs(codecs, manifest.generation, len(docs))
        if token_codec is not None and new.multivector is not None and \
                "token_codec" not in new.multivector:
            new.multivector["token_codec"] = save_token_codec(files, token_codec)
        # the segment's files and its database rows are independent until the commit: write
        # them at once (file writes and SQLite both release the GIL)
        with ThreadPoolExecutor(1) as pool:
            arrays = {VECTORS: vectors,
                      **{f"{new.codecs[n].key}.npy": c for n, c in codes.items()},
                      **({} if chunks is None else {CHUNKS: chunks}),
                      **({} if tokens is None else tokens.files())}
            written = pool.submit(
                files.write_segment, segment, new, arrays,
                None if postings is None or lexical is None else (lexical["key"], postings))
            try:
                docs_db.write(segment.start, docs, fields, columns, replaced, manifest.epoch + 1)
            finally:
                written.result()  # wait (and raise) before anything else happens
        if new_rows.native is not None and (manifest.upgrade or {}).get("state") == "mapped":
            _save_native(files, segment, new_rows.native)
        new.segments.append(segment)
        new.epoch += 1
        new.deleted += len(replaced)
        new.fields = fields_to_manifest(fields)
        new.write(files.root)
    except BaseException:
        files.native_path(segment).unlink(missing_ok=True)
        _undo(files, docs_db, manifest, segment, new.codecs if first_fit else {})
        raise
    return new, Appended(segment=segment, vectors=vectors, codes=codes)


def _save_native(files: CollectionFiles, segment: SegmentEntry, vectors: np.ndarray) -> None:
    """Write a segment's new-model vectors whole (a temporary name, synced, renamed) before
    the manifest naming the segment is committed."""
    path = files.native_path(segment)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_npy(tmp, np.asarray(vectors, np.float32))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_token_codec(files: CollectionFiles, codec: Codec) -> dict:
    """Write a fitted token codec's state; its manifest entry."""
    key = f"tokens-{codec.name}"
    state = codec.state()
    for name, array in state.items():
        save_npy(files.state_path(key, name), array)
    return {"codec": codec.name, "key": key, "params": codec.params(), "state": sorted(state)}


def load_token_codec(files: CollectionFiles, entry: CodecEntry, dim: int) -> Codec:
    """The token codec of a manifest's entry (:attr:`Manifest.token_codec`), state
    restored."""
    codec = make_codec(entry.codec, dim)
    codec.load_state(entry.params, {a: load_npy(files.state_path(entry.key, a), mmap=False)
                                    for a in entry.state})
    return codec


def segment_postings(analyzer: Analyzer, texts: Iterable[tuple[str, str]]) -> Postings:
    """The lexical index of a segment's documents, given as ``(title, text)`` in row order."""
    return Postings.from_hashes([analyzer.hashes(document_text(title, text))
                                 for title, text in texts])


def commit_lexical(
    files: CollectionFiles, manifest: Manifest, docs_db: DocStore, config: LexicalConfig
) -> Manifest:
    """Build the lexical index of every stored segment from the texts in the database (deleted
    documents' too: the live mask hides them) under a new key, and commit it. The postings of
    a replaced lexical index are removed after the commit."""
    old = manifest.lexical
    number = int(old["key"].rsplit("-", 1)[1]) + 1 if old else 0
    key = f"lex-{number}"
    analyzer = Analyzer(config)
    try:
        for segment in manifest.segments:
            texts = docs_db.texts_for_rows(segment.start, segment.start + segment.rows)
            postings = segment_postings(analyzer, texts)
            files.save_postings(files.segment_dir(segment), key, postings)
            fsync_dir(files.segment_dir(segment))
        new = copy_manifest(manifest)
        new.lexical = {"key": key, "config": config.to_dict()}
        new.write(files.root)
    except BaseException:
        files.remove_postings(key, manifest.segments)
        raise
    if old:
        files.remove_postings(old["key"], manifest.segments)
    return new


def commit_settings(files: CollectionFiles, manifest: Manifest, search: dict) -> Manifest:
    """Store the collection's search defaults (fusion, calibrations) and commit."""
    new = copy_manifest(manifest)
    new.search = copy.deepcopy(search)
    new.write(files.root)
    return new


def commit_delete(
    files: CollectionFiles, manifest: Manifest, docs_db: DocStore, rows: Sequence[int]
) -> Manifest:
    """Tombstone ``rows`` and commit."""
    new = copy_manifest(manifest)
    try:
        docs_db.mark_deleted(rows, manifest.epoch + 1)
        new.epoch += 1
        new.deleted += len(rows)
        new.write(files.root)
    except BaseException:
        _undo(files, docs_db, manifest, None, {})
        raise
    return new


def commit_compaction(
    files: CollectionFiles,
    manifest: Manifest,
    docs_db: DocStore,
    rows: RowMap,
    alive: np.ndarray | None,
    merge: Sequence[int] | None = None,
) -> tuple[Manifest, list[SegmentEntry]]:
    """Copy the live rows (positions ``alive``; all if ``None``) of the segments numbered
    ``merge`` (all if ``None``) into one new segment, with new row numbers, and commit; the
    other segments stay as they are, ahead of it. Returns the new manifest and the segments
    it dropped."""
    chosen = range(len(manifest.segments)) if merge is None else sorted(set(merge))
    bounds = np.cumsum([0] + [s.rows for s in manifest.segments])
    positions = np.arange(manifest.count) if alive is None else alive
    inside = np.zeros(manifest.count, dtype=bool)
    for i in chosen:
        inside[bounds[i]:bounds[i + 1]] = True
    positions = positions[inside[positions]]
    merged = [manifest.segments[i] for i in chosen]
    kept = [s for i, s in enumerate(manifest.segments) if i not in set(chosen)]
    start = manifest.next_row
    segment = files.next_segment(manifest, rows=len(positions), start=start)
    new = copy_manifest(manifest)
    try:
        if len(positions):
            files.write_segment_from(segment, manifest, positions)
        docs_db.copy_rows(rows.rows(positions), start, manifest.epoch + 1)
        new.segments = kept + ([segment] if len(positions) else [])
        if new.upgrade and new.upgrade.get("pending"):  # a model upgrade's backfill
            gone = {s.name for s in merged}
            pending = [p for p in new.upgrade["pending"] if p not in gone]
            if len(pending) < len(new.upgrade["pending"]) and len(positions):
                pending.append(segment.name)  # merged rows still hold mapped vectors
            new.upgrade = {**new.upgrade, "pending": pending}
        new.row_floor = start + len(positions)
        new.graph = None  # positions changed: the graph is rebuilt
        new.epoch += 1
        new.deleted = manifest.deleted - (sum(s.rows for s in merged) - len(positions))
        new.write(files.root)
    except BaseException:
        _undo(files, docs_db, manifest, segment, {})
        raise
    return new, merged


def finish_compaction(
    files: CollectionFiles, docs_db: DocStore, manifest: Manifest,
    dropped: Sequence[SegmentEntry], vacuum: bool,
) -> None:
    """After a committed compaction: remove the old segments' files and database rows (and
    any other rows the manifest does not list)."""
    for segment in dropped:
        files.remove_segment(segment)
    files.remove_stale_graphs(manifest)
    docs_db.purge([(s.start, s.start + s.rows) for s in manifest.segments])
    if vacuum:
        docs_db.vacuum()


def drop_segments(files: CollectionFiles, docs_db: DocStore,
                  dropped: Sequence[SegmentEntry]) -> None:
    """After a committed merge: remove the merged segments' files and rows, and nothing else
    (safe beside later writes: no manifest from now on lists them)."""
    for segment in dropped:
        files.remove_segment(segment)
    docs_db.drop_rows([(s.start, s.start + s.rows) for s in dropped])


def commit_codecs(
    files: CollectionFiles,
    manifest: Manifest,
    chain: str,
    codecs: dict[str, Codec],
    vectors: Sequence[np.ndarray],
) -> tuple[Manifest, dict[str, CodecEntry]]:
    """Write the codec state of ``chain`` (a spec string) and codes as a new generation,
    commit; returns the new manifest and the entries it replaced (their files are the
    caller's to remove)."""
    new = copy_manifest(manifest)
    generation = manifest.generation + 1
    entries = {}
    if manifest.count:
        entries = files.save_codecs(codecs, generation, min(manifest.live, FIT_SAMPLE))
        for segment, seg_vectors in zip(manifest.segments, vectors, strict=True):
            for name, codec in codecs.items():
                if name != EXACT_CODEC:
                    files.write_codes(segment, entries[name].key,
                                      codec.encode(np.asarray(seg_vectors)))
    new.chain, new.codecs, new.generation = chain, entries, generation
    new.graph = None
    new.write(files.root)
    return new, dict(manifest.codecs)


def commit_index(
    files: CollectionFiles, manifest: Manifest, docs_db: DocStore, fields: dict[str, Field],
    name: str,
) -> Manifest:
    """Index metadata field ``name`` in SQLite and record it in the manifest."""
    if name not in fields:
        raise unknown_field(name, fields)
    docs_db.create_index(Field(name=name, type=fields[name].type, indexed=True))
    new = copy_manifest(manifest)
    new.fields[name] = {**new.fields.get(name, {}), "type": fields[name].type.value,
                        "indexed": True}
    new.write(files.root)
    return new


def commit_graph(
    files: CollectionFiles, manifest: Manifest, scanner: SavedIndex, kind: str
) -> Manifest:
    """Save an ANN index of ``kind`` (its tier's location: derived data, rebuilt from the codes
    if lost) and commit it."""
    name = f"{kind}-g{manifest.generation}-e{manifest.epoch}-{scanner.ntotal}.faiss"
    files.save_graph(scanner, name)
    new = copy_manifest(manifest)
    new.graph = {"file": name, "rows": scanner.ntotal, "generation": manifest.generation}
    new.write(files.root)
    files.remove_stale_graphs(new)
    return new


def _undo(
    files: CollectionFiles, docs_db: DocStore, manifest: Manifest,
    segment: SegmentEntry | None, entries: dict[str, CodecEntry],
) -> None:
    """Remove what a failed write left (the manifest was not replaced)."""
    if segment is not None:
        files.remove_segment(segment)
    files.remove_codec_files(entries, [])
    docs_db.rollback()
