"""A sharded collection: N ordinary collections behind Ray actors, searched as one.

Every call goes to the shards' actors (:class:`~tiervec.distribute.shard.Shard`): a search
is one batched call per shard (each runs its own chain, filter and deletions) whose top lists
are merged into a global top-k; a write goes to the shards that hold its ids
(:func:`~tiervec.distribute.manifest.shard_of`). Query texts are encoded once, here.

A sharded collection is a :class:`~tiervec.search.Searchable`, so evaluation, the planner,
the CLI and the server take it as they take a :class:`~tiervec.Collection`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._validate import as_vectors
from tiervec.collection import Collection, multivector
from tiervec.corpus import Document
from tiervec.distribute import cluster
from tiervec.distribute.manifest import ShardedManifest, is_sharded
from tiervec.distribute.merge import allocate, merge_top, sum_stats
from tiervec.distribute.scatter import RESTARTS, TIMEOUT_S
from tiervec.distribute.shard import Shard
from tiervec.distribute.writes import ShardedWrites
from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig, load_encoder
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig, Muvera
from tiervec.errors import (
    CollectionError,
    CollectionExists,
    EncoderRequired,
    InvalidRequest,
    ShardedUnsupported,
    TokenVectorsMissing,
)
from tiervec.filters import Field, Filter
from tiervec.lexical import LexicalConfig
from tiervec.search import (
    Chain,
    CollectionStats,
    FilterPlan,
    FilterStrategy,
    FusionConfig,
    Query,
    Searchable,
    SearchMode,
    SearchOptions,
    SearchResult,
)
from tiervec.search.searchable import SearchMethods
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.store.fields import fields_from_manifest
from tiervec.store.files import atomic_write_text, remove_tree
from tiervec.store.layout import PLAN, SHARDED
from tiervec.store.manifest import MANIFEST


class ShardedCollection(ShardedWrites, SearchMethods):
    """Documents spread over shards by id, each shard an ordinary collection folder.

    Create one with :meth:`create` (or ``tiervec index ... --ray --shards N``), reopen it with
    :meth:`open`. ``partial=True`` lets a search answer from the shards that are up when
    others stay down (the result's ``shards`` says which answered); otherwise such a search
    raises :class:`~tiervec.errors.ShardUnavailable` naming them.
    """

    #: search threads per shard actor (what a revived actor gets too)
    _threads: int = 1

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: str | Path, *, shards: int, address: str | None = None,
        model: str | EncoderConfig | None = DEFAULT_MODEL, dim: int | None = None,
        tiers: str | Chain = DEFAULT_CHAIN, encoder: Encoder | None = None,
        fields: Mapping[str, Any] | None = None, indexes: Sequence[str] = (),
        lexical: bool | LexicalConfig | None = None, chunking: ChunkingConfig | str | None = None,
        multivector: MultiVectorConfig | bool | None = None, partial: bool = False,
    ) -> ShardedCollection:
        """A new sharded collection of ``shards`` empty shards in ``path`` (a new or empty
        folder), each created with :meth:`tiervec.Collection.create`'s options."""
        from tiervec.distribute.manifest import MAX_SHARDS

        if not 1 <= shards <= MAX_SHARDS:
            raise InvalidRequest(f"--shards must be between 1 and {MAX_SHARDS}, got {shards}")
        root = Path(path).expanduser()
        cluster.ray_module()  # fail before writing anything when Ray is missing
        _check_new_root(root)
        manifest = ShardedManifest.new(shards)
        if encoder is None and model is not None:
            config = EncoderConfig(model=model) if isinstance(model, str) else model
            encoder = load_encoder(config)  # loaded once for every shard
        for name in manifest.shards:
            Collection.create(root / name, model=model, dim=dim, tiers=tiers, encoder=encoder,
                              fields=fields, indexes=indexes, lexical=lexical,
                              chunking=chunking, multivector=multivector).close()
        manifest.write(root)  # the commit: without it the folder holds no collection
        out = cls.open(root, address=address, partial=partial)
        if encoder is not None:
            out._shared["encoder"] = encoder
        return out

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, address: str | None = None,
             partial: bool = False, timeout: float = TIMEOUT_S,
             threads: int | None = None) -> ShardedCollection:
        """The sharded collection in ``path``: its shards' actors started on the Ray cluster
        at ``address`` (or a local one), each opening its folder (as its writer unless
        ``read_only``). ``threads``: search threads per shard (default: this machine's cores
        over the shards)."""
        root = Path(path).expanduser()
        manifest = ShardedManifest.read(root)
        cluster.connect(address)
        threads = threads or max(1, (os.cpu_count() or 1) // len(manifest.shards))
        actors = [_start_actor(root, manifest, name, read_only, threads)
                  for name in manifest.shards]
        out = cls(root, manifest, actors, read_only=read_only, partial=partial, timeout=timeout)
        out._threads = threads
        folders = out._each("folder")  # every shard opened (a lock held elsewhere is raised)
        out._each("attach")
        for name, folder in zip(manifest.shards, folders, strict=True):
            if Path(folder) != (root / name).resolve():  # the name's digest collided
                raise CollectionError(
                    f"the actor found for shard {name!r} of {str(root)!r} serves {folder!r}; "
                    "close the collection that holds it, then open this one")
        return out

    def health(self) -> dict[str, str | None]:
        """Each shard's state: ``None`` when its actor answers, else why not (a dead actor
        whose restarts ran out stays dead until :meth:`revive`)."""
        ray = cluster.ray_module()
        out: dict[str, str | None] = {}
        for name, actor in zip(self.shards, self._actors, strict=True):
            try:
                ray.get(actor.folder.remote(), timeout=min(self.timeout, 10.0))
                out[name] = None
            except Exception as exc:
                if not cluster.is_down(exc):
                    raise
                out[name] = cluster.describe_down(exc)
        return out

    def revive(self) -> list[str]:
        """Start a new actor for every shard whose actor is dead (its restarts ran out), which
        reopens the shard's folder: a long-running server recovers without restarting. The
        shards revived."""
        ray = cluster.ray_module()
        revived = []
        for i, (name, why) in enumerate(self.health().items()):
            if why is None:
                continue
            try:
                ray.kill(self._actors[i], no_restart=True)  # a hung one: its name freed
            except Exception as exc:  # already gone
                if not cluster.is_down(exc):
                    raise
            actor = _start_actor(self.path, self.sharding, name, self.read_only,
                                 self._threads)
            ray.get([actor.folder.remote(), actor.attach.remote()], timeout=self.timeout)
            self._actors[i] = actor
            revived.append(name)
        if revived:
            self._forget()
        return revived

    def close(self) -> None:
        """Stop using the shards; the last handle to close them (in any process on the
        cluster) closes each shard (graphs saved, writer locks released) and stops its actor,
        so closing a second handle never takes the shards from under the first."""
        if not self._owner or not self._actors:
            return
        ray = cluster.ray_module()
        last = []
        for actor in self._actors:
            try:
                if ray.get(actor.detach.remote(), timeout=self.timeout) == 0:
                    last.append(actor)
            except Exception as exc:  # a shard already down has nothing left to close
                if not cluster.is_down(exc):
                    raise
                last.append(actor)
        try:
            ray.get([a.close.remote() for a in last], timeout=self.timeout)
        except Exception as exc:
            if not cluster.is_down(exc):
                raise
        for actor in last:
            ray.kill(actor)
        self._actors = []

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ShardedCollection({str(self.path)!r}, shards={len(self._actors)}, "
                f"tiers={str(self.chain)!r}, model={self.model!r})")

    # -- properties -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(sum(self._reads("len")))

    @property
    def dim(self) -> int:
        return self._manifest.dim

    @property
    def chain(self) -> Chain:
        return Chain.parse(self._chain or self._manifest.chain)

    @property
    def model(self) -> str | None:
        enc = self._manifest.encoder
        return enc["model"] if enc else None

    @property
    def encoder_config(self) -> EncoderConfig | None:
        return self._manifest.encoder_config()

    @property
    def encoder(self) -> Encoder:
        """The model that encodes query texts (loaded here, once, on first use)."""
        if "encoder" not in self._shared:
            config = self.encoder_config
            if config is None:
                raise EncoderRequired(
                    f"collection {str(self.path)!r} has no embedding model; pass vectors "
                    "(search_vectors, add(..., vectors=...)) instead of text")
            self._shared["encoder"] = load_encoder(config)
        return self._shared["encoder"]  # type: ignore[no-any-return]

    @property
    def fields(self) -> dict[str, Field]:
        """The metadata fields over every shard (each shard types a field on first sight)."""
        merged: dict[str, Any] = {}
        for manifest in self._manifests():
            merged.update(manifest.fields)
        return fields_from_manifest(merged)

    @property
    def chunking(self) -> ChunkingConfig | None:
        return self._manifest.chunking_config()

    @property
    def multivector(self) -> MultiVectorConfig | None:
        return self._manifest.multivector_config()

    @property
    def has_lexical(self) -> bool:
        """``False``: lexical and hybrid searches need BM25 statistics over every shard, which
        a sharded collection does not merge yet (each shard keeps its own index)."""
        return False

    @property
    def lexical_config(self) -> LexicalConfig | None:
        return self._manifest.lexical_config()

    @property
    def fusion(self) -> FusionConfig:
        return FusionConfig()

    @property
    def fusion_tuned(self) -> bool:
        return False

    def calibration(self, kind: str) -> None:
        """``None``: a sharded collection keeps no relevance calibration (yet)."""
        return None

    # -- searching ------------------------------------------------------------------------------
    def run(self, query: Query) -> SearchResult:
        """One batched call per shard, merged into the global top ``k`` per query."""
        query = self.prepare(query)
        refs = [a.run.remote(query, self._chain) for a in self._actors]
        answers, report = self._gather(refs, partial=self.partial)
        return merge_top(answers, query.k, report)

    def prepare(self, query: Query) -> Query:
        """``query`` with its texts encoded once (for every shard) and its vectors checked."""
        if query.mode.needs_texts:
            raise ShardedUnsupported(
                "a sharded collection runs dense and multi-vector searches, not "
                f"{query.mode.value} ones: BM25 needs statistics over every shard, which are "
                "not merged yet; search in dense mode, or one shard "
                "(`tiervec.open(SHARD_FOLDER)`) for lexical results")
        if query.min_relevance is not None:
            raise ShardedUnsupported(
                "a sharded collection keeps no relevance calibration, so min_relevance cannot "
                "apply; search without it")
        if self._manifest.multivector is not None and query.mode.needs_vectors:
            encoder = self.encoder if query.tokens is None else None
            return multivector.prepare(query, encoder, self._muvera())
        if query.mode is SearchMode.MULTIVECTOR:
            raise TokenVectorsMissing(
                f"collection {str(self.path)!r} was built without token vectors, so it cannot "
                "run a multi-vector search; search in dense mode")
        vectors = query.vectors
        if vectors is None:
            vectors = self.encode_queries(list(query.texts or ()))
        return query.with_vectors(as_vectors(vectors, self.dim, what="query vectors"))

    def _muvera(self) -> Muvera:
        if "muvera" not in self._shared:
            self._shared["muvera"] = multivector.muvera_of(self._manifest)
        return self._shared["muvera"]  # type: ignore[no-any-return]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(list(texts))

    def with_tiers(self, tiers: str | Chain) -> Searchable:
        """The same shards searched through another chain (each shard's view, in memory)."""
        chain = str(Chain.parse(tiers))
        view = ShardedCollection(self.path, self.sharding, self._actors,
                                 read_only=self.read_only, partial=self.partial,
                                 timeout=self.timeout, chain=chain, shared=self._shared)
        return view  # type: ignore[return-value]

    # -- documents and counts -------------------------------------------------------------------
    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        wanted = [str(i) for i in np.asarray(ids, dtype=object).ravel()]
        out: list[Document | None] = [None] * len(wanted)
        routed = self._routed(wanted)
        refs = [a.call.remote("get", [wanted[i] for i in rows]) if rows else None
                for a, rows in zip(self._actors, routed, strict=True)]
        for rows, found in zip(routed, self._gather_some(refs), strict=True):
            for i, doc in zip(rows, found or [], strict=False):
                out[i] = doc
        return out

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        """``n`` live documents' ids drawn over the shards in proportion to their sizes."""
        sizes = self._reads("len")
        refs = [a.call.remote("sample_ids", want, seed + s) for s, (a, want) in
                enumerate(zip(self._actors, allocate(n, sizes), strict=True))]
        return [i for found in self._gather(refs)[0] for i in found]

    def count(self, filter: Filter = None) -> int:
        return int(sum(self._reads("count", filter)))

    def explain(self, filter: Filter = None, options: SearchOptions | None = None) -> FilterPlan:
        """Matches summed over the shards; the strategy of the shard with the most; the
        lowest recall a shard estimates (each measures and tunes its own)."""
        plans: list[FilterPlan] = self._reads("explain", filter, options)
        total = len(self)
        matches = sum(p.matches for p in plans)
        strategy = max(plans, key=lambda p: p.matches).strategy if plans else FilterStrategy.SCAN
        plan = FilterPlan(matches=matches, share=matches / total if total else 0.0,
                          strategy=strategy)
        measured = [p for p in plans if p.recall is not None]
        if not plans or len(measured) < len(plans):
            return plan
        worst = min(measured, key=lambda p: p.recall or 0.0)
        return replace(plan, recall=worst.recall, oversample=worst.oversample,
                       effort=worst.effort)

    def stats(self, chain: Chain | None = None) -> CollectionStats:
        if chain is None:
            return sum_stats(self._reads("stats"))
        return sum_stats(self._each("call", "stats", Chain.parse(chain)))

    def last_plan(self) -> dict[str, Any] | None:
        import json

        path = self.path / PLAN
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def has_plan(self) -> bool:
        return (self.path / PLAN).is_file()

    def save_plan(self, plan: dict[str, Any]) -> None:
        import json

        atomic_write_text(self.path / PLAN, json.dumps(plan, indent=2) + "\n")

def _check_new_root(root: Path) -> None:
    """Raise unless ``root`` can hold a new sharded collection; clear what an interrupted
    create left (shard folders without ``sharded.json``)."""
    if is_sharded(root):
        raise CollectionExists(
            f"{str(root)!r} already holds a sharded collection; open it, or choose another "
            "folder")
    if not root.exists():
        return
    if (root / MANIFEST).is_file():
        raise CollectionExists(
            f"{str(root)!r} holds a single (unsharded) collection; index into another folder "
            "to shard, or drop --ray/--shards to use it as it is")
    entries = list(root.iterdir())
    if entries and all(e.is_dir() and e.name.startswith("shard-") for e in entries):
        for entry in entries:  # an interrupted create: its manifest was never written
            remove_tree(entry)
    elif entries:
        raise CollectionExists(
            f"{str(root)!r} is not empty and holds no collection ({SHARDED} missing); choose a "
            "new or empty folder")


def open_any(path: str | Path, *, read_only: bool = False,
             address: str | None = None) -> Collection | ShardedCollection:
    """The collection in ``path``, sharded or not."""
    if is_sharded(path):
        return ShardedCollection.open(path, read_only=read_only, address=address)
    return Collection.open(path, read_only=read_only)


def _start_actor(root: Path, manifest: ShardedManifest, name: str, read_only: bool,
                 threads: int) -> Any:
    """The named actor of shard ``name`` (the running one if any: ``get_if_exists``). An
    actor is bound to its folder: a copy or a restore of this one (same uid, another path)
    gets actors of its own, never this folder's."""
    ray = cluster.ray_module()
    where = hashlib.blake2b(str(root.resolve()).encode(), digest_size=6).hexdigest()
    mode = "r" if read_only else "w"
    return ray.remote(Shard).options(**cluster.options(
        name=f"{manifest.uid}:{where}:{name}:{mode}", max_restarts=RESTARTS,
        max_task_retries=RESTARTS, max_concurrency=8, num_cpus=0,
        # the search threads of FAISS and BLAS, set when the process starts: Ray gives an
        # actor that reserves no CPU one, and a threaded actor's calls inherit it
        runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}},
    )).remote(str((root / name).resolve()), name, read_only)
