"""Replacing stored vectors in place: a model upgrade's switch (every segment's vectors mapped
into the new space, codecs refitted) and its backfill (one segment's mapped vectors replaced by
the new model's own).

A segment is never rewritten: its replacement is a new segment folder holding the same rows
(same ``start``, same database rows, the postings and chunk table copied) with the new vectors
and their codes, written and published before the manifest that lists it is committed (the
same three steps as every write, :mod:`tiervec.store.writes`). Readers of the older manifest
keep the old folder open until they move on; the caller removes it after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiervec.codecs import Codec
from tiervec.store.docstore import DocStore
from tiervec.store.files import load_npy
from tiervec.store.layout import CHUNKS, EXACT_CODEC, VECTORS, CollectionFiles
from tiervec.store.manifest import CodecEntry, Manifest, SegmentEntry
from tiervec.store.writes import FIT_SAMPLE, copy_manifest


@dataclass(frozen=True)
class Revectored:
    """A committed replacement: the new manifest, the segments it dropped and the codec
    entries it replaced (their files are the caller's to remove)."""

    manifest: Manifest
    dropped: list[SegmentEntry]
    old_codecs: dict[str, CodecEntry]


def commit_revectored(
    files: CollectionFiles, manifest: Manifest, docs_db: DocStore,
    vectors_of: Mapping[int, Callable[[], np.ndarray]], codecs: dict[str, Codec],
    *, refit: bool, changes: Callable[[Manifest], None], dim: int | None = None,
) -> Revectored:
    """Replace the vectors of the segments numbered in ``vectors_of`` (each a function giving
    the segment's new ``(rows, dim)`` float32 vectors; ``dim`` the collection's unless given)
    and commit, after ``changes`` edited the new manifest (which lists the new segments by
    then: the model, the dimension, the upgrade's state). With ``refit``, ``codecs`` were
    fitted for the new vectors and are saved as a new generation, every segment's codes
    written again; otherwise they are the stored codecs and only the new segments get codes."""
    new = copy_manifest(manifest)
    new.dim = manifest.dim if dim is None else dim
    written: list[SegmentEntry] = []
    taken = copy_manifest(manifest)  # every segment name taken so far (for next_segment)
    entries = dict(manifest.codecs)
    try:
        if refit:
            generation = manifest.generation + 1
            entries = files.save_codecs(codecs, generation, min(manifest.live, FIT_SAMPLE))
            new.codecs, new.generation = entries, generation
        segments = list(manifest.segments)
        for i, segment in enumerate(manifest.segments):
            if i in vectors_of:
                vectors = np.ascontiguousarray(vectors_of[i](), dtype=np.float32)
                if vectors.shape != (segment.rows, new.dim):
                    raise ValueError(f"segment {segment.name} holds {segment.rows} rows of "
                                     f"{new.dim} dimensions; got {vectors.shape}")
                fresh = files.next_segment(taken, segment.rows, segment.start)
                taken.segments.append(fresh)
                _write(files, new, segment, fresh, vectors, codecs, entries)
                written.append(fresh)
                segments[i] = fresh
            elif refit:
                vectors = load_npy(files.segment_dir(segment) / VECTORS, mmap=True)
                for name, codec in codecs.items():
                    if name != EXACT_CODEC:
                        files.write_codes(segment, entries[name].key, codec.encode(vectors))
        new.segments = segments
        new.graph = None  # the vectors changed: an ANN index is built again
        new.epoch += 1
        changes(new)
        new.write(files.root)
    except BaseException:
        for segment in written:
            files.remove_segment(segment)
        if refit:
            files.remove_codec_files(entries, manifest.segments)
        docs_db.rollback()
        raise
    dropped = [s for s in manifest.segments if s not in segments]
    return Revectored(new, dropped, dict(manifest.codecs) if refit else {})


def _write(files: CollectionFiles, manifest: Manifest, old: SegmentEntry, fresh: SegmentEntry,
           vectors: np.ndarray, codecs: dict[str, Codec],
           entries: dict[str, CodecEntry]) -> None:
    arrays: dict[str, Any] = {VECTORS: vectors}
    for name, codec in codecs.items():
        if name != EXACT_CODEC:
            arrays[f"{entries[name].key}.npy"] = codec.encode(vectors)
    if manifest.chunking:
        arrays[CHUNKS] = load_npy(files.segment_dir(old) / CHUNKS, mmap=False)
    key = manifest.lexical_key
    postings = None if key is None else (key, files.postings(old, key))
    files.write_segment(fresh, manifest, arrays, postings)
