"""The ``/v1`` API: collections, documents, searches, filters, stats and plans.

Each endpoint checks the request against the server's limits, then calls the library (writes
under the collection's write lock, every call off the event loop). Nothing here searches,
filters or stores: that is the library's, so the CLI and the server behave alike.
"""

from __future__ import annotations

import hmac
import json
from time import perf_counter
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig, MuveraConfig
from tiervec.errors import (
    DocumentNotFound,
    Forbidden,
    InvalidRequest,
    LimitExceeded,
    PlanNotFound,
    Unauthorized,
)
from tiervec.search import Chain, FusionConfig, Query, SearchMode, SearchOptions
from tiervec.serve import models as m
from tiervec.serve.config import Limits, ServerConfig
from tiervec.serve.documents import results_json, shards_json
from tiervec.serve.registry import Registry, Served
from tiervec.wire import count_vectors, decode_vectors, document_to_dict, filter_size

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422)}


#: How a key is sent, as the OpenAPI spec declares it (the docs' Authorize button).
BEARER = HTTPBearer(auto_error=False, description="The server's API key as a bearer token.")
HEADER = APIKeyHeader(name="api-key", auto_error=False, description="The server's API key.")
_BY_BEARER, _BY_HEADER = Security(BEARER), Security(HEADER)


def _key_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("api-key")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def _role(request: Request) -> str | None:
    """``"write"``, ``"read"`` or ``None`` (no or a wrong key) for the request's key."""
    config: ServerConfig = request.app.state.config
    if config.api_key is None:
        return "write"
    key = _key_of(request)
    if key is None:
        return None
    if _same(key, config.api_key):
        return "write"
    if config.read_key is not None and _same(key, config.read_key):
        return "read"
    return None


def authorized(request: Request) -> bool:
    """Whether the request may read (the server has no key, or it sent one of its keys)."""
    return _role(request) is not None


def _access(write: bool) -> Any:
    async def check(request: Request, bearer: Any = _BY_BEARER,
                    header: Any = _BY_HEADER) -> None:
        role = _role(request)
        if role == "write" or (role == "read" and not write):
            return
        if role == "read":
            raise Forbidden("this API key may search and read but not write; use the "
                            "server's read-write key")
        raise Unauthorized("this server needs an API key: send 'Authorization: Bearer KEY' "
                           "or 'api-key: KEY'" if _key_of(request) is None else
                           "the API key is wrong")
    return Depends(check)


read = APIRouter(prefix="/v1", dependencies=[_access(write=False)], responses=ERRORS)
write = APIRouter(prefix="/v1", dependencies=[_access(write=True)], responses=ERRORS)


def _registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def _limits(request: Request) -> Limits:
    return request.app.state.config.limits  # type: ignore[no-any-return]


def _served(request: Request, name: str) -> Served:
    return _registry(request).get(name)


def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


# -- collections ----------------------------------------------------------------------------------
def _describe(served: Served) -> dict[str, Any]:
    col = served.collection
    return {"name": served.name, "documents": len(col), "dim": col.dim, "model": col.model,
            "chain": str(col.chain),
            "fields": {k: {"type": str(f.type), "indexed": f.indexed}
                       for k, f in col.fields.items()},
            "has_plan": col.has_plan(), "lexical": col.has_lexical,
            "fusion": col.fusion.to_dict(),
            "calibrated": [k for k in ("dense", "lexical", "hybrid") if col.calibration(k)],
            "chunking": col.chunking.to_dict() if col.chunking else None,
            "multivector": col.multivector.to_dict() if col.multivector else None}


@read.get("/collections", response_model=m.CollectionsOut)
async def list_collections(request: Request) -> Response:
    registry = _registry(request)
    return _json({"collections": [_describe(registry.get(n)) for n in registry.names()]})


@write.post("/collections", response_model=m.CollectionOut, status_code=201)
async def create_collection(body: m.CreateCollection, request: Request) -> Response:
    if body.dim is not None and body.dim > _limits(request).max_dim:
        raise LimitExceeded(f"dim {body.dim} is over the server's limit of "
                            f"{_limits(request).max_dim}")
    options = body.model_dump(exclude={"name"})
    if body.chunking is not None:
        options["chunking"] = ChunkingConfig.from_dict(options["chunking"])
    if body.multivector is not None:
        given = dict(options["multivector"])
        muvera = MuveraConfig(**{k: given.pop(k) for k in ("reps", "k_sim", "dim_proj",
                                                          "final_dim")})
        options["multivector"] = MultiVectorConfig(muvera=muvera, **given)
    served = await _registry(request).create(body.name, options)
    return _json(_describe(served), 201)


@read.get("/collections/{name}", response_model=m.CollectionOut)
async def get_collection(name: str, request: Request) -> Response:
    return _json(_describe(_served(request, name)))


