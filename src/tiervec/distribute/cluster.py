"""Ray, imported only here: joining a cluster, and Ray's errors turned into tiervec's.

A sharded collection runs on a Ray cluster: a local one started on first use (tests, one
machine) or an existing one by address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from tiervec._extras import require
from tiervec.errors import ClusterUnavailable, TiervecError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The Ray namespace the shards' actors are named in.
NAMESPACE = "tiervec"
#: Seconds to wait for a cluster's address to accept a connection.
CONNECT_TIMEOUT_S = 5.0


def ray_module() -> ModuleType:
    """``ray``, or :class:`~tiervec.errors.MissingDependency` with the line that installs it."""
    return require("ray")


def connect(address: str | None = None, num_cpus: int | None = None) -> ModuleType:
    """Join the Ray cluster at ``address``, or start a local one (``None``); a connected
    process stays connected. Raises :class:`ClusterUnavailable` when nothing answers there."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, private cluster
    else:
        _reachable(address)
    try:
        ray.init(address=address, num_cpus=num_cpus if address is None else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterUnavailable(
            f"no Ray cluster answers at {address!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no reason given'}); start one there "
            "(`ray start --head`), pass its address (`--address HOST:6379`), or drop "
            "--address to run a local cluster") from exc
    log.info("joined Ray cluster: %s", ray.cluster_resources())
    return ray


def _reachable(address: str) -> None:
    """Fail at once when nothing listens at a ``host:port`` address (Ray itself retries for
    minutes before giving up)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterUnavailable(
            f"no Ray cluster answers at {address!r} ({exc.strerror or exc}); start one there "
            "(`ray start --head`), pass its address (`--address HOST:6379`), or drop "
            "--address to run a local cluster") from exc


def unwrap(exc: BaseException) -> BaseException:
    """The tiervec error a task raised inside Ray (its own class and message, without the
    remote traceback), else ``exc``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, TiervecError) else exc


def gathered(call: Callable[[], T]) -> T:
    """``call()`` (a ``ray.get``), with a tiervec error raised by a task re-raised as itself."""
    ray = ray_module()
    try:
        return call()
    except ray.exceptions.RayTaskError as exc:
        raise unwrap(exc) from None


def is_down(exc: BaseException) -> bool:
    """Whether ``exc`` says an actor is dead, unreachable or did not answer in time."""
    ray = ray_module()
    return isinstance(exc, ray.exceptions.RayActorError | ray.exceptions.GetTimeoutError |
                      ray.exceptions.ActorUnavailableError)


def describe_down(exc: BaseException) -> str:
    """One line saying why an actor did not answer."""
    ray = ray_module()
    if isinstance(exc, ray.exceptions.GetTimeoutError):
        return "did not answer in time"
    text = str(exc).strip().splitlines()
    reason = next((line for line in reversed(text) if line.strip()), type(exc).__name__)
    return f"{type(exc).__name__}: {reason.strip()}"


def options(**extra: Any) -> dict[str, Any]:
    """Actor options shared by the shards' actors."""
    return {"namespace": NAMESPACE, "get_if_exists": True, **extra}


def placement(index: int) -> dict[str, Any]:
    """Actor options that put the ``index``-th actor on the cluster's ``index mod nodes``-th
    alive node (in node id order) when it has more than one. Hard: Ray's soft affinity let
    one shard's replicas share a node; an actor whose node is gone is started on another by
    ``revive`` (which places it again over the nodes alive then). Nothing on a one-node
    cluster."""
    ray = ray_module()
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    if len(nodes) < 2:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[index % len(nodes)],
                                                                  soft=False)}
