"""Stored rows encoded again by another model (a model upgrade's sample and backfill).

A plain collection's row is a document: its text is encoded. A chunked collection's rows are
its documents' chunks (:mod:`tiervec.collection.chunks`): the chunks stay as they were cut
(their character spans, kept in the chunk table), and each document's chunks are embedded
again by the new model, naive or late as the collection chunks
(:func:`tiervec.encode.chunking.embed_spans`): so a backfill replaces vectors row for row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np

from tiervec.collection.reading import SnapshotReader
from tiervec.collection.snapshot import Snapshot
from tiervec.corpus import embedding_text, text_start
from tiervec.encode.base import Encoder, ProgressFn, TokenEncoder
from tiervec.encode.chunking import ChunkingConfig, embed_spans
from tiervec.store.codes import CodeSource
from tiervec.store.files import load_npy
from tiervec.store.layout import CHUNKS
from tiervec.store.manifest import SegmentEntry


@dataclass
class Texts:
    """What to encode: ``texts`` (each document's embedding text) and the rows each fills, in
    order (``rows[i]``: one row, or a chunked document's chunk rows); ``spans[i]``: a chunked
    document's chunk spans in ``texts[i]`` (``None`` for a plain collection)."""

    texts: list[str]
    rows: list[np.ndarray]
    spans: list[np.ndarray] | None = None

    @property
    def all_rows(self) -> np.ndarray:
        return np.concatenate(self.rows) if self.rows else np.empty(0, np.int64)

    def take(self, lo: int, hi: int) -> Texts:
        return Texts(self.texts[lo:hi], self.rows[lo:hi],
                     None if self.spans is None else self.spans[lo:hi])


def sample_texts(reader: SnapshotReader, snap: Snapshot, heads: np.ndarray) -> Texts:
    """The documents at positions ``heads`` of ``snap`` (a chunked document's first chunk),
    their rows given as positions."""
    docs = reader.docs.get([str(i) for i in snap.ids(reader.docs, heads)])
    texts = [d.embedding_text() if d is not None else "" for d in docs]
    if reader.chunking is None:
        return Texts(texts, [np.array([p]) for p in heads.tolist()])
    ends = snap.chunk_ends(heads)
    positions = [np.arange(h, e) for h, e in zip(heads.tolist(), ends.tolist(), strict=True)]
    table = CodeSource(reader.files.chunks(snap.manifest.segments)).take(
        np.concatenate(positions))
    shifts = [d.text_start() if d is not None else 0 for d in docs]
    return Texts(texts, positions, _spans(table, [len(p) for p in positions], shifts))


def segment_texts(reader: SnapshotReader, segment: SegmentEntry, need: np.ndarray) -> Texts:
    """The documents of ``segment`` whose rows ``need`` (a mask of its rows: a chunked
    document by its first chunk's) new vectors, their rows given as offsets in the segment."""
    pairs = reader.docs.texts_for_rows(segment.start, segment.start + segment.rows)
    if reader.chunking is None:
        alone = np.flatnonzero(need).tolist()
        return Texts([embedding_text(*pairs[j]) for j in alone], [np.array([j]) for j in alone])
    table = np.asarray(load_npy(reader.files.segment_dir(segment) / CHUNKS, mmap=False))
    heads = np.flatnonzero(table[:, 0] == 0)
    ends = np.r_[heads[1:], len(table)]
    chosen = [(h, e) for h, e in zip(heads.tolist(), ends.tolist(), strict=True) if need[h]]
    texts = [embedding_text(*pairs[h]) for h, _ in chosen]
    shifts = [text_start(*pairs[h]) for h, _ in chosen]
    rows = [np.arange(h, e) for h, e in chosen]
    return Texts(texts, rows, _spans(table[np.concatenate(rows)] if rows else table[:0],
                                     [len(r) for r in rows], shifts))


def _spans(table: np.ndarray, counts: list[int], shifts: list[int]) -> list[np.ndarray]:
    """Each document's chunk spans in its embedding text, from chunk-table rows ``(part,
    start, end)`` (spans in the document's text; its first chunk from the start, as it was cut
    with the title)."""
    out, at = [], 0
    for n, shift in zip(counts, shifts, strict=True):
        spans = np.asarray(table[at:at + n, 1:3], dtype=np.int64) + shift
        if n:
            spans[0, 0] = 0
        out.append(spans)
        at += n
    return out


def encode_texts(encoder: Encoder, todo: Texts, chunking: ChunkingConfig | None, *,
                 batch: int, cpu_share: float = 1.0, progress: ProgressFn | None = None,
                 stop: threading.Event | None = None) -> np.ndarray | None:
    """The new vectors of ``todo``'s rows (in the order of :attr:`Texts.all_rows`), ``batch``
    documents at a time, pausing to use about ``cpu_share`` of the time; ``None`` when
    ``stop`` was set. ``encoder``: the new model's own (word pieces needed when chunked)."""
    encode: Callable[[Texts], np.ndarray]
    if chunking is None or todo.spans is None:
        def encode(part: Texts) -> np.ndarray:
            return encoder.encode_documents(part.texts)
    else:
        def encode(part: Texts) -> np.ndarray:
            assert part.spans is not None
            return embed_spans(cast(TokenEncoder, encoder), part.texts, part.spans, chunking)
    parts = []
    for lo in range(0, len(todo.texts), batch):
        if stop is not None and stop.is_set():
            return None
        began = time.perf_counter()
        parts.append(encode(todo.take(lo, lo + batch)))
        if progress is not None:
            progress(min(batch, len(todo.texts) - lo))
        if cpu_share < 1:
            time.sleep((time.perf_counter() - began) * (1 / cpu_share - 1))
    if not parts:
        return np.empty((0, encoder.dim), np.float32)
    return np.concatenate(parts)
