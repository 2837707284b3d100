"""Property tests of the HTTP API against its own OpenAPI spec (schemathesis, in process over
the ASGI app): generated requests, valid and invalid, never get a server error nor a response
that the spec does not describe. ``bench/schema_fuzz.py`` runs the same for longer
(``TIERVEC_SCHEMA_EXAMPLES`` examples per operation)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import tiervec
from tiervec.serve import ServerConfig, create_app

DIM = 4
KEY = "schema-key"


def _app() -> object:
    """An app over a data directory with a small collection 'vec' (and its lifespan run, so
    the collections are open as they are in a served process)."""
    root = Path(tempfile.mkdtemp(prefix="tiervec-schema-"))
    col = tiervec.create(root / "vec", model=None, dim=DIM, tiers="float32",
                         fields={"year": "int", "lang": "str"}, lexical=True)
    x = np.random.default_rng(0).standard_normal((30, DIM)).astype(np.float32)
    col.add([{"id": f"d{i}", "year": 2000 + i, "lang": "en"} for i in range(30)], vectors=x)
    col.close()
    app = create_app(root, ServerConfig(api_key=KEY))
    app.state.registry.open_all()
    return app


APP = _app()
#: the key declared for the spec's security schemes: schemathesis sends it, and also sends each
#: request without a key and with a wrong one, expecting 401
#: (a limit the spec states, such as k's maximum, is refused with 413 LimitExceeded)
CONFIG = schemathesis.config.SchemathesisConfig.from_dict({
    "auth": {"openapi": {"HTTPBearer": {"bearer": KEY}, "APIKeyHeader": {"api_key": KEY}}},
    "checks": {"negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "409", "413", "415", "422"]}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)

LONE = "\ud800"  # a lone surrogate: valid JSON as an escape, not valid Unicode
#: Bad input of the classes a client may send that the schema cannot rule out
HOSTILE_METADATA = [{"big": 10**30}, {"neg": -(2**63) - 1}, {"Year": 1}, {"Foo": 1, "foo": 2},
                    {LONE: 1}, {"s": LONE}, {"tags": ["ok", LONE]}, {"obj": {"a": 1}},
                    {"nums": [1, 2]}, {"a\x00b": 1}, {f"k{i}": i for i in range(1_001)}]
HOSTILE_FILTERS = [" or ".join(f"year == {i}" for i in range(1000)),
                   " or ".join(f"(year == {i} and year < 9)" for i in range(600)),
                   {"$or": [{"year": i} for i in range(200)]}, {"lang": LONE},
                   f'lang == "{LONE}"', "", {"year": 10**30}]


def _hostile(body: Any) -> list[Any]:
    """``body`` and variants of it with those classes where it has a place for them."""
    if not isinstance(body, dict):
        return [body]
    out: list[Any] = [body]
    docs = body.get("documents")
    if isinstance(docs, list) and docs and isinstance(docs[0], dict):
        for meta in HOSTILE_METADATA:
            out.append({**body, "documents": [{**docs[0], "metadata": meta}, *docs[1:]]})
        out.append({**body, "documents": [{**docs[0], "text": f"a{LONE}b"}, *docs[1:]]})
    if "filter" in body:
        out += [{**body, "filter": f} for f in HOSTILE_FILTERS]
    if isinstance(body.get("ids"), list):
        out.append({**body, "ids": [LONE, "x"]})
    if isinstance(body.get("query"), str):
        out += [{**body, "query": LONE}, {**body, "query": " "}]
    return out


SENT: list[Any] = []  # the hostile bodies generated
_TURN: dict[str, int] = {}


def hostile_turn(case: schemathesis.Case) -> None:
    """A valid body the generator made for an operation becomes, in turn, itself or one of
    its hostile variants: every class reaches every operation that has a place for it.
    (Invalid bodies are left as generated: a variant could make one valid.)"""
    if case.meta is None or case.meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return
    variants = _hostile(case.body)
    key = case.operation.label
    turn = _TURN[key] = _TURN.get(key, -1) + 1
    chosen = variants[turn % len(variants)]
    if chosen is not case.body:
        SENT.append(chosen)
        case.body = chosen


@schema.parametrize()
@settings(max_examples=int(os.environ.get("TIERVEC_SCHEMA_EXAMPLES", "25")), deadline=None,
          derandomize=True,  # the same requests each run (the hostile classes included)
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_spec(case: schemathesis.Case) -> None:
    if case.path_parameters and "name" in case.path_parameters:
        # reach the collection (a random name is a 404); never delete it
        deleting = case.method == "DELETE" and case.path == "/v1/collections/{name}"
        case.path_parameters["name"] = "scratch" if deleting else "vec"
    hostile_turn(case)
    # a request the schema allows may still be refused for what it means (an unknown model,
    # a malformed tier chain, a filter on an unknown field): a 4xx with the error shape
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_the_hostile_classes_were_sent() -> None:
    """(after the run above) every class reached the server in some generated request."""
    seen = json.dumps(SENT, default=str)
    for sign in ("1000000000000000000000000000000", "Foo", "\\ud800", "year == 999", "nums",
                 '"k1000"', "(year == 599 and year < 9)"):
        assert sign in seen, sign


def test_the_spec_names_every_error_shape() -> None:
    spec = APP.openapi()  # type: ignore[attr-defined]
    search = spec["paths"]["/v1/collections/{name}/search"]["post"]
    assert {"200", "400", "404", "413", "422"} <= set(search["responses"])
    assert "ErrorOut" in spec["components"]["schemas"]
    assert pytest is not None
