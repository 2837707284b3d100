"""The collection's metadata fields: declared at create time or inferred from documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tiervec.corpus import Document
from tiervec.errors import FieldTypeError
from tiervec.filters import Field, FieldType, infer_type, to_sql
from tiervec.filters.schema import check_name


def declared_fields(
    fields: Mapping[str, Any] | None, indexes: Sequence[str] = ()
) -> dict[str, Field]:
    """``{"year": "int", "tags": "list[str]"}`` (or :class:`Field` values) as fields;
    ``indexes`` names those to index."""
    out: dict[str, Field] = {}
    for name, spec in (fields or {}).items():
        check_name(name)
        kind = spec.type if isinstance(spec, Field) else FieldType.parse(str(spec))
        indexed = (isinstance(spec, Field) and spec.indexed) or name in indexes
        out[name] = Field(name=name, type=kind, indexed=indexed)
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


def typed_columns(
    fields: Mapping[str, Field], docs: Sequence[Document]
) -> tuple[dict[str, Field], dict[str, list[Any]]]:
    """``fields`` plus those first seen in ``docs``, and every field's values converted for
    SQLite, one list per field (``None`` where a document lacks it).

    A new field gets the type of its first value; an int field seen with a fraction becomes a
    float field. A value of another type raises :class:`~tiervec.errors.FieldTypeError` naming
    the document. Values no filter can use (nested objects, lists of numbers) stay in the
    document's metadata only.
    """
    out = dict(fields)
    columns: dict[str, list[Any]] = {}
    for i, doc in enumerate(docs):
        for name, value in doc.metadata.items():
            if value is None:
                continue
            field = out.get(name)
            if field is None:
                try:
                    kind = infer_type(value)
                    check_name(name)
                except FieldTypeError:
                    continue
                field = out[name] = Field(name=name, type=kind)  # type: ignore[arg-type]
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * len(docs)
            if type(value) is _AS_IS.get(field.type) or (
                    field.type is FieldType.STRINGS and type(value) is list
                    and all(type(v) is str for v in value)):
                column[i] = value
                continue
            if (field.type is FieldType.INT and isinstance(value, float)
                    and not float(value).is_integer()):
                field = out[name] = Field(name=name, type=FieldType.FLOAT, indexed=field.indexed)
            try:
                column[i] = to_sql(field, value)
            except FieldTypeError as exc:
                raise FieldTypeError(f"document {doc.id!r}: {exc}") from None
    return out, columns
