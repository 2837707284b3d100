"""Documents by filter and by cursor: list a collection page by page, delete what a filter
matches, change metadata without encoding anything again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._text import check_value
from tiervec.collection.tuning import Tuning
from tiervec.corpus import Document
from tiervec.errors import CollectionError, FilterError, InvalidRequest
from tiervec.filters import Filter, compile_filter
from tiervec.search import Page
from tiervec.store import writes
from tiervec.store.fields import fields_from_manifest
from tiervec.store.filtering import is_empty
from tiervec.store.writes import WriteStats

#: The most documents one page of :meth:`Documents.scroll` holds.
MAX_PAGE = 10_000


class Documents(Tuning):
    """Scrolling, deleting by filter and metadata updates (see the module)."""

    def scroll(self, filter: Filter = None, *, limit: int = 100,
               cursor: str | None = None) -> Page:
        """Up to ``limit`` documents matching ``filter`` in id order, after ``cursor`` (the
        ``cursor`` of the page before; ``None`` for the first page). Writes between pages
        neither repeat nor skip the documents that stay: the cursor is an id, not a row."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be an integer in 1..{MAX_PAGE:,}, got {limit!r}")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidRequest(f"cursor must be the str a page gave, got {cursor!r}")
        self.refresh()
        where, params = "1", list[Any]()
        if not is_empty(filter):
            fields = fields_from_manifest(self._manifest.fields)
            where, params = compile_filter(filter, fields)  # type: ignore[arg-type]
        with self._rw.read():
            ids = self._docs.page_ids(cursor, limit + 1, where, params)
            docs = self._docs.get(ids[:limit])
        return Page(documents=[d for d in docs if d is not None],
                    cursor=ids[limit - 1] if len(ids) > limit else None)

    def delete_where(self, filter: Filter) -> WriteStats:
        """Delete every document ``filter`` matches, in one commit; ``deleted`` counts them.
        An empty filter is refused (delete the collection to remove everything)."""
        self._require_writable()
        if is_empty(filter):
            raise FilterError("delete_where needs a filter; to remove every document, delete "
                              "the collection (or its documents by id)")
        with self._write_mutex:
            snap = self._snap
            mask = self._allowed(filter, snap)
            positions = np.flatnonzero(mask) if mask is not None else np.empty(0, np.int64)
            if not len(positions):
                return WriteStats()
            heads = snap.heads
            documents = len(positions) if heads is None else int(heads[positions].sum())
            manifest = writes.commit_delete(self._files, self._manifest, self._docs,
                                            sorted(snap.rows.rows(positions).tolist()))
            self._adopt(manifest, None)
        return WriteStats(deleted=documents)

    def set_metadata(self, updates: Mapping[str, Mapping[str, Any]], *,
                     replace: bool = False) -> WriteStats:
        """Change the metadata of documents by id (``{id: {field: value}}``): merged into what
        they hold (a ``None`` value removes a field), or, with ``replace``, instead of it.
        Nothing is encoded again: each document is written anew with its stored vector, in
        one commit. Unknown ids are listed in ``missing``; ``replaced`` counts the others."""
        self._require_writable()
        if self.chunking is not None or self.multivector is not None:
            raise CollectionError(
                "set_metadata keeps a document's one stored vector; a chunked or multi-vector "
                "collection's documents have several: upsert the documents instead")
        if not isinstance(updates, Mapping):
            raise InvalidRequest(f"updates maps ids to metadata, got {type(updates).__name__}")
        for doc_id, meta in updates.items():
            if not isinstance(meta, Mapping):
                raise InvalidRequest(f"the metadata for {doc_id!r} is {type(meta).__name__}; "
                                     "give a mapping of fields to values")
            check_value(dict(meta), f"the metadata for {doc_id!r}")
        ids = list(updates)
        with self._write_mutex:
            found = self._docs.rows_of(ids)
            live = [i for i in ids if i in found]
            if not live:
                return WriteStats(missing=ids)
            stored = {d.id: d for d in self._docs.get(live) if d is not None}
            rows = [_updated(stored[i], updates[i], replace) for i in live]
            positions = self._snap.rows.positions(np.array([found[i][0] for i in live]))
            vectors = self.vectors().take(positions)
            self._commit_rows(rows, vectors, sorted(found[i][0] for i in live))
        return WriteStats(replaced=len(live), missing=[i for i in ids if i not in found])


    def export_parquet(self, path: str | Path, *,
                       progress: Callable[[int], None] | None = None) -> int:
        """Write every document, its metadata and (unless chunked or multi-vector) its
        full-precision vector to the Parquet file ``path`` (``tiervec[parquet]``); the
        documents written. :meth:`import_parquet` reads it back, here or in another
        collection."""
        from tiervec.collection.transfer import export_parquet

        return export_parquet(self, path, progress=progress)

    def import_parquet(self, path: str | Path, *,
                       progress: Callable[[int], None] | None = None) -> WriteStats:
        """Upsert the documents of a Parquet file (``id``, ``text``; ``title``, ``metadata``
        and ``vector`` optional, as :meth:`export_parquet` writes them): given vectors are
        stored as they are, the others encoded."""
        from tiervec.collection.transfer import import_parquet

        return import_parquet(self, path, progress=progress)


def _updated(doc: Document, changes: Mapping[str, Any], replace: bool) -> Document:
    metadata = dict(changes) if replace else {**doc.metadata, **changes}
    return Document(id=doc.id, text=doc.text, title=doc.title,
                    metadata={k: v for k, v in metadata.items() if v is not None})

