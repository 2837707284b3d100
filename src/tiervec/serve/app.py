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
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiervec import __version__
from tiervec.errors import LimitExceeded, TiervecError
from tiervec.serve import failures, routes
from tiervec.serve.config import ServerConfig
from tiervec.serve.models import HealthOut, ReadyOut, SearchIn
from tiervec.serve.registry import Registry

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


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
        title="tiervec", version=__version__, lifespan=lifespan,
        description="Embedding retrieval with compressed vectors in RAM and full precision "
        "on disk. Errors come as {\"error\": {\"code\", \"message\", \"status\"}}, where code "
        "is the tiervec.errors class.",
    )
    app.state.config = config
    app.state.registry = registry
    app.add_exception_handler(TiervecError, failures.on_tiervec_error)
    app.add_exception_handler(RecursionError, failures.on_tiervec_error)
    app.add_exception_handler(RequestValidationError, failures.on_validation_error)
    app.add_exception_handler(HTTPException, failures.on_http_error)
    app.add_exception_handler(Exception, failures.on_tiervec_error)
    app.include_router(routes.read)
    app.include_router(routes.write)
    _document_bodies(app, (SearchIn,))
    _add_health(app, registry)
    _add_page(app)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    return app


def _document_bodies(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Put ``models`` in the spec's components: bodies that endpoints parse themselves
    (``openapi_extra`` refers to them by name)."""
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
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _add_health(app: FastAPI, registry: Registry) -> None:
    @app.get("/healthz", response_model=HealthOut, tags=["health"])
    async def healthz() -> Response:
        """Alive (no API key needed)."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", response_model=ReadyOut, tags=["health"],
             responses={503: {"model": ReadyOut}})
    async def readyz() -> Response:
        """Ready once every collection has been opened (503 before); collections that could
        not be opened are listed with the reason (no API key needed)."""
        body = {"ready": registry.ready, "collections": registry.names(),
                "failed": registry.failures()}
        return JSONResponse(body, status_code=200 if registry.ready else 503)


def _add_page(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


class BodyLimit:
    """413 for a request body over ``max_bytes`` (declared or streamed), before it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await failures.from_exception(self._error(int(declared)))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._error(received)
            return message

        await self.app(scope, limited, send)

    def _error(self, size: int) -> LimitExceeded:
        return LimitExceeded(f"the request body has {size:,} bytes or more; the server takes "
                             f"at most {self.max_bytes:,} (--max-body-mb): send smaller "
                             "batches")
