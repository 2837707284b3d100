"""The state of a collection's model upgrade, as its manifest records it, and the encoder that
state calls for (see :mod:`tiervec.collection.upgrading` for the steps that move it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.encode import EncoderConfig, load_encoder
from tiervec.encode.bridge import SpaceMap, UpgradeEncoder
from tiervec.errors import TiervecError
from tiervec.store.files import load_npy
from tiervec.store.layout import CollectionFiles
from tiervec.store.manifest import Manifest, SegmentEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpgradeStatus:
    """Where a collection's model upgrade stands (``state`` ``"none"`` when there is none)."""

    state: str
    current: str | None  # the model whose space the stored vectors are in
    target: str | None = None
    backfilled: float = 0.0  # share of the stored rows that hold the new model's own vectors
    pending_segments: int = 0
    map: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "current": self.current, "target": self.target,
                "backfilled": round(self.backfilled, 6),
                "pending_segments": self.pending_segments, "map": self.map}


def status_of(manifest: Manifest) -> UpgradeStatus:
    """The upgrade state ``manifest`` records."""
    model = manifest.encoder["model"] if manifest.encoder else None
    up = manifest.upgrade
    if not up:
        return UpgradeStatus("none", model)
    pending = set(up.get("pending", ()))
    rows = sum(s.rows for s in manifest.segments)
    left = sum(s.rows for s in manifest.segments if s.name in pending)
    done = 0.0 if up["state"] == "mapped" else (1.0 - left / rows if rows else 1.0)
    return UpgradeStatus(up["state"], model, up["to"]["model"], done,
                         sum(s.name in pending for s in manifest.segments), up.get("quality", {}))


@dataclass(frozen=True)
class KnownVectors:
    """The new model's vectors of some rows, encoded already (the sample an upgrade fitted
    its maps on): its switch and backfill take them instead of mapping or encoding again."""

    rows: np.ndarray  # (n,) int64, ascending
    vectors: np.ndarray  # (n, dim) float32

    def within(self, segment: SegmentEntry) -> tuple[np.ndarray, np.ndarray]:
        """Offsets in ``segment`` of the known rows it holds, and their vectors."""
        lo, hi = np.searchsorted(self.rows, [segment.start, segment.start + segment.rows])
        return self.rows[lo:hi] - segment.start, self.vectors[lo:hi]

    def save(self, path: Path) -> None:
        """Written whole to a temporary name, then renamed."""
        tmp = path.with_name(path.name + ".tmp")
        order = np.argsort(self.rows, kind="stable")
        with tmp.open("wb") as f:
            np.savez(f, rows=self.rows[order], vectors=self.vectors[order])
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | None, dim: int) -> KnownVectors:
        """The vectors saved at ``path`` (none where there is no such file, or they are not
        of ``dim`` dimensions)."""
        empty = cls(np.empty(0, np.int64), np.empty((0, dim), np.float32))
        if path is None or not path.is_file():
            return empty
        try:
            with np.load(path, allow_pickle=False) as data:
                known = cls(data["rows"].astype(np.int64), data["vectors"].astype(np.float32))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable %s: %s", path.name, exc)
            return empty
        return known if known.vectors.shape == (len(known.rows), dim) else empty


def read_native(files: CollectionFiles, segment: SegmentEntry, dim: int) -> np.ndarray | None:
    """The new model's own vectors of a segment written while an upgrade mapped
    (:meth:`CollectionFiles.native_path`), if kept and of shape ``(rows, dim)``."""
    path = files.native_path(segment)
    try:
        vectors = load_npy(path, mmap=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path.name, exc)
        return None
    return vectors if vectors.shape == (segment.rows, dim) else None


def upgrade_encoder(folder: Path, upgrade: dict[str, Any]) -> UpgradeEncoder:
    """The encoder of a collection in the middle of ``upgrade`` (its manifest record; the maps
    in ``folder``): the new model, and the current one for the queries where it can be loaded
    (else the new model's queries alone, with a warning)."""
    new = load_encoder(EncoderConfig.from_dict(upgrade["to"]))
    try:
        current = load_encoder(EncoderConfig.from_dict(upgrade["from"]))
    except (TiervecError, ImportError, OSError) as exc:
        log.warning("the collection's former model cannot be loaded (%s): queries are encoded "
                    "by the new model alone until the backfill ends", exc)
        current = None
    maps = upgrade["maps"]
    if upgrade["state"] == "mapped":  # the stored space is the current model's
        return UpgradeEncoder(new, SpaceMap.load(folder / maps["to-current"]), current, None)
    return UpgradeEncoder(new, None, current, SpaceMap.load(folder / maps["to-new"]))
