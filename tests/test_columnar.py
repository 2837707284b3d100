"""In-memory filters: numpy over columns must select exactly the rows the compiled SQL selects."""

from __future__ import annotations

import itertools
import random
import sqlite3
from typing import Any

import numpy as np
import pytest

from test_filters import CASES, FIELDS, ROWS, db, select  # noqa: F401 (db is a fixture)
from tiervec.filters import FieldType, parse, to_sql
from tiervec.filters.columnar import Column, evaluate, filter_fields

SCALARS = {name: f for name, f in FIELDS.items() if f.type is not FieldType.STRINGS}


def columns(splits: tuple[int, ...] = ()) -> dict[str, Column]:
    """A column per scalar field of ``ROWS``, built in parts cut at ``splits`` and joined."""
    bounds = [0, *splits, len(ROWS)]
    out = {}
    for name, field in SCALARS.items():
        parts = []
        for lo, hi in itertools.pairwise(bounds):
            stored = [(i - lo, to_sql(field, m.get(name))) for i, m in enumerate(ROWS[lo:hi], lo)]
            stored = [(p, v) for p, v in stored if v is not None]
            parts.append(Column.build(field, hi - lo, np.array([p for p, _ in stored], dtype=int),
                                      [v for _, v in stored]))
        out[name] = Column.concat(parts)
    return out


def run(filt: Any, cols: dict[str, Column]) -> list[int]:
    parsed = parse(filt) if isinstance(filt, str) else filt
    return np.flatnonzero(evaluate(parsed, FIELDS, cols, len(ROWS))).tolist()


SCALAR_CASES = [(f, p) for f, p in CASES
                if filter_fields(parse(f) if isinstance(f, str) else f) <= set(SCALARS)]


@pytest.mark.parametrize("splits", [(), (7, 30), (1, 2, 49)])
@pytest.mark.parametrize(("filt", "predicate"), SCALAR_CASES,
                         ids=[str(c[0])[:60] for c in SCALAR_CASES])
def test_columns_select_the_reference_rows(filt: Any, predicate: Any, splits: tuple) -> None:
    expected = [row for row, meta in enumerate(ROWS) if predicate(meta)]
    assert run(filt, columns(splits)) == expected


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A random filter over the scalar fields, operands drawn from stored values and others."""
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        subs = [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        return {rng.choice(["$and", "$or"]): subs}
    if depth < 3 and roll < 0.4:
        return {"$not": random_filter(rng, depth + 1)}
    name = rng.choice(sorted(SCALARS))
    seen = [m[name] for m in ROWS if m.get(name) is not None]
    other = {"year": 2014, "score": 0.555, "open": True, "published": "2019-01-01"}.get(name, "zz")
    def value() -> Any:
        return rng.choice([*seen, other, other])
    op = rng.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
                     "$not"])
    if op == "$exists":
        return {name: {op: rng.random() < 0.5}}
    if op in ("$in", "$nin"):
        return {name: {op: [value() if rng.random() > 0.15 else None
                            for _ in range(rng.randint(0, 3))]}}
    if op == "$not":
        return {name: {op: {rng.choice(["$gt", "$eq", "$lte"]): value()}}}
    if op in ("$eq", "$ne") and rng.random() < 0.1:
        return {name: {op: None}}
    return {name: {op: value()}}


def test_random_filters_agree_with_sql(db: sqlite3.Connection) -> None:  # noqa: F811
    rng = random.Random(5)
    cols = [columns(), columns((10, 11, 40))]
    nonempty = 0
    for _ in range(600):
        filt = random_filter(rng)
        want = select(db, filt)
        nonempty += 0 < len(want) < len(ROWS)
        for c in cols:
            assert run(filt, c) == want, filt
    assert nonempty > 300  # the filters are selective, so agreeing means something


def test_string_dictionaries_merge_and_slice() -> None:
    field = SCALARS["lang"]
    a = Column.build(field, 3, np.array([0, 2]), ["fr", "en"])
    b = Column.build(field, 2, np.array([1]), ["de"])
    joined = Column.concat([a, Column.empty(field), b])
    assert joined.dictionary.tolist() == ["de", "en", "fr"]
    assert joined.values.tolist() == [2, -1, 1, -1, 0]
    assert joined.valid.tolist() == [True, False, True, False, True]
    tail = joined.slice(2, 3)
    assert tail.values.tolist() == [1, -1, 0] and tail.dictionary is joined.dictionary
