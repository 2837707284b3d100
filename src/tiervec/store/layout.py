"""The files of a collection folder: where each piece lives, and how it is written and cleaned.

::

    manifest.json                 versioned; atomically replaced; the commit point of every write
    writer.lock                   flock'ed by the one writer process
    docs.sqlite                   ids, titles, texts, metadata (WAL mode)
    codecs/<key>.<array>.npy      fitted codec state (e.g. int8 ranges)
    segments/<name>/vectors.npy   float32 vectors of one immutable segment
    segments/<name>/<key>.npy     that segment's codes for each non-float32 codec of the chain
    segments/<name>/<lex>.*.npy   that segment's postings (the lexical index; see lexical.postings)
    segments/<name>/chunks.npy    a chunked collection's (part, char start, char end) per row
    segments/<name>/tokens*.npy   a multi-vector collection's token vectors (see store.tokens)
    indexes/<kind>-*.faiss       the ANN index of an ``@hnsw``/``@ivf`` first tier
    plan.json                     the last ``tiervec plan`` measured on it (not part of a commit)
    recall.json                   the chain's last recall measurement (not part of a commit)
    queries.npy                   a sample of the query vectors searched (recall is measured on it)
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tiervec.codecs import Codec, make_codec
from tiervec.errors import CollectionError, NotACollection, ReadOnlyLocation
from tiervec.lexical.postings import Postings, file_names, merge
from tiervec.store.codes import CodeSource
from tiervec.store.docstore import DB, DocStore
from tiervec.store.files import (
    atomic_write_text,
    fsync_file,
    load_npy,
    publish_dir,
    remove_tree,
    save_npy,
)
from tiervec.store.manifest import MANIFEST, CodecEntry, Manifest, SegmentEntry

log = logging.getLogger(__name__)

VECTORS = "vectors.npy"
#: A chunked collection's ``(rows, 3)`` int32 per segment: each row's place in its document
#: (0: the document's first chunk, whose row holds the document) and its character span.
CHUNKS = "chunks.npy"
#: A multi-vector collection's token vectors (float32), each row's first token, their codes.
TOKENS = "tokens.npy"
TOKEN_PTR = "tokens.ptr.npy"


def token_codes_name(key: str) -> str:
    return f"tokens.{key}.npy"
PLAN = "plan.json"
#: The last recall measurement (see tiervec.search.recall): a cache, re-measured if lost.
RECALL = "recall.json"
#: A sample of the query vectors the collection was searched with (float32, at most 1,000).
QUERY_SAMPLE = "queries.npy"
#: A sharded collection's manifest (in the folder above its shards; see tiervec.distribute).
SHARDED = "sharded.json"
#: A model upgrade's maps between the two models' spaces (see tiervec.collection.upgrading).
UPGRADE_DIR = "upgrade"
#: Prefix of the files in UPGRADE_DIR holding a segment's new-model vectors (see native_path).
NATIVE = "native-"
#: The codec whose "codes" are the stored full-precision vectors themselves.
EXACT_CODEC = "float32"
_SEGMENT = re.compile(r"^seg-(\d{6,})$")


class SegmentFile(NamedTuple):
    """One file of a segment folder: its name and how a compaction carries it over: ``rows``
    (one entry per row, copied by position), ``postings`` (merged, renumbered) or ``tokens``
    (each row's token range, renumbered)."""

    name: str
    kind: str


def segment_files(manifest: Manifest) -> list[SegmentFile]:
    """Every file a segment of ``manifest`` holds, described once: what writing, compaction
    and the clean-up of an interrupted write go by."""
    out = [SegmentFile(VECTORS, "rows")]
    out += [SegmentFile(f"{e.key}.npy", "rows") for e in manifest.codecs.values()
            if e.codec != EXACT_CODEC]
    if manifest.chunking:
        out.append(SegmentFile(CHUNKS, "rows"))
    if manifest.lexical_key is not None:
        out += [SegmentFile(name, "postings")
                for name in file_names(manifest.lexical_key).values()]
    if manifest.multivector:
        out += [SegmentFile(TOKENS, "tokens"), SegmentFile(TOKEN_PTR, "tokens")]
        if manifest.token_codec is not None:
            out.append(SegmentFile(token_codes_name(manifest.token_codec.key), "tokens"))
    return out


class Tokens(NamedTuple):
    """A new segment's token vectors: every token ``(n_tokens, d)`` float32, each row's first
    token ``ptr`` (``rows + 1``), and ``codes`` ``(key, array)`` of the token codec, if any."""

    vectors: np.ndarray
    ptr: np.ndarray
    codes: tuple[str, np.ndarray] | None = None

    def files(self) -> dict[str, np.ndarray]:
        """The segment files these make, by name."""
        out = {TOKENS: self.vectors, TOKEN_PTR: self.ptr}
        if self.codes is not None:
            out[token_codes_name(self.codes[0])] = self.codes[1]
        return out


class CollectionFiles:
    """Paths and file operations of the collection folder ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def segment_dir(self, segment: SegmentEntry) -> Path:
        return self.root / "segments" / segment.name

    def state_path(self, key: str, array: str) -> Path:
        return self.root / "codecs" / f"{key}.{array}.npy"

    def codes_path(self, segment: SegmentEntry, entry: CodecEntry) -> Path:
        """Where ``entry``'s codes for ``segment`` live (float32's are the vectors)."""
        name = VECTORS if entry.codec == EXACT_CODEC else f"{entry.key}.npy"
        return self.segment_dir(segment) / name

    def graph_path(self, name: str) -> Path:
        return self.root / "indexes" / name

    def save_graph(self, scanner: Any, name: str) -> None:
        """Write an ANN index under a temporary name, fsync it, rename it into place."""
        folder = self.root / "indexes"
        folder.mkdir(exist_ok=True)
        tmp = folder / f".tmp-{name}"
        scanner.save(tmp)
        fsync_file(tmp)
        tmp.replace(folder / name)
        fsync_file(folder)

    def remove_stale_graphs(self, manifest: Manifest) -> None:
        """Delete graph files the manifest does not name."""
        graphs = self.root / "indexes"
        for file in graphs.iterdir() if graphs.is_dir() else ():
            if not manifest.graph or file.name != manifest.graph["file"]:
                file.unlink(missing_ok=True)

    def check_new_folder(self) -> None:
        """Raise unless ``root`` can hold a new collection (absent, or an empty folder).

        A folder holding only what an interrupted ``create`` writes before its manifest is
        cleared first."""
        path = self.root
        if path.is_dir() and not (path / MANIFEST).exists() and _interrupted_create(path):
            log.info("removing the leftovers of an interrupted create in %s", path)
            for child in path.iterdir():
                if child.is_dir():
                    remove_tree(child)
                else:
                    child.unlink()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            if (path / MANIFEST).is_file():
                raise CollectionError(
                    f"{str(path)!r} already holds a collection; open it with tiervec.open(), or "
                    "choose a new folder"
                )
            raise NotACollection(
                f"{str(path)!r} exists and is not an empty folder; tiervec will not write into "
                "it. Choose a new or empty folder for the collection"
            )

    def make_dirs(self) -> None:
        try:
            (self.root / "segments").mkdir(parents=True, exist_ok=True)
            (self.root / "codecs").mkdir(exist_ok=True)
        except PermissionError as exc:
            raise ReadOnlyLocation(
                f"cannot create a collection in {str(self.root)!r} ({exc.strerror}); choose a "
                "writable folder"
            ) from None

    def write_plan(self, plan: Mapping[str, Any]) -> None:
        """Keep a plan's results beside the collection (atomically replaced)."""
        self.write_side(PLAN, plan)

    def write_side(self, name: str, data: Mapping[str, Any]) -> None:
        """Keep a measurement (``PLAN``, ``RECALL``) beside the collection, atomically."""
        atomic_write_text(self.root / name, json.dumps(data, indent=2) + "\n")

    def write_query_sample(self, vectors: np.ndarray) -> None:
        """Keep the sample of searched query vectors (atomically replaced)."""
        path = self.root / QUERY_SAMPLE
        tmp = path.with_name(f".{path.name}.tmp")
        save_npy(tmp, vectors)
        os.replace(tmp, path)

    def remove_query_sample(self) -> None:
        (self.root / QUERY_SAMPLE).unlink(missing_ok=True)

    def read_query_sample(self) -> np.ndarray | None:
        """The kept sample of query vectors, or ``None`` (an unreadable one is ignored)."""
        try:
            return load_npy(self.root / QUERY_SAMPLE, mmap=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.root / QUERY_SAMPLE, exc)
            return None

    # -- reading ------------------------------------------------------------------------------
    def has_plan(self) -> bool:
        return (self.root / PLAN).is_file()

    def read_plan(self) -> dict[str, Any] | None:
        """The last plan written by :meth:`write_plan`, or ``None``."""
        return self.read_side(PLAN)

    def side_stamp(self, name: str) -> int | None:
        """When a side file was last replaced (``None``: there is none)."""
        try:
            return (self.root / name).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def read_side(self, name: str) -> dict[str, Any] | None:
        """A side file written by :meth:`write_side`, or ``None`` (unreadable ones warned of)."""
        try:
            return json.loads((self.root / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.root / name, exc)
            return None

    def vectors(self, segments: Sequence[SegmentEntry]) -> list[np.ndarray]:
        """Each segment's float32 vectors, memory-mapped read-only."""
        return [load_npy(self.segment_dir(s) / VECTORS, mmap=True) for s in segments]

    def chunks(self, segments: Sequence[SegmentEntry]) -> list[np.ndarray]:
        """Each segment's chunk table of a chunked collection (see :data:`CHUNKS`)."""
        return [load_npy(self.segment_dir(s) / CHUNKS, mmap=True) for s in segments]

    def codes(self, segments: Sequence[SegmentEntry], entry: CodecEntry, mmap: bool) -> list:
        """Each segment's codes of ``entry`` (memory-mapped, or loaded into RAM)."""
        return [load_npy(self.codes_path(s, entry), mmap=mmap) for s in segments]

    def load_codecs(self, manifest: Manifest) -> dict[str, Codec]:
        """The manifest's fitted codecs, state restored."""
        codecs = {}
        for name, entry in manifest.codecs.items():
            codec = make_codec(name, manifest.dim)
            arrays = {a: load_npy(self.state_path(entry.key, a), mmap=False) for a in entry.state}
            codec.load_state(entry.params, arrays)
            codecs[name] = codec
        return codecs

    # -- writing ------------------------------------------------------------------------------
    def next_segment(self, manifest: Manifest, rows: int, start: int) -> SegmentEntry:
        """A new segment's entry, named so that no segment ever had its name: a merge drops
        segments (a reader of an older manifest may still have their folders open), and the
        epoch is past every number a dropped segment took."""
        numbers = [int(m[1]) for s in manifest.segments if (m := _SEGMENT.match(s.name))]
        number = max(max(numbers, default=-1) + 1, manifest.epoch if manifest.row_floor else 0)
        return SegmentEntry(name=f"seg-{number:06d}", rows=rows, start=start)

    def write_segment(
        self, segment: SegmentEntry, manifest: Manifest, arrays: Mapping[str, np.ndarray],
        postings: tuple[str, Postings] | None = None,
    ) -> None:
        """Write a segment folder of ``manifest`` (``arrays`` by file name; ``postings`` under
        their key) in a temporary place, fsync it, and rename it into place. Exactly the files
        :func:`segment_files` describes, or a ``ValueError`` before anything is written. Not
        committed until the manifest lists it."""
        written = set(arrays) | (set(file_names(postings[0]).values()) if postings else set())
        described = {f.name for f in segment_files(manifest)}
        if written != described:
            raise ValueError(f"a segment of this collection holds {sorted(described)}; the "
                             f"write had {sorted(written)}")
        final = self.segment_dir(segment)
        tmp = final.with_name(f".tmp-{segment.name}")
        remove_tree(tmp)
        tmp.mkdir(parents=True)
        try:
            for name, array in arrays.items():
                save_npy(tmp / name, array, sync=False)  # publish_dir fsyncs them all
            if postings is not None:
                self.save_postings(tmp, *postings, sync=False)
            publish_dir(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise

    def write_segment_from(
        self, segment: SegmentEntry, manifest: Manifest, positions: np.ndarray,
        chunk: int = 65_536,
    ) -> None:
        """Write a segment holding the vectors and codes at ``positions`` of ``manifest``'s
        segments (a compaction), a chunk at a time, then publish it like :meth:`write_segment`."""
        final = self.segment_dir(segment)
        tmp = final.with_name(f".tmp-{segment.name}")
        remove_tree(tmp)
        tmp.mkdir(parents=True)
        sources = {f.name: CodeSource([load_npy(self.segment_dir(seg) / f.name, mmap=True)
                                       for seg in manifest.segments])
                   for f in segment_files(manifest) if f.kind == "rows"}
        try:
            for name, source in sources.items():
                first = source.arrays[0]
                out = np.lib.format.open_memmap(tmp / name, mode="w+", dtype=first.dtype,
                                                shape=(len(positions), *first.shape[1:]))
                for lo in range(0, len(positions), chunk):
                    out[lo : lo + chunk] = source.take(positions[lo : lo + chunk])
                out.flush()
                del out
            if manifest.lexical_key is not None:
                key = manifest.lexical_key
                self.save_postings(tmp, key, self.merged_postings(manifest, key, positions),
                                   sync=False)
            if manifest.multivector:
                self._copy_tokens(tmp, manifest, positions, chunk)
            publish_dir(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise

    def _copy_tokens(self, folder: Path, manifest: Manifest, positions: np.ndarray,
                     chunk: int) -> None:
        """The token vectors (and codes) of the documents at ``positions``, renumbered."""
        segments = manifest.segments
        ptrs = self.token_ptrs(segments)
        counts = np.array([p[-1] for p in ptrs], dtype=np.int64)
        offsets = np.cumsum(counts) - counts
        starts = np.concatenate([np.asarray(p[:-1], np.int64) + o
                                 for p, o in zip(ptrs, offsets, strict=True)])
        sizes = np.concatenate([np.diff(np.asarray(p, np.int64)) for p in ptrs])
        sizes, starts = sizes[positions], starts[positions]
        save_npy(folder / TOKEN_PTR, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                 sync=False)  # (a temporary folder: publish_dir fsyncs it)
        sources = {TOKENS: CodeSource(self.tokens(segments))}
        if manifest.token_codec is not None:
            key = manifest.token_codec.key
            sources[token_codes_name(key)] = CodeSource(self.token_codes(segments, key, True))
        total = int(sizes.sum())
        for name, source in sources.items():
            first = source.arrays[0]
            out = np.lib.format.open_memmap(folder / name, mode="w+", dtype=first.dtype,
                                            shape=(total, *first.shape[1:]))
            at = 0
            for lo in range(0, len(positions), chunk):
                size, start = sizes[lo : lo + chunk], starts[lo : lo + chunk]
                index = np.repeat(start - (np.cumsum(size) - size), size) + \
                    np.arange(int(size.sum()))
                out[at : at + len(index)] = source.take(index)
                at += len(index)
            out.flush()
            del out

    def tokens(self, segments: Sequence[SegmentEntry]) -> list[np.ndarray]:
        """Each segment's token vectors, memory-mapped."""
        return [load_npy(self.segment_dir(s) / TOKENS, mmap=True) for s in segments]

    def token_ptrs(self, segments: Sequence[SegmentEntry]) -> list[np.ndarray]:
        """Each segment's token offsets (``rows + 1``)."""
        return [load_npy(self.segment_dir(s) / TOKEN_PTR, mmap=False) for s in segments]

    def token_codes(self, segments: Sequence[SegmentEntry], key: str, mmap: bool) -> list:
        """Each segment's token codes of codec ``key``."""
        return [load_npy(self.segment_dir(s) / token_codes_name(key), mmap=mmap)
                for s in segments]

    def save_postings(self, folder: Path, key: str, postings: Postings,
                      sync: bool = True) -> None:
        """Write a segment's postings into ``folder`` (its folder; or, ``sync=False``, a
        temporary one that :func:`publish_dir` fsyncs)."""
        for name, file in file_names(key).items():
            save_npy(folder / file, getattr(postings, name), sync=sync)

    def postings(self, segment: SegmentEntry, key: str) -> Postings:
        """A segment's postings, memory-mapped."""
        folder = self.segment_dir(segment)
        return Postings(**{name: np.asarray(load_npy(folder / file, mmap=True))  # plain views:
                           for name, file in file_names(key).items()})  # slicing stays cheap

    def merged_postings(self, manifest: Manifest, key: str, positions: np.ndarray) -> Postings:
        """The postings of the documents at (sorted) ``positions`` of ``manifest``'s segments,
        renumbered in that order (a compaction)."""
        parts, start = [], 0
        for segment in manifest.segments:
            lo, hi = np.searchsorted(positions, [start, start + segment.rows])
            parts.append((self.postings(segment, key), positions[lo:hi] - start))
            start += segment.rows
        return merge(parts)

    def write_codes(self, segment: SegmentEntry, key: str, codes: np.ndarray) -> None:
        """Add codes of a new codec generation to an existing segment (uncommitted until the
        manifest names the key)."""
        save_npy(self.segment_dir(segment) / f"{key}.npy", codes)

    def save_codecs(
        self, codecs: Mapping[str, Codec], generation: int, fitted_on: int
    ) -> dict[str, CodecEntry]:
        """Write each codec's state under a key of this generation; the manifest entries."""
        entries = {}
        for name, codec in codecs.items():
            key = f"{name}-g{generation}"
            state = codec.state()
            for array_name, array in state.items():
                save_npy(self.state_path(key, array_name), array)
            entries[name] = CodecEntry(
                codec=name, key=key, params=codec.params(), state=sorted(state),
                fitted_on=fitted_on,
            )
        return entries

    def remove_postings(self, key: str, segments: Sequence[SegmentEntry]) -> None:
        """Delete the postings saved under ``key`` (a lexical index replaced or not committed)."""
        for segment in segments:
            for file in file_names(key).values():
                (self.segment_dir(segment) / file).unlink(missing_ok=True)

    def remove_segment(self, segment: SegmentEntry) -> None:
        remove_tree(self.segment_dir(segment))

    def native_path(self, segment: SegmentEntry) -> Path:
        """Where the new model's own vectors of a segment written while an upgrade maps are
        kept (its switch takes them instead of mapping the stored ones)."""
        return self.root / UPGRADE_DIR / f"{NATIVE}{segment.name}.npy"

    def remove_codec_files(
        self, entries: Mapping[str, CodecEntry], segments: Sequence[SegmentEntry]
    ) -> None:
        """Delete the state and codes of codec generations no longer in the manifest."""
        for entry in entries.values():
            for array in entry.state:
                self.state_path(entry.key, array).unlink(missing_ok=True)
            if entry.codec != EXACT_CODEC:
                for segment in segments:
                    self.codes_path(segment, entry).unlink(missing_ok=True)

    def remove_leftovers(self, manifest: Manifest) -> None:
        """Delete what an interrupted write left: uncommitted segments, files and rows."""
        keep = {s.name for s in manifest.segments}
        # every file a segment holds (float32's codec entry names no file of its own, but
        # older collections may have written one: keep it as they expect)
        live_codes = {f.name for f in segment_files(manifest)} | {
            f"{e.key}.npy" for e in manifest.codecs.values()}
        segments_dir = self.root / "segments"
        for child in segments_dir.iterdir() if segments_dir.is_dir() else ():
            if child.name not in keep:
                log.info("removing uncommitted segment %s", child.name)
                remove_tree(child)
                continue
            for file in child.iterdir():
                if file.name not in live_codes:
                    file.unlink()
        self.remove_stale_graphs(manifest)
        (self.root / f".{MANIFEST}.tmp").unlink(missing_ok=True)
        maps = set((manifest.upgrade or {}).get("maps", {}).values())
        if (manifest.upgrade or {}).get("state") == "mapped":  # kept new-model vectors
            maps |= {self.native_path(s).name for s in manifest.segments}
        upgrade_dir = self.root / UPGRADE_DIR  # files of an upgrade no manifest names
        for file in upgrade_dir.iterdir() if upgrade_dir.is_dir() else ():
            if file.name not in maps:
                file.unlink()
        fitted = [*manifest.codecs.values(), *filter(None, [manifest.token_codec])]
        live_state = {f"{e.key}.{a}.npy" for e in fitted for a in e.state}
        codecs_dir = self.root / "codecs"
        for file in codecs_dir.iterdir() if codecs_dir.is_dir() else ():
            if file.name not in live_state:
                file.unlink()
        store = DocStore(self.root / DB, next_row=manifest.next_row, epoch=manifest.epoch)
        try:
            dropped = store.rollback()
            if dropped:
                log.info("removed %d uncommitted rows from %s", dropped, DB)
            store.purge([(s.start, s.start + s.rows) for s in manifest.segments])
        finally:
            store.close()


#: What tiervec.create writes before its manifest: a folder holding only these (and no manifest)
#: is a create that was interrupted, and may be created again.
_CREATE_FILES = {"segments", "codecs", "indexes", DB, f"{DB}-wal", f"{DB}-shm", "writer.lock",
                 f".{MANIFEST}.tmp"}


def _interrupted_create(path: Path) -> bool:
    names = {c.name for c in path.iterdir()}
    return bool(names) and names <= _CREATE_FILES and not any(
        (path / d).is_dir() and any((path / d).iterdir()) for d in ("segments", "codecs"))
