"""Getting a corpus into a collection: what every front end (CLI, server) calls.

- :func:`open_or_create`: the collection in a folder, checked against what
  :class:`IndexOptions` asks for, or a new one made with it;
- :func:`index_corpus`: add the documents a collection lacks, resumably (``tiervec index``);
- :func:`add_corpus`: add every document of a corpus, or upsert them (``tiervec add``).

Corpus files are read in chunks; each chunk is one committed segment, so an interrupted run
loses at most one chunk. Documents with neither title nor text are skipped and reported in the
stats (``strict`` stops at the first instead).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from itertools import islice
from pathlib import Path
from typing import TypeVar

from tiervec.collection import Collection
from tiervec.collection.settings import CollectionSettings
from tiervec.corpus import read_corpus
from tiervec.encode.base import ProgressFn
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.errors import CollectionMismatch, DuplicateIds
from tiervec.search import Chain
from tiervec.store.manifest import MANIFEST

T = TypeVar("T")

#: Documents encoded and committed per segment.
CHUNK = 8192
#: How many unknown or duplicate ids a message lists.
SHOWN_IDS = 10


@dataclass(frozen=True)
class IndexStats:
    """What :func:`index_corpus` or :func:`add_corpus` did: documents added, replaced
    (upsert), skipped as already there, and the ids of those skipped for being empty."""

    added: int = 0
    skipped: int = 0
    refitted: bool = False
    replaced: int = 0
    empty: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IndexOptions:
    """What an index run asks of a collection folder, as one value: the settings a new
    collection is created with, checked against an existing one. ``None`` is "not asked":
    the default for a new collection (:class:`~tiervec.collection.settings.CollectionSettings`)
    and no check for an existing one. A ``recall_target`` asked of an existing collection
    replaces its own."""

    model: str | None = None
    tiers: str | Chain | None = None
    lexical: bool = True
    chunking: ChunkingConfig | None = None
    multivector: MultiVectorConfig | None = None
    recall_target: float | None = None

    def settings(self) -> CollectionSettings:
        """The settings of a new collection: what was asked, the defaults for the rest."""
        asked = {f.name: getattr(self, f.name) for f in fields(self)}
        return CollectionSettings(**{k: v for k, v in asked.items() if v is not None})


def open_or_create(folder: str | Path,
                   options: IndexOptions = IndexOptions()) -> tuple[Collection, bool]:
    """The collection in ``folder`` (checked against the model, tiers, chunking and
    multi-vector storage ``options`` asks for), or a new one made with them; ``True`` when
    it was created."""
    from tiervec.encode.models import same_model

    folder = Path(folder).expanduser()
    if not (folder / MANIFEST).exists():
        return Collection.create(folder, **options.settings().options()), True
    model, multivector, chunking = options.model, options.multivector, options.chunking
    chain = Chain.parse(options.tiers) if options.tiers is not None else None
    col = Collection.open(folder)
    target = options.recall_target
    if target is not None and (col.recall_target is None or col.recall_target.target != target):
        col.set_recall_target(target)
    problem = None
    if model is not None and not same_model(col.model or "", model):
        problem = (f"{str(folder)!r} holds a collection built with model {col.model!r}, not "
                   f"{model!r}; use another --collection folder, or drop --model")
    elif chain is not None and str(chain) != str(col.chain):
        problem = (f"{str(folder)!r} searches with tiers {str(col.chain)!r}, not {str(chain)!r}; "
                   "use another folder, or drop --tiers")
    elif multivector is not None and col.multivector is None:
        problem = (f"{str(folder)!r} holds a collection without token vectors; multi-vector "
                   "storage is fixed when a collection is created: index into another "
                   "--collection folder, or drop --multivector")
    elif chunking is not None and (col.chunking is None or
                                   col.chunking.method != chunking.method):
        have = col.chunking.describe() if col.chunking else "no chunking"
        problem = (f"{str(folder)!r} holds a collection built with {have}; chunking is fixed "
                   "when a collection is created: index into another --collection folder, or "
                   "drop --chunking")
    if problem:
        col.close()
        raise CollectionMismatch(problem)
    return col, False


def index_corpus(
    collection: Collection,
    corpus: str | Path,
    *,
    chunk: int = CHUNK,
    progress: ProgressFn | None = None,
    strict: bool = False,
) -> IndexStats:
    """Add every document of ``corpus`` that ``collection`` lacks, ``chunk`` per segment.

    Each chunk is committed before the next is read, so an interrupted run loses at most one
    chunk and a re-run resumes. ``progress(n)`` advances by every document skipped or encoded.
    Codecs first fitted on a small share of the collection are re-fitted at the end.
    """
    added = skipped = 0
    empty: list[str] = []
    for docs in _chunks(read_corpus(corpus, strict=strict, on_empty=empty.extend), chunk):
        missing = set(collection.missing([d.id for d in docs]))
        todo = [d for d in docs if d.id in missing]
        skipped += len(docs) - len(todo)
        if progress is not None and len(docs) > len(todo):
            progress(len(docs) - len(todo))
        added += collection.add(todo, progress=progress)
    return IndexStats(added=added, skipped=skipped, refitted=_refit_if_stale(collection),
                      empty=empty)


def add_corpus(
    collection: Collection,
    corpus: str | Path,
    *,
    upsert: bool = False,
    progress: ProgressFn | None = None,
    strict: bool = False,
    chunk: int = CHUNK,
) -> IndexStats:
    """Add the documents of ``corpus`` (every id new), or upsert them (``upsert``).

    The whole corpus is checked first (records, repeated ids, and without ``upsert`` ids the
    collection holds): nothing is written when it has a problem.
    """
    ids = corpus_ids(corpus, strict=strict)
    if not upsert:
        refuse_existing(collection, ids, Path(corpus).name)
        return index_corpus(collection, corpus, chunk=chunk, progress=progress, strict=strict)
    added = replaced = 0
    empty: list[str] = []
    docs = read_corpus(corpus, strict=strict, on_empty=empty.extend)
    for part in _chunks(docs, chunk):  # one committed segment per chunk, as in index
        stats = collection.upsert(part, progress=progress)
        added, replaced = added + stats.added, replaced + stats.replaced
    return IndexStats(added=added, replaced=replaced, refitted=_refit_if_stale(collection),
                      empty=empty)


def corpus_ids(corpus: str | Path, strict: bool = False) -> list[str]:
    """The ids of ``corpus``, in order, after reading every record; repeated ids are an error."""
    ids = [doc.id for doc in read_corpus(corpus, strict=strict, on_empty=lambda _: None)]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise DuplicateIds(
            f"{len(repeated):,} ids appear more than once in {Path(corpus).name} (e.g. "
            f"{repeated[:SHOWN_IDS]}); give every document a unique id"
        )
    return ids


def refuse_existing(collection: Collection, ids: list[str], source: str) -> None:
    """Raise :class:`DuplicateIds` if the collection holds any of ``ids``."""
    missing = set(collection.missing(ids))
    existing = [i for i in ids if i not in missing]
    if existing:
        raise DuplicateIds(
            f"{len(existing):,} of the {len(ids):,} documents in {source} have ids the "
            f"collection already holds (e.g. {existing[:SHOWN_IDS]}); add --upsert to replace "
            "them, or use `tiervec index` to add only the new ones"
        )


def _refit_if_stale(collection: Collection) -> bool:
    """Re-fit codecs first fitted on a small share of the collection; whether it did."""
    stale = collection.fit_is_stale
    if stale:
        collection.refit()
    return stale


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(islice(items, size)):
        yield chunk
