"""Metadata filters: typed fields, a short string language, and compilation to SQLite.

``compile_filter("year >= 2020 and tags contains 'ml'", fields)`` returns ``(sql, params)``
for ``SELECT row FROM meta WHERE <sql>``; see :mod:`tiervec.filters.compile` for the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiervec.filters.compile import compile_filter
from tiervec.filters.parse import parse
from tiervec.filters.schema import Field, FieldType, infer_type, to_sql

#: The filters a search takes: a filter string, its dict form, or ``None``.
Filter = str | Mapping[str, Any] | None

__all__ = ["Field", "FieldType", "Filter", "compile_filter", "infer_type", "parse", "to_sql"]
