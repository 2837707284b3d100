"""``tiervec.Client`` and ``tiervec.AsyncClient``: the HTTP API from Python, mirroring the
local :class:`Collection`.

::

    client = tiervec.Client("http://127.0.0.1:8080", api_key="...")
    col = client.create("papers", fields={"year": "int"})   # or client.open("papers")
    col.add([{"id": "a", "text": "...", "year": 2021}])
    result = col.search("solar panels", k=5, filter="year >= 2020")   # a SearchResult

    async with tiervec.AsyncClient(url) as client:             # the same methods, awaited
        col = await client.open("papers")
        result = await col.search("solar panels", k=5)

Errors are the server's, raised again as the same :mod:`tiervec.errors` class (with the
same message); an unreachable server raises :class:`~tiervec.errors.ServerUnavailable`.
Vectors travel in the compact binary form (:mod:`tiervec.wire`). Every request and every
parse is written once (:mod:`tiervec._remote`); the two clients only run them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

from tiervec import errors
from tiervec._remote import (
    Call,
    ClientBase,
    ClientOps,
    CollectionOps,
    Op,
    RemoteBase,
    error_of,
    unreachable,
)

try:
    import httpx
except ImportError as exc:  # the client extra
    raise errors.MissingDependency(f"tiervec.Client needs httpx ({exc}); install it with: "
                                   "pip install 'tiervec[client]'") from exc

P = ParamSpec("P")
T = TypeVar("T")


def _answer(response: httpx.Response) -> Any:
    """The decoded JSON answer (``None`` for 204), or the server's error raised."""
    if not response.is_success:
        try:
            body = response.json()
        except ValueError:
            body = None
        raise error_of(response.status_code, str(response.url), body, response.text)
    return None if response.status_code == 204 else response.json()


