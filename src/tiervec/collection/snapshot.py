"""One committed state of a collection, as a reader sees it: positions, rows, deletions."""

from __future__ import annotations

import numpy as np

from tiervec.store.docstore import DocStore
from tiervec.store.manifest import Manifest
from tiervec.store.rows import RowMap


class Snapshot:
    """A committed manifest, its position <-> row map and its live mask.

    Scanners number positions ``0 .. count - 1`` over the segments in order; ``alive`` is
    ``None`` when no position holds a deleted (or replaced) document.
    """

    def __init__(self, manifest: Manifest, docs: DocStore,
                 parts: np.ndarray | None = None) -> None:
        self.manifest = manifest
        self.rows = RowMap(manifest.segments)
        self.alive: np.ndarray | None = None
        if manifest.deleted:
            self.alive = np.ones(manifest.count, dtype=bool)
            self.alive[self.rows.positions(docs.deleted_rows())] = False
        #: a chunked collection's place of each position in its document (0: its first chunk)
        self.parts = parts
        self.heads: np.ndarray | None = None if parts is None else parts == 0
        if self.heads is None:
            self.documents_alive = self.alive
        else:
            self.documents_alive = self.heads if self.alive is None else self.heads & self.alive
        #: a chunked collection's position of each position's document (its first chunk)
        self.owners: np.ndarray | None = None if parts is None else \
            np.arange(manifest.count, dtype=np.int64) - parts
        #: documents in the snapshot
        self.documents = manifest.live if self.documents_alive is None else \
            int(np.count_nonzero(self.documents_alive))

    def chunk_ends(self, heads: np.ndarray) -> np.ndarray:
        """One past the last chunk position of the documents at positions ``heads``."""
        assert self.heads is not None
        starts = np.flatnonzero(self.heads)
        at = np.searchsorted(starts, heads, side="right")
        return np.where(at < len(starts), starts[np.minimum(at, len(starts) - 1)], self.count)

    @property
    def count(self) -> int:
        """Positions (stored vectors, deleted ones included)."""
        return self.manifest.count

    def live_positions(self) -> np.ndarray:
        """The positions of live documents (a chunked document's first chunk), ascending."""
        if self.documents_alive is None:
            return np.arange(self.count)
        return np.flatnonzero(self.documents_alive)

    def ids(self, docs: DocStore, positions: np.ndarray) -> np.ndarray:
        """User ids at ``positions`` (any shape; ``""`` for ``-1`` and purged rows)."""
        return docs.ids_for_rows(self.rows.rows(positions))
