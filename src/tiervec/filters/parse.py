"""The short string form of a filter, e.g. ``year >= 2020 and lang in ['en', 'fr']``.

Grammar (keywords are case-insensitive)::

    expr       := and ( "or" and )*
    and        := not ( "and" not )*
    not        := "not" not | "(" expr ")" | comparison
    comparison := FIELD op value | FIELD ["not"] "in" list | FIELD "contains" value
                | FIELD ["not"] "exists"
    op         := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := 'str' | "str" | NUMBER | true | false | null
    list       := "[" ( value ( "," value )* )? "]"
    FIELD      := [A-Za-z_][A-Za-z0-9_.-]* | `any name`

:func:`parse` returns the equivalent dict form, which :func:`~tiervec.filters.compile_filter`
also accepts.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, NoReturn

from tiervec.errors import FilterSyntaxError

_KEYWORDS = {"and", "or", "not", "in", "contains", "exists", "true", "false", "null"}
_CONSTANTS = {"true": True, "false": False, "null": None}
_OPS = {"==": "$eq", "=": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_UNMATCHED = {
    "'": "unterminated string; close it with '",
    '"': 'unterminated string; close it with "',
    "`": "unterminated or empty `field name`; close it with `",
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
    |(?P<quoted>`[^`]+`)
    |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<op>==|!=|<=|>=|=|<|>)
    |(?P<punct>[()\[\],])""",
    re.VERBOSE | re.DOTALL,
)


class _Token(NamedTuple):
    kind: str  # num, str, name, op, end, a keyword ("and", "true"...) or a punctuation mark
    text: str
    pos: int
    value: Any = None

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "end" else repr(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            char = text[pos]
            message = _UNMATCHED.get(char, f"unexpected character {char!r}; quote text values")
            raise FilterSyntaxError(message, text, pos)
        kind, raw = m.lastgroup or "", m.group()
        value: Any = raw
        if kind == "num":
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        elif kind == "str":
            value = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e[1], e[1]), raw[1:-1], flags=re.S)
        elif kind == "quoted":  # a backquoted name is never a keyword
            kind, value = "name", raw[1:-1]
        elif kind == "punct" or (kind == "name" and raw.lower() in _KEYWORDS):
            kind = raw.lower()
        if kind != "ws":
            tokens.append(_Token(kind, raw, pos, value))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.tokens, self.i = text, _tokenize(text), 0

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += token.kind != "end"
        return token

    def accept(self, kind: str) -> bool:
        found = self.tokens[self.i].kind == kind
        self.i += found
        return found

    def fail(self, expected: str, token: _Token) -> NoReturn:
        message = f"expected {expected}, got {token.describe()}"
        raise FilterSyntaxError(message, self.text, token.pos)

    def parse(self) -> dict[str, Any]:
        if self.tokens[0].kind == "end":
            self.fail("a condition such as year >= 2020 (empty filter)", self.tokens[0])
        result = self.expr()
        if not self.accept("end"):
            self.fail("'and', 'or' or the end of the filter", self.take())
        return result

    def expr(self) -> dict[str, Any]:
        parts = [self.conjunction()]
        while self.accept("or"):
            parts.append(self.conjunction())
        return _join("$or", parts)

    def conjunction(self) -> dict[str, Any]:
        parts = [self.negation()]
        while self.accept("and"):
            parts.append(self.negation())
        return _join("$and", parts)

    def negation(self) -> dict[str, Any]:
        if self.accept("not"):
            return {"$not": self.negation()}
        opening = self.tokens[self.i]
        if not self.accept("("):
            return self.comparison()
        inner = self.expr()
        if not self.accept(")"):
            self.fail(f"')' to close the '(' at position {opening.pos}", self.take())
        return inner

    def comparison(self) -> dict[str, Any]:
        token = self.take()
        if token.kind != "name":
            self.fail("a field name (backquote names that are keywords: `in`)", token)
        name, after = token.value, self.take()
        if after.kind == "op":
            return {name: {_OPS[after.text]: self.value(after)}}
        if after.kind == "in":
            return {name: {"$in": self.values(after)}}
        if after.kind == "contains":
            return {name: {"$contains": self.value(after)}}
        if after.kind == "exists":
            return {name: {"$exists": True}}
        if after.kind != "not":
            ops = "==, !=, <, <=, >, >=, in, not in, contains, exists"
            self.fail(f"an operator ({ops}) after field {name!r}", after)
        negated = self.take()
        if negated.kind == "in":
            return {name: {"$nin": self.values(negated)}}
        if negated.kind != "exists":
            self.fail("'in' or 'exists' after 'not'", negated)
        return {name: {"$exists": False}}

    def value(self, after: _Token) -> Any:
        token = self.take()
        if token.kind in _CONSTANTS:
            return _CONSTANTS[token.kind]
        if token.kind not in ("num", "str"):
            self.fail(f"a value after '{after.text}'", token)
        return token.value

    def values(self, after: _Token) -> list[Any]:
        opening = self.take()
        if opening.kind != "[":
            self.fail(f"a list such as ['a', 'b'] after '{after.text}'", opening)
        items: list[Any] = []
        if self.accept("]"):
            return items
        separator = opening
        while True:
            items.append(self.value(separator))
            separator = self.take()
            if separator.kind == "]":
                return items
            if separator.kind != ",":
                self.fail("',' or ']' in the list", separator)


def _join(op: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """``{op: parts}``, with nested uses of the same ``op`` flattened; one part stays as is."""
    if len(parts) == 1:
        return parts[0]
    return {op: [sub for part in parts for sub in (part[op] if list(part) == [op] else [part])]}


def parse(text: str) -> dict[str, Any]:
    """The dict form of a filter string; raises :class:`~tiervec.errors.FilterSyntaxError`.

    ``parse("year >= 2020 and not tags contains 'draft'")`` ->
    ``{"$and": [{"year": {"$gte": 2020}}, {"$not": {"tags": {"$contains": "draft"}}}]}``
    """
    if not isinstance(text, str):
        raise FilterSyntaxError(f"a filter string must be a str, got {type(text).__name__}")
    return _Parser(text).parse()
