"""The CLI on Ray: ``tiervec index --ray`` (distributed ingest into a sharded collection) and
opening a folder that may hold a sharded collection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiervec.cli._app import _progress, console, warn_empty
from tiervec.errors import CollectionMismatch


def open_searchable(folder: Path, read_only: bool = False) -> Any:
    """The collection in ``folder``, sharded (on Ray: ``RAY_ADDRESS`` or a local cluster) or
    not."""
    from tiervec.distribute.manifest import is_sharded

    if is_sharded(folder):
        from tiervec.distribute.sharded import ShardedCollection

        return ShardedCollection.open(folder, read_only=read_only)
    import tiervec

    return tiervec.open(folder, read_only=read_only)


def index_on_ray(corpus: Path, folder: Path, *, address: str | None, shards: int | None,
                 encoders: int, gpus: float, vectors_column: str | None,
                 create: dict[str, Any]) -> None:
    """Ingest ``corpus`` into the sharded collection in ``folder`` (created with ``shards``
    shards and the ``create`` options when new) through Ray Data, with a progress bar."""
    from tiervec.corpus import count_records
    from tiervec.distribute.cluster import connect
    from tiervec.distribute.ingest import corpus_files, ingest
    from tiervec.distribute.manifest import ShardedManifest, is_sharded
    from tiervec.distribute.sharded import ShardedCollection

    files = corpus_files(corpus)  # a missing corpus fails before anything is created
    connect(address)
    if is_sharded(folder):
        have = len(ShardedManifest.read(folder).shards)
        if shards is not None and shards != have:
            raise CollectionMismatch(
                f"{str(folder)!r} holds a sharded collection of {have} shards, not {shards}; "
                "shards are fixed when a collection is created: drop --shards, or index into "
                "a new folder with the shards you want (rebalancing is not supported)")
        col = ShardedCollection.open(folder)
    else:
        col = ShardedCollection.create(folder, shards=shards or 2,
                                       **{k: v for k, v in create.items() if v is not None})
    total = sum(count_records(f) or 0 for f in files) or None
    with col, _progress(f"Indexing on Ray ({len(col.shards)} shards)", total) as advance:
        stats = ingest(col, files, encoders=encoders, gpus=gpus, vector_column=vectors_column,
                       progress=advance)
    if stats.empty:
        warn_empty(files[0], stats.empty)
    console.print(
        f"[green]{folder}[/]: {stats.added:,} added, {stats.skipped:,} already there, over "
        f"{len(col.shards)} shards")
