"""Model upgrades over HTTP: ``POST .../upgrade`` checks the request, then fits the map and
backfills in a background thread (one per collection); ``GET .../upgrade`` tells where it
stands. Searches and writes go on meanwhile; closing the server stops the work between two
commits (``POST`` again, without a model, goes on)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import anyio.to_thread
from fastapi import Request
from starlette.responses import Response

from tiervec.errors import TiervecError, UpgradeInProgress
from tiervec.serve import models as m
from tiervec.serve.registry import Served
from tiervec.serve.routes import _json, _served, read, write

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """The server closes: the upgrade's sample encoding stops (nothing was committed)."""


class UpgradeJob:
    """One collection's upgrade work in a background thread."""

    def __init__(self, served: Served, body: m.UpgradeIn) -> None:
        self.stop = threading.Event()
        self.error: dict[str, str] | None = None
        self.thread = threading.Thread(target=self._run, args=(served.collection, body),
                                       name=f"upgrade-{served.name}", daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def _progress(self, _: int) -> None:
        if self.stop.is_set():
            raise _Stopped

    def _run(self, col: Any, body: m.UpgradeIn) -> None:
        try:
            if body.model is not None:
                col.upgrade(body.model, sample=body.sample, direction=body.direction,
                            kind=body.kind, progress=self._progress)
            if body.backfill:
                col.backfill(cpu_share=body.cpu_share, stop=self.stop)
        except _Stopped:
            pass
        except Exception as exc:  # reported by GET .../upgrade
            if not isinstance(exc, TiervecError):
                log.exception("upgrading %s failed", col.path.name)
            self.error = {"code": type(exc).__name__, "message": str(exc)}

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def _state(served: Served) -> dict[str, Any]:
    job: UpgradeJob | None = served.upgrade
    col = served.collection
    return {"running": bool(job and job.running), "error": job.error if job else None,
            "upgrade": col.stats().upgrade, "model": col.model}


@write.post("/collections/{name}/upgrade", response_model=m.UpgradeOut, status_code=202)
async def start_upgrade(name: str, body: m.UpgradeIn, request: Request) -> Response:
    """Start moving the collection to ``model`` (or go on with the backfill under way)."""
    served = _served(request, name)
    col: Any = served.collection
    if served.upgrade is not None and served.upgrade.running:
        raise UpgradeInProgress(f"collection {name!r} is upgrading already: GET "
                                f"/v1/collections/{name}/upgrade tells where it stands")
    if body.model is not None:  # a bad request (or a sharded collection) answers now
        await anyio.to_thread.run_sync(lambda: col.check_upgrade(
            body.model, sample=body.sample, direction=body.direction, kind=body.kind))
    elif col.stats().upgrade is None:
        raise UpgradeInProgress(f"collection {name!r} has no upgrade under way; pass a model "
                                "to start one")
    served.upgrade = UpgradeJob(served, body)
    return _json(_state(served), status=202)


@read.get("/collections/{name}/upgrade", response_model=m.UpgradeOut)
async def upgrade_state(name: str, request: Request) -> Response:
    """The upgrade under way, whether its background work runs, and why it stopped if it
    failed."""
    return _json(await anyio.to_thread.run_sync(_state, _served(request, name)))
