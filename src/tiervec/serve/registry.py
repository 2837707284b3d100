"""The collections a server holds: every collection folder directly inside the data
directory, opened as their one writer, with a write lock and a search batcher each."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.collection import Collection
from tiervec.encode import EncoderConfig, load_encoder
from tiervec.encode.base import Encoder, ProgressFn, TokenEncoder
from tiervec.errors import CollectionExists, CollectionNotFound, ShardedUnsupported
from tiervec.serve.batching import SearchBatcher
from tiervec.serve.config import ServerConfig, check_name
from tiervec.serve.documents import DocumentCache
from tiervec.store.layout import SHARDED
from tiervec.store.manifest import MANIFEST, Manifest

log = logging.getLogger(__name__)

#: A collection being deleted is first renamed to this prefix (atomic), then removed.
_TRASH = ".deleting-"


class SharedEncoder:
    """One loaded model shared by every collection that uses it, loaded on first use."""

    def __init__(self, config: EncoderConfig, dim: int | None = None) -> None:
        self.config = config
        self._dim = dim
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.config)
            return self._encoder

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._loaded().dim
        return self._dim

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._loaded().encode_queries(texts)

    def encode_documents(self, texts: Sequence[str],
                         progress: ProgressFn | None = None) -> np.ndarray:
        return self._loaded().encode_documents(texts, progress)

    # what chunking, multi-vector encodings and the truncation count use: the loaded model's
    def _tokens(self) -> TokenEncoder:
        model = self._loaded()
        if not isinstance(model, TokenEncoder):  # so that isinstance(self, TokenEncoder) is
            raise AttributeError(  # False too
                f"model {self.config.model!r} exposes no word pieces")
        return model

    @property
    def max_length(self) -> int:
        return self._tokens().max_length

    @property
    def max_window(self) -> int:
        return self._tokens().max_window

    @property
    def normalize(self) -> bool:
        return self._tokens().normalize

    def truncated(self, texts: Sequence[str]) -> int:
        return self._tokens().truncated(texts)

    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._tokens().token_offsets(texts)

    def token_vectors(self, texts: Sequence[str], window: int | None = None,
                      progress: ProgressFn | None = None,
                      query: bool = False) -> list[np.ndarray]:
        return self._tokens().token_vectors(texts, window, progress, query)


@dataclass
class Served:
    """A collection as the server holds it."""

    name: str
    collection: Collection
    batcher: SearchBatcher
    documents: DocumentCache
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    merging: bool = False
    #: views through other chains (``tiers`` of a request), with the state they were made of
    views: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: a model upgrade's background work (see tiervec.serve.upgrades)
    upgrade: Any = None

    def view(self, tiers: str) -> Any:
        """The collection through ``tiers`` (made in memory from the stored vectors), kept
        until a write changes the collection (at most 4 chains)."""
        from tiervec.search import Chain

        chain = str(Chain.parse(tiers))
        col = self.collection
        manifest = col._manifest  # the committed state: a write makes it anew
        state = (manifest.epoch, manifest.generation, manifest.count)
        cached = self.views.get(chain)
        if cached is None or cached[0] != state:
            if len(self.views) >= 4:
                self.views.pop(next(iter(self.views)))
            cached = self.views[chain] = (state, col.with_tiers(chain))
        return cached[1]


class Registry:
    """Name -> served collection, for one data directory."""

    def __init__(self, root: Path, config: ServerConfig) -> None:
        self.root = root
        self.config = config
        self._served: dict[str, Served] = {}
        self._failed: dict[str, str] = {}
        self._encoders: dict[str, SharedEncoder] = {}
        self._lock = asyncio.Lock()
        self._merges: set[asyncio.Task[None]] = set()
        self.ready = False

    # -- opening and closing --------------------------------------------------------------------
    def open_all(self) -> None:
        """Open every collection in the data directory (failures are logged and reported by
        readiness, not fatal), removing what an interrupted delete left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(_TRASH):
                shutil.rmtree(path, ignore_errors=True)
            elif (path / MANIFEST).is_file() or (path / SHARDED).is_file():
                try:
                    check_name(path.name)
                    self._add(path.name, self._open(path))
                except Exception as exc:
                    log.error("collection %r not served: %s", path.name, exc)
                    self._failed[path.name] = str(exc)
        for served in self._served.values():  # tiers in RAM and models loaded before traffic
            self._warm(served.collection)
        self.ready = True

    @staticmethod
    def _warm(col: Any) -> None:
        try:
            if isinstance(col, Collection):
                col.pipeline()
            if col.encoder_config is not None:
                col.encode_queries(["warm-up"])
        except Exception as exc:  # searches will raise it where it matters
            log.warning("warming collection %s failed: %s", col.path.name, exc)

    def close_all(self) -> None:
        for name in list(self._served):
            self._close(name)

    def _open(self, path: Path) -> Any:
        if (path / SHARDED).is_file():
            return self._open_sharded(path)
        manifest = Manifest.read(path)
        config = manifest.encoder_config()
        encoder = None if config is None else self._encoder(config, manifest.dim)
        return Collection.open(path, encoder=encoder)

    def _open_sharded(self, path: Path) -> Any:
        """A sharded collection, its shards' actors on the Ray cluster (``--ray``)."""
        if self.config.ray_address is None:
            raise ShardedUnsupported(
                f"{path.name!r} is a sharded collection: serve it with `tiervec serve --ray`")
        from tiervec.distribute.sharded import ShardedCollection

        return ShardedCollection.open(path, address=self.config.ray_address or None,
                                      partial=self.config.partial,
                                      replicas=self.config.replicas)

    def _encoder(self, config: EncoderConfig, dim: int | None = None) -> SharedEncoder:
        key = repr(sorted(config.to_dict().items()))
        if key not in self._encoders:
            self._encoders[key] = SharedEncoder(config, dim)
        return self._encoders[key]

    def _add(self, name: str, col: Collection) -> Served:
        batcher = SearchBatcher(col, enabled=self.config.batching,
                                max_batch=self.config.max_batch)
        served = Served(name=name, collection=col, batcher=batcher,
                        documents=DocumentCache(col))
        self._served[name] = served
        return served

    def _close(self, name: str) -> None:
        served = self._served.pop(name)
        if served.upgrade is not None:  # stops between two commits
            served.upgrade.close()
        served.batcher.close()
        try:
            served.collection.close()
        except Exception:
            log.exception("closing collection %r failed", name)

    # -- merging small segments -------------------------------------------------------------
    def merge_later(self, served: Served) -> None:
        """After a write: merge the collection's segments in the background if many small
        writes fragmented it (see :meth:`Collection.is_fragmented`); writes wait for the
        merge's commit only, searches not at all."""
        if served.merging or not served.collection.is_fragmented():
            return
        served.merging = True
        task = asyncio.get_running_loop().create_task(self._merge(served))
        self._merges.add(task)
        task.add_done_callback(self._merges.discard)

    async def _merge(self, served: Served) -> None:
        try:
            async with served.write_lock:
                if self._served.get(served.name) is served:  # not deleted meanwhile
                    await asyncio.to_thread(served.collection.compact_if_fragmented)
        except Exception:
            log.exception("merging the segments of collection %r failed", served.name)
        finally:
            served.merging = False

    async def finish_merges(self) -> None:
        """Wait for the merges under way (before closing the collections)."""
        if self._merges:
            await asyncio.gather(*self._merges, return_exceptions=True)

    # -- look-ups -------------------------------------------------------------------------------
    def get(self, name: str) -> Served:
        check_name(name)
        served = self._served.get(name)
        if served is None:
            why = self._failed.get(name)
            raise CollectionNotFound(
                f"collection {name!r} could not be opened: {why}" if why else
                f"no collection named {name!r}; list them with GET /v1/collections or create "
                "it with POST /v1/collections")
        return served

    def names(self) -> list[str]:
        return sorted(self._served)

    def failures(self) -> dict[str, str]:
        return dict(self._failed)

    def shards_down(self) -> dict[str, dict[str, str]]:
        """Sharded collections with shards that do not answer, after trying to revive them
        (a new actor for a shard whose restarts ran out): collection -> shard -> why."""
        out: dict[str, dict[str, str]] = {}
        for name in self.names():
            col: Any = self._served[name].collection
            health = getattr(col, "health", None)
            if health is None:  # one collection, not shards
                continue
            down = {shard: why for shard, why in health().items() if why}
            if down:
                try:
                    col.revive()
                except Exception as exc:  # reported below as still down
                    log.warning("reviving the shards of %r failed: %s", name, exc)
                down = {shard: why for shard, why in health().items() if why}
            if down:
                out[name] = down
        return out

    # -- creating and deleting ------------------------------------------------------------------
    async def create(self, name: str, options: dict[str, Any]) -> Served:
        """A new collection ``name`` made with ``options`` (as :meth:`Collection.create`)."""
        check_name(name)
        async with self._lock:
            path = self.root / name
            if name in self._served or path.exists():
                raise CollectionExists(f"a collection named {name!r} already exists; pick "
                                       "another name, or delete it first")
            taken = {n.lower(): n for n in [*self._served, *self._failed,
                                            *(p.name for p in self.root.iterdir())]}
            if name.lower() in taken:
                raise CollectionExists(
                    f"collection {name!r} differs only in case from {taken[name.lower()]!r}; "
                    "names must differ in more than case (on a case-insensitive file system "
                    "they would be one folder)")
            model = options.get("model")
            encoder = None if model is None else self._encoder(EncoderConfig(model=model))
            col = await asyncio.to_thread(Collection.create, path, encoder=encoder, **options)
            self._failed.pop(name, None)
            return self._add(name, col)

    async def delete(self, name: str) -> None:
        """Close and remove collection ``name``: renamed away first (atomic), then deleted."""
        served = self.get(name)
        async with self._lock, served.write_lock:
            self._close(name)
            trash = self.root / f"{_TRASH}{name}"
            (self.root / name).rename(trash)
            await asyncio.to_thread(shutil.rmtree, trash, True)
