"""The CLI beyond one folder: ``tiervec index --ray`` (distributed ingest into a sharded
collection), and opening what ``--collection`` names: a folder that may hold a sharded
collection, or a served collection (``http(s)://HOST:PORT/NAME``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiervec.cli._app import _progress, console, warn_empty, warn_truncated
from tiervec.errors import CollectionMismatch

if TYPE_CHECKING:
    from tiervec.ingest import IndexOptions


def check_new_root(folder: Path, shards: int) -> None:
    """Refuse a shard count out of range or a folder that cannot hold a new sharded
    collection (one collection already, or other files) without starting Ray."""
    from tiervec.distribute.manifest import MAX_SHARDS
    from tiervec.distribute.sharded import check_new_root as check_folder
    from tiervec.errors import InvalidRequest

    if not 1 <= shards <= MAX_SHARDS:
        raise InvalidRequest(f"--shards must be between 1 and {MAX_SHARDS}, got {shards}")
    check_folder(folder, clear=False)


def is_url(where: str | Path) -> bool:
    """Whether ``where`` names a served collection (``http(s)://HOST:PORT/NAME``) rather than
    a folder (a path turns ``//`` into ``/``: both read)."""
    return str(where).startswith(("http://", "https://", "http:/", "https:/"))


def open_remote(where: str | Path) -> Any:
    """The served collection at ``http(s)://HOST:PORT/NAME`` (the key from
    ``TIERVEC_API_KEY``), with the local collection's methods."""
    from urllib.parse import urlsplit

    import tiervec
    from tiervec.errors import InvalidRequest

    text = str(where)
    for scheme in ("http", "https"):
        if text.startswith(f"{scheme}:/") and not text.startswith(f"{scheme}://"):
            text = f"{scheme}://" + text[len(scheme) + 2:]
    parts = urlsplit(text)
    name = parts.path.strip("/").rsplit("/", 1)[-1]
    if not parts.netloc or not name:
        raise InvalidRequest(f"{text!r} names no served collection; give "
                             "http://HOST:PORT/NAME (tiervec serve's address and the name)")
    base = f"{parts.scheme}://{parts.netloc}"
    return tiervec.Client(base, api_key=os.environ.get("TIERVEC_API_KEY") or None).open(name)


def open_searchable(folder: Path, read_only: bool = False) -> Any:
    """The collection in ``folder``, sharded (on Ray: ``RAY_ADDRESS`` or a local cluster) or
    not, or served at ``http(s)://HOST:PORT/NAME``."""
    from tiervec.distribute.manifest import is_sharded

    if is_url(folder):
        return _Closing(open_remote(folder))

    if is_sharded(folder):
        from tiervec.distribute.sharded import ShardedCollection

        return ShardedCollection.open(folder, read_only=read_only)
    import tiervec

    return tiervec.open(folder, read_only=read_only)


def index_on_ray(corpus: Path, folder: Path, options: IndexOptions, *, address: str | None,
                 shards: int | None, encoders: int, gpus: float, vectors_column: str | None,
                 verbose: bool = False) -> None:
    """Ingest ``corpus`` into the sharded collection in ``folder`` (created with ``shards``
    shards, each with ``options``' settings, when new) through Ray Data, with a progress bar
    (Ray Data's own logs and bars only when ``verbose``)."""
    from tiervec.corpus import count_records
    from tiervec.distribute.cluster import connect
    from tiervec.distribute.ingest import corpus_files, ingest
    from tiervec.distribute.manifest import ShardedManifest, is_sharded
    from tiervec.distribute.sharded import ShardedCollection

    # everything that can be refused is, before Ray starts (which takes seconds)
    files = corpus_files(corpus)
    if is_sharded(folder):
        have = len(ShardedManifest.read(folder).shards)
        if shards is not None and shards != have:
            raise CollectionMismatch(
                f"{str(folder)!r} holds a sharded collection of {have} shards, not {shards}; "
                "shards are fixed when a collection is created: drop --shards, or index into "
                "a new folder with the shards you want (rebalancing is not supported)")
    else:
        check_new_root(folder, shards or 2)
    if not verbose:  # the C++ core's own log lines (e.g. on actor restarts) too
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    connect(address)
    quiet_ray_data(verbose)
    if is_sharded(folder):
        col = ShardedCollection.open(folder)
    else:
        col = ShardedCollection.create(folder, shards=shards or 2, settings=options.settings())
    total = sum(count_records(f) or 0 for f in files) or None
    with col, _progress(f"Indexing on Ray ({len(col.shards)} shards)", total) as advance:
        stats = ingest(col, files, encoders=encoders, gpus=gpus, vector_column=vectors_column,
                       progress=advance)
        config = col.encoder_config
    if stats.empty:
        warn_empty(files[0], stats.empty)
    warn_truncated(stats.truncated, config.max_length if config else None)
    console.print(
        f"[green]{folder}[/]: {stats.added:,} added, {stats.skipped:,} already there, over "
        f"{len(col.shards)} shards")


def quiet_ray_data(verbose: bool) -> None:
    """Ray Data's progress bars and per-stage logs (some 165 lines for one ingest) only when
    ``verbose``; the CLI's own bar says how far an ingest is."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = verbose
    context.print_on_execution_start = verbose
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(level)


class _Closing:
    """A served collection used as a context manager (closing its client on exit)."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def __enter__(self) -> Any:
        return self.collection

    def __exit__(self, *exc: object) -> None:
        self.collection.client.close()
