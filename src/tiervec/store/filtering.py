"""The positions a metadata filter allows, from SQLite or from in-memory columns.

A filter whose fields are all indexed scalar fields runs in numpy over a :class:`Column` per
field (see :mod:`tiervec.filters.columnar`), loaded from SQLite once per segment: a segment's
rows never change, so a new segment loads only its own values and a compaction's segment
replaces the ones it copied. Any other filter (list fields, fields without an index) runs in
SQLite. Either way the caller gets a mask over positions, deleted documents masked out.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from tiervec.filters import Field, FieldType, Filter, compile_filter, parse
from tiervec.filters.columnar import Column, evaluate, filter_fields
from tiervec.filters.simplify import simplify
from tiervec.store.docstore import DocStore
from tiervec.store.manifest import SegmentEntry
from tiervec.store.rows import RowMap


def is_empty(filter: Filter) -> bool:
    """No filter: ``None``, ``{}``, or a string of white space only."""
    if filter is None:
        return True
    if isinstance(filter, str):
        return not filter.strip()
    return isinstance(filter, Mapping) and not filter


class FilterRunner:
    """Evaluates filters for a collection; caches the columns of its indexed scalar fields."""

    def __init__(self, docs: DocStore) -> None:
        self._docs = docs
        self._lock = threading.Lock()
        #: field -> (the (start, rows) of the segments it covers, the column)
        self._columns: dict[str, tuple[tuple[tuple[int, int], ...], Column]] = {}

    def allowed(
        self, filter: Filter, fields: Mapping[str, Field], segments: Sequence[SegmentEntry],
        alive: np.ndarray | None,
    ) -> np.ndarray | None:
        """The boolean mask over positions a search may return (``None``: every one)."""
        if is_empty(filter):
            return alive
        parsed = simplify(parse(filter) if isinstance(filter, str) else filter)
        where, params = compile_filter(parsed, fields)  # raises on a bad filter
        rows = RowMap(segments)
        names = filter_fields(parsed)
        if all(fields[n].indexed and fields[n].type is not FieldType.STRINGS for n in names):
            columns = {n: self.column(fields[n], segments) for n in names}
            mask = evaluate(parsed, fields, columns, rows.count)
        else:
            mask = np.zeros(rows.count, dtype=bool)
            mask[rows.positions(self._docs.filter_rows(where, params))] = True
        return mask if alive is None else mask & alive

    def column(self, field: Field, segments: Sequence[SegmentEntry]) -> Column:
        """``field``'s values at every position of ``segments``: the segments the cached column
        already covers are sliced out of it, the others read from SQLite."""
        key = tuple((s.start, s.rows) for s in segments)
        with self._lock:
            old_key, old = self._columns.get(field.name, ((), None))
            if old is not None and old_key == key:
                return old
            offsets, at = {}, 0
            for start, n in old_key:
                offsets[(start, n)] = at
                at += n
            parts = []
            for start, n in key:
                if old is not None and (start, n) in offsets:
                    parts.append(old.slice(offsets[(start, n)], n))
                else:
                    rows, values = self._docs.field_values(field, start, start + n)
                    parts.append(Column.build(field, n, rows - start, values))
            column = Column.concat(parts) if parts else Column.empty(field)
            self._columns[field.name] = (key, column)
            return column
