"""Compile a filter into a parameterised SQLite boolean expression over the metadata tables.

The expression is meant for ``SELECT row FROM meta WHERE <expr>`` (the outer table must be
called ``meta``, not aliased), with::

    meta(row INTEGER PRIMARY KEY, "f_<name>" <type>, ...)      -- one column per scalar field
    meta_list(row INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL)  -- list[str]

Scalar values are stored with :func:`~tiervec.filters.to_sql` (missing = NULL); a ``list[str]``
value is one ``meta_list`` row per element (missing or empty = no rows). Every value in the
expression is a ``?`` parameter; identifiers are quoted by :func:`column`.
"""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

from tiervec.errors import FieldTypeError, FilterError, UnknownField
from tiervec.filters.parse import parse
from tiervec.filters.schema import Field, FieldType, SqlValue, to_sql
from tiervec.filters.simplify import check_depth, simplify

_COMPARE = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FIELD_OPS = (*_COMPARE, "$ne", "$in", "$nin", "$exists", "$contains", "$all", "$not")
_SQL_TYPES = dict(string="TEXT", int="INTEGER", float="REAL", bool="INTEGER", datetime="INTEGER")
_HAS = "EXISTS (SELECT 1 FROM meta_list l WHERE l.row = meta.row AND l.field = ?{})"


def column(name: str) -> str:
    """The quoted column of field ``name`` in ``meta``: ``"f_<name>"`` with ``"`` doubled."""
    return '"' + f"f_{name}".replace('"', '""') + '"'


def column_definition(field: Field) -> str:
    """The column of a scalar field for ``CREATE TABLE meta`` / ``ALTER TABLE meta ADD COLUMN``."""
    if field.type is FieldType.STRINGS:
        raise FieldTypeError(f"field {field.name!r} is list[str]; it lives in meta_list")
    return f"{column(field.name)} {_SQL_TYPES[field.type]}"


def compile_filter(
    filter: str | Mapping[str, Any], fields: Mapping[str, Field]
) -> tuple[str, list[SqlValue]]:
    """``(sql, params)``: a boolean SQL expression and the values of its ``?`` placeholders.

    ``filter`` is a filter string (see :func:`~tiervec.filters.parse`) or its dict form, e.g.
    ``{"year": {"$gte": 2020}, "tags": "ml"}``; an empty dict matches every row (``"1"``).
    """
    if isinstance(filter, str):
        filter = parse(filter)
    filter = simplify(filter)
    check_depth(filter)
    params: list[SqlValue] = []
    return _Compiler(fields, params).node(filter), params


