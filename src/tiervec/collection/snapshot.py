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

    def __init__(self, manifest: Manifest, docs: DocStore) -> None:
        self.manifest = manifest
        self.rows = RowMap(manifest.segments)
        self.alive: np.ndarray | None = None
        if manifest.deleted:
            self.alive = np.ones(manifest.count, dtype=bool)
            self.alive[self.rows.positions(docs.deleted_rows())] = False

    @property
    def count(self) -> int:
        """Positions (stored vectors, deleted ones included)."""
        return self.manifest.count

    def live_positions(self) -> np.ndarray:
        """The positions of live documents, ascending."""
        if self.alive is None:
            return np.arange(self.count)
        return np.flatnonzero(self.alive)

    def ids(self, docs: DocStore, positions: np.ndarray) -> np.ndarray:
        """User ids at ``positions`` (any shape; ``""`` for ``-1`` and purged rows)."""
        return docs.ids_for_rows(self.rows.rows(positions))
