"""Chunked documents in a collection: a row per chunk, the document on its first row.

A chunked document ``d`` with chunks ``c_0 .. c_n-1`` takes ``n`` consecutive rows of one
segment. Row ``c_0`` holds the document (title, text, metadata: what ``get`` returns, what
BM25 indexes); the others hold its id and metadata only (so filters, tombstones and
compactions treat every chunk of a document alike). Each segment's ``chunks.npy`` holds every
row's ``(part, char start, char end)``: its place in its document and its span of the text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tiervec.collection.snapshot import Snapshot
from tiervec.corpus import Document
from tiervec.encode.chunking import Chunked
from tiervec.store.codes import CodeSource
from tiervec.store.layout import CollectionFiles


def chunk_rows(docs: Sequence[Document], chunked: Chunked) -> tuple[list[Document], np.ndarray]:
    """The rows of ``docs`` cut into ``chunked`` (made from their ``embedding_text()``): a
    document per row (the whole one on each first chunk's), and the segment's chunk table
    with spans in each document's ``text``."""
    rows: list[Document] = []
    for doc_index, part in zip(chunked.owner.tolist(), chunked.part.tolist(), strict=True):
        doc = docs[doc_index]
        rows.append(doc if part == 0 else Document(id=doc.id, text="", metadata=doc.metadata))
    shift = np.array([d.text_start() for d in docs], dtype=np.int64)[chunked.owner]
    length = np.array([len(d.text) for d in docs], dtype=np.int64)[chunked.owner]
    chars = np.clip(chunked.chars - shift[:, None], 0, length[:, None])
    table = np.column_stack([chunked.part, chars]).astype(np.int32)
    return rows, table


def evidence(
    files: CollectionFiles, snap: Snapshot, queries: np.ndarray | None, rows: np.ndarray,
    parts: np.ndarray | None,
) -> np.ndarray:
    """Each found document's best chunk span ``(n_queries, k, 2)`` (``-1``: none): the chunk
    the search found it by, else (a document the dense side did not return) the chunk whose
    full-precision vector scores best against the query; none without query vectors."""
    best = np.full(rows.shape, -1, np.int64)
    if parts is not None:
        best = np.where(rows >= 0, parts[:, : rows.shape[1]], -1)
    todo = (rows >= 0) & (best < 0)
    if queries is not None and todo.any():
        best[todo] = _best_chunks(files, snap, queries, rows, todo)
    spans = np.full((*rows.shape, 2), -1, np.int64)
    found = best >= 0
    if found.any():
        table = CodeSource(files.chunks(snap.manifest.segments)).take(best[found])
        spans[found] = table[:, 1:3]
    return spans


def _best_chunks(
    files: CollectionFiles, snap: Snapshot, queries: np.ndarray, rows: np.ndarray,
    todo: np.ndarray,
) -> np.ndarray:
    """The best-scoring chunk (position) of each document ``rows[todo]`` for its query."""
    query, col = np.nonzero(todo)
    heads = rows[query, col]
    sizes = snap.chunk_ends(heads) - heads
    group = np.repeat(np.arange(len(heads)), sizes)
    positions = np.repeat(heads, sizes) + (np.arange(len(group)) -
                                           np.repeat(np.cumsum(sizes) - sizes, sizes))
    vectors = CodeSource(files.vectors(snap.manifest.segments)).take(positions)
    scores = np.einsum("ij,ij->i", vectors, queries[query[group]].astype(np.float32))
    order = np.lexsort((-scores, group))
    first = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
    return positions[order][first]
