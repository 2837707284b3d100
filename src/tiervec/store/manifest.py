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
from tiervec.encode.base import EncoderConfig
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.errors import NotACollection, UnsupportedFormatVersion
from tiervec.lexical.analyze import LexicalConfig
from tiervec.store.files import atomic_write_text

FORMAT = "tiervec.collection"
#: 2 added row numbers per segment, tombstones (``epoch``/``deleted``) and metadata fields;
#: 3 the lexical index (per-segment postings) and the search settings; 4 chunked documents
#: (several rows per document, ``chunks.npy`` per segment) and multi-vector collections (token
#: vectors per segment).
FORMAT_VERSION = 4
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
    """An immutable segment: a folder holding ``rows`` vectors and their codes.

    Its documents have the database rows ``start .. start + rows - 1``. Row numbers are never
    reused: a compaction copies the live documents to new rows.
    """

    name: str
    rows: int
    start: int = 0


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
    #: Incremented by every committed write; rows deleted in epoch ``e <= epoch`` are gone.
    epoch: int = 0
    #: Rows of the segments that are deleted (tombstoned) but not compacted away yet.
    deleted: int = 0
    #: Rows below this were used by segments that a compaction removed.
    row_floor: int = 0
    #: The saved ANN index of an ``@hnsw``/``@ivf`` first tier: ``{"file", "rows", "generation"}``.
    graph: dict[str, Any] | None = None
    #: Metadata fields ``name -> {"type": ..., "indexed": ...}``.
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The lexical index: ``{"key": file key of every segment's postings, "config": {...}}``.
    lexical: dict[str, Any] | None = None
    #: Search defaults set by ``tiervec tune --apply``: ``{"fusion": {...}, "calibration":
    #: {score kind: {...}}}``.
    search: dict[str, Any] = field(default_factory=dict)
    #: How documents are cut into chunks (``None``: one row per document); see
    #: :class:`tiervec.encode.chunking.ChunkingConfig`.
    chunking: dict[str, Any] | None = None
    #: A multi-vector collection's settings: ``{"config": MultiVectorConfig, "token_codec":
    #: {"codec", "key", "params", "state"} once fitted}``; its vectors are documents' FDEs.
    multivector: dict[str, Any] | None = None
    #: A model upgrade under way (see :mod:`tiervec.collection.upgrading`): ``{"from", "to"}``
    #: encoder configs, ``"state"`` (``mapped``: queries and new documents mapped into the
    #: stored space; ``backfilling``: the stored space is the new model's, ``pending`` segments
    #: still hold mapped vectors), the maps' files and measured quality.
    upgrade: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def count(self) -> int:
        """Number of vectors stored in the segments (deleted ones included)."""
        return sum(s.rows for s in self.segments)

    @property
    def live(self) -> int:
        """Number of documents in the collection."""
        return self.count - self.deleted

    @property
    def next_row(self) -> int:
        """The first database row a new segment gets."""
        return max(max((s.start + s.rows for s in self.segments), default=0), self.row_floor)

    # -- the stored settings, typed ---------------------------------------------------------
    def encoder_config(self) -> EncoderConfig | None:
        """How texts are encoded (``None``: a vectors-only collection)."""
        return EncoderConfig.from_dict(self.encoder) if self.encoder else None

    def chunking_config(self) -> ChunkingConfig | None:
        """How documents are cut into chunks (``None``: one vector per document)."""
        return ChunkingConfig.from_dict(self.chunking) if self.chunking else None

    def multivector_config(self) -> MultiVectorConfig | None:
        """A multi-vector collection's settings (``None``: a vector per document)."""
        stored = self.multivector
        return MultiVectorConfig.from_dict(stored["config"]) if stored else None

    def lexical_config(self) -> LexicalConfig | None:
        """How the lexical index analyses texts (``None``: no lexical index)."""
        return LexicalConfig.from_dict(self.lexical["config"]) if self.lexical else None

    @property
    def token_dim(self) -> int | None:
        """A multi-vector collection's token vector dimension (``None``: not one)."""
        return int(self.multivector["token_dim"]) if self.multivector else None

    @property
    def lexical_key(self) -> str | None:
        """The file key of the lexical index's postings (``None``: no lexical index)."""
        return str(self.lexical["key"]) if self.lexical else None

    @property
    def token_codec(self) -> CodecEntry | None:
        """A multi-vector collection's token codec once fitted (its state's files), typed as
        the chain's codecs are."""
        entry = (self.multivector or {}).get("token_codec")
        if not entry:
            return None
        return CodecEntry(codec=entry["codec"], key=entry["key"],
                          params=dict(entry.get("params", {})),
                          state=list(entry.get("state", [])))

    def to_json(self) -> str:
        data = asdict(self)
        data = {"format": FORMAT, "format_version": self.format_version,
                "written_by": f"tiervec {__version__}", **data}
        data["count"] = self.count
        data["format_version"] = FORMAT_VERSION
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
        segments, start = [], 0
        for entry in data.get("segments", []):  # version 1 numbered rows by position
            segment = SegmentEntry(**{"start": start, **entry})
            segments.append(segment)
            start = segment.start + segment.rows
        return cls(
            dim=int(data["dim"]),
            chain=str(data["chain"]),
            encoder=data.get("encoder"),
            codecs={k: CodecEntry(**v) for k, v in data.get("codecs", {}).items()},
            segments=segments,
            generation=int(data.get("generation", 0)),
            metric=str(data.get("metric", "ip")),
            epoch=int(data.get("epoch", 0)),
            deleted=int(data.get("deleted", 0)),
            fields=dict(data.get("fields", {})),
            row_floor=int(data.get("row_floor", 0)),
            graph=data.get("graph"),
            lexical=data.get("lexical"),
            search=dict(data.get("search") or {}),
            chunking=data.get("chunking"),
            multivector=data.get("multivector"),
            upgrade=data.get("upgrade"),
            format_version=version,
        )


def manifest_stamp(folder: Path) -> tuple[int, int, int] | None:
    """``(inode, mtime, size)`` of ``folder``'s manifest: changes with every commit."""
    try:
        st = (folder / MANIFEST).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
