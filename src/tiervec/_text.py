"""Strings from users must be valid Unicode: a lone UTF-16 surrogate (valid in JSON as
``"\\ud800"``, and in a Python ``str``) cannot be stored by SQLite nor read by a tokenizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tiervec.errors import InvalidText


def check_text(value: str, what: str) -> str:
    """``value`` if it encodes as UTF-8; else :class:`InvalidText` naming ``what`` and where."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidText(
            f"{what} is not valid Unicode: it holds a lone surrogate "
            f"{value[exc.start]!r} at character {exc.start}; send text as valid UTF-8 (a JSON "
            "\\ud800-\\udfff escape must be one half of a pair)") from None
    return value


def check_texts(values: Iterable[Any], what: str) -> None:
    """:func:`check_text` on every ``str`` among ``values``."""
    for i, value in enumerate(values):
        if isinstance(value, str):
            check_text(value, f"{what} {i}")


def check_value(value: Any, what: str) -> None:
    """Every string inside ``value`` (dict keys and values, list items), at any depth; an
    error names ``what`` and the path to the string."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        where = f"{what}, at {path}," if path else what
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str):
                    check_text(key, f"{where} the key {key!r}" if path else
                               f"{what}: the key {key!r}")
                stack.append((sub, f"{path}.{key}" if path else repr(key)))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{path}[{i}]") for i, sub in enumerate(item))
