"""The HTTP server: a versioned JSON API under ``/v1`` and a web page at ``/``.

Layout: ``config`` (limits, keys), ``models`` (request/response schemas), ``failures`` (one
error shape), ``registry`` (the collections of a data directory), ``batching`` (concurrent
searches in one call), ``routes`` (the endpoints), ``app`` (the app, its lifespan and
middleware), ``static/`` (the page: plain HTML, CSS and JavaScript, no build step).
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

from tiervec._extras import require

for _module in ("fastapi", "uvicorn", "fastapi_offline"):
    require(_module)  # the server extra, named with its pip line when missing

from tiervec.serve.app import create_app  # noqa: E402
from tiervec.serve.config import Limits, ServerConfig  # noqa: E402

__all__ = ["Limits", "ServerConfig", "create_app", "run"]
log = logging.getLogger(__name__)


def run(data_dir: str, *, host: str = "127.0.0.1", port: int = 8080,
        config: ServerConfig | None = None, log_level: str = "info") -> None:
    """Serve ``data_dir`` until SIGTERM/SIGINT (uvicorn: in-flight requests finish first,
    then the collections are closed)."""
    import uvicorn

    config = config or ServerConfig()
    config.check_address(host)
    if config.api_key is None:
        log.warning("serving %s without an API key: anyone who can reach it may read and write "
                    "every collection (set --api-key to require one)", host)
    # uvicorn shuts down gracefully on these, then re-raises the signal: exit 0 then
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(create_app(data_dir, config), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=30, access_log=False)


def _exit_cleanly(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