@write.delete("/collections/{name}", status_code=204)
async def delete_collection(name: str, request: Request) -> Response:
    await _registry(request).delete(name)
    return Response(status_code=204)


@read.get("/collections/{name}/stats", response_model=m.StatsOut)
async def collection_stats(name: str, request: Request, tiers: str | None = None) -> Response:
    """What the collection holds and what its tiers cost (``tiers``: another chain's)."""
    col = _served(request, name).collection
    chain = None if tiers is None else Chain.parse(tiers)
    stats = await anyio.to_thread.run_sync(lambda: col.stats(chain))
    return _json(stats.to_dict())


@read.get("/collections/{name}/plan")
async def collection_plan(name: str, request: Request) -> Response:
    """The results of the last ``tiervec plan`` on the collection (its ``plan.json``)."""
    plan = _served(request, name).collection.last_plan()
    if plan is None:
        raise PlanNotFound(f"no plan has been run on collection {name!r}; run "
                           "`tiervec plan DATA_DIR/<name> ...` to measure its frontier")
    return _json(plan)


# -- documents ------------------------------------------------------------------------------------
def _documents(body: m.WriteDocuments, limits: Limits) -> list[dict[str, Any]]:
    """The documents as records for the library (which checks them as it checks a corpus)."""
    docs = body.documents
    if len(docs) > limits.max_documents:
        raise LimitExceeded(f"{len(docs)} documents in one request; the server takes at most "
                            f"{limits.max_documents}: split the batch")
    for d in docs:
        if len(d.text) + len(d.title) > limits.max_text_chars:
            raise LimitExceeded(f"document {d.id!r} has {len(d.text) + len(d.title)} "
                                f"characters; the server takes at most {limits.max_text_chars}"
                                " per document: split it or raise --max-text-chars")
    for d in docs:  # Python's parser reads 1e999 as infinity, which no JSON answer can hold
        try:
            json.dumps(d.metadata, allow_nan=False)
        except ValueError:
            raise InvalidRequest(f"document {d.id!r} has a non-finite number (NaN or "
                                 "infinity) in its metadata; send finite numbers") from None
    return [d.model_dump() for d in docs]


async def _write_documents(request: Request, name: str, replace: bool) -> Response:
    served = _served(request, name)
    col, limits = served.collection, _limits(request)
    raw = await request.body()
    ids: list[str] = []

    def commit() -> dict[str, int]:  # parsed and checked here too: off the event loop
        body = parse_body(m.WriteDocuments, raw)
        docs = _documents(body, limits)
        ids.extend(d["id"] for d in docs)
        given = body.vectors.model_dump() if isinstance(body.vectors, m.BinaryVectors) else \
            body.vectors
        vectors = None if given is None else decode_vectors(given, col.dim, "vectors")
        if replace:
            stats = col.upsert(docs, vectors=vectors)
            return {"added": stats.added, "replaced": stats.replaced}
        return {"added": col.add(docs, vectors=vectors)}

    try:  # concurrent writes meet in the library, which commits them as one (group commit)
        out = await anyio.to_thread.run_sync(commit)
    finally:  # committed or not, what the cache holds of these ids may be stale
        served.documents.forget(ids)
    _registry(request).merge_later(served)
    return _json(out)


