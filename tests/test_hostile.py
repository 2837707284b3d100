"""The server (and the library under it) before clients it does not control: every bad input
a clear 4xx on one kept-alive connection, nothing stored lost; authentication that cannot be
switched off by an empty variable; what an unauthenticated caller may load."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import tiervec
from tiervec.errors import (
    FieldTypeError,
    FilterTooComplex,
    InsecureServer,
    InvalidText,
    TooManyFields,
)
from tiervec.filters.schema import MAX_FIELDS
from tiervec.serve import ServerConfig, create_app

KEY = "hostile-key"
AUTH = {"authorization": f"Bearer {KEY}"}
V = [[1.0, 0.0, 0.0, 0.0]]
#: A lone surrogate as JSON text (valid JSON), put where a case's body has "~"
LONE = "\\ud800"


def section_one_cases(name: str, text: bool) -> list[tuple[str, str, str, str]]:
    """(method, path, JSON body, expected error code; "" for a 200) of every bad input of the
    issue's first section, for collection ``name`` (``text``: it has a model, so documents
    go without vectors and searches by query text)."""

    def one(doc: str) -> str:
        if text and '"text"' not in doc:  # a text collection's documents need one
            doc = doc.replace('{"id"', '{"text": "words", "id"', 1)
        return '{"documents": [' + doc + "]" + ("" if text else ', "vectors": [[1, 0, 0, 0]]') + "}"

    probe = '"query": "solar"' if text else '"vector": [1, 0, 0, 0]'
    c = f"/v1/collections/{name}"
    d = f"{c}/documents"
    or_chain = " or ".join(f"n == {i}" for i in range(1000))
    cases = [
        ("POST", d, one('{"id": "big", "metadata": {"year": ' + str(10**30) + "}}"),
         "FieldTypeError"),
        ("POST", d, one('{"id": "big", "metadata": {"fresh": 9223372036854775808}}'),
         "FieldTypeError"),
        ("POST", d, one('{"id": "s1", "text": "a~"}'), "InvalidText"),
        ("POST", d, one('{"id": "s2", "title": "~"}'), "InvalidText"),
        ("PUT", d, one('{"id": "s3", "title": "~"}'), "InvalidText"),
        ("POST", d, one('{"id": "s4", "metadata": {"~": 1}}'), "InvalidText"),
        ("POST", d, one('{"id": "s5", "metadata": {"lang": "~"}}'), "InvalidText"),
        ("POST", d, one('{"id": "~"}'), "InvalidRequest"),
        ("POST", f"{c}/count", '{"filter": "lang == \\"~\\""}', "InvalidText"),
        ("POST", f"{c}/count", '{"filter": {"lang": "~"}}', "InvalidText"),
        ("POST", f"{d}/get", '{"ids": ["~"]}', "InvalidText"),
        ("POST", f"{d}/delete", '{"ids": ["~"]}', "InvalidText"),
        ("POST", f"{c}/search", "{" + probe + ', "filter": "lang == \\"~\\""}',
         "InvalidText"),
        ("POST", d, one('{"id": "c1", "metadata": {"Lang": "x"}}'), "FieldTypeError"),
        ("POST", d, one('{"id": "c2", "metadata": {"Foo": 1, "foo": 2}}'), "FieldTypeError"),
        ("POST", d, one(json.dumps({"id": "wide", "metadata": {f"k{i}": i for i in range(2100)}})),
         "TooManyFields"),
        ("POST", d, one('{"id": "nul", "metadata": {"a\\u0000b": 1}}'), "FieldTypeError"),
        ("POST", d, one('{"id": "nums", "metadata": {"scores": [1, 2]}}'), "FieldTypeError"),
        ("POST", d, one('{"id": "twice", "metadata": {"o": {"a": 1}, "o.a": 2}}'),
         "FieldTypeError"),
        ("POST", f"{c}/count", json.dumps({"filter": " or ".join(
            f"(n == {i} and n < 9)" for i in range(560))}), "FilterTooComplex"),
        ("POST", f"{c}/search", '{"query": "~"}', "InvalidText"),
        ("POST", f"{c}/search", '{"query": "   "}', "InvalidText"),
        # accepted: or-chains of one field become 'in'; an empty filter is no filter
        ("POST", f"{c}/count", json.dumps({"filter": or_chain}), ""),
        ("POST", f"{c}/search", "{" + probe + ', "k": 3.0, "filter": ""}', ""),
        ("POST", d, '{"documents": []}', ""),
        ("POST", f"{d}/delete", '{"ids": []}', ""),
    ]
    return [(method, path, body.replace("~", LONE), code) for method, path, body, code in cases]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    col = tiervec.create(tmp_path / "h", model=None, dim=4, tiers="float32",
                         fields={"year": "int", "n": "int"})
    col.add([{"id": "keep", "lang": "en", "year": 2020, "n": 3}], vectors=V)
    col.close()
    return tmp_path


def test_every_bad_input_on_one_kept_alive_connection(data_dir: Path) -> None:
    """A real server: every case answers its 4xx on the same connection, which stays open,
    and what was stored is all still there."""
    from live_server import LiveServer

    with LiveServer(data_dir, "--api-key", KEY) as live:
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=120)
        conn.connect()
        sock = conn.sock
        conn.request("POST", "/v1/collections", body=b'{"name": "t", "fields": {"year": "int", '
                     b'"n": "int"}}', headers={**AUTH, "content-type": "application/json"})
        assert conn.getresponse().read() and conn.sock is sock
        conn.request("POST", "/v1/collections/t/documents", headers={
            **AUTH, "content-type": "application/json"}, body=json.dumps({"documents": [
                {"id": "keep", "text": "solar panels", "metadata": {"lang": "en", "year": 2020,
                                                                   "n": 3}}]}).encode())
        assert json.loads(conn.getresponse().read()) == {"added": 1}
        cases = section_one_cases("h", text=False) + section_one_cases("t", text=True)
        for method, path, body, code in cases:
            conn.request(method, path, body=body.encode(),
                         headers={**AUTH, "content-type": "application/json"})
            response = conn.getresponse()
            text = response.read().decode()
            assert conn.sock is sock and response.getheader("connection") != "close", path
            if not code:
                assert response.status == 200, (path, body[:80], text)
                continue
            assert 400 <= response.status < 500, (path, body[:80], text)
            error = json.loads(text)["error"]
            assert error["code"] == code, (path, body[:80], error)
        for name in ("h", "t"):
            conn.request("GET", f"/v1/collections/{name}/documents/keep", headers=AUTH)
            kept = json.loads(conn.getresponse().read())
            assert kept["metadata"] == {"lang": "en", "year": 2020, "n": 3}
            conn.request("POST", f"/v1/collections/{name}/count", body=b"{}",
                         headers={**AUTH, "content-type": "application/json"})
            assert json.loads(conn.getresponse().read()) == {"count": 1}
        assert conn.sock is sock
        conn.close()


def test_query_texts_are_checked_before_the_model(tmp_path: Path) -> None:
    col = tiervec.create(tmp_path / "t", model=None, dim=4, tiers="float32", lexical=True)
    col.add([{"id": "a", "text": "solar panels"}], vectors=V)
    with pytest.raises(InvalidText, match="surrogate"):
        col.search("\ud800", k=1, mode="lexical")
    assert not any(col.search("  ", k=1, mode="lexical").ids[0])  # BM25 finds nothing
    with pytest.raises(InvalidText, match="empty"):  # an embedded one: arbitrary results
        col.search("  ", k=1, mode="hybrid")
    assert col.search("solar", k=1, mode="lexical").ids[0][0] == "a"


# -- the library: each class at the entry every front end goes through ---------------------------
@pytest.mark.parametrize(("doc", "error", "words"), [
    ({"id": "a", "text": "x\ud800"}, InvalidText, "lone surrogate"),
    ({"id": "a\udfff", "text": "x"}, InvalidText, "the id"),
    ({"id": "a", "text": "x", "tags": ["ok", "\ud800"]}, InvalidText, "metadata"),
    ({"id": "a", "text": "x", "year": 2**64}, FieldTypeError, "outside the range"),
    ({"id": "a", "text": "x", "new": -(2**63) - 1}, FieldTypeError, "64-bit"),
    ({"id": "a", "text": "x", "Year": 1}, FieldTypeError, "only in case"),
    ({"id": "a", "text": "x", "$op": 1}, FieldTypeError, "operators"),
    ({"id": "a", "text": "x", "v": [1.5, 2]}, FieldTypeError, "list of float/int"),
    ({"id": "a", "text": "x", **{f"f{i}": i for i in range(MAX_FIELDS + 1)}}, TooManyFields,
     f"{MAX_FIELDS:,}"),
])
def test_bad_documents_are_refused_and_nothing_written(tmp_path: Path, doc: dict, error: type,
                                                       words: str) -> None:
    col = tiervec.create(tmp_path / "c", model=None, dim=4, tiers="float32",
                         fields={"year": "int"})
    col.add([{"id": "first", "year": 2020}], vectors=V)
    with pytest.raises(error, match=words):
        col.upsert([doc], vectors=V)
    assert len(col) == 1 and set(col.fields) == {"year"}
    assert col.get(["first"])[0].metadata == {"year": 2020}  # type: ignore[union-attr]


def test_nested_metadata_is_filtered_by_dotted_names(tmp_path: Path) -> None:
    col = tiervec.create(tmp_path / "c", model=None, dim=4, tiers="float32")
    col.add([{"id": "a", "obj": {"a": 1, "b": {"c": "x"}}}, {"id": "b", "obj": {"a": 2}}],
            vectors=V * 2)
    assert {"obj.a", "obj.b.c"} <= set(col.fields)
    assert col.count("obj.a == 1") == 1 and col.count({"obj.b.c": "x"}) == 1
    assert col.get(["a"])[0].metadata == {"obj": {"a": 1, "b": {"c": "x"}}}  # type: ignore[union-attr]


def test_fractions_widen_an_inferred_int_field_and_a_declared_one_refuses_them(
        tmp_path: Path) -> None:
    col = tiervec.create(tmp_path / "c", model=None, dim=4, tiers="float32",
                         fields={"declared": "int"})
    col.add([{"id": "a", "declared": 1, "seen": 2020}], vectors=V)
    col.add([{"id": "b", "seen": 2020.5}], vectors=V)
    assert str(col.fields["seen"].type) == "float" and col.count("seen > 2020.2") == 1
    with pytest.raises(FieldTypeError, match="whole number"):
        col.add([{"id": "c", "declared": 1.5}], vectors=V)
    col.close()
    again = tiervec.open(tmp_path / "c")  # the declaration survives a reopen
    with pytest.raises(FieldTypeError, match="whole number"):
        again.add([{"id": "c", "declared": 1.5}], vectors=V)
    again.add([{"id": "c", "declared": 3.0}], vectors=V)  # a whole number is fine
    assert again.count("declared == 3") == 1


def test_or_chains_become_in_and_what_is_still_too_deep_is_refused(tmp_path: Path) -> None:
    col = tiervec.create(tmp_path / "c", model=None, dim=4, tiers="float32",
                         fields={"n": "int", "m": "int"}, indexes=["m"])
    col.add([{"id": str(i), "n": i, "m": i} for i in range(50)], vectors=V * 50)
    for name in ("n", "m"):  # in SQLite, and in memory (an indexed field)
        chain = " or ".join(f"{name} == {i}" for i in range(0, 2000, 2))
        assert col.count(chain) == 25
        assert col.count({"$or": [{name: i} for i in range(1000)]}) == 50
    deep = " or ".join(f"(n == {i} and m == {i})" for i in range(600))
    with pytest.raises(FilterTooComplex, match="at most 500"):
        col.count(deep)
    assert col.count("") == 50 and col.count("  ") == 50


# -- the server: 5xx keep the connection; chunked bodies over the limit ---------------------------
def _serve_in_thread(app: object) -> Iterator[int]:
    import uvicorn

    from live_server import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_bug_is_a_500_in_the_error_shape_and_the_connection_stays(data_dir: Path) -> None:
    app = create_app(data_dir)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    for port in _serve_in_thread(app):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/boom")
        response = conn.getresponse()
        error = json.loads(response.read())["error"]
        assert response.status == 500 and error["code"] == "InternalError"
        assert response.getheader("connection") != "close"
        sock = conn.sock
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}' and conn.sock is sock


def test_chunked_bodies_over_the_limit_are_413_on_every_route(data_dir: Path) -> None:
    from tiervec.serve import Limits

    app = create_app(data_dir, ServerConfig(limits=Limits(max_body_bytes=1000)))
    for port in _serve_in_thread(app):
        for path in ("documents", "count", "search", "documents/get"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.putrequest("POST", f"/v1/collections/h/{path}")
            conn.putheader("content-type", "application/json")
            conn.putheader("transfer-encoding", "chunked")
            conn.endheaders()
            for _ in range(5):
                chunk = b" " * 400
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
            response = conn.getresponse()
            assert response.status == 413, path
            assert json.loads(response.read())["error"]["code"] == "LimitExceeded"
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # under it: fine
        conn.putrequest("POST", "/v1/collections/h/count")
        conn.putheader("transfer-encoding", "chunked")
        conn.putheader("content-type", "application/json")
        conn.endheaders()
        conn.send(b"2\r\n{}\r\n0\r\n\r\n")
        assert json.loads(conn.getresponse().read()) == {"count": 1}


# -- authentication ------------------------------------------------------------------------------
@pytest.mark.parametrize(("config", "words"), [
    ({"api_key": ""}, "--api-key is empty"),
    ({"api_key": "  "}, "--api-key is empty"),
    ({"api_key": "k", "read_key": ""}, "--read-key is empty"),
    ({"api_key": "k", "read_key": "k"}, "could write"),
    ({"read_key": "r"}, "needs --api-key"),
])
def test_settings_that_would_open_the_server_are_refused(config: dict, words: str) -> None:
    with pytest.raises(InsecureServer, match=words):
        ServerConfig(**config)


def test_a_server_without_a_key_binds_loopback_only_unless_insecure() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        ServerConfig().check_address(host)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        with pytest.raises(InsecureServer, match="--insecure"):
            ServerConfig().check_address(host)
        ServerConfig(insecure=True).check_address(host)
        ServerConfig(api_key="k").check_address(host)


def test_the_cli_refuses_an_empty_key_from_the_environment(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from live_server import free_port
    from tiervec.cli import app

    port = str(free_port())  # (were the checks to fail, the server would start: not on 8080)
    for env in ({"TIERVEC_API_KEY": ""}, {"TIERVEC_API_KEY": "k", "TIERVEC_READ_KEY": ""}):
        result = CliRunner().invoke(app, ["serve", str(tmp_path), "--port", port], env=env)
        assert result.exit_code == 1 and "is empty" in result.output, result.output
    open_ = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", "0.0.0.0", "--port", port],
                               env={"TIERVEC_API_KEY": None})
    assert open_.exit_code == 1 and "--insecure" in open_.output


def test_what_an_unauthenticated_caller_sees(data_dir: Path) -> None:
    with TestClient(create_app(data_dir, ServerConfig(api_key=KEY))) as api:
        ready = api.get("/readyz").json()
        assert ready == {"ready": True, "served": 1, "failures": 0, "shards_down": 0}  # no names
        assert api.get("/readyz", headers=AUTH).json()["collections"] == ["h"]
        for path in ("/v1/collections", "/v1/collections/h", "/v1/collections/h/stats"):
            assert api.get(path).status_code == 401
        page = api.get("/")  # the page holds no data; it asks for the key
        assert page.status_code == 200 and 'id="api-key"' in page.text
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert api.get("/favicon.ico").headers["content-type"].startswith("image/svg")
        for docs, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone")):
            html = api.get(docs).text
            assert script in html and "cdn" not in html.lower() and "fonts.googleapis" not in html
        assert api.get("/static/docs/swagger-ui-bundle.js").status_code == 200
        spec = api.get("/openapi.json").json()
        assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
        assert spec["paths"]["/v1/collections"]["get"]["security"]
        wrong = api.patch("/v1/collections/h", headers=AUTH)
        assert wrong.status_code == 405 and wrong.headers["allow"] == "DELETE, GET"
        assert "access-control-allow-origin" not in api.get(
            "/v1/collections", headers={**AUTH, "origin": "https://app.example"}).headers


def test_cors_is_opt_in(data_dir: Path) -> None:
    config = ServerConfig(api_key=KEY, cors_origins=("https://app.example",))
    with TestClient(create_app(data_dir, config)) as api:
        pre = api.options("/v1/collections/h/search", headers={
            "origin": "https://app.example", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example"
        other = api.get("/v1/collections", headers={**AUTH, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_collection_names_are_unique_regardless_of_case(data_dir: Path) -> None:
    with TestClient(create_app(data_dir)) as api:
        clash = api.post("/v1/collections", json={"name": "H", "model": None, "dim": 4})
        assert clash.status_code == 409 and "only in case" in clash.json()["error"]["message"]
        assert not (data_dir / "H").exists()
        spec = api.get("/openapi.json").json()
        (param,) = spec["paths"]["/v1/collections/{name}"]["get"]["parameters"]
        assert param["schema"]["pattern"].startswith("^[A-Za-z0-9]")
        search = spec["components"]["schemas"]["SearchIn"]["properties"]
        assert search["k"]["maximum"] == 1000
