"""A filter dict made cheaper to evaluate, and the check that SQLite can evaluate it.

``year == 1 or year == 2 or ... or year == 1000`` is a chain of 1,000 conditions, which SQLite
refuses (its expression trees are at most 1,000 deep); the same filter as ``year in [1, ...,
1000]`` is one condition. :func:`simplify` rewrites or-chains of equalities on one field into
``$in`` and flattens nested ``$and``/``$or`` of the same kind; :func:`check_depth` refuses what
is still too deep, naming the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiervec.errors import FilterTooComplex

#: The deepest filter (conditions chained by and/or, plus nesting) accepted: SQLite's limit
#: is 1,000 levels, and the query around the filter takes a few.
MAX_DEPTH = 500
_SCALARS = (str, int, float, bool)


def simplify(filt: Any) -> Any:
    """``filt`` with nested same-kind ``$and``/``$or`` lists flattened and an ``$or`` of
    equalities on one field turned into one ``$in`` (the same rows); anything it does not
    recognise is returned as it is, for the compiler to judge."""
    if not isinstance(filt, Mapping):
        return filt
    out: dict[Any, Any] = {}
    for key, cond in filt.items():
        if key in ("$and", "$or") and isinstance(cond, list | tuple) and cond:
            subs = _flatten(key, [simplify(sub) for sub in cond])
            out[key] = _merge_equalities(subs) if key == "$or" else subs
        elif key == "$not":
            out[key] = simplify(cond)
        else:
            out[key] = cond
    return out


def _flatten(key: str, subs: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for sub in subs:
        if isinstance(sub, Mapping) and list(sub) == [key] and isinstance(sub[key], list):
            flat.extend(sub[key])
        else:
            flat.append(sub)
    return flat


def _equality(sub: Any) -> tuple[str, Any] | None:
    """``(field, value)`` if ``sub`` is ``{field: value}`` or ``{field: {"$eq": value}}``."""
    if not isinstance(sub, Mapping) or len(sub) != 1:
        return None
    ((name, cond),) = sub.items()
    if not isinstance(name, str) or name.startswith("$"):
        return None
    if isinstance(cond, Mapping) and list(cond) == ["$eq"]:
        cond = cond["$eq"]
    return (name, cond) if isinstance(cond, _SCALARS) else None


def _merge_equalities(subs: list[Any]) -> list[Any]:
    values: dict[str, list[Any]] = {}
    rest: list[Any] = []
    for sub in subs:
        eq = _equality(sub)
        if eq is None:
            rest.append(sub)
        else:
            values.setdefault(eq[0], []).append(eq[1])
    merged = [{name: {"$in": found}} if len(found) > 1 else {name: found[0]}
              for name, found in values.items()]
    return merged + rest


def depth(filt: Any) -> int:
    """How deep SQLite's expression tree for ``filt`` grows: a chain of ``n`` conditions adds
    ``n - 1`` levels, nesting one each (an estimate from above; ``$in`` lists add none)."""
    if not isinstance(filt, Mapping):
        return 1
    deepest = 0
    for key, cond in filt.items():
        if key in ("$and", "$or") and isinstance(cond, list | tuple):
            inner = len(cond) - 1 + max((depth(sub) for sub in cond), default=0)
        elif key == "$not":
            inner = 2 + depth(cond)
        else:
            inner = len(cond) if isinstance(cond, Mapping) else 1
        deepest = max(deepest, inner)
    return len(filt) - 1 + deepest + 1


def check_depth(filt: Any) -> None:
    """Raise :class:`FilterTooComplex` if ``filt`` is deeper than :data:`MAX_DEPTH`."""
    found = depth(filt)
    if found > MAX_DEPTH:
        raise FilterTooComplex(
            f"the filter chains or nests about {found} conditions; at most {MAX_DEPTH} are "
            "evaluated in one expression. Write many values of one field as one condition "
            "(year in [2019, 2020, ...] or {\"year\": {\"$in\": [...]}}), or split the filter")
