"""A collection: documents, their full-precision vectors on disk, and compressed tiers.

On disk a collection is a folder of plain files (see :mod:`tiervec.store.layout`). Writes
(add, upsert, delete, compact, set_tiers) are committed by atomically replacing the manifest;
see :mod:`tiervec.store.writes` for the order of operations and the fsync policy. The class is
split by concern: :mod:`~tiervec.collection.reading` (snapshot, searches, documents, stats),
:mod:`~tiervec.collection.writing` (writes and their commits) and, here, opening and closing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tiervec.collection.documents import Documents
from tiervec.collection.groups import WriteQueue
from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.lexical import LexicalConfig
from tiervec.search import Chain, FilterPolicy
from tiervec.search.recall import DEFAULT_TARGET, RecallTarget
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.store import opening
from tiervec.store.docstore import DB, DocStore
from tiervec.store.filtering import FilterRunner
from tiervec.store.layout import CollectionFiles
from tiervec.store.locks import RWLock, WriterLock
from tiervec.store.manifest import Manifest, manifest_stamp


class Collection(Documents):
    """Documents and vectors in a folder, searched through a chain of tiers.

    Create one with :func:`tiervec.create` and reopen it with :func:`tiervec.open`; the
    constructor is private. One writer per collection (a lock file enforces it), any number of
    readers; a collection object may be shared by threads. A collection is a
    :class:`~tiervec.search.Searchable`.
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
        self._queue = WriteQueue()
        self._build_lock = threading.Lock()
        self._stamp = manifest_stamp(path)
        immutable = read_only and not os.access(path, os.W_OK)
        self._docs = DocStore(path / DB, next_row=manifest.next_row, epoch=manifest.epoch,
                              read_only=read_only, immutable=immutable)
        self.filter_policy = FilterPolicy()
        self._filters = FilterRunner(self._docs)
        self._set_snapshot(manifest)

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
        lexical: bool | LexicalConfig | None = None,
        chunking: ChunkingConfig | str | None = None,
        multivector: MultiVectorConfig | bool | None = None,
        recall_target: float | RecallTarget | None = DEFAULT_TARGET,
    ) -> Collection:
        """A new, empty collection in ``path`` (a new or empty folder).

        ``model=None`` makes a vectors-only collection (``dim`` required); otherwise ``dim`` is
        the model's. ``tiers`` is a chain spec such as ``"binary*4 -> float32@disk"``.
        ``fields`` declares metadata field types (``{"year": "int", "tags": "list[str]"}``;
        undeclared fields get the type of their first value) and ``indexes`` the fields to
        index in SQLite. ``lexical`` keeps a BM25 index of the titles and texts for lexical and
        hybrid search: ``True`` or a :class:`~tiervec.lexical.LexicalConfig`, ``False`` for
        none; by default collections with a model have one and vectors-only ones do not.
        ``chunking`` cuts each document into chunks of the model's tokens, a vector per chunk
        (``"late"``, ``"naive"`` or a :class:`~tiervec.encode.chunking.ChunkingConfig`);
        searches still return documents, each with its best chunk's span as evidence.
        ``multivector`` (``True`` or a :class:`~tiervec.encode.muvera.MultiVectorConfig`)
        keeps every document's token vectors; its MUVERA FDE is the vector the chain
        compresses and searches, and MaxSim over the tokens re-ranks the candidates (``tiers``
        then applies to FDEs). ``recall_target`` is the recall@10 against exact search the
        collection keeps as it grows (a fraction in (0, 1], or a
        :class:`~tiervec.search.recall.RecallTarget`; ``None``: the chain's oversampling as
        written): its chain is measured on its own vectors and the cheapest oversampling (and
        ANN effort) that meets it is used.
        """
        path = Path(path).expanduser()
        chain = Chain.parse(tiers)
        if lexical is None:
            lexical = model is not None
        config = LexicalConfig() if lexical is True else (lexical or None)
        if isinstance(chunking, str):
            chunking = ChunkingConfig(method=chunking)  # type: ignore[arg-type]
        mv = MultiVectorConfig() if multivector is True else (multivector or None)
        target = recall_target if recall_target is None or isinstance(
            recall_target, RecallTarget) else RecallTarget(target=recall_target)
        manifest, encoder, lock = opening.new_folder(
            path, model=model, dim=dim, chain=str(chain),
            codec_names=[t.codec for t in chain.tiers], encoder=encoder, fields=fields,
            indexes=indexes, lexical=config, chunking=chunking, multivector=mv,
            search={"recall_target": None if target is None else target.to_dict()})
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
        collection = cls(path, manifest, read_only=read_only, encoder=encoder, lock=lock)
        collection._start_tuning()  # grown (or never measured) since: measured in the background
        return collection

    def close(self) -> None:
        """Stop a recall measurement in flight, save an updated HNSW graph (writers), release
        the database and the writer lock."""
        self._stop_recall()
        if self._lock is not None:
            self.save_graph()
        with self._write_mutex:  # after a commit in flight
            self._docs.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Collection({str(self.path)!r}, count={len(self)}, dim={self.dim}, "
            f"tiers={self._manifest.chain!r}, model={self.model!r})"
        )
