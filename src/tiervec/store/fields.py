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


def merge_fields(fields: Mapping[str, Field], docs: Sequence[Document]) -> dict[str, Field]:
    """``fields`` plus those first seen in ``docs`` (type inferred from their first value).

    Values must fit their field's type (an int field seen with a float becomes a float field);
    a mismatch raises :class:`~tiervec.errors.FieldTypeError` naming the document. Values no
    filter can use (nested objects, lists of numbers) stay in the document's metadata only.
    """
    out = dict(fields)
    for doc in docs:
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
                if kind is not None:
                    out[name] = Field(name=name, type=kind)
                continue
            if (field.type is FieldType.INT and isinstance(value, float)
                    and not float(value).is_integer()):
                field = out[name] = Field(name=name, type=FieldType.FLOAT, indexed=field.indexed)
            try:
                to_sql(field, value)
            except FieldTypeError as exc:
                raise FieldTypeError(f"document {doc.id!r}: {exc}") from None
    return out
