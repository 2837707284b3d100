"""The server: one FastAPI app over every collection in a data directory.

``create_app(data_dir)`` opens the collections when the app starts (its lifespan) and closes
them when it stops, saving HNSW graphs; uvicorn runs the stop on SIGTERM/SIGINT after the
requests in flight are answered, so a write in progress commits or fails cleanly. A ``kill -9``
loses no acknowledged write: a write is answered only once committed.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from tiervec import __version__
from tiervec.errors import TiervecError
from tiervec.serve import failures, pages, routes
from tiervec.serve.config import NAME, Limits, ServerConfig
from tiervec.serve.middleware import BodyLimit, SecurityHeaders, Unexpected
from tiervec.serve.models import HealthOut, ReadyOut, SearchIn, WriteDocuments
from tiervec.serve.registry import Registry

log = logging.getLogger(__name__)


def create_app(data_dir: str | Path, config: ServerConfig | None = None) -> FastAPI:
    """The ASGI app serving every collection directly inside ``data_dir``."""
    config = config or ServerConfig()
    registry = Registry(Path(data_dir).expanduser(), config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(registry.open_all)
        # the model and the libraries loaded so far are millions of objects that live as long
        # as the server: keep them out of the garbage collector's full passes (which would
        # otherwise pause every request for a hundred milliseconds or more)
        gc.collect()
        gc.freeze()
        log.info("serving %d collection(s) from %s", len(registry.names()), registry.root)
        try:
            yield
        finally:
            log.info("closing collections")
            registry.ready = False
            await registry.finish_merges()
            await anyio.to_thread.run_sync(registry.close_all)

    app = FastAPI(
        title="tiervec", version=__version__, lifespan=lifespan, docs_url=None,
        redoc_url=None,
        description="Embedding retrieval with compressed vectors in RAM and full precision "
        "on disk. Errors come as {\"error\": {\"code\", \"message\", \"status\"}}, where code "
        "is the tiervec.errors class. A server started with a key needs it on every /v1 "
        "endpoint ('Authorization: Bearer KEY' or 'api-key: KEY').",
    )
    app.state.config = config
    app.state.registry = registry
    app.add_exception_handler(TiervecError, failures.on_tiervec_error)
    app.add_exception_handler(RecursionError, failures.on_tiervec_error)
    app.add_exception_handler(RequestValidationError, failures.on_validation_error)
    app.add_exception_handler(HTTPException, failures.on_http_error)
    from tiervec.serve import (
        measuring,  # noqa: F401 - its endpoints join the read router
        upgrades,  # noqa: F401 - and these the read and write routers
    )

    app.include_router(routes.read)
    app.include_router(routes.write)
    _document_bodies(app, (SearchIn, WriteDocuments), config.limits)
    _add_health(app, registry)
    pages.add_pages(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Unexpected)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["authorization", "api-key", "content-type"],
                           max_age=600)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    return app


def _document_bodies(app: FastAPI, models: tuple[type[BaseModel], ...], limits: Limits) -> None:
    """Put ``models`` in the spec's components (bodies that endpoints parse themselves:
    ``openapi_extra`` refers to them by name), and the server's limits in the schemas."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = make()
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in schema.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                components.setdefault(model.__name__, schema)
            _state_limits(spec, limits)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _state_limits(spec: dict[str, Any], limits: Limits) -> None:
    """Write the server's limits into the spec, so that it says exactly what is accepted."""
    schemas = spec["components"]["schemas"]

    def set_(model: str, prop: str, **bounds: Any) -> None:
        target = schemas.get(model, {}).get("properties", {}).get(prop)
        if target is None:
            return
        for option in target.get("anyOf", [target]):  # the non-null alternative
            if option.get("type") != "null":
                option.update(bounds)

    set_("SearchIn", "k", maximum=limits.max_k)
    set_("SearchIn", "queries", minItems=1, maxItems=limits.max_queries)
    set_("SearchIn", "query", maxLength=limits.max_text_chars)
    set_("WriteDocuments", "documents", maxItems=limits.max_documents)
    set_("IdsIn", "ids", maxItems=limits.max_documents)
    set_("DocumentIn", "text", maxLength=limits.max_text_chars)
    set_("DocumentIn", "title", maxLength=limits.max_text_chars)
    set_("CreateCollection", "dim", maximum=limits.max_dim)
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            for param in operation.get("parameters", []):
                if param.get("name") == "name" and param.get("in") == "path":
                    param["schema"].update(pattern=NAME.pattern, maxLength=64)


def _add_health(app: FastAPI, registry: Registry) -> None:
    @app.get("/healthz", response_model=HealthOut, tags=["health"])
    async def healthz() -> Response:
        """Alive (no API key needed)."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", response_model=ReadyOut, tags=["health"],
             responses={503: {"model": ReadyOut}})
    async def readyz(request: Request) -> Response:
        """Ready once every collection has been opened (503 before) and every shard of a
        sharded one answers (a shard whose actor died is revived first), with how many are
        served, failed, and have shards down; their names and the reasons only with the API
        key (none needed for the rest)."""
        names, failed = registry.names(), registry.failures()
        down = await anyio.to_thread.run_sync(registry.shards_down) if registry.ready else {}
        ready = registry.ready and not down
        body: dict[str, Any] = {"ready": ready, "served": len(names), "failures": len(failed),
                                "shards_down": sum(len(d) for d in down.values())}
        if routes.authorized(request):
            body.update(collections=names, failed=failed, down=down)
        return JSONResponse(body, status_code=200 if ready else 503)
