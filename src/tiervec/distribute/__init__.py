"""Scale-out on Ray: sharded collections searched by actors, and distributed ingest.

- :class:`~tiervec.distribute.sharded.ShardedCollection`: N ordinary collection folders
  (shards) behind Ray actors, routed by a hash of the document id and searched as one
  :class:`~tiervec.search.Searchable` (scatter one batched call per shard, merge a top-k);
- :func:`~tiervec.distribute.ingest.ingest`: Ray Data reads a corpus, an actor pool encodes it,
  and each shard's actor writes its documents, idempotently by id.

Ray is an optional dependency (``pip install 'tiervec[ray]'``), imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ShardedCollection", "ingest", "is_sharded", "open_any", "shard_of"]


def __getattr__(name: str) -> Any:
    if name in ("ShardedCollection", "open_any"):
        from tiervec.distribute import sharded

        return getattr(sharded, name)
    if name in ("is_sharded", "shard_of"):
        from tiervec.distribute import manifest

        return getattr(manifest, name)
    if name == "ingest":
        from tiervec.distribute.ingest import ingest

        return ingest
    raise AttributeError(f"module 'tiervec.distribute' has no attribute {name!r}")
