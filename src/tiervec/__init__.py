"""tiervec: embedding retrieval with compressed vectors in RAM and full precision on disk.

Public names::

    tiervec.create(path, model=..., tiers=...)  -> Collection
    tiervec.open(path)                          -> Collection
    tiervec.create_sharded(path, shards=N, ...) / tiervec.open_sharded(path)  (on Ray)
    Collection.add / upsert / delete / compact / search(..., filter=) / search_vectors / get
    Collection.run(Query) / with_tiers / stats / set_tiers / count / explain / create_index
    tiervec.Document, tiervec.SearchResult, tiervec.Chain, tiervec.Tier
    tiervec.errors (TiervecError and its subclasses)
    tiervec.Client(url, api_key=...)            -> the HTTP API (tiervec serve), same methods

Sub-packages, in pipeline order: ``encode``, ``codecs``, ``filters``, ``store``, ``index``,
``search`` (the Query, the stages, the Searchable protocol), ``collection``, ``eval``,
``plan``; ``ingest`` and ``hits`` are what the front ends (``cli``) share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiervec import errors
from tiervec._version import __version__
from tiervec.collection import Collection
from tiervec.corpus import Document
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig, MuveraConfig
from tiervec.search import Chain, SearchOptions, SearchResult, Tier


def create(path: str | Path, **options: object) -> Collection:
    """Create a new collection in ``path``; see :meth:`Collection.create` for the options."""
    return Collection.create(path, **options)  # type: ignore[arg-type]


def open(path: str | Path, *, read_only: bool = False) -> Collection:
    """Open the collection in ``path``; see :meth:`Collection.open`."""
    return Collection.open(path, read_only=read_only)


def create_sharded(path: str | Path, *, shards: int, **options: object) -> Any:
    """A new sharded collection of ``shards`` shards on Ray (see
    :class:`tiervec.distribute.ShardedCollection`); ``options`` as for :func:`create`, plus
    ``address`` (a Ray cluster; default a local one)."""
    from tiervec.distribute.sharded import ShardedCollection

    return ShardedCollection.create(path, shards=shards, **options)  # type: ignore[arg-type]


def open_sharded(path: str | Path, *, read_only: bool = False, address: str | None = None,
                 partial: bool = False, threads: int | None = None) -> Any:
    """The sharded collection in ``path``, its shards' actors started on Ray (at ``address``,
    default a local cluster); ``partial`` lets searches answer from the shards that are up;
    ``threads``: search threads per shard (default: the cores over the shards)."""
    from tiervec.distribute.sharded import ShardedCollection

    return ShardedCollection.open(path, read_only=read_only, address=address, partial=partial,
                                  threads=threads)


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):  # imports httpx: only when asked for
        from tiervec import client

        return getattr(client, name)
    raise AttributeError(f"module 'tiervec' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "Chain",
    "ChunkingConfig",
    "Client",
    "Collection",
    "Document",
    "MultiVectorConfig",
    "MuveraConfig",
    "SearchOptions",
    "SearchResult",
    "Tier",
    "__version__",
    "create",
    "create_sharded",
    "errors",
    "open",
    "open_sharded",
]
