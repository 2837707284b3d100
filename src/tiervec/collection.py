"""A collection: documents, their full-precision vectors on disk, and compressed tiers.

On disk a collection is a folder of plain files (see :mod:`tiervec.store.layout`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._validate import as_documents, as_vectors, check_unique
from tiervec.codecs import Codec, make_codec
from tiervec.corpus import Document
from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig, load_encoder
from tiervec.encode.base import ProgressFn
from tiervec.errors import (
    CollectionError,
    CollectionMismatch,
    DuplicateIds,
    EncoderRequired,
    InvalidVectors,
    NotACollection,
)
from tiervec.search import Chain, CodeSource, Location, Searcher, SearchResult, TierRuntime
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.store.docstore import DB, DocStore
from tiervec.store.layout import EXACT_CODEC, CollectionFiles
from tiervec.store.manifest import MANIFEST, Manifest

log = logging.getLogger(__name__)

#: Trainable codecs are fitted on at most this many vectors (a seeded random sample).
FIT_SAMPLE = 100_000
#: Fitting on fewer vectors than this logs a warning suggesting :meth:`Collection.refit`.
MIN_FIT = 1_000


class Collection:
    """Documents and vectors in a folder, searched through a chain of tiers.

    Create one with :func:`tiervec.create` and reopen it with :func:`tiervec.open`; the
    constructor is private.
    """

    def __init__(
        self, path: Path, manifest: Manifest, *, read_only: bool, encoder: Encoder | None
    ) -> None:
        self.path = path
        self._files = CollectionFiles(path)
        self._manifest = manifest
        self.read_only = read_only
        self._encoder = encoder
        self._docs = DocStore(path / DB, limit=manifest.count, read_only=read_only)
        self._codecs: dict[str, Codec] | None = None
        self._searcher: Searcher | None = None

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        model: str | EncoderConfig | None = DEFAULT_MODEL,
        dim: int | None = None,
        tiers: str | Chain = DEFAULT_CHAIN,
        encoder: Encoder | None = None,
    ) -> Collection:
        """A new, empty collection in ``path`` (a new or empty folder).

        ``model=None`` makes a vectors-only collection (``dim`` required); otherwise ``dim`` is
        the model's. ``tiers`` is a chain spec such as ``"binary*4 -> float32@disk"``.
        """
        path = Path(path).expanduser()
        chain = Chain.parse(tiers)
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
        config = EncoderConfig(model=model) if isinstance(model, str) else model
        if config is not None:
            encoder = encoder or load_encoder(config)
            if dim is not None and dim != encoder.dim:
                raise CollectionMismatch(
                    f"dim={dim} was given but model {config.model!r} makes {encoder.dim}-d "
                    "vectors; drop dim (it is taken from the model)"
                )
            dim = encoder.dim
        elif dim is None or dim <= 0:
            raise CollectionError(
                "a collection without a model needs dim=<vector dimension>; or pass model=..."
            )
        for tier in chain.tiers:
            make_codec(tier.codec, dim)
        manifest = Manifest(
            dim=int(dim), chain=str(chain), encoder=config.to_dict() if config else None
        )
        CollectionFiles(path).make_dirs()
        DocStore(path / DB, limit=0).close()
        manifest.write(path)
        return cls(path, manifest, read_only=False, encoder=encoder)

    @classmethod
    def open(
        cls, path: str | Path, *, read_only: bool = False, encoder: Encoder | None = None
    ) -> Collection:
        """Reopen the collection in ``path``; nothing is re-encoded.

        A writer (``read_only=False``) first removes what an interrupted write left behind.
        """
        path = Path(path).expanduser()
        if not path.is_dir():
            raise NotACollection(
                f"{str(path)!r} does not exist or is not a folder; create a collection with "
                "tiervec.create() or `tiervec index`"
            )
        manifest = Manifest.read(path)
        if not read_only:
            CollectionFiles(path).remove_leftovers(manifest)
        return cls(path, manifest, read_only=read_only, encoder=encoder)

    def close(self) -> None:
        """Release the database connection."""
        self._docs.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._manifest.count

    def __repr__(self) -> str:
        return (
            f"Collection({str(self.path)!r}, count={len(self)}, dim={self.dim}, "
            f"tiers={self._manifest.chain!r}, model={self.model!r})"
        )

    # -- properties -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._manifest.dim

    @property
    def chain(self) -> Chain:
        """The chain searches run through."""
        return Chain.parse(self._manifest.chain)

    @property
    def model(self) -> str | None:
        """The embedding model's name or path (``None`` for a vectors-only collection)."""
        return self._manifest.encoder["model"] if self._manifest.encoder else None

    @property
    def encoder_config(self) -> EncoderConfig | None:
        """How texts are encoded for this collection."""
        enc = self._manifest.encoder
        return EncoderConfig.from_dict(enc) if enc else None

    @property
    def encoder(self) -> Encoder:
        """The collection's encoder, loaded on first use."""
        if self._encoder is None:
            config = self.encoder_config
            if config is None:
                raise EncoderRequired(
                    f"collection {str(self.path)!r} has no embedding model; pass vectors "
                    "(search_vectors, add(..., vectors=...)) instead of text"
                )
            self._encoder = load_encoder(config)
        return self._encoder

    # -- writing --------------------------------------------------------------------------------
    def add(
        self,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        vectors: Any = None,
        progress: ProgressFn | None = None,
    ) -> int:
        """Add documents as one new segment; returns how many were added.

        Without ``vectors`` the texts are encoded with the collection's model (``progress(n)``
        is called as documents are encoded). Ids must be new: duplicates within the batch or
        with the collection raise :class:`~tiervec.errors.DuplicateIds` and nothing is written.
        """
        self._require_writable()
        docs = as_documents(documents)
        if not docs:
            if vectors is not None and len(vectors):
                raise InvalidVectors(f"got {len(vectors)} vectors for 0 documents; pass one "
                                     "document (at least an id) per vector")
            return 0
        ids = [d.id for d in docs]
        check_unique(ids)
        existing = self._docs.existing_ids(ids)
        if existing:
            raise DuplicateIds(
                f"{len(existing)} ids are already in the collection (e.g. {existing[:5]}); "
                "skip them (see Collection.missing) or give the documents new ids"
            )
        if vectors is None:
            vectors = self.encoder.encode_documents([d.embedding_text() for d in docs], progress)
        vectors = as_vectors(vectors, self.dim, rows=len(docs))
        self._commit_segment(docs, vectors)
        return len(docs)

    @property
    def fit_is_stale(self) -> bool:
        """Whether a trainable codec was fitted on far fewer vectors than the collection now
        holds (e.g. on the first small batch); :meth:`refit` fixes it."""
        target = min(len(self), FIT_SAMPLE)
        return any(
            make_codec(e.codec, self.dim).trainable and e.fitted_on < target / 2
            for e in self._manifest.codecs.values()
        )

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that the collection does not hold yet."""
        have = set(self._docs.existing_ids(ids))
        return [i for i in ids if i not in have]

    def set_tiers(self, tiers: str | Chain) -> None:
        """Switch to another chain: fit its codecs on the stored vectors and re-encode them.

        Nothing is re-embedded; the old codes are removed once the new ones are committed.
        """
        self._require_writable()
        self._rebuild(Chain.parse(tiers))

    def refit(self) -> None:
        """Re-fit the chain's trainable codecs on a sample of all stored vectors, re-encode."""
        self.set_tiers(self.chain)

    # -- reading --------------------------------------------------------------------------------
    def search(self, queries: str | Sequence[str], k: int = 10) -> SearchResult:
        """Top ``k`` documents for each query text: ``ids`` and ``scores`` ``(n_queries, k)``."""
        texts = [queries] if isinstance(queries, str) else list(queries)
        return self.search_vectors(self.encoder.encode_queries(texts), k)

    def search_vectors(self, vectors: Any, k: int = 10) -> SearchResult:
        """Top ``k`` documents for each query vector ``(n_queries, dim)`` (or one ``(dim,)``)."""
        queries = as_vectors(vectors, self.dim, what="query vectors")
        scores, rows = self.searcher().search(queries, _check_k(k))
        return SearchResult(ids=self.ids_for_rows(rows), scores=scores)

    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        """The documents for ``ids`` (``None`` for unknown ids), e.g. ``get(result.ids[0])``."""
        return self._docs.get([str(i) for i in np.asarray(ids, dtype=object).ravel()])

    def ids_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """User ids for the internal rows a :class:`~tiervec.search.Searcher` returns."""
        return self._docs.ids_for_rows(rows)

    def searcher(self, tiers: str | Chain | None = None) -> Searcher:
        """A :class:`~tiervec.search.Searcher` (results are internal rows) for the collection's
        chain, or for another chain built in memory from the stored vectors (for evaluation)."""
        chain = self.chain if tiers is None else Chain.parse(tiers)
        if str(chain) == self._manifest.chain:
            if self._searcher is None:
                self._searcher = self._build_searcher(chain, self._stored_codecs(), stored=True)
            return self._searcher
        codecs = self._fit_codecs(chain)
        return self._build_searcher(chain, codecs, stored=False)

    def vectors(self) -> CodeSource:
        """The full-precision vectors of every segment, memory-mapped (rows in order)."""
        return CodeSource(self._files.vectors(self._manifest.segments))

    # -- internals ------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if self.read_only:
            raise CollectionError(
                f"collection {str(self.path)!r} was opened read-only; reopen it with "
                "tiervec.open(path) to write"
            )

    def _stored_codecs(self) -> dict[str, Codec]:
        if self._codecs is None:
            codecs = self._files.load_codecs(self._manifest)
            for tier in self.chain.tiers:  # codecs not fitted yet (empty collection)
                codecs.setdefault(tier.codec, make_codec(tier.codec, self.dim))
            self._codecs = codecs
        return self._codecs

    def _fit_codecs(self, chain: Chain) -> dict[str, Codec]:
        """New codecs for ``chain``, trainable ones fitted on a sample of the stored vectors."""
        source = self.vectors()
        n = len(source)
        rows = np.arange(n)
        if n > FIT_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(n, FIT_SAMPLE, replace=False))
        sample = source.take(rows) if n else None
        codecs = {}
        for tier in chain.tiers:
            if tier.codec not in codecs:
                codec = make_codec(tier.codec, self.dim)
                if codec.trainable and sample is not None:
                    codec.fit(sample)
                codecs[tier.codec] = codec
        return codecs

    def _build_searcher(self, chain: Chain, codecs: dict[str, Codec], stored: bool) -> Searcher:
        """Stored codes (``stored``) or codes encoded now from the stored vectors."""
        runtimes = []
        segments = self._manifest.segments
        full = self.vectors()
        for tier in chain.tiers:
            codec = codecs[tier.codec]
            mmap = tier.location is Location.DISK
            if tier.codec == EXACT_CODEC:
                arrays = full.arrays if mmap else [np.array(a) for a in full.arrays]
            elif stored and segments:
                arrays = self._files.codes(segments, self._manifest.codecs[tier.codec], mmap)
            else:
                arrays = [codec.encode(np.asarray(a)) for a in full.arrays]
            runtimes.append(TierRuntime(tier=tier, codec=codec, source=CodeSource(arrays)))
        return Searcher(chain, runtimes, count=len(full))

    def _commit_segment(self, docs: Sequence[Document], vectors: np.ndarray) -> None:
        """Write one segment, its rows and the manifest that commits them (in that order)."""
        manifest = self._manifest
        codecs = self._stored_codecs()
        new_state = not manifest.codecs
        if new_state:  # first vectors of the collection: fit the chain's codecs on them
            for codec in codecs.values():
                if codec.trainable:
                    codec.fit(vectors)
                    if len(vectors) < MIN_FIT:
                        log.warning("%s codec fitted on only %d vectors; call refit() once "
                                    "more are added", codec.name, len(vectors))
        segment = self._files.next_segment(manifest, rows=len(docs))
        start = manifest.count
        codes = {name: c.encode(vectors) for name, c in codecs.items() if name != EXACT_CODEC}
        try:
            if new_state:
                manifest.codecs = self._files.save_codecs(codecs, manifest.generation, len(docs))
            self._files.write_segment(
                segment, vectors, {manifest.codecs[name].key: c for name, c in codes.items()}
            )
            self._docs.insert(start, docs)
            manifest.segments.append(segment)
            manifest.write(self.path)
        except BaseException:
            if manifest.segments and manifest.segments[-1] is segment:
                manifest.segments.pop()
            if new_state:
                manifest.codecs = {}
            self._files.remove_segment(segment)
            self._docs.truncate(start)
            raise
        self._docs.limit = manifest.count
        if new_state:  # scanners copy codec state (e.g. int8 ranges): rebuild on next search
            self._searcher = None
        elif self._searcher is not None:
            by_tier = []
            for tier in self.chain.tiers:  # disk tiers read the new files, memory-mapped
                array = vectors if tier.codec == EXACT_CODEC else codes[tier.codec]
                if tier.location is Location.DISK:
                    entry = manifest.codecs[tier.codec]
                    array = self._files.codes([segment], entry, mmap=True)[0]
                by_tier.append(array)
            self._searcher.append(by_tier, len(docs))

    def _rebuild(self, chain: Chain) -> None:
        """Fit ``chain``'s codecs, write their codes as a new generation, commit, clean up."""
        manifest = self._manifest
        old = dict(manifest.codecs)
        codecs = self._fit_codecs(chain)
        generation = manifest.generation + 1
        entries = {}
        if len(self):
            entries = self._files.save_codecs(codecs, generation, min(len(self), FIT_SAMPLE))
            for segment, vectors in zip(manifest.segments, self.vectors().arrays, strict=True):
                for name, codec in codecs.items():
                    if name != EXACT_CODEC:
                        self._files.write_codes(
                            segment, entries[name].key, codec.encode(np.asarray(vectors))
                        )
        manifest.chain, manifest.codecs, manifest.generation = str(chain), entries, generation
        manifest.write(self.path)
        self._codecs = codecs if entries else None
        self._searcher = None
        self._files.remove_codec_files(old, manifest.segments)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise CollectionError(f"k must be a positive integer, got {k!r}")
    return int(k)
