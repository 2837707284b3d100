"""What a server is allowed to accept, and who may call it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tiervec.errors import InsecureServer, InvalidRequest

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
    """``api_key``: needed by every ``/v1`` endpoint; ``read_key``: may search and read but not
    write. ``insecure``: allow a non-loopback address without a key. ``cors_origins``: the
    web origins whose pages may call the API (none by default). ``batching``: coalesce
    concurrent searches into one kernel call; ``ray_address``: serve the sharded collections
    too, on that Ray cluster (``partial``, ``replicas``: how)."""

    api_key: str | None = None
    read_key: str | None = None
    insecure: bool = False
    cors_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    batching: bool = True
    max_batch: int = 256
    #: Serve sharded collections on Ray (``tiervec serve --ray``): ``None`` serves none of them;
    #: ``""`` a local cluster (or ``RAY_ADDRESS``); else the cluster's address.
    ray_address: str | None = None
    #: A sharded collection's searches answer from the shards that are up when others stay
    #: down (``tiervec serve --ray --partial``; a request's ``partial`` overrides it).
    partial: bool = False
    #: Actors per shard of a sharded collection (``--replicas``): a search goes to a live one.
    replicas: int = 1

    def __post_init__(self) -> None:
        for option, key in (("--api-key", self.api_key), ("--read-key", self.read_key)):
            if key is not None and not key.strip():
                raise InsecureServer(
                    f"{option} is empty (is TIERVEC_{option[2:].upper().replace('-', '_')} set to "
                    "an empty string, e.g. an unset variable in a service file?); give a key, or "
                    "leave the option out entirely")
        if self.read_key is not None and self.api_key is None:
            raise InsecureServer("--read-key needs --api-key (the key that may write)")
        if self.read_key is not None and self.read_key == self.api_key:
            raise InsecureServer("--read-key is the same as --api-key, so the 'read' key could "
                                 "write; give the read-only key a different value")

    def check_address(self, host: str) -> None:
        """Refuse to serve ``host`` without a key unless it is a loopback address or
        :attr:`insecure` is set."""
        if self.api_key is None and not self.insecure and not is_loopback(host):
            raise InsecureServer(
                f"refusing to serve {host} without an API key: anyone who reaches it could read "
                "and write every collection. Set --api-key (or TIERVEC_API_KEY), serve on "
                "127.0.0.1, or pass --insecure if the network is trusted")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


def check_name(name: str) -> str:
    """``name`` if it is a valid collection name; else :class:`InvalidRequest`."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidRequest(
            f"collection name {name!r} is not valid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit (e.g. 'scifact-2024')")
    return name
