"""Every error as one JSON shape, ``{"error": {"code", "message", "status", ...}}``, whose
``code`` is the :mod:`tiervec.errors` class (stable: clients switch on it)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from tiervec import errors

log = logging.getLogger(__name__)

#: HTTP status of each error class (the first match in the class's method resolution order).
STATUS: dict[type[Exception], int] = {
    errors.Forbidden: 403,
    errors.Unauthorized: 401,
    errors.LimitExceeded: 413,
    errors.InvalidRequest: 422,
    errors.CollectionNotFound: 404,
    errors.NotACollection: 404,
    errors.DocumentNotFound: 404,
    errors.PlanNotFound: 404,
    errors.CollectionExists: 409,
    errors.CollectionLocked: 409,
    errors.DuplicateIds: 409,
    errors.LexicalIndexMissing: 409,
    errors.TokenVectorsMissing: 409,
    errors.CalibrationMissing: 409,
    errors.UpgradeInProgress: 409,
    errors.EncoderRequired: 422,
    errors.MissingDependency: 501,
    errors.ShardedUnsupported: 422,
    errors.ClusterError: 503,
    errors.TiervecError: 400,
}


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> Response:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    body.update({k: v for k, v in extra.items() if v is not None})
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return Response(json.dumps({"error": body}), status_code=status, headers=headers,
                    media_type="application/json")


def from_exception(exc: Exception) -> Response:
    """The response for an error raised by tiervec (or, as a 500, by a bug)."""
    if isinstance(exc, errors.TiervecError):
        extra: dict[str, Any] = {}
        if isinstance(exc, errors.FilterSyntaxError):
            extra = {"position": exc.position, "text": exc.text}
        return error_response(status_of(exc), type(exc).__name__, str(exc), **extra)
    if isinstance(exc, RecursionError):  # a body nested thousands deep
        return error_response(422, "InvalidRequest", "the request nests too deeply; flatten it")
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "InternalError", f"the server failed: {type(exc).__name__}; "
                          "its log has the details")


async def on_tiervec_error(request: Request, exc: Exception) -> Response:
    response = from_exception(exc)
    root = f"{request.app.state.registry.root}{os.sep}"  # no server paths in messages
    body = bytes(response.body)
    if root.encode() in body:
        response.body = body.replace(json.dumps(root)[1:-1].encode(), b"")
        response.headers["content-length"] = str(len(response.body))
    return response


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": [str(p) for p in e.get("loc", ())], "message": _message(e)}
        for e in exc.errors()[:20]
    ]
    first = problems[0] if problems else {"loc": [], "message": "invalid request"}
    where = ".".join(p for p in first["loc"] if p != "body") or "body"
    return error_response(422, "InvalidRequest", f"{where}: {first['message']}",
                          details=problems)


def _message(error: Any) -> str:
    if error.get("type") == "string_unicode":  # pydantic's words for a lone surrogate
        return ("not valid Unicode: a lone surrogate (a \\ud800-\\udfff escape without its "
                "pair); send valid UTF-8 text")
    return str(error.get("msg", ""))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(
        exc.status_code, "InvalidRequest" if exc.status_code < 500 else "InternalError")
    message = {404: f"no endpoint {request.url.path}; see /docs for the API",
               405: f"{request.method} is not allowed on {request.url.path}; see /docs"}.get(
                   exc.status_code, str(exc.detail))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # every method of the path, whichever router declares it
        headers["Allow"] = ", ".join(sorted(_methods(request)))
    return error_response(exc.status_code, code, message, headers=headers)


def _methods(request: Request) -> set[str]:
    """The methods of the most specific routes (fewest path parameters) matching the request's
    path: ``.../documents/get`` is the POST route's, not ``.../documents/{doc_id}``'s. Routers
    included (FastAPI wraps them: the app's own route list does not hold their routes)."""
    path, found = request.scope["path"], dict[int, set[str]]()
    stack = list(request.app.routes)
    while stack:
        route = stack.pop()
        inner = getattr(route, "original_router", None)
        if inner is not None:
            stack.extend(inner.routes)
            continue
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(path):
            params = len(getattr(route, "param_convertors", {}))
            found.setdefault(params, set()).update(getattr(route, "methods", None) or ())
    return found[min(found)] if found else set()