def unknown_field(name: Any, fields: Mapping[str, Field]) -> UnknownField:
    """The error for a field the collection does not have (with the closest known name)."""
    known = sorted(fields)
    listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
    close = get_close_matches(str(name), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return UnknownField(
        f"unknown metadata field {name!r}; {hint}known fields: {listed or '(none yet)'}. "
        "Fields come from document metadata or from fields= when the collection is created"
    )


class _Compiler:
    def __init__(self, fields: Mapping[str, Field], params: list[SqlValue]) -> None:
        self.fields = fields
        self.params = params

    def node(self, filt: Any) -> str:
        if not isinstance(filt, Mapping):
            raise FilterError(
                f"expected a filter dict such as {{'year': {{'$gte': 2020}}}}, got "
                f"{type(filt).__name__} {filt!r}"
            )
        parts = []
        for key, cond in filt.items():
            if key in ("$and", "$or"):
                if not isinstance(cond, list | tuple) or not cond:
                    raise FilterError(f"{key!r} expects a non-empty list of filters, got {cond!r}")
                subs = [self.node(sub) for sub in cond]
                parts.append(_join(" AND " if key == "$and" else " OR ", subs))
            elif key == "$not":
                parts.append(_negate(self.node(cond)))
            elif isinstance(key, str) and key.startswith("$"):
                raise FilterError(
                    f"unknown operator {key!r} at the top of a filter; expected a field name "
                    "or one of $and, $or, $not"
                )
            else:
                parts.append(self.field(key, cond))
        return _join(" AND ", parts) if parts else "1"

    def field(self, name: Any, cond: Any) -> str:
        field = self.fields.get(name) if isinstance(name, str) else None
        if field is None:
            raise unknown_field(name, self.fields)
        if not isinstance(cond, Mapping):
            return self.op(field, "$eq", cond)
        if not cond:
            raise FilterError(
                f"empty condition for field {name!r}; write {{'$eq': value}} or "
                "drop the field from the filter"
            )
        return _join(" AND ", [self.op(field, op, value) for op, value in cond.items()])

    def op(self, field: Field, op: Any, value: Any) -> str:
        if op not in _FIELD_OPS:
            raise FilterError(
                f"unknown operator {op!r} for field {field.name!r}; expected one "
                f"of: {', '.join(_FIELD_OPS)}"
            )
        if op == "$not":
            return _negate(self.field(field.name, value))
        if op == "$exists":
            if not isinstance(value, bool):
                raise FilterError(f"'$exists' expects true or false, got {value!r}")
        elif op in ("$in", "$nin", "$all") and not isinstance(value, list | tuple):
            raise FilterError(f"{op!r} expects a list of values, got {value!r}")
        if field.type is FieldType.STRINGS:
            return self.list_op(field, op, value)
        return self.scalar_op(field, op, value)

    def scalar_op(self, field: Field, op: str, value: Any) -> str:
        col = column(field.name)
        if op == "$exists":
            return f"{col} IS NOT NULL" if value else f"{col} IS NULL"
        if op in ("$contains", "$all"):
            raise FieldTypeError(
                f"{op!r} works on list[str] fields only; field {field.name!r} "
                f"is {field.type.value}, use '$eq' or '$in'"
            )
        if op in ("$in", "$nin"):  # a null in the list stands for "missing"
            values = [to_sql(field, v) for v in value if v is not None]
            with_null = len(values) < len(value)
            self.params.extend(values)
            marks = ", ".join("?" * len(values))
            if op == "$in":
                found = f"{col} IN ({marks})" if values else "0"
                return f"({found} OR {col} IS NULL)" if with_null else found
            if with_null:
                found = f"{col} NOT IN ({marks})" if values else "1"
                return f"({col} IS NOT NULL AND {found})"
            return f"({col} IS NULL OR {col} NOT IN ({marks}))" if values else "1"
        if value is None:
            if op in ("$eq", "$ne"):
                return f"{col} IS NULL" if op == "$eq" else f"{col} IS NOT NULL"
            raise FilterError(
                f"{op!r} on field {field.name!r} needs a value, got null; use "
                "'$exists' to test for a missing value"
            )
        self.params.append(to_sql(field, value))
        return f"{col} IS NOT ?" if op == "$ne" else f"{col} {_COMPARE[op]} ?"

    def list_op(self, field: Field, op: str, value: Any) -> str:
        if op == "$exists" or (op in ("$eq", "$ne") and value is None):
            self.params.append(field.name)
            has_any = _HAS.format("")
            return has_any if (value if op == "$exists" else op == "$ne") else f"NOT {has_any}"
        if op in _COMPARE and op != "$eq":
            raise FieldTypeError(
                f"{op!r} cannot compare field {field.name!r} (list[str]); use "
                "'$contains', '$in', '$nin' or '$all'"
            )
        values = [_element(field, v) for v in (value if op in ("$in", "$nin", "$all") else [value])]
        if op == "$all":
            return _join(" AND ", [self.has(field, [v]) for v in values]) if values else "1"
        if not values:
            return "0" if op == "$in" else "1"
        found = self.has(field, values)
        return f"NOT {found}" if op in ("$ne", "$nin") else found

    def has(self, field: Field, values: list[str]) -> str:
        self.params.extend([field.name, *values])
        return _HAS.format(f" AND l.value IN ({', '.join('?' * len(values))})")


def _element(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldTypeError(
            f"field {field.name!r} is list[str], so its filter operands must be str; got "
            f"{type(value).__name__} {value!r}; quote the value, e.g. '{value}'"
        )
    return value


def _join(sep: str, parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + sep.join(parts) + ")"


def _negate(sql: str) -> str:
    # A comparison with NULL is NULL, and NOT NULL is NULL again; IFNULL makes "missing does not
    # match" hold under NOT too, so NOT(year > 2000) matches rows without a year.
    return f"NOT IFNULL({sql}, 0)"
