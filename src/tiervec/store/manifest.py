"""The collection manifest: a versioned JSON file, the commit point of every write.

A collection holds exactly what its manifest lists; files and database rows beyond it are the
leftovers of an interrupted write and are removed the next time a writer opens the collection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tiervec._version import __version__
from tiervec.errors import NotACollection, UnsupportedFormatVersion
from tiervec.store.files import atomic_write_text

FORMAT = "tiervec.collection"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class CodecEntry:
    """A fitted codec of the collection: its name, the file key of its state, its parameters."""

    codec: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)
    state: list[str] = field(default_factory=list)
    fitted_on: int = 0


@dataclass
class SegmentEntry:
    """An immutable segment: a folder holding ``rows`` vectors and their codes."""

    name: str
    rows: int


@dataclass
class Manifest:
    """Everything needed to reopen a collection without re-encoding."""

    dim: int
    chain: str
    encoder: dict[str, Any] | None
    codecs: dict[str, CodecEntry] = field(default_factory=dict)
    segments: list[SegmentEntry] = field(default_factory=list)
    generation: int = 0
    metric: str = "ip"
    format_version: int = FORMAT_VERSION

    @property
    def count(self) -> int:
        """Number of vectors in the collection."""
        return sum(s.rows for s in self.segments)

    def to_json(self) -> str:
        data = asdict(self)
        data = {"format": FORMAT, "format_version": self.format_version,
                "written_by": f"tiervec {__version__}", **data}
        data["count"] = self.count
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    def write(self, folder: Path) -> None:
        """Atomically replace ``folder/manifest.json``."""
        atomic_write_text(folder / MANIFEST, self.to_json())

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """Read and validate ``folder/manifest.json``."""
        path = folder / MANIFEST
        if not path.is_file():
            raise NotACollection(
                f"{str(folder)!r} is not a tiervec collection (no {MANIFEST}); create one with "
                "tiervec.create() or `tiervec index`, or point to a collection folder"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NotACollection(f"{path} is not valid JSON ({exc}): not a manifest") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NotACollection(
                f"{path} is not a tiervec manifest (format {data.get('format')!r}, "
                f"expected {FORMAT!r})" if isinstance(data, dict) else f"{path} is not a manifest"
            )
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UnsupportedFormatVersion(
                f"{path} has format version {version!r}, but this tiervec ({__version__}) reads "
                f"versions up to {FORMAT_VERSION}; upgrade tiervec (pip install -U tiervec)"
            )
        return cls(
            dim=int(data["dim"]),
            chain=str(data["chain"]),
            encoder=data.get("encoder"),
            codecs={k: CodecEntry(**v) for k, v in data.get("codecs", {}).items()},
            segments=[SegmentEntry(**s) for s in data.get("segments", [])],
            generation=int(data.get("generation", 0)),
            metric=str(data.get("metric", "ip")),
            format_version=version,
        )
