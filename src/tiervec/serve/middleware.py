"""The server's ASGI middleware: each sees HTTP requests only (lifespan and other scopes pass
through) and wraps how the app receives or answers them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiervec.errors import LimitExceeded
from tiervec.serve.failures import from_exception
from tiervec.serve.pages import policy_for


class HttpMiddleware:
    """Passes what is not an HTTP request through; :meth:`handle` takes the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class BodyLimit(HttpMiddleware):
    """413 for a request body over ``max_bytes``, before the route reads it: at once when its
    ``Content-Length`` says so; a body sent without one (chunked) is read up to the limit
    here, then handed on."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:  # the HTTP server holds the body to that length
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(int(declared), scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._refuse(received, scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        queued = iter(messages)

        async def replay() -> Message:
            return next(queued, None) or await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, size: int, scope: Scope, receive: Receive, send: Send) -> None:
        error = LimitExceeded(f"the request body has {size:,} bytes or more; the server takes "
                              f"at most {self.max_bytes:,} (--max-body-mb): send smaller "
                              "batches")
        await from_exception(error)(scope, receive, send)


class Unexpected(HttpMiddleware):
    """A bug's 500 answered here, in the error shape, and the connection kept: an exception
    that left the app would make the HTTP server close the connection (and pooled clients
    would then see a false 'connection reset')."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:  # too late for another answer
                raise
            await from_exception(exc)(scope, receive, send)


class SecurityHeaders(HttpMiddleware):
    """Security headers on every answer; a content security policy on the page and docs."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = policy_for(scope.get("path", ""))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
                if policy is not None:
                    headers += [(b"content-security-policy", policy.encode()),
                                (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
