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
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import partial as partial_call
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._validate import as_vectors, documents_to_write
from tiervec.collection import Collection, multivector
from tiervec.corpus import Document
from tiervec.distribute import cluster
from tiervec.distribute.manifest import ShardedManifest, is_sharded
from tiervec.distribute.merge import allocate, merge_top, sum_stats
from tiervec.distribute.shard import Shard
from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig, load_encoder
from tiervec.encode.base import ProgressFn
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig, Muvera
from tiervec.errors import (
    CollectionError,
    CollectionExists,
    DuplicateIds,
    EncoderRequired,
    InvalidRequest,
    ShardedUnsupported,
    ShardUnavailable,
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
    SearchResult,
    ShardReport,
)
from tiervec.search.searchable import SearchMethods
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.store.fields import fields_from_manifest
from tiervec.store.files import atomic_write_text, remove_tree
from tiervec.store.layout import PLAN, SHARDED
from tiervec.store.manifest import MANIFEST, Manifest
from tiervec.store.writes import WriteStats

#: Seconds a search waits for its slowest shard before that shard counts as down.
TIMEOUT_S = 60.0
#: How often Ray restarts a shard's dead actor (each restart reopens its folder).
RESTARTS = 3


class ShardedCollection(SearchMethods):
    """Documents spread over shards by id, each shard an ordinary collection folder.

    Create one with :meth:`create` (or ``tiervec index ... --ray --shards N``), reopen it with
    :meth:`open`. ``partial=True`` lets a search answer from the shards that are up when
    others stay down (the result's ``shards`` says which answered); otherwise such a search
    raises :class:`~tiervec.errors.ShardUnavailable` naming them.
    """

    def __init__(self, root: Path, manifest: ShardedManifest, actors: list[Any], *,
                 read_only: bool, partial: bool = False, timeout: float = TIMEOUT_S,
                 chain: str | None = None, shared: dict[str, Any] | None = None) -> None:
        self.path = root
        self.sharding = manifest
        self.read_only = read_only
        self.partial = partial
        self.timeout = timeout
        self._actors = actors
        self._chain = chain
        self._owner = shared is None
        # the encoder and the shards' manifests, shared with views
        self._shared: dict[str, Any] = {} if shared is None else shared

    def __getstate__(self) -> dict[str, Any]:
        """Pickled into Ray tasks (distributed ingest) without the query encoder."""
        return {**self.__dict__, "_shared": {}, "_owner": False}

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
        ray = cluster.connect(address)
        remote = ray.remote(Shard)
        threads = threads or max(1, (os.cpu_count() or 1) // len(manifest.shards))
        mode = "r" if read_only else "w"
        actors = [
            remote.options(**cluster.options(
                name=f"{manifest.uid}:{name}:{mode}", max_restarts=RESTARTS,
                max_task_retries=RESTARTS, max_concurrency=8, num_cpus=0,
            )).remote(str((root / name).resolve()), name, read_only, threads)
            for name in manifest.shards
        ]
        out = cls(root, manifest, actors, read_only=read_only, partial=partial, timeout=timeout)
        out._each("ping")  # every shard opened (a lock held elsewhere is raised here)
        return out

    def close(self) -> None:
        """Close every shard (graphs saved, writer locks released) and stop its actor."""
        if not self._owner or not self._actors:
            return
        ray = cluster.ray_module()
        try:
            ray.get([a.close.remote() for a in self._actors], timeout=self.timeout)
        except Exception as exc:  # a shard already down has nothing left to close
            if not cluster.is_down(exc):
                raise
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ShardedCollection({str(self.path)!r}, shards={len(self._actors)}, "
                f"tiers={str(self.chain)!r}, model={self.model!r})")

    # -- the shards -----------------------------------------------------------------------------
    @property
    def shards(self) -> tuple[str, ...]:
        """The shards' names (their folders under :attr:`path`)."""
        return self.sharding.shards

    def actor(self, shard: str | int) -> Any:
        """The Ray actor of a shard (by name or index)."""
        index = shard if isinstance(shard, int) else self.shards.index(shard)
        return self._actors[index]

    def _gather(self, refs: Sequence[Any], partial: bool = False,
                ) -> tuple[list[Any], ShardReport]:
        """The shards' answers, in shard order; shards that are down are left out when
        ``partial``, else :class:`ShardUnavailable` names them."""
        ray = cluster.ray_module()
        deadline = time.monotonic() + self.timeout
        answers, answered, failed = [], [], {}
        for name, ref in zip(self.shards, refs, strict=True):
            try:
                left = max(0.0, deadline - time.monotonic())
                answers.append(cluster.gathered(partial_call(ray.get, ref, timeout=left)))
                answered.append(name)
            except Exception as exc:
                if not cluster.is_down(exc):
                    raise
                failed[name] = cluster.describe_down(exc)
        if failed and not partial:
            listed = "; ".join(f"{n}: {why}" for n, why in failed.items())
            raise ShardUnavailable(
                f"{len(failed)} of {len(self.shards)} shards of {str(self.path)!r} did not "
                f"answer ({listed}); their documents cannot be read until they are back (Ray "
                "restarts a dead shard up to "
                f"{RESTARTS} times; reopen the collection to start it again), or search with "
                "partial results allowed", tuple(failed))
        return answers, ShardReport(answered=tuple(answered), failed=failed)

    def _each(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """``method`` of every shard's actor, called at once; the answers in shard order."""
        refs = [getattr(a, method).remote(*args, **kwargs) for a in self._actors]
        return self._gather(refs)[0]

    def _reads(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """A read of every shard's collection (through this view's chain)."""
        return self._each("call", method, *args, chain=self._chain, **kwargs)

    def _routed(self, ids: Sequence[str]) -> list[list[int]]:
        """The positions of ``ids`` each shard holds."""
        where = self.sharding.route(ids)
        return [np.flatnonzero(where == s).tolist() for s in range(len(self.shards))]

    def _manifests(self) -> list[Manifest]:
        if "manifests" not in self._shared:  # the same settings in every shard: those up will do
            refs = [a.manifest.remote() for a in self._actors]
            found, report = self._gather(refs, partial=self.partial)
            if not found:
                raise ShardUnavailable(f"no shard of {str(self.path)!r} answers",
                                       tuple(report.failed))
            self._shared["manifests"] = found
        return self._shared["manifests"]  # type: ignore[no-any-return]

    @property
    def _manifest(self) -> Manifest:
        """The first shard's manifest: the settings every shard shares."""
        return self._manifests()[0]

    def _forget(self) -> None:
        """Settings may have changed (a write): read them again when next needed."""
        self._shared.pop("manifests", None)

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
        enc = self._manifest.encoder
        return EncoderConfig.from_dict(enc) if enc else None

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
        stored = self._manifest.chunking
        return ChunkingConfig.from_dict(stored) if stored else None

    @property
    def multivector(self) -> MultiVectorConfig | None:
        stored = self._manifest.multivector
        return MultiVectorConfig.from_dict(stored["config"]) if stored else None

    @property
    def has_lexical(self) -> bool:
        """``False``: lexical and hybrid searches need BM25 statistics over every shard, which
        a sharded collection does not merge yet (each shard keeps its own index)."""
        return False

    @property
    def lexical_config(self) -> LexicalConfig | None:
        lexical = self._manifest.lexical
        return LexicalConfig.from_dict(lexical["config"]) if lexical else None

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

    def _gather_some(self, refs: Sequence[Any]) -> list[Any]:
        """:meth:`_gather` of calls made to some shards only (``None``: none made)."""
        ray = cluster.ray_module()
        if all(r is None for r in refs):
            return [None] * len(refs)
        done = ray.put(None)
        answers = self._gather([done if r is None else r for r in refs])[0]
        return answers

    def missing(self, ids: Sequence[str]) -> list[str]:
        ids = [str(i) for i in ids]
        routed = self._routed(ids)
        refs = [a.call.remote("missing", [ids[i] for i in rows]) if rows else None
                for a, rows in zip(self._actors, routed, strict=True)]
        gone = {i for found in self._gather_some(refs) if found for i in found}
        return [i for i in ids if i in gone]

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        """``n`` live documents' ids drawn over the shards in proportion to their sizes."""
        sizes = self._reads("len")
        refs = [a.call.remote("sample_ids", want, seed + s) for s, (a, want) in
                enumerate(zip(self._actors, allocate(n, sizes), strict=True))]
        return [i for found in self._gather(refs)[0] for i in found]

    def count(self, filter: Filter = None) -> int:
        return int(sum(self._reads("count", filter)))

    def explain(self, filter: Filter = None) -> FilterPlan:
        """Matches summed over the shards; the strategy of the shard with the most."""
        plans: list[FilterPlan] = self._reads("explain", filter)
        total = len(self)
        matches = sum(p.matches for p in plans)
        strategy = max(plans, key=lambda p: p.matches).strategy if plans else FilterStrategy.SCAN
        return FilterPlan(matches=matches, share=matches / total if total else 0.0,
                          strategy=strategy)

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

    # -- writes ---------------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
            progress: ProgressFn | None = None) -> int:
        """Add new documents, each to its shard (every shard's part one committed segment;
        the shards encode their own texts). Ids must be new: one the collection holds raises
        :class:`~tiervec.errors.DuplicateIds` before anything is written."""
        docs, vectors = documents_to_write(documents, vectors, self.dim)
        held = [i for i in {d.id for d in docs} - set(self.missing([d.id for d in docs]))]
        if held:
            raise DuplicateIds(
                f"{len(held)} ids are already in the collection (e.g. {sorted(held)[:5]}); "
                "skip them (see missing), replace them with upsert(), or give the documents "
                "new ids")
        # a retried add would find its own documents: not retried (ingest's writes are)
        return int(sum(self._write("add", docs, vectors, progress, max_task_retries=0)))

    def upsert(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
               progress: ProgressFn | None = None) -> WriteStats:
        """Add or replace documents by id, each in its shard."""
        docs, vectors = documents_to_write(documents, vectors, self.dim)
        stats = self._write("upsert", docs, vectors, progress)
        return WriteStats(added=sum(s.added for s in stats),
                          replaced=sum(s.replaced for s in stats),
                          truncated=sum(s.truncated for s in stats))

    def ingest(self, documents: Sequence[Document], vectors: Any = None) -> int:
        """Add those of ``documents`` the collection lacks (idempotent; what distributed
        ingest calls, retried by Ray when a shard's actor dies)."""
        return int(sum(self._write("ingest", list(documents), vectors, None)))

    def delete(self, ids: Iterable[str] | str) -> WriteStats:
        ids = list(dict.fromkeys([ids] if isinstance(ids, str) else map(str, ids)))
        routed = self._routed(ids)
        refs = [a.delete.remote([ids[i] for i in rows]) if rows else None
                for a, rows in zip(self._actors, routed, strict=True)]
        stats = [s for s in self._gather_some(refs) if s is not None]
        missing = set().union(*(s.missing for s in stats)) if stats else set()
        return WriteStats(deleted=sum(s.deleted for s in stats),
                          missing=[i for i in ids if i in missing])

    def _write(self, method: str, docs: list[Document], vectors: np.ndarray | None,
               progress: ProgressFn | None, **call: Any) -> list[Any]:
        """``method`` of each shard with its documents (and vectors), all shards at once."""
        self._require_writable()
        routed = self._routed([d.id for d in docs])
        refs = []
        for actor, rows in zip(self._actors, routed, strict=True):
            part = None if vectors is None else vectors[rows]
            refs.append(getattr(actor, method).options(**call).remote(
                [docs[i] for i in rows], part) if rows else None)
        out = [a for a in self._gather_some(refs) if a is not None]
        if progress is not None:
            progress(len(docs))
        self._forget()
        return out

    def compact(self, *, vacuum: bool = True) -> WriteStats:
        stats = self._each("write", "compact", vacuum=vacuum)
        self._forget()
        return WriteStats(deleted=sum(s.deleted for s in stats))

    def is_fragmented(self) -> bool:
        """Whether a shard has many small segments (writes over HTTP make them)."""
        return any(self._reads("is_fragmented"))

    def compact_if_fragmented(self) -> bool:
        merged = any(self._each("write", "compact_if_fragmented"))
        self._forget()
        return merged

    def set_tiers(self, tiers: str | Chain) -> None:
        """Search every shard through ``tiers`` from now on (each re-encodes its codes)."""
        self._require_writable()
        self._each("write", "set_tiers", str(Chain.parse(tiers)))
        self._forget()

    @property
    def fit_is_stale(self) -> bool:
        return any(self._each("fit_is_stale"))

    def refit(self) -> None:
        self._each("write", "refit")
        self._forget()

    def finish(self) -> bool:
        """After a bulk ingest: every shard re-fits stale codecs and merges small segments."""
        refitted = any(self._each("finish"))
        self._forget()
        return refitted

    def _require_writable(self) -> None:
        if self.read_only:
            raise CollectionError(f"collection {str(self.path)!r} was opened read-only")


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

