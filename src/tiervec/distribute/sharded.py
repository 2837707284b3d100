"""A sharded collection: N ordinary collections behind Ray actors, searched as one.

Every call goes to the shards' actors (:class:`~tiervec.distribute.shard.Shard`): a search
is one batched call per shard (each runs its own chain, filter and deletions) whose top lists
are merged into a global top-k; a write goes to the shards that hold its ids
(:func:`~tiervec.distribute.manifest.shard_of`). Query texts are encoded once, here.

A sharded collection is a :class:`~tiervec.search.Searchable`, so evaluation, the planner,
the CLI and the server take it as they take a :class:`~tiervec.Collection`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.collection import Collection, multivector
from tiervec.collection.defaults import SearchDefaults
from tiervec.collection.prepare import prepare_query
from tiervec.collection.settings import CollectionSettings
from tiervec.corpus import Document
from tiervec.distribute import cluster
from tiervec.distribute.actors import start_actor
from tiervec.distribute.manifest import ShardedManifest, is_sharded
from tiervec.distribute.merge import allocate, cut_top, fuse_top, merge_top, sum_stats
from tiervec.distribute.scatter import MAX_REPLICAS, TIMEOUT_S
from tiervec.distribute.writes import ShardedWrites
from tiervec.encode import Encoder, EncoderConfig, load_encoder
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig, Muvera
from tiervec.errors import (
    CollectionError,
    CollectionExists,
    EncoderRequired,
    InvalidRequest,
    ShardUnavailable,
)
from tiervec.filters import Field, Filter
from tiervec.lexical import LexicalConfig, TermStats
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
from tiervec.search.cutoff import RelevanceModel
from tiervec.search.searchable import SearchMethods
from tiervec.store.fields import fields_from_manifest
from tiervec.store.files import remove_tree
from tiervec.store.layout import SHARDED, CollectionFiles
from tiervec.store.manifest import MANIFEST


class ShardedCollection(ShardedWrites, SearchMethods):
    """Documents spread over shards by id, each shard an ordinary collection folder.

    Create one with :meth:`create` (or ``tiervec index ... --ray --shards N``), reopen it with
    :meth:`open`. ``partial=True`` (or a search's ``SearchOptions(partial=True)``) lets a
    search answer from the shards that are up when others stay down (the result's ``shards``
    says which answered); otherwise such a search raises
    :class:`~tiervec.errors.ShardUnavailable` naming them.
    """

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: str | Path, *, shards: int, settings: CollectionSettings | None = None,
        encoder: Encoder | None = None, address: str | None = None, partial: bool = False,
        replicas: int = 1,
    ) -> ShardedCollection:
        """A new sharded collection of ``shards`` empty shards in ``path`` (a new or empty
        folder), each created with ``settings`` (:func:`tiervec.create_sharded` takes them as
        :meth:`tiervec.Collection.create`'s keywords); the model is loaded once for all."""
        from tiervec.distribute.manifest import MAX_SHARDS

        if not 1 <= shards <= MAX_SHARDS:
            raise InvalidRequest(f"--shards must be between 1 and {MAX_SHARDS}, got {shards}")
        settings = settings or CollectionSettings()
        root = Path(path).expanduser()
        cluster.ray_module()  # fail before writing anything when Ray is missing
        check_new_root(root)
        manifest = ShardedManifest.new(shards)
        config = settings.encoder_config
        if encoder is None and config is not None:
            encoder = load_encoder(config)  # loaded once for every shard
        for name in manifest.shards:
            Collection.create(root / name, encoder=encoder, **settings.options()).close()
        manifest.write(root)  # the commit: without it the folder holds no collection
        out = cls.open(root, address=address, partial=partial, replicas=replicas)
        if encoder is not None:
            out._shared["encoder"] = encoder
        return out

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, address: str | None = None,
             partial: bool = False, timeout: float = TIMEOUT_S,
             threads: int | None = None, replicas: int = 1) -> ShardedCollection:
        """The sharded collection in ``path``: its shards' actors started on the Ray cluster
        at ``address`` (or a local one), each opening its folder (as its writer unless
        ``read_only``). ``threads``: search threads per shard (default: this machine's cores
        over the shards). ``replicas``: actors per shard (the others read the same folder;
        searches take turns and fall back on them), placed on different nodes where the
        cluster has several."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or \
                not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidRequest(f"--replicas must be a whole number in [1, {MAX_REPLICAS}], "
                                 f"got {replicas!r}")
        root = Path(path).expanduser()
        manifest = ShardedManifest.read(root)
        cluster.connect(address)
        threads = threads or max(1, (os.cpu_count() or 1) // len(manifest.shards))
        actors = [start_actor(root, manifest, s, 0, read_only, threads)
                  for s in range(len(manifest.shards))]
        others = [[start_actor(root, manifest, s, r, True, threads)
                   for r in range(1, replicas)] for s in range(len(manifest.shards))]
        out = cls(root, manifest, actors, read_only=read_only, partial=partial, timeout=timeout,
                  replicas=others)
        out._threads = threads
        every = actors + [a for group in others for a in group]
        ray = cluster.ray_module()
        # every actor opens its folder (a lock held elsewhere is raised), then is counted
        folders = ray.get([a.folder.remote() for a in every], timeout=timeout)
        ray.get([a.attach.remote() for a in every], timeout=timeout)
        names = list(manifest.shards) + [n for n, g in zip(manifest.shards, others,
                                                           strict=True) for _ in g]
        for name, folder in zip(names, folders, strict=True):
            if Path(folder) != (root / name).resolve():  # the name's digest collided
                raise CollectionError(
                    f"the actor found for shard {name!r} of {str(root)!r} serves {folder!r}; "
                    "close the collection that holds it, then open this one")
        return out

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ShardedCollection({str(self.path)!r}, shards={len(self._actors)}, "
                f"tiers={str(self.chain)!r}, model={self.model!r})")

    # -- properties -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(sum(self._reads(lambda a: a.size.remote(self._chain))))

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
        """Whether the shards keep lexical (BM25) indexes; a lexical or hybrid search scores
        each with the statistics of all (so its scores equal one collection's)."""
        return self._manifest.lexical is not None

    @property
    def lexical_config(self) -> LexicalConfig | None:
        return self._manifest.lexical_config()

    def _defaults(self) -> SearchDefaults:
        """The fusion and calibrations the shards keep (the first shard's)."""
        return SearchDefaults(self._manifest.search, str(self.path))

    @property
    def fusion(self) -> FusionConfig:
        """The fusion a hybrid search uses unless told otherwise (``tiervec tune --apply``)."""
        return self._defaults().fusion

    @property
    def fusion_tuned(self) -> bool:
        """Whether :attr:`fusion` was stored by ``tiervec tune --apply`` (else the default)."""
        return self._defaults().fusion_tuned

    def calibration(self, kind: str) -> RelevanceModel | None:
        """The fitted relevance calibration of a search mode (``None``: never fitted)."""
        return self._defaults().calibration(kind)

    # -- searching ------------------------------------------------------------------------------
    def run(self, query: Query) -> SearchResult:
        """One batched call per shard, merged into the global top ``k`` per query: a lexical
        side scored with BM25 statistics gathered from every shard first, a hybrid search's
        two lists merged, then fused here, the relevance cut-off applied to the merged list."""
        query = asked = self.prepare(query)
        model = None
        if asked.min_relevance is not None:
            model = self._defaults().relevance_model(asked)
            query = replace(asked.with_k(max(asked.k, model.depth)), min_relevance=None)
        if query.mode.needs_texts:
            query = replace(query, lexical_stats=self._lexical_stats(query.texts or (),
                                                                     query.options.partial))
        parts, fusion = [query], None
        if query.mode is SearchMode.HYBRID:
            assert query.lexical_stats is not None
            fusion = self._defaults().fusion_for(query).for_coverage(
                query.lexical_stats.read_share)
            parts = [replace(query, mode=SearchMode.DENSE, lexical_stats=None,
                             k=max(query.k, fusion.dense_depth)),
                     replace(query, mode=SearchMode.LEXICAL, vectors=None, tokens=None,
                             k=max(query.k, fusion.lexical_depth))]
        partial = self.partial if query.options.partial is None else query.options.partial
        answers, report = self._scatter(lambda a: a.run_all.remote(parts, self._chain),
                                        partial)
        merged = [merge_top([a[i] for a in answers], part.k, report)
                  for i, part in enumerate(parts)]
        result = merged[0] if fusion is None else fuse_top(merged, fusion, query.k, report)
        if model is None or asked.min_relevance is None:
            return result
        return cut_top(result, model, asked.min_relevance, asked.k)

    def _lexical_stats(self, texts: Sequence[str], partial: bool | None) -> TermStats:
        """BM25's statistics of the query terms summed over the shards (one small round;
        over those that answer, when partial results are allowed)."""
        allowed = self.partial if partial is None else partial
        found = self._scatter(lambda a: a.lexical_stats.remote(list(texts)), allowed)
        return sum(found[0], TermStats())

    def prepare(self, query: Query) -> Query:
        """``query`` with its texts encoded once (for every shard, where its mode reads
        vectors) and its vectors checked; a lexical or hybrid one checked against the lexical
        index (as one collection prepares it)."""
        manifest = self._manifest
        return prepare_query(
            query, where=str(self.path), dim=self.dim, lexical=manifest.lexical is not None,
            multivector=manifest.multivector is not None, encoder=lambda: self.encoder,
            muvera=self._muvera, encode_queries=self.encode_queries)

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
                                 timeout=self.timeout, chain=chain, shared=self._shared,
                                 replicas=self._replicas)
        return view  # type: ignore[return-value]

    # -- documents and counts -------------------------------------------------------------------
    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        wanted = [str(i) for i in np.asarray(ids, dtype=object).ravel()]
        out: list[Document | None] = [None] * len(wanted)
        routed = self._routed(wanted)
        refs = [a.get.remote([wanted[i] for i in rows]) if rows else None
                for a, rows in zip(self._actors, routed, strict=True)]
        for rows, found in zip(routed, self._gather_some(refs), strict=True):
            for i, doc in zip(rows, found or [], strict=False):
                out[i] = doc
        return out

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        """``n`` live documents' ids drawn over the shards in proportion to their sizes."""
        sizes = self._reads(lambda a: a.size.remote(self._chain))
        refs = [a.sample_ids.remote(want, seed + s) for s, (a, want) in
                enumerate(zip(self._actors, allocate(n, sizes), strict=True))]
        return [i for found in self._gather(refs)[0] for i in found]

    def count(self, filter: Filter = None) -> int:
        return int(sum(self._reads(lambda a: a.count.remote(filter, self._chain))))

    def explain(self, filter: Filter = None, options: SearchOptions | None = None) -> FilterPlan:
        """Matches summed over the shards; the strategy of the shard with the most; the
        lowest recall a shard estimates (each measures and tunes its own)."""
        plans: list[FilterPlan] = self._reads(
            lambda a: a.explain.remote(filter, options, self._chain))
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
        """Figures summed over the shards that answer; ``shards`` says each one's state (a
        shard that is down does not fail the call, so a server can report it)."""
        of = None if chain is None else Chain.parse(chain)
        found, report = self._scatter(lambda a: a.stats.remote(of, self._chain), partial=True)
        if not found:
            raise ShardUnavailable(f"no shard of {str(self.path)!r} answers: "
                                   f"{report.failed}", tuple(report.failed))
        return sum_stats(found, report)

    # the plan is kept beside the shards, as one collection keeps it beside its segments
    def last_plan(self) -> dict[str, Any] | None:
        return CollectionFiles(self.path).read_plan()

    def has_plan(self) -> bool:
        return CollectionFiles(self.path).has_plan()

    def save_plan(self, plan: dict[str, Any]) -> None:
        CollectionFiles(self.path).write_plan(plan)


def check_new_root(root: Path, clear: bool = True) -> None:
    """Raise unless ``root`` can hold a new sharded collection; clear what an interrupted
    create left (shard folders without ``sharded.json``) when ``clear``."""
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
        for entry in entries if clear else ():  # an interrupted create: no manifest
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
