"""Metadata filters: typed fields, a short string language, and compilation to SQLite.

``compile_filter("year >= 2020 and tags contains 'ml'", fields)`` returns ``(sql, params)``
for ``SELECT row FROM meta WHERE <sql>``; see :mod:`tiervec.filters.compile` for the tables.
"""

from __future__ import annotations

from tiervec.filters.compile import compile_filter
from tiervec.filters.parse import parse
from tiervec.filters.schema import Field, FieldType, infer_type, to_sql

__all__ = ["Field", "FieldType", "compile_filter", "infer_type", "parse", "to_sql"]
