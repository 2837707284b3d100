"""Indexing a corpus file into a collection, resumably: documents already there are skipped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tiervec.collection import Collection
from tiervec.corpus import read_corpus
from tiervec.encode.base import ProgressFn

T = TypeVar("T")

#: Documents encoded and committed per segment.
CHUNK = 8192


@dataclass(frozen=True)
class IndexStats:
    """What :func:`index_corpus` did."""

    added: int
    skipped: int
    refitted: bool


def index_corpus(
    collection: Collection,
    corpus: str | Path,
    *,
    chunk: int = CHUNK,
    progress: ProgressFn | None = None,
) -> IndexStats:
    """Add every document of ``corpus`` that ``collection`` lacks, ``chunk`` per segment.

    Each chunk is committed before the next is read, so an interrupted run loses at most one
    chunk and a re-run resumes. ``progress(n)`` advances by every document skipped or encoded.
    Codecs first fitted on a small share of the collection are re-fitted at the end.
    """
    added = skipped = 0
    for docs in _chunks(read_corpus(corpus), chunk):
        missing = set(collection.missing([d.id for d in docs]))
        todo = [d for d in docs if d.id in missing]
        skipped += len(docs) - len(todo)
        if progress is not None and len(docs) > len(todo):
            progress(len(docs) - len(todo))
        added += collection.add(todo, progress=progress)
    refit = collection.fit_is_stale
    if refit:
        collection.refit()
    return IndexStats(added=added, skipped=skipped, refitted=refit)


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
