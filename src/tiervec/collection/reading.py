"""The snapshot reader: the committed state one collection object reads, and its documents.

A :class:`SnapshotReader` holds the manifest a collection object last adopted, its
:class:`~tiervec.collection.snapshot.Snapshot` (rows, deletions, chunk owners) and what is
built from it on first use (the codecs, the pipeline of the stored chain, the lexical index,
the token vectors, the FDE maps, the encoder). The writer moves it to each commit
(:meth:`adopt`); a reader in another process moves it with :meth:`refresh`. The read lock
(:attr:`rw`) keeps a search on one state while a commit swaps it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.codecs import Codec, make_codec
from tiervec.collection import multivector
from tiervec.collection.snapshot import Snapshot
from tiervec.corpus import Document
from tiervec.encode import Encoder, EncoderConfig, load_encoder
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.models import model_window
from tiervec.encode.muvera import MultiVectorConfig, Muvera
from tiervec.errors import EncoderRequired, InvalidRequest, LexicalIndexMissing
from tiervec.filters import Field, Filter, compile_filter
from tiervec.lexical import LexicalConfig, LexicalIndex
from tiervec.search import Chain, CodeSource, CollectionStats, FilterPolicy, Page, Pipeline
from tiervec.search.assemble import build_pipeline, segment_codes
from tiervec.search.searchable import tier_stats
from tiervec.store import writes
from tiervec.store.docstore import DB, DocStore
from tiervec.store.fields import fields_from_manifest
from tiervec.store.filtering import FilterRunner, is_empty
from tiervec.store.layout import UPGRADE_DIR, VECTORS, CollectionFiles
from tiervec.store.locks import RWLock
from tiervec.store.manifest import Manifest, manifest_stamp
from tiervec.store.tokens import TokenStore
from tiervec.store.upgrades import status_of, upgrade_encoder

#: The most documents one page of :meth:`SnapshotReader.scroll` holds.
MAX_PAGE = 10_000


class SnapshotReader:
    """One collection folder's committed state as this object sees it, and its reads."""

    def __init__(self, path: Path, manifest: Manifest, *, read_only: bool,
                 encoder: Encoder | None) -> None:
        self.path = path
        self.files = CollectionFiles(path)
        self.read_only = read_only
        self.rw = RWLock()
        #: guards what is built on first use (pipeline, lexical index, token store, sample)
        self.build_lock = threading.Lock()
        # mid-upgrade, queries are the two models' (see upgrade_encoder), not a given encoder's
        self._encoder = None if manifest.upgrade else encoder
        self._stamp = manifest_stamp(path)
        immutable = read_only and not os.access(path, os.W_OK)
        self.docs = DocStore(path / DB, next_row=manifest.next_row, epoch=manifest.epoch,
                             read_only=read_only, immutable=immutable)
        self.filters = FilterRunner(self.docs)
        #: when filtered searches scan exactly, search the index or post-filter
        self.filter_policy = FilterPolicy()
        self._muvera_maps: Muvera | None = None
        self.adopt(manifest)

    # -- moving to a committed state ----------------------------------------------------------
    def adopt(self, manifest: Manifest) -> None:
        """Move to ``manifest`` (newly committed or re-read): rows, deletions; what was built
        from the old state is built again on first use. The caller holds the write lock
        (or no one else sees this object yet)."""
        self._follow_model(manifest)
        self.manifest = manifest
        self.docs.next_row, self.docs.epoch = manifest.next_row, manifest.epoch
        parts = None
        if manifest.chunking is not None:
            tables = self.files.chunks(manifest.segments)
            parts = np.concatenate([np.asarray(t[:, 0], dtype=np.int32) for t in tables]) \
                if tables else np.empty(0, np.int32)
        self.snap = Snapshot(manifest, self.docs, parts)
        self.codecs: dict[str, Codec] | None = None
        self.built: Pipeline | None = None
        self.lexical: LexicalIndex | None = None
        self._tokens: TokenStore | None = None

    def adopt_appended(self, manifest: Manifest, appended: writes.Appended | None) -> None:
        """Move to a manifest the writer just committed (a new segment, or only deletions),
        keeping the pipeline and lexical index and appending the new segment to them instead
        of building them again. The caller holds the write lock."""
        pipeline, codecs, lexical = self.built, self.codecs, self.lexical
        first_fit = not self.manifest.codecs and bool(manifest.codecs)
        self.adopt(manifest)
        if lexical is not None and manifest.lexical_key is not None:
            if appended is not None:
                lexical.append(self.files.postings(appended.segment, manifest.lexical_key))
            self.lexical = lexical
        if first_fit:  # scanners copy codec state (e.g. int8 ranges): rebuilt on next search
            return
        self.codecs = codecs
        if pipeline is not None and appended is not None:
            pipeline.append(segment_codes(self.files, manifest, self.chain, appended),
                            appended.segment.rows, self.files.vectors([appended.segment])[0])
        self.built = pipeline

    def adopt_settings(self, manifest: Manifest) -> None:
        """Take a manifest that changed settings only (fields, the lexical index, search
        defaults, the saved graph): the rows and what was built from them stay. The caller
        holds the write lock."""
        if manifest.lexical != self.manifest.lexical:
            self.lexical = None
        self._follow_model(manifest)
        self.manifest = self.snap.manifest = manifest

    def _follow_model(self, manifest: Manifest) -> None:
        """Drop the encoder (and the model's window) when ``manifest`` changes the model or
        its upgrade's state: loaded again, as the manifest says, on first use."""
        old = getattr(self, "manifest", None)
        if old is not None and (old.encoder, _upgrade_state(old)) != (
                manifest.encoder, _upgrade_state(manifest)):
            self._encoder = None
            self.__dict__.pop("_model_window", None)

    def refresh(self) -> bool:
        """Move a reader to the latest committed state; ``True`` if it changed (a writer's
        state is always the latest)."""
        stamp = manifest_stamp(self.path)
        if stamp == self._stamp or not self.read_only:
            return False
        manifest = Manifest.read(self.path)
        with self.rw.write():
            self._stamp = stamp
            current = self.manifest
            if (manifest.epoch, manifest.generation, manifest.count) == (
                    current.epoch, current.generation, current.count):
                changed = (manifest.fields, manifest.lexical, manifest.search) != (
                    current.fields, current.lexical, current.search)
                self.adopt_settings(manifest)
                return changed
            self.adopt(manifest)
        return True

    # -- settings -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def chain(self) -> Chain:
        return Chain.parse(self.manifest.chain)

    @property
    def model(self) -> str | None:
        return self.manifest.encoder["model"] if self.manifest.encoder else None

    @property
    def encoder_config(self) -> EncoderConfig | None:
        return self.manifest.encoder_config()

    @property
    def fields(self) -> dict[str, Field]:
        return fields_from_manifest(self.manifest.fields)

    @property
    def chunking(self) -> ChunkingConfig | None:
        return self.manifest.chunking_config()

    @property
    def multivector(self) -> MultiVectorConfig | None:
        return self.manifest.multivector_config()

    @property
    def lexical_config(self) -> LexicalConfig | None:
        return self.manifest.lexical_config()

    # -- built on first use ---------------------------------------------------------------------
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
            upgrade = self.manifest.upgrade
            self._encoder = load_encoder(config) if not upgrade else \
                upgrade_encoder(self.files.root / UPGRADE_DIR, upgrade)
        return self._encoder

    def muvera(self) -> Muvera:
        """A multi-vector collection's FDE maps (made from its stored seed on first use)."""
        if self._muvera_maps is None:
            self._muvera_maps = multivector.muvera_of(self.manifest)
        return self._muvera_maps

    def token_store(self, snap: Snapshot) -> TokenStore:
        """The token vectors of ``snap`` (the current one's kept)."""
        with self.build_lock:
            if snap is self.snap and self._tokens is not None:
                return self._tokens
            found = multivector.token_store(self.files, snap.manifest)
            if snap is self.snap:
                self._tokens = found
            return found

    def lexical_for(self, snap: Snapshot) -> LexicalIndex:
        """The lexical index of ``snap`` (the current one's kept; an older one's loaded)."""
        if snap.manifest.lexical is None:
            raise LexicalIndexMissing(f"collection {str(self.path)!r} has no lexical index")
        if snap is not self.snap:
            return self._load_lexical(snap.manifest)
        with self.build_lock:
            if self.lexical is None:
                self.lexical = self._load_lexical(snap.manifest)
            return self.lexical

    def _load_lexical(self, manifest: Manifest) -> LexicalIndex:
        key, config = manifest.lexical_key, manifest.lexical_config()
        assert key is not None and config is not None
        return LexicalIndex(config, [self.files.postings(s, key) for s in manifest.segments])

    def window(self) -> int | None:
        """The word pieces the model reads of a document (``None``: unknown, or a chunked
        collection, whose every chunk the model reads whole)."""
        return None if self.manifest.chunking is not None else self._model_window

    @cached_property
    def _model_window(self) -> int | None:
        """The model's window, read once from its folder (a collection's model is fixed)."""
        config = self.encoder_config
        return None if config is None else model_window(config)

    def read_share(self, snap: Snapshot) -> float:
        """The mean share of the live documents' text the model read (1 where it read all,
        or where that is unknown); from the document lengths the lexical index keeps."""
        window = self.window()
        if window is None or snap.manifest.lexical is None or not snap.documents:
            return 1.0
        read = self.lexical_for(snap).read_share(window, snap.documents_alive)
        return read / snap.documents

    def pipeline(self, tiers: str | Chain | None = None) -> Pipeline:
        """The pipeline of the stored chain (built once), or of another chain with codes
        encoded now from the stored vectors."""
        chain = self.chain if tiers is None else Chain.parse(tiers)
        if str(chain) != self.manifest.chain:
            return self._build(chain, self.fit_codecs(chain), stored=False)
        with self.build_lock:
            if self.built is None:
                pipeline = self._build(chain, self.stored_codecs(), stored=True)
                pipeline.build_first()
                self.built = pipeline
            return self.built

    def stored_codecs(self) -> dict[str, Codec]:
        """The stored chain's fitted codecs (unfitted ones for an empty collection)."""
        if self.codecs is None:
            codecs = self.files.load_codecs(self.manifest)
            for tier in self.chain.tiers:
                codecs.setdefault(tier.codec, make_codec(tier.codec, self.dim))
            self.codecs = codecs
        return self.codecs

    def fit_codecs(self, chain: Chain) -> dict[str, Codec]:
        """New codecs for ``chain``, trainable ones fitted on a sample of the stored vectors."""
        return writes.fit_codecs([t.codec for t in chain.tiers], self.dim, self.vectors(),
                                 self.snap.alive)

    def _build(self, chain: Chain, codecs: dict[str, Codec], stored: bool) -> Pipeline:
        return build_pipeline(self.files, self.manifest, chain, codecs, stored, self.read_only)

    # -- reads ----------------------------------------------------------------------------------
    def allowed(self, filter: Filter, snap: Snapshot) -> np.ndarray | None:
        """The boolean mask over ``snap``'s positions a search may return (``None``: all)."""
        return self.filters.allowed(filter, self.fields, snap.manifest.segments, snap.alive)

    def count(self, filter: Filter = None) -> int:
        if filter is None:
            return self.snap.documents
        with self.rw.read():
            snap = self.snap
            mask = self.allowed(filter, snap)
            if mask is None:
                return snap.documents
            return int(np.count_nonzero(mask if snap.heads is None else mask & snap.heads))

    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        self.refresh()
        return self.docs.get([str(i) for i in np.asarray(ids, dtype=object).ravel()])

    def missing(self, ids: Sequence[str]) -> list[str]:
        have = set(self.docs.existing_ids(ids))
        return [i for i in ids if i not in have]

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        for name, value in (("n", n), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise InvalidRequest(f"{name} must be a whole number >= 0, got {value!r}")
        snap = self.snap
        live = snap.live_positions()
        chosen = np.sort(np.random.default_rng(seed).choice(len(live), min(n, len(live)),
                                                            replace=False))
        return [str(i) for i in snap.ids(self.docs, live[chosen]) if i != ""]

    def scroll(self, filter: Filter, limit: int, cursor: str | None) -> Page:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be an integer in 1..{MAX_PAGE:,}, got {limit!r}")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidRequest(f"cursor must be the str a page gave, got {cursor!r}")
        self.refresh()
        where, params = "1", list[Any]()
        if not is_empty(filter):
            where, params = compile_filter(filter, self.fields)  # type: ignore[arg-type]
        with self.rw.read():
            ids = self.docs.page_ids(cursor, limit + 1, where, params)
            docs = self.docs.get(ids[:limit])
        return Page(documents=[d for d in docs if d is not None],
                    cursor=ids[limit - 1] if len(ids) > limit else None)

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        return self.snap.ids(self.docs, np.asarray(positions))

    def vectors(self) -> CodeSource:
        return CodeSource(self.files.vectors(self.manifest.segments))

    def stats(self, chain: Chain, recall: dict[str, Any] | None) -> CollectionStats:
        """Documents, rows, deletions and each tier's RAM and disk, through ``chain``."""
        self.refresh()
        manifest, dim = self.manifest, self.dim
        rows = manifest.count
        tiers = tier_stats(chain, dim, rows)
        full = all((self.files.segment_dir(s) / VECTORS).is_file() for s in manifest.segments)
        return CollectionStats(
            documents=self.snap.documents, rows=rows, deleted=manifest.deleted,
            segments=len(manifest.segments), dim=dim, model=self.model, chain=str(chain),
            tiers=tiers, ram_bytes=sum(t.ram_bytes for t in tiers),
            disk_bytes=sum(t.disk_bytes for t in tiers),
            ram_bytes_per_vector=chain.ram_bytes_per_vector(dim), full_precision=full,
            recall=recall if str(chain) == manifest.chain else None,
            upgrade=None if not manifest.upgrade else status_of(manifest).to_dict(),
        )


def _upgrade_state(manifest: Manifest) -> str | None:
    return manifest.upgrade["state"] if manifest.upgrade else None
