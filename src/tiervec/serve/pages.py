"""What a browser loads: the search page, its files, a favicon and the API docs (Swagger UI
and ReDoc from the installed ``fastapi-offline`` package: nothing from another host).

None of these holds data: a server with a key serves them to anyone, and the page asks for
the key once the API answers 401. Each answer carries security headers: a content security
policy (own origin only, no framing), ``X-Content-Type-Options: nosniff``, no referrer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
#: The page's policy: its own scripts, styles and API only, never inside a frame.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
               "form-action 'self'")
#: Swagger UI and ReDoc start from an inline script and style their pages inline.
DOCS_POLICY = ("default-src 'self'; img-src 'self' data:; script-src 'self' 'unsafe-inline'; "
               "style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
_DOCS = ("/docs", "/redoc")


def _docs_files() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).with_name("static")


def add_pages(app: FastAPI) -> None:
    """The page at ``/`` (files under ``/static``), ``/favicon.ico``, ``/docs`` and
    ``/redoc`` (their files under ``/static/docs``)."""

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="tiervec API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
            swagger_ui_parameters={"persistAuthorization": False})

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                              title="tiervec API", redoc_js_url="/static/docs/redoc.standalone.js",
                              redoc_favicon_url="/favicon.ico", with_google_fonts=False)

    app.mount("/static/docs", StaticFiles(directory=_docs_files()), name="docs-files")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def policy_for(path: str) -> str | None:
    """The content security policy of the answer to ``path`` (``None``: the API's JSON)."""
    if path in _DOCS:
        return DOCS_POLICY
    return PAGE_POLICY if path == "/" or path.startswith("/static/") else None
