"""A sharded collection's actors: started (named, bound to their folder, placed over the
cluster's nodes), counted, checked, revived and stopped."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tiervec.distribute import cluster
from tiervec.distribute.manifest import ShardedManifest
from tiervec.distribute.scatter import RESTARTS, ShardSet
from tiervec.distribute.shard import Shard


class ShardActors(ShardSet):
    """The lifecycle of a sharded collection's actors (each shard's writer and replicas)."""

    #: search threads per shard actor (what a revived actor gets too)
    _threads: int = 1

    def _members(self) -> list[tuple[str, int, int, Any]]:
        """Every actor: its key (the shard's name; ``name#r`` for replica ``r``), shard index,
        replica number and handle."""
        out = []
        for s, (name, actor) in enumerate(zip(self.shards, self._actors, strict=True)):
            out.append((name, s, 0, actor))
            out += [(f"{name}#{r}", s, r, a) for r, a in enumerate(self._replicas[s], 1)]
        return out

    def health(self) -> dict[str, str | None]:
        """Each shard's actor's state (``name#r``: its replica ``r``): ``None`` when it
        answers, else why not (a dead actor whose restarts ran out stays dead until
        :meth:`revive`)."""
        ray = cluster.ray_module()
        out: dict[str, str | None] = {}
        for key, _, _, actor in self._members():
            try:
                ray.get(actor.folder.remote(), timeout=min(self.timeout, 10.0))
                out[key] = None
            except Exception as exc:
                if not cluster.is_down(exc):
                    raise
                out[key] = cluster.describe_down(exc)
        return out

    def revive(self) -> list[str]:
        """Start a new actor for every shard actor that is dead (its restarts ran out), which
        reopens the shard's folder: a long-running server recovers without restarting. The
        actors revived (as :meth:`health` names them)."""
        ray = cluster.ray_module()
        health = self.health()
        revived = []
        for key, s, r, actor in self._members():
            if health[key] is None:
                continue
            try:
                ray.kill(actor, no_restart=True)  # a hung one: its name freed
            except Exception as exc:  # already gone
                if not cluster.is_down(exc):
                    raise
            new = start_actor(self.path, self.sharding, s, r, self.read_only or r > 0,
                               self._threads)
            ray.get([new.folder.remote(), new.attach.remote()], timeout=self.timeout)
            if r == 0:
                self._actors[s] = new
            else:
                self._replicas[s][r - 1] = new
            revived.append(key)
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
        for _, _, _, actor in self._members():
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


def start_actor(root: Path, manifest: ShardedManifest, shard: int, replica: int,
                 read_only: bool, threads: int) -> Any:
    """The named actor of replica ``replica`` of shard ``shard`` (the running one if any:
    ``get_if_exists``), on the cluster's node ``(shard + replica) mod nodes`` where it has
    several (so one shard's replicas share no node). An actor is bound to its folder: a copy
    or a restore of this one (same uid, another path) gets actors of its own."""
    ray = cluster.ray_module()
    name = manifest.shards[shard]
    where = hashlib.blake2b(str(root.resolve()).encode(), digest_size=6).hexdigest()
    mode = f"r{replica}" if replica else "r" if read_only else "w"
    return ray.remote(Shard).options(**cluster.options(
        name=f"{manifest.uid}:{where}:{name}:{mode}", max_restarts=RESTARTS,
        max_task_retries=RESTARTS, max_concurrency=8, num_cpus=0,
        # the search threads of FAISS and BLAS, set when the process starts: Ray gives an
        # actor that reserves no CPU one, and a threaded actor's calls inherit it
        runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}},
        **cluster.placement(shard + replica),
    )).remote(str((root / name).resolve()), name, read_only)
