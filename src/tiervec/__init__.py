"""tiervec: embedding retrieval with compressed vectors in RAM and full precision on disk.

Public names::

    tiervec.create(path, model=..., tiers=...)  -> Collection
    tiervec.open(path)                          -> Collection
    tiervec.create_sharded(path, shards=N, ...) / tiervec.open_sharded(path)  (on Ray)
    Collection.add / upsert / delete / compact / search(..., filter=) / search_vectors / get
    Collection.run(Query) / with_tiers / stats / set_tiers / count / explain / create_index
    tiervec.Document, tiervec.SearchResult, tiervec.Query, tiervec.SearchOptions,
    tiervec.FusionConfig, tiervec.Chain, tiervec.ChunkingConfig, tiervec.MultiVectorConfig
    tiervec.errors (TiervecError and its subclasses)
    tiervec.Client(url, api_key=...) / tiervec.AsyncClient  -> a served collection, same methods

Sub-packages, in pipeline order: ``encode``, ``codecs``, ``filters``, ``store``, ``index``,
``search`` (the Query, the stages, the Searchable protocol), ``collection``, ``eval``,
``plan``; ``ingest`` and ``hits`` are what the front ends (``cli``) share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiervec import errors
from tiervec._version import __version__
from tiervec.collection import Collection
from tiervec.corpus import Document
from tiervec.encode import DEFAULT_MODEL, EncoderConfig
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig, MuveraConfig
from tiervec.search import Chain, FusionConfig, Query, SearchOptions, SearchResult
from tiervec.search.recall import DEFAULT_TARGET
from tiervec.search.spec import DEFAULT_CHAIN

if TYPE_CHECKING:
    from tiervec.distribute.sharded import ShardedCollection


#: A new, empty collection (every option typed: see :meth:`Collection.create`).
create = Collection.create
#: The collection in a folder (see :meth:`Collection.open`).
open = Collection.open


def create_sharded(
    path: str | Path, *, shards: int, address: str | None = None,
    model: str | EncoderConfig | None = DEFAULT_MODEL, dim: int | None = None,
    tiers: str | Chain = DEFAULT_CHAIN, fields: Mapping[str, Any] | None = None,
    indexes: Sequence[str] = (), lexical: bool | None = None,
    chunking: ChunkingConfig | str | None = None,
    multivector: MultiVectorConfig | bool | None = None,
    recall_target: float | None = DEFAULT_TARGET, partial: bool = False, replicas: int = 1,
) -> ShardedCollection:
    """A new sharded collection of ``shards`` shards on Ray (the cluster at ``address``,
    default a local one), each created with :meth:`Collection.create`'s options; see
    :class:`tiervec.distribute.ShardedCollection`."""
    from tiervec.collection.settings import CollectionSettings
    from tiervec.distribute.sharded import ShardedCollection

    settings = CollectionSettings(
        model=model, dim=dim, tiers=tiers, fields=fields, indexes=indexes, lexical=lexical,
        chunking=chunking, multivector=multivector, recall_target=recall_target)
    return ShardedCollection.create(path, shards=shards, settings=settings, address=address,
                                    partial=partial, replicas=replicas)


def open_sharded(path: str | Path, *, read_only: bool = False, address: str | None = None,
                 partial: bool = False, threads: int | None = None,
                 replicas: int = 1) -> ShardedCollection:
    """The sharded collection in ``path``, its shards' actors started on Ray (at ``address``,
    default a local cluster); ``partial`` lets searches answer from the shards that are up;
    ``threads``: search threads per shard (default: the cores over the shards);
    ``replicas``: actors per shard."""
    from tiervec.distribute.sharded import ShardedCollection

    return ShardedCollection.open(path, read_only=read_only, address=address, partial=partial,
                                  threads=threads, replicas=replicas)


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
    "FusionConfig",
    "MultiVectorConfig",
    "MuveraConfig",
    "Query",
    "SearchOptions",
    "SearchResult",
    "__version__",
    "create",
    "create_sharded",
    "errors",
    "open",
    "open_sharded",
]
