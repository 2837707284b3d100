"""What a server is allowed to accept, and who may call it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tiervec.errors import InvalidRequest

MiB = 1024 * 1024
#: Collection names: a letter or digit, then letters, digits, ``_`` and ``-`` (no dots, no
#: slashes: a name is always one folder directly inside the data directory).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Each limit answers with a clear 4xx (413 for sizes) naming the limit."""

    max_body_bytes: int = 32 * MiB
    max_documents: int = 20_000
    max_queries: int = 1_000
    max_text_chars: int = 100_000
    max_k: int = 1_000
    max_filter_nodes: int = 256
    max_filter_depth: int = 16
    max_dim: int = 16_384


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """``api_key``: needed by every endpoint but health and readiness; ``read_key``: may search
    and read but not write. ``batching``: coalesce concurrent searches into one kernel call;
    ``ray_address``: serve the sharded collections too, on that Ray cluster."""

    api_key: str | None = None
    read_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    batching: bool = True
    max_batch: int = 256
    #: Serve sharded collections on Ray (``tiervec serve --ray``): ``None`` serves none of them;
    #: ``""`` a local cluster (or ``RAY_ADDRESS``); else the cluster's address.
    ray_address: str | None = None


def check_name(name: str) -> str:
    """``name`` if it is a valid collection name; else :class:`InvalidRequest`."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidRequest(
            f"collection name {name!r} is not valid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit (e.g. 'scifact-2024')")
    return name
