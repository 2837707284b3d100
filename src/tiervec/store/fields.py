"""The collection's metadata fields: declared at create time or inferred from documents."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tiervec.corpus import Document
from tiervec.errors import FieldTypeError, TooManyFields
from tiervec.filters import Field, FieldType, infer_type, to_sql
from tiervec.filters.schema import MAX_FIELDS, check_name, sql_fold

log = logging.getLogger(__name__)


def declared_fields(
    fields: Mapping[str, Any] | None, indexes: Sequence[str] = ()
) -> dict[str, Field]:
    """``{"year": "int", "tags": "list[str]"}`` (or :class:`Field` values) as fields;
    ``indexes`` names those to index."""
    out: dict[str, Field] = {}
    folded: dict[str, str] = {}
    if len(fields or {}) > MAX_FIELDS:
        raise TooManyFields(f"{len(fields or {}):,} fields declared; a collection may have at "
                            f"most {MAX_FIELDS:,}")
    for name, spec in (fields or {}).items():
        check_name(name)
        clash = folded.setdefault(sql_fold(name), name)
        if clash != name:
            raise FieldTypeError(
                f"fields {clash!r} and {name!r} differ only in case, and SQLite (where metadata "
                "is filtered) takes them for one column; rename one")
        kind = spec.type if isinstance(spec, Field) else FieldType.parse(str(spec))
        indexed = (isinstance(spec, Field) and spec.indexed) or name in indexes
        out[name] = Field(name=name, type=kind, indexed=indexed, declared=True)
    unknown = [n for n in indexes if n not in out]
    if unknown:
        raise FieldTypeError(
            f"indexes name fields without a declared type: {unknown}; declare them in fields="
            "{name: type}, or call Collection.create_index(name) once documents have them"
        )
    return out


def fields_from_manifest(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Field]:
    return {name: Field.from_dict({"name": name, **spec}) for name, spec in data.items()}


def fields_to_manifest(fields: Mapping[str, Field]) -> dict[str, dict[str, Any]]:
    return {name: {k: v for k, v in f.to_dict().items() if k != "name"}
            for name, f in fields.items()}


#: Python types stored as they are for each field type (everything else goes through to_sql).
_AS_IS = {FieldType.STRING: str, FieldType.INT: int, FieldType.FLOAT: float}
_INT64 = 2**63


def flat_metadata(doc: Document) -> Iterator[tuple[str, Any]]:
    """``(field name, value)`` of every filterable value in ``doc``'s metadata: a nested object's
    values under dotted names (``{"obj": {"a": 1}}`` gives ``("obj.a", 1)``).

    Raises :class:`~tiervec.errors.FieldTypeError` for what no filter could use, rather than
    store it silently: names with NUL or starting with ``$``, lists of anything but strings, a
    name given twice (``{"obj": {"a": 1}, "obj.a": 2}``)."""
    seen: set[str] = set()
    stack: list[tuple[str, Mapping[str, Any]]] = [("", doc.metadata)]
    while stack:
        prefix, mapping = stack.pop()
        for key, value in mapping.items():
            name = f"{prefix}{key}" if isinstance(key, str) else key
            try:
                check_name(name)
            except FieldTypeError as exc:
                raise FieldTypeError(f"document {doc.id!r}: {exc}") from None
            if isinstance(value, Mapping):
                stack.append((f"{name}.", value))
                continue
            if isinstance(value, list | tuple) and not all(isinstance(v, str) for v in value):
                raise FieldTypeError(
                    f"document {doc.id!r}: metadata {name!r} is a list of "
                    f"{_kinds(value)}; a list may hold strings only (tags). Store numbers as "
                    "separate fields, or json.dumps the list into a str")
            if name in seen:
                raise FieldTypeError(
                    f"document {doc.id!r}: metadata field {name!r} is given twice (as a nested "
                    "key and as a dotted name); keep one")
            seen.add(name)
            yield name, value


def _kinds(values: Sequence[Any]) -> str:
    return "/".join(sorted({type(v).__name__ for v in values if not isinstance(v, str)}))


def _new_field(name: str, value: Any, doc: Document, fields: Mapping[str, Field],
               folded: dict[str, str]) -> Field:
    """The field first seen as ``name = value`` in ``doc``, checked against the others."""
    try:
        kind = infer_type(value)
    except FieldTypeError as exc:
        raise FieldTypeError(f"document {doc.id!r}, metadata {name!r}: {exc}") from None
    if kind is FieldType.INT and not -_INT64 <= value < _INT64:
        raise FieldTypeError(
            f"document {doc.id!r}: metadata {name!r} is the integer {str(value)[:40]}, outside "
            "the 64-bit range SQLite stores (-2**63 .. 2**63 - 1); store it as a str")
    clash = folded.get(sql_fold(name))
    if clash is not None:
        raise FieldTypeError(
            f"document {doc.id!r}: metadata field {name!r} differs from the field {clash!r} "
            "only in case, and SQLite (where metadata is filtered) takes them for one column; "
            f"use {clash!r}, or a name that differs in more than case")
    if len(fields) >= MAX_FIELDS:
        raise TooManyFields(
            f"document {doc.id!r} would add field {name!r}, past the {MAX_FIELDS:,} metadata "
            "fields a collection may have; keep filterable values in fewer fields (a list[str] "
            "field holds any number of tags) or json.dumps the rest into one str field")
    folded[sql_fold(name)] = name
    return Field(name=name, type=kind)  # type: ignore[arg-type]


def typed_columns(
    fields: Mapping[str, Field], docs: Sequence[Document]
) -> tuple[dict[str, Field], dict[str, list[Any]]]:
    """``fields`` plus those first seen in ``docs``, and every field's values converted for
    SQLite, one list per field (``None`` where a document lacks it).

    A new field gets the type of its first value (nested objects give dotted names, see
    :func:`flat_metadata`). An inferred int field seen with a fraction becomes a float field
    (logged); a declared one refuses it. A value of another type, a new name that differs
    from a field's only in case, or a field past :data:`MAX_FIELDS` raises
    :class:`~tiervec.errors.FieldTypeError` naming the document.
    """
    out = dict(fields)
    folded = {sql_fold(n): n for n in out}
    columns: dict[str, list[Any]] = {}
    for i, doc in enumerate(docs):
        if not doc.metadata:
            continue
        for name, value in flat_metadata(doc):
            if value is None:
                continue
            field = out.get(name)
            if field is None:
                field = out[name] = _new_field(name, value, doc, out, folded)
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * len(docs)
            kind = type(value)
            if kind is _AS_IS.get(field.type) and (kind is not int or -_INT64 <= value < _INT64):
                column[i] = value
                continue
            if field.type is FieldType.STRINGS and kind is list and \
                    all(type(v) is str for v in value):
                column[i] = value
                continue
            if (field.type is FieldType.INT and not field.declared and isinstance(value, float)
                    and not float(value).is_integer()):
                log.warning("metadata field %r holds int values and document %r has %r: the "
                            "field is a float field from now on (declare its type at create "
                            "time to refuse fractions instead)", name, doc.id, value)
                field = out[name] = Field(name=name, type=FieldType.FLOAT, indexed=field.indexed)
            try:
                column[i] = to_sql(field, value)
            except FieldTypeError as exc:
                raise FieldTypeError(f"document {doc.id!r}: {exc}") from None
    return out, columns
