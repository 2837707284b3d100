"""Property tests of the HTTP API against its own OpenAPI spec (schemathesis, in process over
the ASGI app): generated requests, valid and invalid, never get a server error nor a response
that the spec does not describe. ``bench/schema_fuzz.py`` runs the same for longer
(``TIERVEC_SCHEMA_EXAMPLES`` examples per operation)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
                         fields={"year": "int", "lang": "str"})
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


@schema.parametrize()
@settings(max_examples=int(os.environ.get("TIERVEC_SCHEMA_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_spec(case: schemathesis.Case) -> None:
    if case.path_parameters and "name" in case.path_parameters:
        # reach the collection (a random name is a 404); never delete it
        deleting = case.method == "DELETE" and case.path == "/v1/collections/{name}"
        case.path_parameters["name"] = "scratch" if deleting else "vec"
    # a request the schema allows may still be refused for what it means (an unknown model,
    # a malformed tier chain, a filter on an unknown field): a 4xx with the error shape
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_the_spec_names_every_error_shape() -> None:
    spec = APP.openapi()  # type: ignore[attr-defined]
    search = spec["paths"]["/v1/collections/{name}/search"]["post"]
    assert {"200", "400", "404", "413", "422"} <= set(search["responses"])
    assert "ErrorOut" in spec["components"]["schemas"]
    assert pytest is not None
