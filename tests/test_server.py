"""The HTTP API in process (FastAPI's TestClient runs the real app and its lifespan): results
equal the library's, every bad request is a 4xx in the one error shape and writes nothing,
limits, names, keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import tiervec
from tiervec.serve import Limits, ServerConfig, create_app
from tiervec.wire import encode_vectors

DIM = 16


def docs(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"d{i}", "text": f"text {i}", "title": f"title {i}",
             "metadata": {"year": 2000 + i % 10, "lang": "en" if i % 3 else "fr"}}
            for i in range(start, start + n)]


@pytest.fixture
def data_dir(tmp_path: Path, unit_vectors) -> Path:
    """A data directory with one vectors-only collection 'vec' of 200 documents."""
    col = tiervec.create(tmp_path / "vec", model=None, dim=DIM, tiers="binary*4 -> float32@disk",
                         fields={"year": "int", "lang": "str"})
    col.add(docs(200), vectors=unit_vectors(200, DIM))
    col.close()
    return tmp_path


@pytest.fixture
def api(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(data_dir)) as client:
        yield client


def served(api: TestClient, name: str = "vec") -> tiervec.Collection:
    return api.app.state.registry.get(name).collection  # type: ignore[attr-defined]


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "status"} <= set(body["error"])
    assert body["error"]["status"] == response.status_code
    return body["error"]


def test_health_readiness_and_listing(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["collections"] == ["vec"]
    (info,) = api.get("/v1/collections").json()["collections"]
    assert info["name"] == "vec" and info["documents"] == 200 and info["dim"] == DIM
    assert info["fields"]["year"] == {"type": "int", "indexed": False}
    assert api.get("/openapi.json").json()["info"]["title"] == "tiervec"
    assert api.get("/docs").status_code == 200
    page = api.get("/")
    assert page.status_code == 200 and "tiervec" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another host


def test_search_by_vector_equals_the_library(api: TestClient, unit_vectors) -> None:
    queries = unit_vectors(5, DIM, seed=7)
    for filt in (None, "year >= 2005", {"lang": "fr"}):
        want = served(api).search_vectors(queries, k=7, filter=filt)
        for body in ({"vectors": queries.tolist()}, {"vectors": encode_vectors(queries)}):
            response = api.post("/v1/collections/vec/search", json={**body, "k": 7,
                                                                    "filter": filt})
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert [[h["id"] for h in row] for row in results] == want.ids.tolist()
            np.testing.assert_allclose([[h["score"] for h in row] for row in results],
                                       want.scores, rtol=1e-6)
    one = api.post("/v1/collections/vec/search", json={"vector": queries[0].tolist(), "k": 3})
    (hits,) = one.json()["results"]
    assert hits[0]["title"] == served(api).get([hits[0]["id"]])[0].title
    assert set(hits[0]) == {"id", "score", "title", "text", "metadata"}
    bare = api.post("/v1/collections/vec/search", json={"vector": queries[0].tolist(), "k": 3,
                                                        "include_documents": False})
    assert set(bare.json()["results"][0][0]) == {"id", "score"}


def test_oversample_per_request(api: TestClient, unit_vectors) -> None:
    q = unit_vectors(3, DIM, seed=3)
    body = {"vectors": q.tolist(), "k": 5, "include_documents": False}
    wide = api.post("/v1/collections/vec/search", json={**body, "oversample": 40}).json()
    exact = served(api).with_tiers("float32").search_vectors(q, k=5)
    assert [[h["id"] for h in r] for r in wide["results"]] == exact.ids.tolist()
    bad = api.post("/v1/collections/vec/search", json={**body, "oversample": [2, 3]})
    assert bad.status_code == 400 and "factors" in error_of(bad)["message"]


def test_writes_get_delete_count_explain_stats(api: TestClient, unit_vectors) -> None:
    base = "/v1/collections/vec"
    new = docs(3, start=500)
    vectors = unit_vectors(3, DIM, seed=9)
    added = api.post(f"{base}/documents",
                     json={"documents": new, "vectors": encode_vectors(vectors)})
    assert added.json() == {"added": 3}
    again = api.post(f"{base}/documents",
                     json={"documents": new[:1], "vectors": vectors[:1].tolist()})
    assert again.status_code == 409 and error_of(again)["code"] == "DuplicateIds"
    replaced = api.put(f"{base}/documents", json={
        "documents": [{**new[0], "text": "changed"}, *docs(1, start=600)],
        "vectors": vectors[:2].tolist()})
    assert replaced.json() == {"added": 1, "replaced": 1}
    assert api.get(f"{base}/documents/d500").json()["text"] == "changed"
    got = api.post(f"{base}/documents/get", json={"ids": ["d1", "nope"]}).json()["documents"]
    assert got[0]["id"] == "d1" and got[0]["metadata"] == {"year": 2001, "lang": "en"}
    assert got[1] is None
    assert api.get(f"{base}/documents/nope").status_code == 404
    assert api.post(f"{base}/count", json={}).json() == {"count": 204}
    assert api.post(f"{base}/count", json={"filter": "year == 2003"}).json() == \
        {"count": served(api).count("year == 2003")}
    plan = api.post(f"{base}/explain", json={"filter": {"lang": "fr"}}).json()
    assert plan["matches"] == served(api).count({"lang": "fr"}) and plan["strategy"]
    deleted = api.post(f"{base}/documents/delete", json={"ids": ["d1", "nope"]}).json()
    assert deleted == {"deleted": 1, "missing": ["nope"], "added": 0, "replaced": 0} or \
        deleted == {"deleted": 1, "missing": ["nope"]}
    assert api.delete(f"{base}/documents/d2").json()["deleted"] == 1
    assert api.delete(f"{base}/documents/d2").status_code == 404
    stats = api.get(f"{base}/stats").json()
    assert stats["documents"] == 202 and stats["deleted"] == 3  # 2 deleted, 1 replaced
    assert stats["deleted_share"] == pytest.approx(3 / 205, abs=1e-6)
    assert [t["location"] for t in stats["tiers"]] == ["ram", "disk"]
    assert stats["ram_bytes"] == sum(t["ram_bytes"] for t in stats["tiers"]) > 0
    assert api.post(f"{base}/compact").json()["deleted"] == 3
    assert api.get(f"{base}/stats").json()["deleted"] == 0


def test_collections_are_created_and_deleted(api: TestClient, data_dir: Path) -> None:
    made = api.post("/v1/collections", json={"name": "other", "model": None, "dim": 4,
                                             "tiers": "float32", "fields": {"n": "int"},
                                             "indexes": ["n"]})
    assert made.status_code == 201 and made.json()["fields"]["n"]["indexed"] is True
    assert (data_dir / "other" / "manifest.json").is_file()
    dup = api.post("/v1/collections", json={"name": "other", "model": None, "dim": 4})
    assert dup.status_code == 409 and error_of(dup)["code"] == "CollectionExists"
    assert api.delete("/v1/collections/other").status_code == 204
    assert not (data_dir / "other").exists()
    assert error_of(api.get("/v1/collections/other"))["code"] == "CollectionNotFound"
    no_dim = api.post("/v1/collections", json={"name": "x", "model": None})
    assert no_dim.status_code == 400 and "dim" in error_of(no_dim)["message"]
    assert not (data_dir / "x").exists() or not any((data_dir / "x").iterdir())
    bad_tiers = api.post("/v1/collections", json={"name": "y", "model": None, "dim": 4,
                                                  "tiers": "nonsense*"})
    assert bad_tiers.status_code == 400 and error_of(bad_tiers)["code"] in (
        "InvalidTierSpec", "UnknownCodec")


@pytest.mark.parametrize("name", ["..", "a..b", ".hidden", "a/b", "a\\b", "x" * 65, "é",
                                  "a b", "a%00b", "-lead"])
def test_collection_names_never_leave_the_data_dir(api: TestClient, data_dir: Path,
                                                   name: str) -> None:
    before = sorted(p.name for p in data_dir.iterdir())
    made = api.post("/v1/collections", json={"name": name, "model": None, "dim": 4})
    assert made.status_code == 422 and error_of(made)["code"] == "InvalidRequest"
    got = api.get(f"/v1/collections/{name}")
    assert 400 <= got.status_code < 500
    assert sorted(p.name for p in data_dir.iterdir()) == before
    assert not (data_dir.parent / "b").exists()


def bad_requests(q: list[float]) -> list[tuple[str, str, dict | bytes, int, str]]:
    """(method, path, body, status, code) of requests that must fail and write nothing."""
    d = "/v1/collections/vec/documents"
    s = "/v1/collections/vec/search"
    one = docs(1, start=900)
    return [
        ("POST", s, b"{not json", 422, "InvalidRequest"),
        ("POST", s, {"vector": "abc"}, 422, "InvalidRequest"),
        ("POST", s, {"vector": q, "k": "ten"}, 422, "InvalidRequest"),
        ("POST", s, {"vector": q, "k": 0}, 422, "InvalidRequest"),
        ("POST", s, {"vector": q[:-1]}, 400, "DimensionMismatch"),
        ("POST", s, {"vector": q, "query": "two inputs"}, 422, "InvalidRequest"),
        ("POST", s, {}, 422, "InvalidRequest"),
        ("POST", s, {"vector": q, "filter": "nope == 1"}, 400, "UnknownField"),
        ("POST", s, {"vector": q, "filter": "year == 'x'"}, 400, "FieldTypeError"),
        ("POST", s, {"vector": q, "filter": "year >="}, 400, "FilterSyntaxError"),
        ("POST", s, {"vector": q, "filter": 5}, 422, "InvalidRequest"),
        ("POST", s, {"query": "text on a vectors-only collection"}, 422, "EncoderRequired"),
        ("POST", s, {"queries": []}, 422, "InvalidRequest"),
        ("POST", s, {"vectors": {"base64": "!!", "shape": [1, DIM]}}, 400, "InvalidVectors"),
        ("POST", s, {"vectors": {"base64": "AAAA", "shape": [1, DIM]}}, 400, "InvalidVectors"),
        ("POST", "/v1/collections/none/search", {"vector": q}, 404, "CollectionNotFound"),
        ("POST", d, {"documents": one, "vectors": [q[:-1]]}, 400, "DimensionMismatch"),
        ("POST", d, {"documents": one, "vectors": [q, q]}, 400, "InvalidVectors"),
        ("POST", d, {"documents": [*one, *one], "vectors": [q, q]}, 409, "DuplicateIds"),
        ("POST", d, {"documents": one}, 422, "EncoderRequired"),
        ("POST", d, {"documents": [{"id": "", "text": "x"}], "vectors": [q]}, 422,
         "InvalidRequest"),
        ("POST", d, {"documents": [{"id": 5, "text": "x"}], "vectors": [q]}, 422,
         "InvalidRequest"),
        ("POST", d, {"documents": [{**one[0], "metadata": {"year": "x"}}], "vectors": [q]},
         400, "FieldTypeError"),
        ("PUT", d, {"documents": one, "vectors": [q], "extra": 1}, 422, "InvalidRequest"),
        ("DELETE", "/v1/collections/vec/documents/unknown", b"", 404, "DocumentNotFound"),
        ("POST", "/v1/collections/vec/count", {"filter": {"year": {"$bogus": 1}}}, 400,
         "FilterError"),
    ]


def test_bad_requests_are_4xx_and_write_nothing(api: TestClient, data_dir: Path,
                                                unit_vectors) -> None:
    q = unit_vectors(1, DIM, seed=5)[0].tolist()
    cases = bad_requests(q)
    # NaN and infinity are not JSON, but Python's parser takes them: the library rejects them
    cases.append(("POST", "/v1/collections/vec/documents",
                  json.dumps({"documents": docs(1, start=950),
                              "vectors": [[float("nan")] * DIM]}).encode(), 400,
                  "InvalidVectors"))
    cases.append(("POST", "/v1/collections/vec/search",
                  json.dumps({"vector": [float("inf")] * DIM}).encode(), 400, "InvalidVectors"))
    before = served(api).stats()
    for method, path, body, status, code in cases:
        kwargs = {"content": body, "headers": {"content-type": "application/json"}} \
            if isinstance(body, bytes) else {"json": body}
        response = api.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, body, response.text)
        error = error_of(response)
        assert error["code"] == code, (body, error)
        assert str(data_dir) not in error["message"]
    assert served(api).stats() == before
    filt = api.post("/v1/collections/vec/search", json={"vector": q, "filter": "year >="})
    assert error_of(filt)["position"] == 7 and error_of(filt)["text"] == "year >="
    assert "^" in error_of(filt)["message"]


def test_limits_are_clear_4xx(data_dir: Path, unit_vectors) -> None:
    limits = Limits(max_body_bytes=20_000, max_documents=5, max_queries=3,
                    max_text_chars=50, max_k=20, max_filter_nodes=8, max_filter_depth=3)
    q = unit_vectors(1, DIM)[0].tolist()
    with TestClient(create_app(data_dir, ServerConfig(limits=limits))) as api:
        s, d = "/v1/collections/vec/search", "/v1/collections/vec/documents"
        cases = [
            (d, {"documents": docs(6, start=700), "vectors": [q] * 6}, "documents"),
            (d, {"documents": [{"id": "t", "text": "x" * 51}], "vectors": [q]}, "characters"),
            (s, {"vector": q, "k": 21}, "k=21"),
            (s, {"vectors": [q] * 4}, "query vectors"),
            (s, {"vector": q, "filter": {"$or": [{"year": i} for i in range(9)]}}, "filter"),
            (s, {"vector": q, "filter": "((((year == 1))))"}, "nests"),
            (s, {"vector": q * 200}, "body"),
        ]
        for path, body, words in cases:
            response = api.post(path, json=body)
            assert response.status_code == 413, (body, response.text)
            error = error_of(response)
            assert error["code"] == "LimitExceeded" and words in error["message"], error
        deep = b'{"vector": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        assert 400 <= api.post(s, content=deep, headers={
            "content-type": "application/json"}).status_code < 500
        assert api.post("/v1/collections/vec/count", json={}).json()["count"] == 200


def test_api_keys(data_dir: Path, unit_vectors) -> None:
    config = ServerConfig(api_key="secret-rw", read_key="secret-ro")
    q = unit_vectors(1, DIM)[0].tolist()
    write = {"documents": docs(1, start=800), "vectors": [q]}
    with TestClient(create_app(data_dir, config)) as api:
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 200
        none = api.get("/v1/collections")
        assert none.status_code == 401 and error_of(none)["code"] == "Unauthorized"
        assert none.headers["www-authenticate"] == "Bearer"
        wrong = api.get("/v1/collections", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        rw = {"authorization": "Bearer secret-rw"}
        ro = {"api-key": "secret-ro"}
        assert api.get("/v1/collections", headers=rw).status_code == 200
        assert api.post("/v1/collections/vec/search", json={"vector": q},
                        headers=ro).status_code == 200
        refused = api.post("/v1/collections/vec/documents", json=write, headers=ro)
        assert refused.status_code == 403 and error_of(refused)["code"] == "Forbidden"
        assert api.delete("/v1/collections/vec", headers=ro).status_code == 403
        assert api.post("/v1/collections/vec/documents", json=write,
                        headers={"api-key": "secret-rw"}).json() == {"added": 1}


def test_plan_is_served_once_run(api: TestClient) -> None:
    assert error_of(api.get("/v1/collections/vec/plan"))["code"] == "PlanNotFound"
    plan = {"settings": [{"tiers": "float32", "ram_bytes_per_vector": 64, "quality": 1.0,
                          "pareto": True, "qps": 10.0}], "recommended": None}
    served(api).save_plan(plan)
    assert api.get("/v1/collections/vec/plan").json() == plan
    assert api.get("/v1/collections/vec").json()["has_plan"] is True


def test_concurrent_searches_are_batched_and_equal_single_ones(data_dir: Path,
                                                                unit_vectors) -> None:
    """32 searches sent at once take fewer kernel calls than 32, answer as alone, and a bad
    one among them fails alone."""
    import asyncio

    import httpx

    queries = unit_vectors(32, DIM, seed=11)
    app = create_app(data_dir)

    async def go() -> tuple[list[httpx.Response], int]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            bodies: list[dict] = [{"vector": q.tolist(), "k": 5, "filter": None if i % 2 else
                                   "year >= 2004"} for i, q in enumerate(queries)]
            bodies[7] = {"vector": queries[7].tolist(), "k": 5, "filter": "nope == 1"}
            answers = await asyncio.gather(*[client.post("/v1/collections/vec/search", json=b)
                                             for b in bodies])
            return answers, app.state.registry.get("vec").batcher.batches

    responses, batches = asyncio.run(go())
    assert batches < len(queries)
    assert responses[7].status_code == 400
    assert error_of(responses[7])["code"] == "UnknownField"
    with tiervec.open(data_dir / "vec", read_only=True) as col:
        for i, response in enumerate(responses):
            if i == 7:
                continue
            want = col.search_vectors(queries[i], k=5, filter=None if i % 2 else "year >= 2004")
            assert [h["id"] for h in response.json()["results"][0]] == want.ids[0].tolist()


def test_run_batch_groups_queries_and_isolates_failures(data_dir: Path, unit_vectors) -> None:
    from tiervec.search import Query
    from tiervec.serve.batching import SearchBatcher, run_batch

    q = unit_vectors(6, DIM, seed=4)
    with tiervec.open(data_dir / "vec", read_only=True) as col:
        queries = [Query(vectors=q[i:i + 1], k=3, filter="year > 2003" if i < 3 else None)
                   for i in range(6)]
        queries[4] = Query(vectors=q[4:5], k=3, filter={"nope": 1})
        out = run_batch(col, queries)
        assert isinstance(out[4], tiervec.errors.UnknownField)
        for i in (0, 1, 2, 3, 5):
            assert out[i].ids.tolist() == col.run(queries[i]).ids.tolist()  # type: ignore[union-attr]

        import asyncio

        batcher = SearchBatcher(col)

        async def go() -> list[object]:
            return await asyncio.gather(*[batcher.search(Query(vectors=q[i:i + 1], k=3))
                                          for i in range(6)])

        results = asyncio.run(go())
        assert batcher.queries == 6 and batcher.batches < 6
        for i, r in enumerate(results):
            assert r.ids.tolist() == col.search_vectors(q[i], k=3).ids.tolist()  # type: ignore[attr-defined]


def test_search_shows_a_document_as_last_written(api: TestClient, unit_vectors) -> None:
    """The server keeps returned documents serialised; a write makes it forget them."""
    q = unit_vectors(1, DIM, seed=21)[0]
    body = {"vector": q.tolist(), "k": 3}
    first = api.post("/v1/collections/vec/search", json=body).json()["results"][0][0]
    vector = served(api).get([first["id"]])  # the stored vector is not returned; reuse q
    assert vector[0] is not None
    api.put("/v1/collections/vec/documents", json={
        "documents": [{"id": first["id"], "text": "rewritten", "metadata": {"year": 2009}}],
        "vectors": [q.tolist()]})
    again = api.post("/v1/collections/vec/search", json=body).json()["results"][0][0]
    assert again["id"] == first["id"] and again["text"] == "rewritten"
    assert again["metadata"] == {"year": 2009}
    api.delete(f"/v1/collections/vec/documents/{first['id']}")
    ids = [h["id"] for h in api.post("/v1/collections/vec/search", json=body).json()["results"][0]]
    assert first["id"] not in ids
    bare = api.post("/v1/collections/vec/search", json={**body, "include_documents": False})
    assert all(set(h) == {"id", "score"} for h in bare.json()["results"][0])


def test_many_small_writes_are_merged_in_the_background(api: TestClient, unit_vectors) -> None:
    import time

    x = unit_vectors(40, DIM, seed=33)
    for i in range(40):  # one segment each
        api.put("/v1/collections/vec/documents", json={
            "documents": [{"id": f"small-{i}"}], "vectors": [x[i].tolist()]})
    deadline = time.monotonic() + 30
    while api.get("/v1/collections/vec/stats").json()["segments"] > 16:
        assert time.monotonic() < deadline, "segments never merged"
        time.sleep(0.05)
    stats = api.get("/v1/collections/vec/stats").json()
    assert stats["documents"] == 240
    hit = api.post("/v1/collections/vec/search", json={"vector": x[7].tolist(), "k": 1,
                                                      "oversample": 50}).json()
    assert hit["results"][0][0]["id"] == "small-7"


def test_non_finite_numbers_never_reach_a_response(api: TestClient) -> None:
    """Infinity is not JSON: a metadata value of 1e999 is refused, an overflowing score is
    dropped, and a name with a trailing newline is not a name."""
    api.post("/v1/collections", json={"name": "big", "model": None, "dim": 2,
                                      "tiers": "float32", "fields": {"x": "float"}})
    bad = api.post("/v1/collections/big/documents", content=b'{"documents": [{"id": "a", '
                   b'"metadata": {"x": 1e999}}], "vectors": [[1, 0]]}',
                   headers={"content-type": "application/json"})
    assert bad.status_code == 422 and error_of(bad)["code"] == "InvalidRequest"
    api.post("/v1/collections/big/documents", json={
        "documents": [{"id": "huge"}, {"id": "small"}], "vectors": [[3e38, 3e38], [1, 0]]})
    found = api.post("/v1/collections/big/search", json={"vector": [3e38, 3e38], "k": 2})
    assert found.status_code == 200
    assert [h["id"] for h in json.loads(found.text)["results"][0]] == ["small"]
    assert api.post("/v1/collections", json={"name": "a\n", "model": None,
                                             "dim": 2}).status_code == 422


def test_lexical_and_hybrid_search(api: TestClient, unit_vectors) -> None:
    body = {"name": "lex", "model": None, "dim": DIM, "tiers": "float32", "lexical": True}
    assert api.post("/v1/collections", json=body).status_code == 201
    x = unit_vectors(50, DIM, seed=3)
    added = api.post("/v1/collections/lex/documents",
                     json={"documents": docs(50), "vectors": encode_vectors(x)})
    assert added.status_code == 200, added.text
    info = api.get("/v1/collections/lex").json()
    assert info["lexical"] and info["fusion"]["method"] == "minmax" and info["calibrated"] == []
    lib = served(api, "lex")
    lexical = api.post("/v1/collections/lex/search",
                       json={"query": "text 7", "mode": "lexical", "k": 5}).json()["results"][0]
    want = lib.search("text 7", k=5, mode="lexical")
    assert [h["id"] for h in lexical] == [i for i in want.ids[0] if i]
    q = unit_vectors(1, DIM, seed=4)
    hybrid = api.post("/v1/collections/lex/search", json={
        "query": "title 7", "vector": q[0].tolist(), "mode": "hybrid", "k": 5,
        "fusion": {"method": "dbsf", "weight": 0.3}, "filter": "year >= 2005"})
    assert hybrid.status_code == 200, hybrid.text
    from tiervec.search import Query, SearchOptions

    want = lib.run(Query(texts=("title 7",), vectors=q, k=5, mode="hybrid", filter="year >= 2005",
                         options=SearchOptions(fusion={**lib.fusion.to_dict(), "method": "dbsf",
                                                       "weight": 0.3})))
    assert [h["id"] for h in hybrid.json()["results"][0]] == list(want.ids[0])
    # errors: no lexical index, fusion out of range, texts needed, no calibration
    missing = api.post("/v1/collections/vec/search", json={"query": "x", "mode": "lexical"})
    assert missing.status_code == 409
    assert "tiervec lexical" in error_of(missing)["message"]
    weight = api.post("/v1/collections/lex/search", json={
        "query": "x", "mode": "hybrid", "fusion": {"weight": 1.5}})
    assert weight.status_code == 422
    vector_only = api.post("/v1/collections/lex/search",
                           json={"vector": q[0].tolist(), "mode": "lexical"})
    assert vector_only.status_code == 400
    assert error_of(vector_only)["code"] == "InvalidSearchOptions"
    no_fit = api.post("/v1/collections/lex/search",
                      json={"vector": q[0].tolist(), "min_relevance": 0.5})
    assert no_fit.status_code == 409 and error_of(no_fit)["code"] == "CalibrationMissing"
    both = api.post("/v1/collections/lex/search", json={"query": "x", "vector": q[0].tolist()})
    assert both.status_code == 422


def test_the_recall_target_over_http(api: TestClient, unit_vectors) -> None:
    made = api.post("/v1/collections", json={"name": "r", "model": None, "dim": DIM,
                                             "recall_target": 0.9})
    assert made.status_code == 201
    for bad in (0, 1.5, -1, "high"):
        refused = api.post("/v1/collections", json={"name": "r2", "model": None, "dim": DIM,
                                                    "recall_target": bad})
        assert refused.status_code == 422, bad
    none = api.post("/v1/collections", json={"name": "r3", "model": None, "dim": DIM,
                                              "recall_target": None})
    assert api.get("/v1/collections/r3/stats").json()["recall"] is None and none.is_success
    col = served(api, "r")
    col.add(docs(1_500), vectors=unit_vectors(1_500, DIM))
    measure = col.measure_recall()
    stats = api.get("/v1/collections/r/stats").json()["recall"]
    assert stats["target"] == 0.9 and stats["oversample"] == measure.oversample
    plan = api.post("/v1/collections/r/explain", json={}).json()
    assert plan["oversample"] == measure.oversample and plan["recall"] == measure.recall
    other = api.post("/v1/collections/r/explain", json={"oversample": 2, "effort": 3}).json()
    assert other["oversample"] == 2 and other["effort"] == 3
    body = {"vector": unit_vectors(1, DIM)[0].tolist(), "k": 5, "oversample": 2, "effort": 2}
    assert len(api.post("/v1/collections/r/search", json=body).json()["results"][0]) == 5
    bad = api.post("/v1/collections/r/search", json={**body, "effort": 0})
    assert bad.status_code == 422
