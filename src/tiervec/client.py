"""``tiervec.Client``: the HTTP API from Python, mirroring the local :class:`Collection`.

::

    client = tiervec.Client("http://127.0.0.1:8080", api_key="...")
    col = client.create("papers", fields={"year": "int"})   # or client.open("papers")
    col.add([{"id": "a", "text": "...", "year": 2021}])
    result = col.search("solar panels", k=5, filter="year >= 2020")   # a SearchResult

Errors are the server's, raised again as the same :mod:`tiervec.errors` class (with the
same message); an unreachable server raises :class:`~tiervec.errors.ServerUnavailable`.
Vectors travel in the compact binary form (:mod:`tiervec.wire`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np

from tiervec import errors
from tiervec._validate import as_documents, as_vectors
from tiervec.corpus import Document
from tiervec.filters import Filter
from tiervec.search import (
    CollectionStats,
    FilterPlan,
    FilterStrategy,
    Page,
    SearchOptions,
    SearchResult,
    ShardReport,
    TierStats,
)
from tiervec.store.writes import WriteStats
from tiervec.wire import document_from_dict, encode_vectors

try:
    import httpx
except ImportError as exc:  # the client extra
    raise errors.MissingDependency(f"tiervec.Client needs httpx ({exc}); install it with: "
                                   "pip install 'tiervec[client]'") from exc


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        raise errors.ServerError(f"HTTP {response.status_code} from {response.url}: "
                                 f"{response.text[:200]}") from None
    cls = getattr(errors, code, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.TiervecError)):
        cls = errors.ServerError if response.status_code >= 500 else errors.InvalidRequest
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    if isinstance(exc, errors.FilterSyntaxError):
        exc.text, exc.position = body.get("text") or "", int(body.get("position") or 0)
    raise exc


class Client:
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
            raise errors.ServerUnavailable(
                f"cannot reach the tiervec server at {self.url} ({exc}); start it with "
                "`tiervec serve DATA_DIR` or check the address") from None
        _raise_for(response)
        return None if response.status_code == 204 else response.json()

    # -- collections ----------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        """Every served collection: name, documents, dim, model, chain, fields."""
        return list(self.request("GET", "/v1/collections")["collections"])

    def create(self, name: str, *, model: str | None = "all-MiniLM-L6-v2",
               dim: int | None = None, tiers: str | None = None,
               fields: Mapping[str, str] | None = None,
               indexes: Sequence[str] = (), lexical: bool | None = None,
               chunking: str | Mapping[str, Any] | None = None,
               multivector: bool | Mapping[str, Any] | None = None,
               recall_target: float | None = 0.95) -> RemoteCollection:
        """A new collection on the server, with every option the HTTP create takes (as
        :meth:`tiervec.Collection.create`): ``lexical`` (a BM25 index; default: when it has a
        model), ``chunking`` (``"late"``, ``"naive"`` or a ``ChunkingConfig``'s fields),
        ``multivector`` (``True`` or a ``MultiVectorConfig``'s fields: ``reps``, ``k_sim``,
        ``dim_proj``, ``final_dim``, ``token_codec``, ``candidates``), ``recall_target``
        (recall@10 against exact search kept as it grows; ``None``: none)."""
        body: dict[str, Any] = {"name": name, "model": model, "dim": dim,
                                "fields": dict(fields or {}), "indexes": list(indexes),
                                "recall_target": recall_target}
        if lexical is not None:
            body["lexical"] = lexical
        if chunking is not None:
            body["chunking"] = {"method": chunking} if isinstance(chunking, str) else \
                dict(chunking)
        if multivector:
            body["multivector"] = {} if multivector is True else dict(multivector)
        if tiers is not None:
            body["tiers"] = str(tiers)
        return RemoteCollection(self, name, self.request("POST", "/v1/collections", body))

    def open(self, name: str) -> RemoteCollection:
        """A served collection by name (:class:`~tiervec.errors.CollectionNotFound` if none)."""
        return RemoteCollection(self, name, self.request("GET", f"/v1/collections/{_q(name)}"))

    def delete(self, name: str) -> None:
        """Delete a collection and its files on the server."""
        self.request("DELETE", f"/v1/collections/{_q(name)}")

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


def _q(part: str) -> str:
    return quote(str(part), safe="")


class RemoteCollection:
    """A collection on a server, with the local collection's methods and result types."""

    def __init__(self, client: Client, name: str, info: Mapping[str, Any]) -> None:
        self.client = client
        self.name = name
        self._info = dict(info)
        self._base = f"/v1/collections/{_q(name)}"

    @property
    def dim(self) -> int:
        return int(self._info["dim"])

    @property
    def model(self) -> str | None:
        return self._info["model"]

    @property
    def chain(self) -> str:
        return str(self._info["chain"])

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"RemoteCollection({self.client.url!r}, {self.name!r}, dim={self.dim})"

    # -- writes ---------------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
            batch_size: int = 2_000) -> int:
        """Add new documents; returns how many were added. Sent ``batch_size`` documents per
        request, each request committed atomically (a duplicate id fails its request)."""
        return sum(s.added for s in self._write("POST", documents, vectors, batch_size))

    def upsert(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
               batch_size: int = 2_000) -> WriteStats:
        """Add documents, replacing those whose id is there (each request atomically)."""
        stats = self._write("PUT", documents, vectors, batch_size)
        return WriteStats(added=sum(s.added for s in stats),
                          replaced=sum(s.replaced for s in stats))

    def _write(self, method: str, documents: Iterable[Document | Mapping[str, Any]],
               vectors: Any, batch_size: int) -> list[WriteStats]:
        docs = as_documents(documents, allow_empty=vectors is not None)
        arr = None if vectors is None else as_vectors(vectors, self.dim, rows=len(docs))
        out = []
        for start in range(0, len(docs), batch_size):
            chunk = docs[start:start + batch_size]
            body: dict[str, Any] = {"documents": [
                {"id": d.id, "text": d.text, "title": d.title, "metadata": dict(d.metadata)}
                for d in chunk]}
            if arr is not None:
                body["vectors"] = encode_vectors(arr[start:start + batch_size])
            answer = self.client.request(method, f"{self._base}/documents", body)
            out.append(WriteStats(added=answer.get("added", 0),
                                  replaced=answer.get("replaced", 0)))
        return out

    def delete(self, ids: Iterable[str] | str) -> WriteStats:
        """Delete documents by id; unknown ids are reported in ``missing``."""
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        if not ids:
            return WriteStats()
        answer = self.client.request("POST", f"{self._base}/documents/delete", {"ids": ids})
        return WriteStats(deleted=answer["deleted"], missing=list(answer["missing"]))

    def delete_where(self, filter: Filter) -> WriteStats:
        """Delete every document ``filter`` matches (one commit on the server)."""
        answer = self.client.request("POST", f"{self._base}/documents/delete",
                                     {"filter": filter})
        return WriteStats(deleted=answer["deleted"])

    def set_metadata(self, updates: Mapping[str, Mapping[str, Any]], *,
                     replace: bool = False) -> WriteStats:
        """New metadata for documents by id, merged (or ``replace``: instead); nothing is
        encoded again. Unknown ids are reported in ``missing``."""
        body = {"documents": [{"id": str(i), "metadata": dict(m)} for i, m in updates.items()],
                "replace": replace}
        answer = self.client.request("PATCH", f"{self._base}/documents", body)
        return WriteStats(replaced=answer["replaced"], missing=list(answer["missing"]))

    def compact(self) -> WriteStats:
        return WriteStats(deleted=self.client.request("POST", f"{self._base}/compact")["deleted"])

    # -- reads ----------------------------------------------------------------------------------
    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]:
        """The documents for ``ids`` (``None`` for unknown ids)."""
        wanted = [str(i) for i in np.asarray(ids, dtype=object).ravel()]
        answer = self.client.request("POST", f"{self._base}/documents/get", {"ids": wanted})
        return [None if d is None else document_from_dict(d) for d in answer["documents"]]

    def scroll(self, filter: Filter = None, *, limit: int = 100,
               cursor: str | None = None) -> Page:
        """A page of documents in id order (``filter``'s matches), after ``cursor``."""
        answer = self.client.request("POST", f"{self._base}/documents/scroll",
                                     {"filter": filter, "limit": limit, "cursor": cursor})
        return Page(documents=[document_from_dict(d) for d in answer["documents"]],
                    cursor=answer["cursor"])

    @property
    def has_lexical(self) -> bool:
        """Whether the collection keeps a lexical index (lexical and hybrid search)."""
        return bool(self._info.get("lexical", False))

    def search(self, queries: str | Sequence[str], k: int = 10, *, filter: Filter = None,
               mode: str = "dense", fusion: Any = None, min_relevance: float | None = None,
               oversample: int | Sequence[int] | None = None,
               effort: int | None = None, partial: bool | None = None) -> SearchResult:
        """Top ``k`` documents for each query text, as :meth:`tiervec.Collection.search`
        (``fusion``: a :class:`~tiervec.search.FusionConfig` or a dict of its fields;
        ``partial``: a sharded collection answers from the shards that are up, the result's
        ``shards`` naming those that are not)."""
        key = "query" if isinstance(queries, str) else "queries"
        body: dict[str, Any] = {key: queries if isinstance(queries, str) else list(queries),
                                "mode": str(mode)}
        if fusion is not None:
            body["fusion"] = fusion.to_dict() if hasattr(fusion, "to_dict") else dict(fusion)
        return self._search(body, k, filter, oversample, min_relevance, effort, partial)

    def search_vectors(self, vectors: Any, k: int = 10, *, filter: Filter = None,
                       min_relevance: float | None = None,
                       oversample: int | Sequence[int] | None = None,
                       effort: int | None = None, partial: bool | None = None) -> SearchResult:
        """Top ``k`` documents for each query vector ``(n, dim)`` (or one ``(dim,)``)."""
        return self._search({"vectors": encode_vectors(as_vectors(vectors, self.dim))}, k,
                            filter, oversample, min_relevance, effort, partial)

    def _search(self, body: dict[str, Any], k: int, filter: Filter,
                oversample: int | Sequence[int] | None,
                min_relevance: float | None = None, effort: int | None = None,
                partial: bool | None = None) -> SearchResult:
        body.update(k=k, filter=filter, include_documents=False)
        if min_relevance is not None:
            body["min_relevance"] = min_relevance
        if partial is not None:
            body["partial"] = partial
        body.update(_settings(oversample, effort))
        answer = self.client.request("POST", f"{self._base}/search", body)
        rows = answer["results"]
        ids = np.full((len(rows), k), "", dtype=object)
        scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
        spans = np.full((len(rows), k, 2), -1, dtype=np.int64)
        for i, hits in enumerate(rows):
            ids[i, :len(hits)] = [h["id"] for h in hits]
            scores[i, :len(hits)] = [h["score"] for h in hits]
            for j, hit in enumerate(hits):
                if "span" in hit:
                    spans[i, j] = hit["span"]
        chunked = self._info.get("chunking") is not None
        shards = answer.get("shards")
        report = None if shards is None else ShardReport(answered=tuple(shards["answered"]),
                                                         failed=dict(shards["failed"]))
        return SearchResult(ids=ids, scores=scores, spans=spans if chunked else None,
                            shards=report)

    def count(self, filter: Filter = None) -> int:
        return int(self.client.request("POST", f"{self._base}/count", {"filter": filter})["count"])

    def explain(self, filter: Filter = None, options: SearchOptions | None = None) -> FilterPlan:
        body = {"filter": filter, **_settings(options.oversample if options else None,
                                              options.effort if options else None)}
        answer = self.client.request("POST", f"{self._base}/explain", body)
        return FilterPlan(matches=answer["matches"], share=answer["share"],
                          strategy=FilterStrategy(answer["strategy"]), recall=answer["recall"],
                          oversample=answer["oversample"], effort=answer["effort"])

    def stats(self) -> CollectionStats:
        answer = dict(self.client.request("GET", f"{self._base}/stats"))
        answer.pop("deleted_share", None)
        answer["tiers"] = tuple(TierStats(**t) for t in answer["tiers"])
        return CollectionStats(**answer)

    def last_plan(self) -> dict[str, Any] | None:
        """The results of the last ``tiervec plan`` on the collection, or ``None``."""
        try:
            return dict(self.client.request("GET", f"{self._base}/plan"))
        except errors.PlanNotFound:
            return None


def _settings(oversample: int | Sequence[int] | None, effort: int | None) -> dict[str, Any]:
    """A request's oversampling and ANN effort (where given) as the HTTP API takes them."""
    out: dict[str, Any] = {}
    if oversample is not None:
        out["oversample"] = oversample if isinstance(oversample, int) else list(oversample)
    if effort is not None:
        out["effort"] = effort
    return out