def _body_of(model: type[Any]) -> dict[str, Any]:
    """The spec of a body that an endpoint parses itself (see :func:`parse_body`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


@write.post("/collections/{name}/documents", response_model=m.WriteOut,
            openapi_extra=_body_of(m.WriteDocuments))
async def add_documents(name: str, request: Request) -> Response:
    """Add new documents (ids already there are an error: 409 DuplicateIds). Acknowledged
    once committed: a crash after the answer loses nothing."""
    return await _write_documents(request, name, replace=False)


@write.put("/collections/{name}/documents", response_model=m.WriteOut,
           openapi_extra=_body_of(m.WriteDocuments))
async def upsert_documents(name: str, request: Request) -> Response:
    """Add documents, replacing those whose id is there, atomically."""
    return await _write_documents(request, name, replace=True)


@read.post("/collections/{name}/documents/get", response_model=m.GetOut)
async def get_documents(name: str, body: m.IdsIn, request: Request) -> Response:
    """The documents for ``ids``, ``null`` where unknown."""
    _check_ids(body.ids, _limits(request))
    docs = await anyio.to_thread.run_sync(_served(request, name).collection.get, body.ids)
    return _json({"documents": [None if d is None else document_to_dict(d) for d in docs]})


@read.get("/collections/{name}/documents/{doc_id:path}", response_model=m.DocumentOut)
async def get_document(name: str, doc_id: str, request: Request) -> Response:
    (doc,) = await anyio.to_thread.run_sync(_served(request, name).collection.get, [doc_id])
    if doc is None:
        raise DocumentNotFound(f"no document with id {doc_id!r} in collection {name!r}")
    return _json(document_to_dict(doc))


async def _delete(request: Request, name: str, ids: list[str]) -> dict[str, Any]:
    served = _served(request, name)
    try:
        stats = await anyio.to_thread.run_sync(served.collection.delete, ids)
    finally:
        served.documents.forget(ids)
    _registry(request).merge_later(served)
    return {"deleted": stats.deleted, "missing": list(stats.missing)}


@write.post("/collections/{name}/documents/delete", response_model=m.WriteOut)
async def delete_documents(name: str, body: m.DeleteIn, request: Request) -> Response:
    """Delete documents by ``ids`` (unknown ones listed in ``missing``; none: nothing done),
    or every document a ``filter`` matches, in one commit."""
    if (body.ids is None) == (body.filter is None):
        raise InvalidRequest("give 'ids' or a 'filter' (one of the two)")
    if body.ids is not None:
        _check_ids(body.ids, _limits(request))
        return _json(await _delete(request, name, body.ids))
    _check_filter(body.filter, _limits(request))
    served = _served(request, name)
    try:
        stats = await anyio.to_thread.run_sync(served.collection.delete_where, body.filter)
    finally:
        served.documents.forget()
    _registry(request).merge_later(served)
    return _json({"deleted": stats.deleted, "missing": []})


@write.patch("/collections/{name}/documents", response_model=m.WriteOut)
async def update_metadata(name: str, body: m.MetadataIn, request: Request) -> Response:
    """Change documents' metadata without encoding them again (their stored vectors are
    kept); unknown ids are listed in ``missing``."""
    _check_ids([d.id for d in body.documents], _limits(request))
    updates = {d.id: d.metadata for d in body.documents}
    served = _served(request, name)
    try:
        stats = await anyio.to_thread.run_sync(
            lambda: served.collection.set_metadata(updates, replace=body.replace))
    finally:
        served.documents.forget(updates)
    return _json({"replaced": stats.replaced, "missing": list(stats.missing)})


@read.post("/collections/{name}/documents/scroll", response_model=m.PageOut)
async def scroll_documents(name: str, body: m.ScrollIn, request: Request) -> Response:
    """A page of documents in id order (a filter's matches, if given), and the cursor of
    the next page: ids, not positions, so writes between pages skip and repeat nothing."""
    _check_filter(body.filter, _limits(request))
    page = await anyio.to_thread.run_sync(
        lambda: _served(request, name).collection.scroll(body.filter, limit=body.limit,
                                                         cursor=body.cursor))
    return _json({"documents": [document_to_dict(d) for d in page.documents],
                  "cursor": page.cursor})


@write.delete("/collections/{name}/documents/{doc_id:path}", response_model=m.WriteOut)
async def delete_document(name: str, doc_id: str, request: Request) -> Response:
    out = await _delete(request, name, [doc_id])
    if out["missing"]:
        raise DocumentNotFound(f"no document with id {doc_id!r} in collection {name!r}")
    return _json(out)


@write.post("/collections/{name}/compact", response_model=m.WriteOut)
async def compact(name: str, request: Request, vacuum: bool = True) -> Response:
    """Reclaim the space of deleted and replaced documents (``vacuum``: the database's too);
    searches go on meanwhile."""
    served = _served(request, name)
    async with served.write_lock:
        stats = await anyio.to_thread.run_sync(
            lambda: served.collection.compact(vacuum=vacuum))
    return _json({"deleted": stats.deleted})


# -- searching ------------------------------------------------------------------------------------
def _query(body: m.SearchIn, dim: int, limits: Limits, default_fusion: FusionConfig) -> Query:
    given = [f for f in ("query", "queries", "vector", "vectors") if getattr(body, f) is not None]
    paired = body.mode == "hybrid" and len(given) == 2 and given[0] in ("query", "queries") \
        and given[1] in ("vector", "vectors")  # texts with their precomputed vectors
    if len(given) != 1 and not paired:
        raise InvalidRequest("give exactly one of 'query' (a text), 'queries' (texts), "
                             f"'vector' or 'vectors' (a hybrid search may pair texts with "
                             f"their vectors); got {given or 'none'}")
    if body.k > limits.max_k:
        raise LimitExceeded(f"k={body.k} is over the server's limit of {limits.max_k}")
    _check_filter(body.filter, limits)
    fusion = None
    if body.fusion is not None:
        asked = body.fusion.model_dump(exclude_none=True)
        fusion = {**default_fusion.to_dict(), **asked} if asked else None
    options = SearchOptions(oversample=_factors(body.oversample), fusion=fusion,
                            effort=body.effort, partial=body.partial, aggregate=body.aggregate,
                            candidates=body.candidates)
    texts = [body.query] if body.query is not None else body.queries
    if texts is not None:
        _check_texts(texts, limits)
    vectors = _query_vectors(body, dim, limits) if texts is None or paired else None
    return Query(texts=None if texts is None else tuple(texts), vectors=vectors, k=body.k,
                 filter=body.filter, options=options, mode=SearchMode(body.mode),
                 min_relevance=body.min_relevance)


def _query_vectors(body: m.SearchIn, dim: int, limits: Limits) -> np.ndarray:
    if body.vector is not None:
        return decode_vectors(body.vector, dim, "vector")
    raw = body.vectors.model_dump() if isinstance(body.vectors, m.BinaryVectors) else \
        body.vectors
    if not 0 < count_vectors(raw) <= limits.max_queries:
        raise LimitExceeded(f"send 1 to {limits.max_queries} query vectors per request")
    return decode_vectors(raw, dim, "vectors")


def _check_filter(filt: Any, limits: Limits) -> None:
    filter_size(filt, limits.max_filter_nodes, limits.max_filter_depth)


def _check_ids(ids: list[str], limits: Limits) -> None:
    if len(ids) > limits.max_documents:
        raise LimitExceeded(f"{len(ids)} ids; the server takes at most "
                            f"{limits.max_documents} per request")


def _check_texts(texts: list[str], limits: Limits) -> None:
    if not texts:
        raise InvalidRequest("'queries' is empty; send at least one query text")
    if len(texts) > limits.max_queries:
        raise LimitExceeded(f"{len(texts)} queries in one request; the server takes at most "
                            f"{limits.max_queries}")
    if any(len(t) > limits.max_text_chars for t in texts):
        raise LimitExceeded(f"a query text is over the server's {limits.max_text_chars} "
                            "characters")


def parse_body(model: type[Any], raw: bytes) -> Any:
    """``model`` parsed by pydantic straight from the JSON bytes (numbers parsed in Rust,
    several times faster than the json module's floats for vectors). Valid JSON that its
    parser refuses (a lone surrogate escape, ``"\\ud800"``; NaN) is read by the json module
    instead, so that the library says what is wrong with it."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
    if errors and errors[0]["type"] == "json_invalid":
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            parsed = None
        if parsed is not None:
            try:
                return model.model_validate(parsed)
            except ValidationError as exc:
                errors = exc.errors()
    raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in errors])


@read.post("/collections/{name}/search", response_model=m.SearchOut,
           openapi_extra=_body_of(m.SearchIn))
async def search(name: str, request: Request) -> Response:
    """Top ``k`` documents for each query (text or vector), filtered if asked; concurrent
    searches are batched into one encoder and one kernel call."""
    start = perf_counter()
    body = parse_body(m.SearchIn, await request.body())
    served = _served(request, name)
    query = _query(body, served.collection.dim, _limits(request), served.collection.fusion)
    cache = served.documents if body.include_documents else None

    def finish(found: Any) -> tuple[bytes, bytes]:
        return results_json(found, cache), shards_json(found.shards)

    if body.tiers is None:
        results = await served.batcher.search(query, finish)
    else:  # another chain: its view, searched alone
        results = await anyio.to_thread.run_sync(
            lambda: finish(served.view(str(body.tiers)).run(query)))
    took = round(1000 * (perf_counter() - start), 3)
    return Response(b'{"results":%s%s,"took_ms":%s}' % (*results, repr(took).encode()),
                    media_type="application/json")


@read.post("/collections/{name}/count", response_model=m.CountOut)
async def count(name: str, body: m.FilterRequest, request: Request) -> Response:
    """Documents matching ``filter`` (all with none)."""
    _check_filter(body.filter, _limits(request))
    n = await anyio.to_thread.run_sync(_served(request, name).collection.count, body.filter)
    return _json({"count": n})


@read.post("/collections/{name}/explain", response_model=m.ExplainOut)
async def explain(name: str, body: m.ExplainIn, request: Request) -> Response:
    """How a search with ``filter`` would run: matches, their share, the strategy, the
    oversampling and effort it runs with and their estimated recall."""
    _check_filter(body.filter, _limits(request))
    options = SearchOptions(oversample=_factors(body.oversample), effort=body.effort)
    served = _served(request, name)
    plan = await anyio.to_thread.run_sync(
        lambda: (served.collection if body.tiers is None else served.view(body.tiers))
        .explain(body.filter, options))
    return _json({"matches": plan.matches, "share": plan.share, "strategy": str(plan.strategy),
                  "recall": plan.recall, "oversample": plan.oversample, "effort": plan.effort})


def _factors(oversample: int | list[int] | None) -> int | tuple[int, ...] | None:
    return tuple(oversample) if isinstance(oversample, list) else oversample
