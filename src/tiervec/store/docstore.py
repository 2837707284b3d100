"""Ids, texts and metadata in SQLite (WAL mode). Row numbers are internal; ids are user strings."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from tiervec.corpus import Document

DB = "docs.sqlite"
_BATCH = 900  # stay under SQLite's default limit of host parameters per statement

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}'
)
"""


class DocStore:
    """The ``docs.sqlite`` of a collection: ``row -> (id, title, text, metadata)``.

    Rows at or beyond ``limit`` (the manifest's count) are invisible: they belong to a write that
    was not committed. A writer removes them with :meth:`truncate`.
    """

    def __init__(self, path: Path, limit: int, read_only: bool = False) -> None:
        self.path = path
        self.limit = limit
        if read_only:
            uri = f"file:{quote(str(path.resolve()))}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    def close(self) -> None:
        self._db.close()

    # -- writes -------------------------------------------------------------------------------
    def insert(self, start_row: int, docs: Sequence[Document]) -> None:
        """Insert ``docs`` at rows ``start_row, start_row + 1, ...`` and commit."""
        rows = (
            (start_row + i, d.id, d.title, d.text, json.dumps(dict(d.metadata), default=str))
            for i, d in enumerate(docs)
        )
        with self._db:
            self._db.executemany(
                "INSERT INTO docs (row, id, title, text, metadata) VALUES (?, ?, ?, ?, ?)", rows
            )

    def truncate(self, limit: int) -> int:
        """Delete rows ``>= limit`` (left by an interrupted write); returns how many."""
        with self._db:
            cur = self._db.execute("DELETE FROM docs WHERE row >= ?", (limit,))
        return cur.rowcount

    # -- reads --------------------------------------------------------------------------------
    def existing_ids(self, ids: Iterable[str]) -> list[str]:
        """The ids among ``ids`` that the collection already holds."""
        found: list[str] = []
        ids = list(ids)
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            found += [
                r[0]
                for r in self._db.execute(
                    f"SELECT id FROM docs WHERE row < ? AND id IN ({marks})",
                    (self.limit, *chunk),
                )
            ]
        return found

    def ids_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """Ids for an array of rows (any shape); ``-1`` rows give ``""``."""
        flat = rows.ravel()
        wanted = np.unique(flat[flat >= 0]).tolist()
        lookup: dict[int, str] = {}
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            lookup.update(
                self._db.execute(f"SELECT row, id FROM docs WHERE row IN ({marks})", chunk)
            )
        out = np.array([lookup.get(int(r), "") for r in flat], dtype=object)
        return out.reshape(rows.shape)

    def get(self, ids: Sequence[str]) -> list[Document | None]:
        """Documents for ``ids`` in order; ``None`` where an id is unknown."""
        found: dict[str, Document] = {}
        ids = list(ids)
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            for doc_id, title, text, meta in self._db.execute(
                f"SELECT id, title, text, metadata FROM docs WHERE row < ? AND id IN ({marks})",
                (self.limit, *chunk),
            ):
                found[doc_id] = Document(id=doc_id, text=text, title=title,
                                         metadata=json.loads(meta))
        return [found.get(i) for i in ids]

    def count(self) -> int:
        """Number of committed rows."""
        (n,) = self._db.execute("SELECT COUNT(*) FROM docs WHERE row < ?", (self.limit,)).fetchone()
        return int(n)
