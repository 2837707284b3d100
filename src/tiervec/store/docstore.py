"""Ids, texts and metadata in SQLite (WAL mode). Row numbers are internal; ids are user strings.

Tables::

    docs(row, id, title, text, metadata, deleted_in)   one row per stored document version
    meta(row, "f_<field>"...)                           scalar metadata fields, typed values
    meta_list(row, field, value)                        list-of-strings fields, one row per item

What a reader sees is fixed by the manifest it read (its *snapshot*): rows below ``next_row``
whose ``deleted_in`` is empty or later than the snapshot's ``epoch``. A write first changes the
database (new rows above ``next_row``, ``deleted_in = epoch + 1``), then commits the manifest;
:meth:`DocStore.rollback` undoes a write whose manifest was never committed.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from tiervec._text import check_texts
from tiervec.corpus import Document
from tiervec.errors import FilterTooComplex
from tiervec.filters import Field, FieldType
from tiervec.filters.compile import column

DB = "docs.sqlite"
_BATCH = 900  # stay under SQLite's default limit of host parameters per statement

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    deleted_in INTEGER
);
CREATE INDEX IF NOT EXISTS docs_id ON docs(id);
CREATE INDEX IF NOT EXISTS docs_deleted ON docs(deleted_in) WHERE deleted_in IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (row INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta_list (
    row INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meta_list_value ON meta_list(field, value, row);
CREATE INDEX IF NOT EXISTS meta_list_row ON meta_list(row);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: ``info`` key set once every document has a ``meta`` row (filters then read ``meta`` alone).
_META_COMPLETE = "meta_row_per_doc"
_TABLES = ("docs", "meta", "meta_list")
_JSON = json.JSONEncoder(default=str)


def _locked(method: Callable) -> Callable:
    """Serialise use of the connection: a collection object is shared by threads."""

    @functools.wraps(method)
    def wrapper(self: DocStore, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper


class DocStore:
    """The ``docs.sqlite`` of a collection, seen through a snapshot ``(next_row, epoch)``."""

    def __init__(
        self, path: Path, next_row: int, epoch: int = 0, read_only: bool = False,
        immutable: bool = False,
    ) -> None:
        self.path = path
        self.next_row = next_row
        self.epoch = epoch
        self._mutex = threading.RLock()
        if read_only:
            flag = "immutable=1" if immutable else "mode=ro"
            uri = f"file:{quote(str(path.resolve()))}?{flag}"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the id index of 1M+ rows
            self._db.execute("PRAGMA temp_store=MEMORY")
            self._migrate()
            self._db.executescript(_SCHEMA)
            self._complete_meta()
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(docs)")}
        self._tombstones = "deleted_in" in cols  # False only for old read-only collections
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        self._meta_complete = "info" in tables and self._db.execute(
            "SELECT 1 FROM info WHERE key = ?", (_META_COMPLETE,)).fetchone() is not None

    @_locked
    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        """Format 1 made ids unique over every row; versions now share an id (one live)."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(docs)")}
        if cols and "deleted_in" not in cols:
            with self._db:
                self._db.execute("ALTER TABLE docs RENAME TO docs_v1")
                self._db.executescript(_SCHEMA.split(";")[0])
                self._db.execute("INSERT INTO docs (row, id, title, text, metadata) "
                                 "SELECT row, id, title, text, metadata FROM docs_v1")
                self._db.execute("DROP TABLE docs_v1")

    # -- visibility ---------------------------------------------------------------------------
    def _visible(self, alias: str = "docs") -> tuple[str, tuple[int, ...]]:
        if not self._tombstones:
            return f"{alias}.row < ?", (self.next_row,)
        return (f"{alias}.row < ? AND ({alias}.deleted_in IS NULL OR {alias}.deleted_in > ?)",
                (self.next_row, self.epoch))

    # -- writes -------------------------------------------------------------------------------
    def _complete_meta(self) -> None:
        """Collections written before every document got a ``meta`` row: add the missing ones
        (all fields missing), once."""
        if self._db.execute("SELECT 1 FROM info WHERE key = ?", (_META_COMPLETE,)).fetchone():
            return
        with self._db:
            self._db.execute("INSERT INTO meta (row) SELECT row FROM docs "
                             "WHERE row NOT IN (SELECT row FROM meta)")
            self._db.execute("INSERT INTO info (key, value) VALUES (?, '1')", (_META_COMPLETE,))

    @_locked
    def write(
        self,
        start_row: int,
        docs: Sequence[Document],
        fields: Mapping[str, Field],
        columns: Mapping[str, Sequence[Any]],
        replaced: Sequence[int] = (),
        epoch: int | None = None,
    ) -> None:
        """In one transaction: mark ``replaced`` rows deleted in ``epoch`` and insert ``docs``
        at rows ``start_row, start_row + 1, ...`` with their metadata ``columns`` (values
        converted for SQLite, per field; see :func:`tiervec.store.fields.typed_columns`)."""
        with self._db:
            if replaced:
                self._mark(replaced, epoch)
            self._ensure_columns(fields)
            self._db.executemany(
                "INSERT INTO docs (row, id, title, text, metadata) VALUES (?, ?, ?, ?, ?)",
                ((start_row + i, d.id, d.title, d.text,
                  _JSON.encode(dict(d.metadata)) if d.metadata else "{}")
                 for i, d in enumerate(docs)),
            )
            scalars = [n for n in columns if fields[n].type is not FieldType.STRINGS]
            names = "".join(f", {column(n)}" for n in scalars)
            if scalars:  # one meta row per document, even without any scalar field
                self._db.executemany(
                    f"INSERT INTO meta (row{names}) VALUES (?{', ?' * len(scalars)})",
                    zip(range(start_row, start_row + len(docs)),
                        *(columns[n] for n in scalars), strict=True),
                )
            elif docs:  # rows only: generated inside SQLite, not bound one by one
                self._db.execute(
                    "WITH RECURSIVE r(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM r WHERE x < ?) "
                    "INSERT INTO meta (row) SELECT x FROM r",
                    (start_row, start_row + len(docs) - 1),
                )
            for name in columns:
                if fields[name].type is FieldType.STRINGS:
                    self._db.executemany(
                        "INSERT INTO meta_list (row, field, value) VALUES (?, ?, ?)",
                        ((start_row + i, name, v) for i, items in enumerate(columns[name])
                         for v in dict.fromkeys(items or ())),
                    )

    @_locked
    def mark_deleted(self, rows: Sequence[int], epoch: int) -> None:
        """Tombstone ``rows`` as of ``epoch`` (takes effect when that epoch is committed)."""
        with self._db:
            self._mark(rows, epoch)

    def _mark(self, rows: Sequence[int], epoch: int | None) -> None:
        self._db.executemany("UPDATE docs SET deleted_in = ? WHERE row = ?",
                             ((epoch, int(r)) for r in rows))

    @_locked
    def copy_rows(self, old: np.ndarray, new_start: int, epoch: int) -> None:
        """Copy the documents of rows ``old`` to rows ``new_start ..`` (a compaction), and mark
        the old rows deleted in ``epoch``, in one transaction."""
        with self._db:
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS remap "
                             "(old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
            self._db.execute("DELETE FROM remap")
            new = range(new_start, new_start + len(old))
            self._db.executemany("INSERT INTO remap VALUES (?, ?)",
                                 zip(old.tolist(), new, strict=True))
            self._db.execute("UPDATE docs SET deleted_in = ? WHERE row IN (SELECT old FROM remap)",
                             (epoch,))
            self._db.execute("INSERT INTO docs (row, id, title, text, metadata) SELECT r.new, "
                             "d.id, d.title, d.text, d.metadata FROM docs d JOIN remap r "
                             "ON d.row = r.old")
            cols = [r[1] for r in self._db.execute("PRAGMA table_info(meta)")][1:]
            names = "".join(f', {column(c[2:])}' for c in cols)
            src = "".join(f', m.{column(c[2:])}' for c in cols)
            self._db.execute(f"INSERT INTO meta (row{names}) SELECT r.new{src} FROM meta m "
                             "JOIN remap r ON m.row = r.old")
            self._db.execute("INSERT INTO meta_list (row, field, value) SELECT r.new, l.field, "
                             "l.value FROM meta_list l JOIN remap r ON l.row = r.old")
            self._db.execute("DELETE FROM remap")

    @_locked
    def rollback(self) -> int:
        """Undo an uncommitted write: drop rows ``>= next_row``, revive rows deleted after
        ``epoch``. Returns how many rows were dropped."""
        with self._db:
            dropped = self._db.execute("DELETE FROM docs WHERE row >= ?", (self.next_row,))
            for table in _TABLES[1:]:
                self._db.execute(f"DELETE FROM {table} WHERE row >= ?", (self.next_row,))
            self._db.execute("UPDATE docs SET deleted_in = NULL WHERE deleted_in > ?",
                             (self.epoch,))
        return dropped.rowcount

    @_locked
    def drop_rows(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Delete the rows in the ranges ``[start, stop)`` (of segments a merge or compaction
        removed). Returns how many documents were deleted."""
        n = 0
        with self._db:
            for table in _TABLES:
                for lo, hi in ranges:
                    cur = self._db.execute(f"DELETE FROM {table} WHERE row >= ? AND row < ?",
                                           (lo, hi))
                    n += cur.rowcount if table == "docs" else 0
        return n

    @_locked
    def purge(self, keep: Sequence[tuple[int, int]]) -> int:
        """Delete every row outside the ranges ``[start, stop)`` of ``keep`` (rows of segments
        a compaction removed). Returns how many documents were deleted."""
        bounds = sorted(keep)
        gaps, lo = [], 0
        for start, stop in bounds:
            if start > lo:
                gaps.append((lo, start))
            lo = max(lo, stop)
        gaps.append((lo, self.next_row))
        return self.drop_rows([g for g in gaps if g[1] > g[0]])

    @_locked
    def vacuum(self) -> None:
        """Give the space of deleted rows back to the file system."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @_locked
    def create_index(self, field: Field) -> None:
        """An index on a scalar field (list fields are always indexed)."""
        if field.type is FieldType.STRINGS:
            return
        with self._db:
            self._ensure_columns({field.name: field})
            name = column("ix_" + field.name)
            self._db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON meta({column(field.name)})")

    def _ensure_columns(self, fields: Mapping[str, Field]) -> None:
        have = {r[1] for r in self._db.execute("PRAGMA table_info(meta)")}
        for f in fields.values():
            if f.type is not FieldType.STRINGS and f"f_{f.name}" not in have:
                self._db.execute(f"ALTER TABLE meta ADD COLUMN {column(f.name)}")

    # -- reads --------------------------------------------------------------------------------
    @_locked
    def rows_of(self, ids: Iterable[str]) -> dict[str, list[int]]:
        """``id -> rows`` (ascending) for the ids among ``ids`` the snapshot holds: a chunked
        document has a row per chunk."""
        found: dict[str, list[int]] = {}
        ids = list(ids)
        check_texts(ids, "id")
        where, params = self._visible()
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            for doc_id, row in self._db.execute(
                    f"SELECT id, row FROM docs WHERE {where} AND id IN ({marks}) ORDER BY row",
                    (*params, *chunk)):
                found.setdefault(doc_id, []).append(row)
        return found

    def existing_ids(self, ids: Iterable[str]) -> list[str]:
        """The ids among ``ids`` that the collection already holds."""
        return list(self.rows_of(ids))

    @_locked
    def deleted_rows(self) -> np.ndarray:
        """Rows below ``next_row`` deleted as of the snapshot (sorted)."""
        if not self._tombstones:
            return np.empty(0, np.int64)
        rows = self._db.execute(
            "SELECT row FROM docs WHERE deleted_in IS NOT NULL AND deleted_in <= ? AND row < ? "
            "ORDER BY row", (self.epoch, self.next_row)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    @_locked
    def ids_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """Ids for an array of rows (any shape); ``-1`` and unknown rows give ``""``."""
        flat = rows.ravel()
        wanted = np.unique(flat[flat >= 0]).tolist()  # sorted, so the chunks come back sorted
        found: list[tuple[int, str]] = []
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            found += self._db.execute(
                f"SELECT row, id FROM docs WHERE row IN ({marks}) ORDER BY row", chunk)
        keys = np.fromiter((r for r, _ in found), dtype=np.int64, count=len(found))
        ids = np.array([i for _, i in found] + [""], dtype=object)  # last: unknown rows
        at = np.searchsorted(keys, flat)
        known = at < len(keys)
        known[known] = keys[at[known]] == flat[known]
        return ids[np.where(known, at, len(keys))].reshape(rows.shape)

    @_locked
    def get(self, ids: Sequence[str]) -> list[Document | None]:
        """Documents for ``ids`` in order; ``None`` where an id is unknown."""
        found: dict[str, Document] = {}
        ids = list(ids)
        check_texts(ids, "id")
        where, params = self._visible()
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            for doc_id, title, text, meta in self._db.execute(  # a chunked document's lowest
                f"SELECT id, title, text, metadata FROM docs WHERE {where} AND id IN ({marks}) "
                "ORDER BY row DESC", (*params, *chunk),  # row holds it: read last, kept
            ):
                found[doc_id] = Document(id=doc_id, text=text, title=title,
                                         metadata=json.loads(meta))
        return [found.get(i) for i in ids]

    @_locked
    def filter_rows(self, where: str, params: Sequence[Any]) -> np.ndarray:
        """Rows (sorted) of the snapshot whose metadata matches ``where``, deleted documents
        included (the caller masks them out: it holds the snapshot's live rows in memory).

        The query reads ``meta`` alone (one row per document), starting from a field's index
        when the filter has one: no join with ``docs`` and no ``ORDER BY`` (either makes SQLite
        walk every document in row order, 100x slower for a selective filter); numpy sorts."""
        source = "meta"
        if not self._meta_complete:  # an old collection opened read-only: documents may lack
            cols = [r[1] for r in self._db.execute("PRAGMA table_info(meta)")][1:]  # meta rows
            picked = "".join(f', m."{c}"' for c in cols)
            source = (f"(SELECT d.row AS row{picked} FROM docs d "
                      "LEFT JOIN main.meta m ON m.row = d.row) AS meta")
        try:
            (rows,) = self._db.execute(  # one string, not a tuple per row: 3x faster
                f"SELECT group_concat(meta.row) FROM {source} WHERE +meta.row < ? AND ({where})",
                (self.next_row, *params),
            ).fetchone()
        except sqlite3.OperationalError as exc:  # past SQLite's own limits on a statement
            if "too large" not in str(exc) and "too many" not in str(exc):
                raise
            raise FilterTooComplex(f"SQLite cannot evaluate this filter ({exc}); write many "
                                   "values of one field with 'in', or split the filter") from None
        return np.sort(np.fromstring(rows or "", dtype=np.int64, sep=","))

    @_locked
    def field_values(self, field: Field, start: int, stop: int) -> tuple[np.ndarray, list[Any]]:
        """The rows in ``start .. stop - 1`` that hold a value of scalar ``field`` (deleted
        documents included), and those values as stored."""
        col = column(field.name)
        found = self._db.execute(
            f"SELECT row, {col} FROM meta WHERE row >= ? AND row < ? AND {col} IS NOT NULL",
            (start, stop)).fetchall()
        rows = np.fromiter((r for r, _ in found), dtype=np.int64, count=len(found))
        return rows, [v for _, v in found]

    @_locked
    def texts_for_rows(self, start: int, stop: int) -> list[tuple[str, str]]:
        """``(title, text)`` of the rows ``start .. stop - 1`` in row order (deleted ones
        included: a segment's rows are all there until a compaction purges them)."""
        found = self._db.execute("SELECT title, text FROM docs WHERE row >= ? AND row < ? "
                                 "ORDER BY row", (start, stop)).fetchall()
        if len(found) != stop - start:
            raise RuntimeError(f"rows {start}..{stop - 1}: {len(found)} documents found; "
                               "the database does not match the manifest")
        return found

    @_locked
    def page_ids(self, after: str | None, limit: int, where: str = "1",
                 params: Sequence[Any] = ()) -> list[str]:
        """Up to ``limit`` ids of the snapshot's documents in id order, after ``after``, whose
        metadata match ``where`` (a compiled filter over ``meta``): walks the id index, so a
        page costs the same wherever it starts."""
        visible, args = self._visible("d")
        start = "" if after is None else "AND d.id > ?"
        return [i for (i,) in self._db.execute(
            f"SELECT DISTINCT d.id FROM docs d LEFT JOIN meta ON meta.row = d.row "
            f"WHERE {visible} {start} AND ({where}) ORDER BY d.id LIMIT ?",
            (*args, *(() if after is None else (after,)), *params, limit))]

    @_locked
    def count(self) -> int:
        """Number of documents in the snapshot."""
        where, params = self._visible()
        (n,) = self._db.execute(f"SELECT COUNT(*) FROM docs WHERE {where}", params).fetchone()
        return int(n)

