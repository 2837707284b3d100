"""Calling a sharded collection's shards: every shard's actor at once, answers gathered in
shard order (a shard that is down named), ids routed to the shards that hold them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial as partial_call
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.distribute import cluster
from tiervec.distribute.manifest import ShardedManifest
from tiervec.errors import ShardUnavailable
from tiervec.search import ShardReport
from tiervec.store.manifest import Manifest

#: Seconds a search waits for its slowest shard before that shard counts as down.
TIMEOUT_S = 60.0
#: How often Ray restarts a shard's dead actor (each restart reopens its folder).
RESTARTS = 3
#: Most actors per shard (``--replicas``).
MAX_REPLICAS = 8


def _same(value: Any) -> Any:
    return value


class ShardSet:
    """The shards' actors of a sharded collection and how to call them."""

    def __init__(self, root: Path, manifest: ShardedManifest, actors: list[Any], *,
                 read_only: bool, partial: bool = False, timeout: float = TIMEOUT_S,
                 chain: str | None = None, shared: dict[str, Any] | None = None,
                 replicas: list[list[Any]] | None = None) -> None:
        self.path = root
        self.sharding = manifest
        self.read_only = read_only
        self.partial = partial
        self.timeout = timeout
        #: each shard's actor: its folder's writer (unless read-only), which writes go to
        self._actors = actors
        #: each shard's other actors (``--replicas``): readers of the same folder, which
        #: searches and reads take turns with and fall back on
        self._replicas: list[list[Any]] = replicas or [[] for _ in actors]
        self._turn = 0
        self._chain = chain
        self._owner = shared is None
        # the encoder and the shards' manifests, shared with views
        self._shared: dict[str, Any] = {} if shared is None else shared

    def __getstate__(self) -> dict[str, Any]:
        """Pickled into Ray tasks (distributed ingest) without the query encoder."""
        return {**self.__dict__, "_shared": {}, "_owner": False}

    # -- the shards -----------------------------------------------------------------------------
    @property
    def shards(self) -> tuple[str, ...]:
        """The shards' names (their folders under :attr:`path`)."""
        return self.sharding.shards

    def actor(self, shard: str | int) -> Any:
        """The Ray actor of a shard (by name or index)."""
        index = shard if isinstance(shard, int) else self.shards.index(shard)
        return self._actors[index]

    def _scatter(self, call: Callable[[Any], Any],
                 partial: bool = False) -> tuple[list[Any], ShardReport]:
        """``call(actor)`` (a remote call) on one actor of every shard, the shard's replicas
        taking turns; when one is down the shard's next is asked (so a dead replica costs no
        error). Answers as :meth:`_gather`'s."""
        self._turn += 1
        order = []
        for actor, others in zip(self._actors, self._replicas, strict=True):
            serving = [actor, *others]
            at = self._turn % len(serving)
            order.append(serving[at:] + serving[:at])
        refs = [call(actors[0]) for actors in order]
        fallbacks = [[partial_call(call, a) for a in actors[1:]] for actors in order]
        return self._gather(refs, partial=partial, fallbacks=fallbacks)

    def _gather(self, refs: Sequence[Any], partial: bool = False, write: bool = False,
                wait: bool = False, fallbacks: Sequence[Sequence[Callable[[], Any]]] = (),
                ) -> tuple[list[Any], ShardReport]:
        """The shards' answers, in shard order; shards that are down are left out when
        ``partial``, else :class:`ShardUnavailable` names them. A ``write`` waits for a slow
        shard as long as its actor lives (no deadline: the caller must learn whether the
        write landed), and says so when one died; ``wait`` waits the same way (a write's
        reads). ``fallbacks[i]``: the calls that ask shard ``i``'s other actors."""
        ray = cluster.ray_module()
        deadline = time.monotonic() + self.timeout
        answers: list[Any] = []
        answered: list[str] = []
        failed: dict[str, str] = {}
        for i, (name, ref) in enumerate(zip(self.shards, refs, strict=True)):
            tries: list[Callable[[], Any]] = [partial_call(_same, ref),
                                              *(fallbacks[i] if fallbacks else ())]
            for attempt in tries:
                try:
                    left = None if write or wait else max(0.0, deadline - time.monotonic())
                    answers.append(cluster.gathered(partial_call(ray.get, attempt(),
                                                                 timeout=left)))
                    answered.append(name)
                    failed.pop(name, None)
                    break
                except Exception as exc:
                    if not cluster.is_down(exc):
                        raise
                    failed[name] = cluster.describe_down(exc)
        if failed and write:
            listed = "; ".join(f"{n}: {why}" for n, why in failed.items())
            raise ShardUnavailable(
                f"{len(failed)} of {len(self.shards)} shards of {str(self.path)!r} died during "
                f"the write ({listed}): their part of it may or may not have been committed; "
                "the other shards' parts were. Once they are back, write the same documents "
                "again with upsert (or ingest, which adds only what is missing), or delete the "
                "same ids again: those are safe to repeat", tuple(failed))
        if failed and not partial:
            listed = "; ".join(f"{n}: {why}" for n, why in failed.items())
            raise ShardUnavailable(
                f"{len(failed)} of {len(self.shards)} shards of {str(self.path)!r} did not "
                f"answer ({listed}); their documents cannot be read until they are back (Ray "
                "restarts a dead shard up to "
                f"{RESTARTS} times; reopen the collection to start it again), or search with "
                "partial results allowed", tuple(failed))
        return answers, ShardReport(answered=tuple(answered), failed=failed)

    def _each(self, call: Callable[[Any], Any], *, write: bool = False) -> list[Any]:
        """``call(actor)`` (a remote call of a :class:`~tiervec.distribute.shard.Shard`
        method) on every shard's writer actor at once; the answers in shard order (a
        ``write`` waits for slow shards)."""
        return self._gather([call(a) for a in self._actors], write=write)[0]

    def _reads(self, call: Callable[[Any], Any]) -> list[Any]:
        """``call(actor)``, a read, on one actor of every shard (any of its replicas)."""
        return self._scatter(call)[0]

    def _routed(self, ids: Sequence[str]) -> list[list[int]]:
        """The positions of ``ids`` each shard holds."""
        where = self.sharding.route(ids)
        return [np.flatnonzero(where == s).tolist() for s in range(len(self.shards))]

    def _manifests(self, wait: bool = False) -> list[Manifest]:
        """The shards' manifests (``wait``: for slow shards, as a write does)."""
        if "manifests" not in self._shared:  # the same settings in every shard: those up will do
            refs = [a.manifest.remote() for a in self._actors]
            found, report = self._gather(refs, partial=self.partial, wait=wait)
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

    def _gather_some(self, refs: Sequence[Any], write: bool = False) -> list[Any]:
        """:meth:`_gather` of calls made to some shards only (``None``: none made)."""
        ray = cluster.ray_module()
        if all(r is None for r in refs):
            return [None] * len(refs)
        done = ray.put(None)
        answers = self._gather([done if r is None else r for r in refs], write=write)[0]
        return answers

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that the collection does not hold."""
        return self._missing(ids)

    def _missing(self, ids: Sequence[str], *, write: bool = False) -> list[str]:
        """:meth:`missing` (``write``: a write's own check, which waits for slow shards as the
        write does)."""
        ids = [str(i) for i in ids]
        routed = self._routed(ids)
        refs = [a.missing.remote([ids[i] for i in rows]) if rows else None
                for a, rows in zip(self._actors, routed, strict=True)]
        gone = {i for found in self._gather_some(refs, write=write) if found for i in found}
        return [i for i in ids if i in gone]