def _run(op: Op[T], request: Callable[[Call], Any]) -> T:
    """Run a call, each request sent by ``request`` (its error thrown into the call)."""
    try:
        call = next(op)
        while True:
            try:
                answer = request(call)
            except errors.TiervecError as exc:
                call = op.throw(exc)
            else:
                call = op.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _run_async(op: Op[T], request: Callable[[Call], Awaitable[Any]]) -> T:
    try:
        call = next(op)
        while True:
            try:
                answer = await request(call)
            except errors.TiervecError as exc:
                call = op.throw(exc)
            else:
                call = op.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _blocking(op: Callable[Concatenate[Any, P], Op[T]]) -> Callable[Concatenate[Any, P], T]:
    @functools.wraps(op)
    def call(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return _run(op(self, *args, **kwargs), self._request)
    return call


def _awaited(op: Callable[Concatenate[Any, P], Op[T]],
             ) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    @functools.wraps(op)
    async def call(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return await _run_async(op(self, *args, **kwargs), self._request)
    return call


class Client(ClientBase):
    """A connection to a tiervec server (``tiervec serve``); a context manager."""

    def __init__(self, url: str = "http://127.0.0.1:8080", *, api_key: str | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  transport=transport)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; the decoded JSON answer (``None`` for 204), or the error raised."""
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        return _answer(response)

    def _request(self, call: Call) -> Any:
        return self.request(*call)

    def _collection(self, name: str, info: Mapping[str, Any]) -> RemoteCollection:
        return RemoteCollection(self, name, info)

    list = _blocking(ClientOps.list)
    create = _blocking(ClientOps.create)
    open = _blocking(ClientOps.open)
    delete = _blocking(ClientOps.delete)

    def ready(self) -> bool:
        try:
            response = self._http.get("/readyz")
        except httpx.TransportError:
            return False
        return response.status_code == 200 and bool(response.json().get("ready"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteCollection(RemoteBase):
    """A collection on a server, with the local collection's methods and result types."""

    def __init__(self, client: Client, name: str, info: Mapping[str, Any]) -> None:
        self.client = client
        self.name = name
        self._info = dict(info)

    def _request(self, call: Call) -> Any:
        return self.client.request(*call)

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"RemoteCollection({self.client.url!r}, {self.name!r}, dim={self.dim})"

    add = _blocking(CollectionOps.add)
    upsert = _blocking(CollectionOps.upsert)
    delete = _blocking(CollectionOps.delete)
    delete_where = _blocking(CollectionOps.delete_where)
    set_metadata = _blocking(CollectionOps.set_metadata)
    compact = _blocking(CollectionOps.compact)
    upgrade = _blocking(CollectionOps.upgrade)
    upgrade_state = _blocking(CollectionOps.upgrade_state)
    get = _blocking(CollectionOps.get)
    scroll = _blocking(CollectionOps.scroll)
    search = _blocking(CollectionOps.search)
    search_vectors = _blocking(CollectionOps.search_vectors)
    count = _blocking(CollectionOps.count)
    explain = _blocking(CollectionOps.explain)
    stats = _blocking(CollectionOps.stats)
    last_plan = _blocking(CollectionOps.last_plan)
    run = _blocking(CollectionOps.run)
    encode_queries = _blocking(CollectionOps.encode_queries)
    missing = _blocking(CollectionOps.missing)
    sample_ids = _blocking(CollectionOps.sample_ids)


class AsyncClient(ClientBase):
    """:class:`Client` for asyncio (httpx's ``AsyncClient``): the same methods, awaited; an
    async context manager."""

    def __init__(self, url: str = "http://127.0.0.1:8080", *, api_key: str | None = None,
                 timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout,
                                       transport=transport)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; the decoded JSON answer (``None`` for 204), or the error raised."""
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        return _answer(response)

    async def _request(self, call: Call) -> Any:
        return await self.request(*call)

    def _collection(self, name: str, info: Mapping[str, Any]) -> AsyncRemoteCollection:
        return AsyncRemoteCollection(self, name, info)

    list = _awaited(ClientOps.list)
    create = _awaited(ClientOps.create)
    open = _awaited(ClientOps.open)
    delete = _awaited(ClientOps.delete)

    async def ready(self) -> bool:
        try:
            response = await self._http.get("/readyz")
        except httpx.TransportError:
            return False
        return response.status_code == 200 and bool(response.json().get("ready"))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncRemoteCollection(RemoteBase):
    """:class:`RemoteCollection` for asyncio: the same methods, awaited (``await
    col.count()`` for its size)."""

    def __init__(self, client: AsyncClient, name: str, info: Mapping[str, Any]) -> None:
        self.client = client
        self.name = name
        self._info = dict(info)

    async def _request(self, call: Call) -> Any:
        return await self.client.request(*call)

    def __repr__(self) -> str:
        return f"AsyncRemoteCollection({self.client.url!r}, {self.name!r}, dim={self.dim})"

    add = _awaited(CollectionOps.add)
    upsert = _awaited(CollectionOps.upsert)
    delete = _awaited(CollectionOps.delete)
    delete_where = _awaited(CollectionOps.delete_where)
    set_metadata = _awaited(CollectionOps.set_metadata)
    compact = _awaited(CollectionOps.compact)
    upgrade = _awaited(CollectionOps.upgrade)
    upgrade_state = _awaited(CollectionOps.upgrade_state)
    get = _awaited(CollectionOps.get)
    scroll = _awaited(CollectionOps.scroll)
    search = _awaited(CollectionOps.search)
    search_vectors = _awaited(CollectionOps.search_vectors)
    count = _awaited(CollectionOps.count)
    explain = _awaited(CollectionOps.explain)
    stats = _awaited(CollectionOps.stats)
    last_plan = _awaited(CollectionOps.last_plan)
    run = _awaited(CollectionOps.run)
    encode_queries = _awaited(CollectionOps.encode_queries)
    missing = _awaited(CollectionOps.missing)
    sample_ids = _awaited(CollectionOps.sample_ids)
