"""Endpoints that let a client measure a served collection as it measures a local one
(``tiervec eval`` / ``plan`` over a server URL): query vectors from the collection's model,
and a seeded sample of its ids. Searches through another chain are the search endpoint's
``tiers``."""

from __future__ import annotations

import anyio.to_thread
from fastapi import Request
from starlette.responses import Response

from tiervec.errors import LimitExceeded
from tiervec.serve import models as m
from tiervec.serve.routes import _check_texts, _json, _limits, _served, read
from tiervec.wire import encode_vectors


@read.post("/collections/{name}/encode", response_model=m.EncodeOut)
async def encode(name: str, body: m.EncodeIn, request: Request) -> Response:
    """Query vectors of ``texts`` from the collection's model (as its searches encode them)."""
    _check_texts(body.texts, _limits(request))
    col = _served(request, name).collection
    vectors = await anyio.to_thread.run_sync(col.encode_queries, body.texts)
    return _json({"vectors": encode_vectors(vectors)})


@read.post("/collections/{name}/sample", response_model=m.SampleOut)
async def sample(name: str, body: m.SampleIn, request: Request) -> Response:
    """Ids of ``n`` live documents drawn at random (``seed``: the same draw again)."""
    limit = _limits(request).max_documents
    if body.n > limit:
        raise LimitExceeded(f"n={body.n} is over the server's {limit} documents per request")
    col = _served(request, name).collection
    ids = await anyio.to_thread.run_sync(col.sample_ids, body.n, body.seed)
    return _json({"ids": ids})
