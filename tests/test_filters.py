"""Metadata filters: parsing, type checks, and SQL run against a real in-memory SQLite database."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

import tiervec.filters
from tiervec.errors import FieldTypeError, FilterError, FilterSyntaxError, UnknownField
from tiervec.filters import Field, FieldType, compile_filter, infer_type, parse, to_sql
from tiervec.filters.compile import column, column_definition
from tiervec.filters.schema import check_name

INJECT = "x'); DROP TABLE meta; --"
WEIRD = 'we"ird") OR 1=1; --'
FIELDS = {
    f.name: f
    for f in [
        Field("year", FieldType.INT),
        Field("lang", "str"),
        Field("score", "float"),
        Field("open", "bool"),
        Field("published", "datetime"),
        Field("tags", "tags"),
        Field(WEIRD, "string"),
    ]
}
N = 50


def make_rows() -> list[dict[str, Any]]:
    """``N`` metadata dicts with every field missing in about one row out of five."""
    rng = random.Random(0)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    rows = []
    for _ in range(N):
        full = {
            "year": rng.randint(2015, 2024),
            "lang": rng.choice(["en", "fr", "de", INJECT]),
            "score": rng.choice([0, 1, round(rng.random(), 2)]),
            "open": rng.random() < 0.5,
            "published": start + timedelta(days=rng.randint(0, 1500), minutes=rng.randint(0, 999)),
            "tags": rng.sample(["ml", "db", "ir", "web"], rng.randint(0, 3)),
            WEIRD: rng.choice(["a", "b"]),
        }
        rows.append({k: v for k, v in full.items() if rng.random() > 0.2})
    return rows


ROWS = make_rows()


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    """The metadata tables of ``ROWS`` in an in-memory database."""
    conn = sqlite3.connect(":memory:")
    scalars = [f for f in FIELDS.values() if f.type is not FieldType.STRINGS]
    columns = ", ".join(column_definition(f) for f in scalars)
    conn.execute(f"CREATE TABLE meta (row INTEGER PRIMARY KEY, {columns})")
    conn.execute("CREATE TABLE meta_list (row INTEGER NOT NULL, field TEXT NOT NULL, value TEXT)")
    for row, meta in enumerate(ROWS):
        values = [to_sql(f, meta.get(f.name)) for f in scalars]
        marks = ", ".join("?" * (len(scalars) + 1))
        conn.execute(f"INSERT INTO meta VALUES ({marks})", [row, *values])
        for tag in to_sql(FIELDS["tags"], meta.get("tags")) or []:
            conn.execute("INSERT INTO meta_list VALUES (?, 'tags', ?)", (row, tag))
    yield conn
    conn.close()


def select(conn: sqlite3.Connection, filt: str | dict[str, Any]) -> list[int]:
    sql, params = compile_filter(filt, FIELDS)
    return [r for (r,) in conn.execute(f"SELECT row FROM meta WHERE {sql} ORDER BY row", params)]


def has(m: dict[str, Any], *tags: str) -> bool:
    return any(t in m.get("tags", []) for t in tags)


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


EARLY, LATE = dt("1900-01-01"), dt("2100-01-01")


def missing(m: dict[str, Any], key: str) -> bool:
    return m.get(key) is None


CASES: list[tuple[str | dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({}, lambda m: True),
    ({"year": 2020}, lambda m: m.get("year") == 2020),
    ("year == 2020", lambda m: m.get("year") == 2020),
    ({"year": {"$gte": 2018, "$lt": 2022}}, lambda m: 2018 <= m.get("year", 0) < 2022),
    ("year >= 2018 and year < 2022.0", lambda m: 2018 <= m.get("year", 0) < 2022),
    ({"year": {"$ne": 2020}}, lambda m: m.get("year") != 2020),
    ("year != 2020", lambda m: m.get("year") != 2020),
    ({"year": {"$in": [2016, 2019]}}, lambda m: m.get("year") in (2016, 2019)),
    ("year in [2016, 2019]", lambda m: m.get("year") in (2016, 2019)),
    ("year not in [2016, 2019]", lambda m: m.get("year") not in (2016, 2019)),
    ({"year": {"$in": [2016, None]}}, lambda m: m.get("year") in (2016, None)),
    ({"year": {"$nin": [2016, None]}}, lambda m: m.get("year") not in (2016, None)),
    ({"year": {"$in": [None]}}, lambda m: missing(m, "year")),
    ({"year": {"$nin": [None]}}, lambda m: not missing(m, "year")),
    ({"year": {"$in": []}}, lambda m: False),
    ({"year": {"$nin": []}}, lambda m: True),
    ({"year": None}, lambda m: missing(m, "year")),
    ("year != null", lambda m: not missing(m, "year")),
    ({"year": {"$exists": False}}, lambda m: missing(m, "year")),
    ("year exists", lambda m: not missing(m, "year")),
    ("year not exists", lambda m: missing(m, "year")),
    ("not (year > 2020)", lambda m: not m.get("year", 0) > 2020),
    ({"year": {"$not": {"$gt": 2020}}}, lambda m: not m.get("year", 0) > 2020),
    ({"$not": {"year": {"$ne": 2020}}}, lambda m: m.get("year") == 2020),
    ({"lang": "en"}, lambda m: m.get("lang") == "en"),
    ("lang = 'en' OR lang = \"fr\"", lambda m: m.get("lang") in ("en", "fr")),
    ({"lang": INJECT}, lambda m: m.get("lang") == INJECT),
    ("lang = 'x\\'); DROP TABLE meta; --'", lambda m: m.get("lang") == INJECT),
    ({"score": {"$gt": 0.5}}, lambda m: m.get("score", 0) > 0.5),
    ("score <= 1 and score > 0", lambda m: 0 < m.get("score", -1) <= 1),
    ({"score": 1}, lambda m: m.get("score") == 1),
    ({"open": True}, lambda m: m.get("open") is True),
    ("open == false", lambda m: m.get("open") is False),
    ("open != true", lambda m: m.get("open") is not True),
    (
        {"published": {"$gte": "2021-01-01T00:00:00Z"}},
        lambda m: m.get("published", EARLY) >= dt("2021-01-01"),
    ),
    ("published < '2021-06-01'", lambda m: m.get("published", LATE) < dt("2021-06-01")),
    (
        {"published": {"$lt": datetime(2022, 1, 1)}},
        lambda m: m.get("published", LATE) < dt("2022-01-01"),
    ),
    (
        {"published": {"$gt": date(2022, 1, 1), "$lte": "2023-01-01T02:00:00+02:00"}},
        lambda m: dt("2022-01-01") < m.get("published", EARLY) <= dt("2023-01-01"),
    ),
    ({"tags": "ml"}, lambda m: has(m, "ml")),
    ("tags contains 'ml'", lambda m: has(m, "ml")),
    ("tags = 'ml'", lambda m: has(m, "ml")),
    ({"tags": {"$in": ["ml", "db"]}}, lambda m: has(m, "ml", "db")),
    ("tags not in ['ml', 'db']", lambda m: not has(m, "ml", "db")),
    ({"tags": {"$ne": "ml"}}, lambda m: not has(m, "ml")),
    ({"tags": {"$all": ["ml", "db"]}}, lambda m: has(m, "ml") and has(m, "db")),
    ({"tags": {"$all": []}}, lambda m: True),
    ({"tags": {"$in": []}}, lambda m: False),
    ({"tags": {"$nin": []}}, lambda m: True),
    ("tags exists", lambda m: bool(m.get("tags"))),
    ("tags not exists", lambda m: not m.get("tags")),
    ({"tags": None}, lambda m: not m.get("tags")),
    ({"tags": {"$ne": None}}, lambda m: bool(m.get("tags"))),
    (
        {"$or": [{"year": {"$lt": 2017}}, {"tags": "web"}]},
        lambda m: m.get("year", 9999) < 2017 or has(m, "web"),
    ),
    (
        "(year < 2017 or open = true) and not (score > 0.5 or lang != 'fr')",
        lambda m: (
            (m.get("year", 9999) < 2017 or m.get("open") is True)
            and not (m.get("score", 0) > 0.5 or m.get("lang") != "fr")
        ),
    ),
    (
        "not tags contains 'ml' and not lang in ['en'] and year > 2016",
        lambda m: not has(m, "ml") and m.get("lang") != "en" and m.get("year", 0) > 2016,
    ),
    (
        {"year": {"$gt": 2016}, "tags": {"$nin": ["ir"]}, "$or": [{"open": False}, {"lang": "de"}]},
        lambda m: (
            m.get("year", 0) > 2016
            and not has(m, "ir")
            and (m.get("open") is False or m.get("lang") == "de")
        ),
    ),
    ({WEIRD: "a"}, lambda m: m.get(WEIRD) == "a"),
    ("`we\"ird\") OR 1=1; --` = 'b'", lambda m: m.get(WEIRD) == "b"),
]


@pytest.mark.parametrize(("filt", "predicate"), CASES, ids=[str(c[0])[:60] for c in CASES])
def test_filter_selects_the_reference_rows(
    db: sqlite3.Connection, filt: Any, predicate: Callable[[dict[str, Any]], bool]
) -> None:
    expected = [row for row, meta in enumerate(ROWS) if predicate(meta)]
    assert select(db, filt) == expected


def test_cases_are_selective(db: sqlite3.Connection) -> None:
    """Most cases keep some rows and drop others, so the comparison above means something."""
    sizes = [len(select(db, filt)) for filt, _ in CASES]
    assert sum(0 < s < N for s in sizes) >= len(CASES) - 10


def test_injection_is_harmless(db: sqlite3.Connection) -> None:
    sql, params = compile_filter({"lang": INJECT, WEIRD: {"$in": [INJECT]}}, FIELDS)
    assert INJECT not in sql
    assert params == [INJECT, INJECT]
    assert column(WEIRD) == '"f_we""ird"") OR 1=1; --"'
    db.execute(f"SELECT row FROM meta WHERE {sql}", params).fetchall()
    assert db.execute("SELECT count(*) FROM meta").fetchone() == (N,)


def test_empty_filter_compiles_to_true() -> None:
    assert compile_filter({}, FIELDS) == ("1", [])


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "empty filter"),
        ("   ", 3, "empty filter"),
        ("year >= ", 8, "expected a value after '>='"),
        ("year >= and", 8, "expected a value after '>='"),
        ("lang = 'en", 7, "unterminated string"),
        ('lang = "en\\"', 7, "unterminated string"),
        ("`abc = 1", 0, "unterminated"),
        ("year >= 2020 and", 16, "expected a field name"),
        ("and = 1", 0, "expected a field name"),
        ("(year > 1", 9, "expected ')'"),
        ("((year > 1) or lang = 'en'", 26, "expected ')' to close the '(' at position 0"),
        ("year > 1)", 8, "or the end of the filter, got ')'"),
        ("year > 1 year", 9, "got 'year'"),
        ("year 2020", 5, "expected an operator"),
        ("year", 4, "expected an operator"),
        ("year in 2020", 8, "expected a list"),
        ("year in [1, ]", 12, "expected a value after ','"),
        ("year in [1 2]", 11, "expected ',' or ']'"),
        ("year not 5", 9, "expected 'in' or 'exists'"),
        ("year # 1", 5, "unexpected character '#'"),
        ("year = [1]", 7, "expected a value after '='"),
        ("not", 3, "expected a field name"),
    ],
)
def test_syntax_errors_point_at_the_problem(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse(text)
    assert info.value.position == position
    assert message in str(info.value)
    if text:
        assert str(info.value).endswith(f"\n  {text}\n  {' ' * position}^")


def test_compile_parses_strings_and_reports_syntax_errors() -> None:
    with pytest.raises(FilterSyntaxError):
        compile_filter("year >", FIELDS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1", {"a": {"$eq": 1}}),
        ("a != 'x' ", {"a": {"$ne": "x"}}),
        (
            "a < 1 and b exists and (c >= -1.5e2 and d <= +3)",
            {
                "$and": [
                    {"a": {"$lt": 1}},
                    {"b": {"$exists": True}},
                    {"c": {"$gte": -150.0}},
                    {"d": {"$lte": 3}},
                ]
            },
        ),
        ("NOT x IN ['a', \"b\"]", {"$not": {"x": {"$in": ["a", "b"]}}}),
        (
            "x not in [] or y not exists or z > .5",
            {"$or": [{"x": {"$nin": []}}, {"y": {"$exists": False}}, {"z": {"$gt": 0.5}}]},
        ),
        ("s = 'it\\'s\\n\\\\'", {"s": {"$eq": "it's\n\\"}}),
        ("`weird name` contains 'x'", {"weird name": {"$contains": "x"}}),
        ("`or` = 1", {"or": {"$eq": 1}}),
        ("a.b-c_d = true", {"a.b-c_d": {"$eq": True}}),
        (
            "a = true or b = FALSE and c = null",
            {
                "$or": [
                    {"a": {"$eq": True}},
                    {"$and": [{"b": {"$eq": False}}, {"c": {"$eq": None}}]},
                ]
            },
        ),
        ("not not a = 1", {"$not": {"$not": {"a": {"$eq": 1}}}}),
    ],
)
def test_parse_shapes(text: str, expected: dict[str, Any]) -> None:
    assert parse(text) == expected


def test_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(UnknownField) as info:
        compile_filter("nope = 1", FIELDS)
    message = str(info.value)
    assert "'nope'" in message and "lang, open, published, score, tags" in message
    assert "fields=" in message
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownField, match="none yet"):
        compile_filter({"a": 1}, {})


@pytest.mark.parametrize(
    ("filt", "fragment"),
    [
        ({"year": "2020"}, "field 'year' is int, got str '2020'"),
        ("year > '2020'", "field 'year' is int, got str '2020'"),
        ({"year": True}, "is int, got bool True"),
        ({"year": 2020.5}, "whole number"),
        ({"open": 1}, "is bool, got int 1"),
        ({"lang": 3}, "is string, got int 3"),
        ({"score": "0.5"}, "is float"),
        ({"lang": {"$contains": "e"}}, "list[str] fields only"),
        ({"year": {"$all": [1]}}, "list[str] fields only"),
        ({"tags": {"$gt": "a"}}, "cannot compare"),
        ({"tags": ["ml"]}, "must be str"),
        ({"tags": {"$in": ["ml", 3]}}, "must be str"),
        ({"published": "yesterday"}, "ISO-8601"),
        ({"published": 1700000000}, "is datetime, got int"),
    ],
)
def test_type_mismatches(filt: Any, fragment: str) -> None:
    with pytest.raises(FieldTypeError) as info:
        compile_filter(filt, FIELDS)
    assert fragment in str(info.value)
    assert isinstance(info.value, TypeError)


def test_integral_float_is_accepted_for_int_field() -> None:
    assert compile_filter({"year": 2020.0}, FIELDS) == ('"f_year" = ?', [2020])


@pytest.mark.parametrize(
    ("filt", "fragment"),
    [
        ({"year": {"$regex": "x"}}, "expected one of: $eq"),
        ({"$xor": []}, "one of $and, $or, $not"),
        ({"$and": []}, "non-empty list"),
        ({"$or": {"year": 1}}, "non-empty list"),
        ({"year": {"$in": 2020}}, "expects a list"),
        ({"year": {"$exists": "yes"}}, "true or false"),
        ({"year": {}}, "empty condition"),
        ({"year": {"$gt": None}}, "'$exists'"),
        ({"$not": [1]}, "expected a filter dict"),
        ([{"year": 1}], "expected a filter dict"),
    ],
)
def test_malformed_filters(filt: Any, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(filt, FIELDS)
    assert fragment in str(info.value)


def test_parameters_follow_placeholders() -> None:
    sql, params = compile_filter(
        "year in [1, 2] and tags contains 'a' and not lang = 'x' or score > 0", FIELDS
    )
    assert sql.count("?") == len(params)
    assert params == [1, 2, "tags", "a", "x", 0.0]


DAY = 86_400_000_000


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00z",
        "2024-05-01T12:00:00+00:00",
        "2024-05-01 14:00:00+02:00",
        datetime(2024, 5, 1, 12),
        datetime(2024, 5, 1, 8, tzinfo=timezone(timedelta(hours=-4))),
    ],
)
def test_datetimes_are_utc_microseconds(value: Any) -> None:
    expected = (date(2024, 5, 1) - date(1970, 1, 1)).days * DAY + 12 * 3_600_000_000
    assert to_sql(FIELDS["published"], value) == expected


def test_dates_are_midnight_utc() -> None:
    field = FIELDS["published"]
    assert to_sql(field, date(1970, 1, 2)) == DAY
    assert to_sql(field, "1970-01-02") == DAY
    assert to_sql(field, "1969-12-31T23:59:59.000001Z") == -999_999


def test_to_sql_values() -> None:
    assert to_sql(FIELDS["open"], True) == 1 and to_sql(FIELDS["open"], False) == 0
    assert to_sql(FIELDS["score"], 2) == 2.0 and isinstance(to_sql(FIELDS["score"], 2), float)
    assert to_sql(FIELDS["tags"], ("a", "b")) == ["a", "b"]
    assert to_sql(FIELDS["tags"], []) == []
    assert to_sql(FIELDS["year"], None) is None


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("tags", "ml", "wrap a single str in a list"),
        ("tags", ["ml", 1], "list of str"),
        ("year", 2**63, "outside the range SQLite stores"),
        ("score", float("nan"), "NaN"),
        ("lang", b"en", "got bytes"),
    ],
)
def test_to_sql_rejects(name: str, value: Any, fragment: str) -> None:
    with pytest.raises(FieldTypeError) as info:
        to_sql(FIELDS[name], value)
    assert f"field {name!r} is {FIELDS[name].type.value}" in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, FieldType.BOOL),
        (3, FieldType.INT),
        (3.5, FieldType.FLOAT),
        ("x", FieldType.STRING),
        (["a", "b"], FieldType.STRINGS),
        (("a",), FieldType.STRINGS),
        ([], FieldType.STRINGS),
        (datetime(2020, 1, 1), FieldType.DATETIME),
        (date(2020, 1, 1), FieldType.DATETIME),
        (None, None),
    ],
)
def test_infer_type(value: Any, expected: FieldType | None) -> None:
    assert infer_type(value) is expected


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], ["a", 1], b"x", object()])
def test_infer_type_rejects(value: Any) -> None:
    with pytest.raises(FieldTypeError, match="list of str"):
        infer_type(value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("str", FieldType.STRING),
        ("Text", FieldType.STRING),
        ("string", FieldType.STRING),
        ("integer", FieldType.INT),
        ("int", FieldType.INT),
        ("number", FieldType.FLOAT),
        ("double", FieldType.FLOAT),
        ("boolean", FieldType.BOOL),
        ("list", FieldType.STRINGS),
        ("tags", FieldType.STRINGS),
        ("list[str]", FieldType.STRINGS),
        ("date", FieldType.DATETIME),
        (" timestamp ", FieldType.DATETIME),
        (FieldType.INT, FieldType.INT),
    ],
)
def test_field_type_aliases(name: str, expected: FieldType) -> None:
    assert FieldType.parse(name) is expected


def test_field_type_parse_lists_valid_names() -> None:
    with pytest.raises(FieldTypeError, match="integer"):
        FieldType.parse("blob")


def test_field_round_trip_and_validation() -> None:
    field = Field("year", "integer", indexed=True)
    assert field.type is FieldType.INT
    assert Field.from_dict(field.to_dict()) == field
    assert field.to_dict() == {"name": "year", "type": "int", "indexed": True}
    with pytest.raises(FieldTypeError, match="'name', 'type'"):
        Field.from_dict({"name": "x"})
    for bad in ["", "$x", "a\0b", "x" * 129, 3]:
        with pytest.raises(FieldTypeError, match="field name"):
            check_name(bad)
    assert check_name("x" * 128) == "x" * 128
    with pytest.raises(FieldTypeError):
        Field("$year", "int")


def test_public_names() -> None:
    assert sorted(tiervec.filters.__all__) == [
        "Field",
        "FieldType",
        "Filter",
        "compile_filter",
        "infer_type",
        "parse",
        "to_sql",
    ]
