"""Metadata field types, type inference, and the values SQLite stores for them."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from tiervec._text import check_text
from tiervec.errors import FieldTypeError

SqlValue = int | float | str | None | list[str]

MAX_NAME_LENGTH = 128
#: Metadata fields a collection may have (Elasticsearch's default mapping limit; SQLite takes
#: 2,000 columns, and adding a column to a table costs more the more it has).
MAX_FIELDS = 1_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INT64 = 2**63


class FieldType(StrEnum):
    """The type of a metadata field; ``list[str]`` fields hold lists of strings (tags)."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRINGS = "list[str]"
    DATETIME = "datetime"

    @classmethod
    def parse(cls, name: str) -> FieldType:
        """The type called ``name``, aliases accepted (``str``, ``integer``, ``tags``, ...)."""
        key = name.strip().lower() if isinstance(name, str) else None
        if key not in _ALIASES:
            raise FieldTypeError(
                f"unknown field type {name!r}; expected one of: {', '.join(sorted(_ALIASES))}"
            )
        return _ALIASES[key]


# Each group: the canonical name, then its aliases.
_ALIASES: dict[str, FieldType] = {
    alias: FieldType(group.split()[0])
    for group in "string str text|int integer|float number double|bool boolean|"
    "list[str] list strings tags|datetime date timestamp".split("|")
    for alias in group.split()
}

_HINTS = {
    FieldType.STRING: "pass a str, e.g. str(value)",
    FieldType.INT: "pass a whole number such as 2020 (not a str, bool or fraction)",
    FieldType.FLOAT: "pass an int or a float (use None, not NaN, for a missing value)",
    FieldType.BOOL: "pass True or False",
    FieldType.STRINGS: "pass a list of str such as ['a', 'b'] (wrap a single str in a list)",
    FieldType.DATETIME: "pass a datetime, a date or an ISO-8601 str such as '2024-05-01T12:00:00Z'",
}


def check_name(name: Any) -> str:
    """Return ``name`` if it can name a metadata field, else raise :class:`FieldTypeError`."""
    ok = isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH and "\0" not in name
    if not ok or name.startswith("$"):
        raise FieldTypeError(
            f"invalid metadata field name {name!r}; use a non-empty str of at most "
            f"{MAX_NAME_LENGTH} characters, without NUL and not starting with '$' (operators)"
        )
    return check_text(name, f"metadata field name {name!r}")


def sql_fold(name: str) -> str:
    """``name`` as SQLite compares column names: ASCII letters without case (so ``Lang`` and
    ``lang`` are one column, ``Ä`` and ``ä`` two)."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Field:
    """A metadata field: its name, its type, whether the collection indexes it, and whether
    its type was declared (``fields=`` at create time) rather than inferred from a value."""

    name: str
    type: FieldType
    indexed: bool = False
    declared: bool = False

    def __post_init__(self) -> None:
        check_name(self.name)
        object.__setattr__(self, "type", FieldType.parse(self.type))

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "type": ..., "indexed": ...}``, as stored in the manifest."""
        out: dict[str, Any] = {"name": self.name, "type": self.type.value,
                               "indexed": self.indexed}
        if self.declared:
            out["declared"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Field:
        """The inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or "name" not in data or "type" not in data:
            raise FieldTypeError(
                f"a field is a dict with keys 'name', 'type' and optionally 'indexed', got {data!r}"
            )
        return cls(data["name"], data["type"], data.get("indexed", False),
                   data.get("declared", False))


def infer_type(value: Any) -> FieldType | None:
    """The type of a metadata value, or ``None`` for ``None`` (not known yet)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return FieldType.BOOL
    if isinstance(value, numbers.Integral):
        return FieldType.INT
    if isinstance(value, numbers.Real):
        return FieldType.FLOAT
    if isinstance(value, str):
        return FieldType.STRING
    if isinstance(value, date):  # datetime is a subclass of date
        return FieldType.DATETIME
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return FieldType.STRINGS
    raise FieldTypeError(
        f"metadata value {value!r} of type {type(value).__name__} is not supported; metadata "
        "fields may hold str, int, float, bool, datetime/date, a list of str, or None. "
        "Convert the value (e.g. json.dumps a dict into a str)"
    )


def _micros(value: Any) -> int | None:
    """Microseconds since the Unix epoch (UTC) of a datetime, date or ISO str; else None."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _MICROSECOND
    if isinstance(value, date):
        return (value - _EPOCH.date()) // _MICROSECOND
    return None


def to_sql(field: Field, value: Any) -> SqlValue:
    """The value SQLite stores for ``value`` in ``field``; ``None`` means missing.

    ``bool -> 1/0``; ``datetime -> int`` microseconds since 1970-01-01 UTC (naive = UTC).
    """
    if value is None:
        return None
    kind = field.type
    if kind is FieldType.BOOL:
        if isinstance(value, bool):
            return int(value)
    elif isinstance(value, bool):
        pass  # a bool is never accepted as an int, float, str or date
    elif kind is FieldType.INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, numbers.Integral) and -_INT64 <= int(value) < _INT64:
            return int(value)
    elif kind is FieldType.FLOAT:
        if isinstance(value, numbers.Real) and _finite(value):
            return float(value)
    elif kind is FieldType.STRING:
        if isinstance(value, str):
            return check_text(value, f"the value of field {field.name!r}")
    elif kind is FieldType.STRINGS:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            for v in value:
                check_text(v, f"an item of field {field.name!r}")
            return list(value)
    else:
        micros = _micros(value)
        if micros is not None:
            return micros
    if isinstance(value, int) and not isinstance(value, bool) and kind in (
            FieldType.INT, FieldType.FLOAT):
        raise FieldTypeError(
            f"field {field.name!r} is {kind.value}, got the integer {_short(value)}, outside "
            "the range SQLite stores (-2**63 .. 2**63 - 1 for int, about 1.8e308 for float); "
            "store such numbers as str"
        )
    raise FieldTypeError(
        f"field {field.name!r} is {kind.value}, got {type(value).__name__} {_short(value)}; "
        f"{_HINTS[kind]}"
    )


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} characters)"
