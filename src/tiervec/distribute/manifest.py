"""A sharded collection's folder: ``sharded.json`` and one ordinary collection per shard.

::

    <root>/sharded.json        {"format", "version", "uid", "shards": [...], "routing"}
    <root>/shard-000/          an ordinary collection folder (tiervec.open reads it alone)
    <root>/shard-001/ ...

A document lives in exactly one shard, chosen from its id alone (:func:`shard_of`), so an
upsert or a delete goes to the shard that holds it. The shard list is fixed when the
collection is created: another number of shards is a new collection (``tiervec reshard``).
``sharded.json`` is written last (atomically), so a folder without it holds no sharded
collection, whatever shard folders an interrupted create left.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.errors import CollectionNotFound, NotACollection, UnsupportedFormatVersion
from tiervec.store.files import atomic_write_text
from tiervec.store.layout import SHARDED

FORMAT = "tiervec.sharded"
FORMAT_VERSION = 1
#: The routing rule: the first 8 bytes of BLAKE2b of the id's UTF-8, little-endian, mod shards.
ROUTING = "blake2b-64 mod shards"
#: The most shards a collection may have.
MAX_SHARDS = 1024


def shard_of(ids: Sequence[str], shards: int) -> np.ndarray:
    """The shard index of each id (``int64``), from the id alone."""
    out = np.empty(len(ids), dtype=np.int64)
    for i, doc_id in enumerate(ids):
        digest = hashlib.blake2b(str(doc_id).encode("utf-8"), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") % shards
    return out


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` holds a sharded collection."""
    return (Path(path).expanduser() / SHARDED).is_file()


@dataclass(frozen=True)
class ShardedManifest:
    """The shards of a sharded collection (folder names under its root) and its identity
    (``uid``, which names its shards' actors in the Ray cluster)."""

    shards: tuple[str, ...]
    uid: str
    routing: str = ROUTING

    @classmethod
    def new(cls, shards: int) -> ShardedManifest:
        width = max(3, len(str(shards - 1)))
        return cls(shards=tuple(f"shard-{i:0{width}d}" for i in range(shards)),
                   uid=uuid.uuid4().hex[:12])

    def write(self, root: Path) -> None:
        body = {"format": FORMAT, "version": FORMAT_VERSION, **asdict(self)}
        atomic_write_text(root / SHARDED, json.dumps(body, indent=2) + "\n")

    @classmethod
    def read(cls, root: Path) -> ShardedManifest:
        """The manifest of the sharded collection in ``root``; its shard folders checked."""
        path = root / SHARDED
        if not path.is_file():
            raise NotACollection(
                f"{str(root)!r} holds no sharded collection (no {SHARDED}); create one with "
                "`tiervec index CORPUS --collection DIR --ray --shards N`")
        try:
            body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NotACollection(f"{str(path)!r} cannot be read: {exc}") from exc
        if body.get("format") != FORMAT:
            raise NotACollection(f"{str(path)!r} is not a tiervec sharded-collection manifest")
        if int(body.get("version", 0)) > FORMAT_VERSION:
            raise UnsupportedFormatVersion(
                f"{str(path)!r} was written by a newer tiervec (format {body['version']}, this "
                f"one reads up to {FORMAT_VERSION}); upgrade tiervec")
        manifest = cls(shards=tuple(body["shards"]), uid=str(body["uid"]),
                       routing=str(body.get("routing", ROUTING)))
        gone = [s for s in manifest.shards if not (root / s / "manifest.json").is_file()]
        if gone:
            raise CollectionNotFound(
                f"shard {gone[0]!r} of the sharded collection {str(root)!r} is missing (no "
                f"collection in {str(root / gone[0])!r}"
                + (f"; {len(gone) - 1} more shards are missing too" if len(gone) > 1 else "")
                + "); restore the folder from a backup: its documents cannot be searched "
                "without it")
        return manifest

    def route(self, ids: Sequence[str]) -> np.ndarray:
        """The shard index of each of ``ids``."""
        return shard_of(ids, len(self.shards))
