"""The HTTP API's calls without the I/O: each call of a served collection is a generator that
yields its requests (``(method, path, body)``), is sent each answer (or thrown its error) and
returns the result. :mod:`tiervec.client` runs them with httpx, blocking
(:class:`~tiervec.client.Client`) or with ``await`` (:class:`~tiervec.client.AsyncClient`), so
the two clients share every request and every parse."""

from __future__ import annotations

import copy
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np

from tiervec import errors
from tiervec._validate import as_documents, as_vectors
from tiervec.corpus import Document
from tiervec.filters import Field, Filter
from tiervec.search import (
    Chain,
    CollectionStats,
    FilterPlan,
    FilterStrategy,
    FusionConfig,
    Page,
    Query,
    SearchOptions,
    SearchResult,
    ShardReport,
    TierStats,
)
from tiervec.store.fields import fields_from_manifest
from tiervec.store.writes import WriteStats
from tiervec.wire import decode_vectors, document_from_dict, encode_vectors

#: A request: method, path, JSON body.
Call = tuple[str, str, Any]
T = TypeVar("T")
#: A call: yields requests, is sent their answers, returns a ``T``.
Op = Generator[Call, Any, T]


def quoted(part: str) -> str:
    return quote(str(part), safe="")


def error_of(status: int, url: str, body: Any, text: str) -> errors.TiervecError:
    """The :mod:`tiervec.errors` class the server named (with its message), else a
    :class:`~tiervec.errors.ServerError` / :class:`~tiervec.errors.InvalidRequest`."""
    try:
        error = body["error"]
        code, message = str(error["code"]), str(error["message"])
    except (KeyError, TypeError):
        return errors.ServerError(f"HTTP {status} from {url}: {text[:200]}")
    cls = getattr(errors, code, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.TiervecError)):
        cls = errors.ServerError if status >= 500 else errors.InvalidRequest
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    if isinstance(exc, errors.FilterSyntaxError):
        exc.text, exc.position = error.get("text") or "", int(error.get("position") or 0)
    return exc


def unreachable(url: str, exc: BaseException) -> errors.ServerUnavailable:
    return errors.ServerUnavailable(
        f"cannot reach the tiervec server at {url} ({exc}); start it with "
        "`tiervec serve DATA_DIR` or check the address")


class ClientBase:
    """What a client's calls need of it: the collection object its answers become."""

    def _collection(self, name: str, info: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class ClientOps(ClientBase):
    """The server's calls on collections (list, create, open, delete); the clients take
    these functions, not the class (each wraps them blocking or awaited)."""

    def list(self) -> Op[list[dict[str, Any]]]:
        """Every served collection: name, documents, dim, model, chain, fields."""
        return list((yield ("GET", "/v1/collections", None))["collections"])

    def create(self, name: str, *, model: str | None = "all-MiniLM-L6-v2",
               dim: int | None = None, tiers: str | None = None,
               fields: Mapping[str, str] | None = None,
               indexes: Sequence[str] = (), lexical: bool | None = None,
               chunking: str | Mapping[str, Any] | None = None,
               multivector: bool | Mapping[str, Any] | None = None,
               recall_target: float | None = 0.95) -> Op[Any]:
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
        return self._collection(name, (yield ("POST", "/v1/collections", body)))

    def open(self, name: str) -> Op[Any]:
        """A served collection by name (:class:`~tiervec.errors.CollectionNotFound` if none)."""
        return self._collection(name, (yield ("GET", f"/v1/collections/{quoted(name)}", None)))

    def delete(self, name: str) -> Op[None]:
        """Delete a collection and its files on the server."""
        yield ("DELETE", f"/v1/collections/{quoted(name)}", None)


class RemoteBase:
    """A served collection's name and settings, as the server described it."""

    name: str
    _info: dict[str, Any]

    @property
    def _base(self) -> str:
        return f"/v1/collections/{quoted(self.name)}"

    @property
    def dim(self) -> int:
        return int(self._info["dim"])

    @property
    def model(self) -> str | None:
        return self._info["model"]

    #: a view's chain (:meth:`with_tiers`): searches, explains and stats go through it
    _tiers: str | None = None

    @property
    def chain(self) -> Chain:
        return Chain.parse(self._tiers or self._info["chain"])

    @property
    def fields(self) -> dict[str, Field]:
        """The metadata fields filters can use (name -> type, indexed)."""
        return fields_from_manifest(self._info.get("fields", {}))

    @property
    def fusion(self) -> FusionConfig:
        """The fusion a hybrid search uses unless told otherwise."""
        return FusionConfig.from_dict(self._info["fusion"]) if self._info.get("fusion") \
            else FusionConfig()

    def with_tiers(self, tiers: str | Chain) -> Any:
        """The same collection searched through another chain (the server makes its codes in
        memory from the stored vectors and keeps them until the next write)."""
        view = copy.copy(self)
        view._tiers = str(Chain.parse(tiers))
        return view

    def close(self) -> None:
        """Nothing to release (the client holds the connection)."""

    @property
    def has_lexical(self) -> bool:
        """Whether the collection keeps a lexical index (lexical and hybrid search)."""
        return bool(self._info.get("lexical", False))



class CollectionOps(RemoteBase):
    """A served collection's calls, with the local collection's methods and result types;
    the clients' collections take these functions, not the class."""

    # -- writes ---------------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
            batch_size: int = 2_000) -> Op[int]:
        """Add new documents; returns how many were added. Sent ``batch_size`` documents per
        request, each request committed atomically (a duplicate id fails its request)."""
        stats = yield from CollectionOps._write(self, "POST", documents, vectors, batch_size)
        return sum(s.added for s in stats)

    def upsert(self, documents: Iterable[Document | Mapping[str, Any]], *, vectors: Any = None,
               batch_size: int = 2_000) -> Op[WriteStats]:
        """Add documents, replacing those whose id is there (each request atomically)."""
        stats = yield from CollectionOps._write(self, "PUT", documents, vectors, batch_size)
        return WriteStats(added=sum(s.added for s in stats),
                          replaced=sum(s.replaced for s in stats))

    def _write(self, method: str, documents: Iterable[Document | Mapping[str, Any]],
               vectors: Any, batch_size: int) -> Op[list[WriteStats]]:
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
            answer = yield (method, f"{self._base}/documents", body)
            out.append(WriteStats(added=answer.get("added", 0),
                                  replaced=answer.get("replaced", 0)))
        yield from CollectionOps._reread(self, (d.metadata for d in docs))
        return out

    def _reread(self, written: Iterable[Mapping[str, Any]]) -> Op[None]:
        """The collection's description again when the metadata ``written`` named a field it
        did not list (the server typed it on first sight); nothing otherwise."""
        known = self._info.get("fields", {})
        if any(name not in known for metadata in written for name in metadata):
            self._info = dict((yield ("GET", self._base, None)))

    def delete(self, ids: Iterable[str] | str) -> Op[WriteStats]:
        """Delete documents by id; unknown ids are reported in ``missing``."""
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        if not ids:
            return WriteStats()
        answer = yield ("POST", f"{self._base}/documents/delete", {"ids": ids})
        return WriteStats(deleted=answer["deleted"], missing=list(answer["missing"]))

    def delete_where(self, filter: Filter) -> Op[WriteStats]:
        """Delete every document ``filter`` matches (one commit on the server)."""
        answer = yield ("POST", f"{self._base}/documents/delete", {"filter": filter})
        return WriteStats(deleted=answer["deleted"])

    def set_metadata(self, updates: Mapping[str, Mapping[str, Any]], *,
                     replace: bool = False) -> Op[WriteStats]:
        """New metadata for documents by id, merged (or ``replace``: instead); nothing is
        encoded again. Unknown ids are reported in ``missing``."""
        body = {"documents": [{"id": str(i), "metadata": dict(m)} for i, m in updates.items()],
                "replace": replace}
        answer = yield ("PATCH", f"{self._base}/documents", body)
        yield from CollectionOps._reread(self, updates.values())
        return WriteStats(replaced=answer["replaced"], missing=list(answer["missing"]))

    def compact(self, *, vacuum: bool = True) -> Op[WriteStats]:
        """Reclaim the space of deleted and replaced documents (``vacuum``: the database's
        too)."""
        path = f"{self._base}/compact" + ("" if vacuum else "?vacuum=false")
        return WriteStats(deleted=(yield ("POST", path, None))["deleted"])

    def upgrade(self, model: str | None = None, *, sample: int = 5_000,
                direction: str = "auto", kind: str = "procrustes", backfill: bool = True,
                cpu_share: float = 0.5) -> Op[dict[str, Any]]:
        """Start moving the served collection to ``model`` (``None``: go on with the backfill
        under way). The work runs on the server, in the background: this returns once it
        started (a bad request raises here); :meth:`upgrade_state` tells where it stands."""
        body = {"sample": sample, "direction": direction, "kind": kind, "backfill": backfill,
                "cpu_share": cpu_share, **({} if model is None else {"model": model})}
        return (yield ("POST", f"{self._base}/upgrade", body))

    def upgrade_state(self) -> Op[dict[str, Any]]:
        """``running``, the ``error`` that stopped it if any, the ``upgrade`` under way
        (``None``: none) and the collection's ``model``."""
        return (yield ("GET", f"{self._base}/upgrade", None))

    # -- reads ----------------------------------------------------------------------------------
    def get(self, ids: Sequence[str] | np.ndarray) -> Op[list[Document | None]]:
        """The documents for ``ids`` (``None`` for unknown ids)."""
        wanted = [str(i) for i in np.asarray(ids, dtype=object).ravel()]
        answer = yield ("POST", f"{self._base}/documents/get", {"ids": wanted})
        return [None if d is None else document_from_dict(d) for d in answer["documents"]]

    def scroll(self, filter: Filter = None, *, limit: int = 100,
               cursor: str | None = None) -> Op[Page]:
        """A page of documents in id order (``filter``'s matches), after ``cursor``."""
        answer = yield ("POST", f"{self._base}/documents/scroll",
                        {"filter": filter, "limit": limit, "cursor": cursor})
        return Page(documents=[document_from_dict(d) for d in answer["documents"]],
                    cursor=answer["cursor"])

    def search(self, queries: str | Sequence[str], k: int = 10, *, filter: Filter = None,
               mode: str = "dense", fusion: Any = None, min_relevance: float | None = None,
               oversample: int | Sequence[int] | None = None,
               effort: int | None = None, partial: bool | None = None,
               ) -> Op[SearchResult]:
        """Top ``k`` documents for each query text, as :meth:`tiervec.Collection.search`
        (``fusion``: a :class:`~tiervec.search.FusionConfig` or a dict of its fields;
        ``partial``: a sharded collection answers from the shards that are up, the result's
        ``shards`` naming those that are not)."""
        key = "query" if isinstance(queries, str) else "queries"
        body: dict[str, Any] = {key: queries if isinstance(queries, str) else list(queries),
                                "mode": str(mode)}
        if fusion is not None:
            body["fusion"] = fusion.to_dict() if hasattr(fusion, "to_dict") else dict(fusion)
        return (yield from CollectionOps._search(self, body, k, filter, oversample,
                                                 min_relevance, effort, partial))

    def search_vectors(self, vectors: Any, k: int = 10, *, filter: Filter = None,
                       min_relevance: float | None = None,
                       oversample: int | Sequence[int] | None = None,
                       effort: int | None = None, partial: bool | None = None,
               ) -> Op[SearchResult]:
        """Top ``k`` documents for each query vector ``(n, dim)`` (or one ``(dim,)``)."""
        return (yield from CollectionOps._search(
            self, {"vectors": encode_vectors(as_vectors(vectors, self.dim))}, k, filter, oversample,
            min_relevance, effort, partial))

    def _search(self, body: dict[str, Any], k: int, filter: Filter,
                oversample: int | Sequence[int] | None, min_relevance: float | None,
                effort: int | None, partial: bool | None) -> Op[SearchResult]:
        body.update(k=k, filter=filter, include_documents=False)
        if min_relevance is not None:
            body["min_relevance"] = min_relevance
        if partial is not None:
            body["partial"] = partial
        if self._tiers is not None:
            body["tiers"] = self._tiers
        body.update(settings(oversample, effort))
        answer = yield ("POST", f"{self._base}/search", body)
        return CollectionOps._result(self, answer, k)

    def run(self, query: Query) -> Op[SearchResult]:
        """Search with a :class:`~tiervec.search.Query` (texts and/or vectors, every option),
        as :meth:`tiervec.Collection.run`."""
        body: dict[str, Any] = {"mode": query.mode.value}
        if query.texts is not None:
            body["queries"] = list(query.texts)
        if query.vectors is not None:
            body["vectors"] = encode_vectors(as_vectors(query.vectors, self.dim))
        options = query.options
        if options.fusion is not None:
            body["fusion"] = FusionConfig.from_dict(options.fusion).to_dict()
        for name in ("aggregate", "candidates"):
            if getattr(options, name) is not None:
                body[name] = getattr(options, name)
        return (yield from CollectionOps._search(
            self, body, query.k, query.filter, options.oversample, query.min_relevance,
            options.effort, options.partial))

    def encode_queries(self, texts: Sequence[str]) -> Op[np.ndarray]:
        """Query vectors ``(n, dim)`` from the collection's model, encoded by the server."""
        answer = yield ("POST", f"{self._base}/encode", {"texts": list(texts)})
        return decode_vectors(answer["vectors"], self.dim)

    def missing(self, ids: Sequence[str]) -> Op[list[str]]:
        """The ids among ``ids`` the collection does not hold."""
        wanted = [str(i) for i in ids]
        found = yield from CollectionOps.get(self, wanted)
        return [i for i, d in zip(wanted, found, strict=True) if d is None]

    def sample_ids(self, n: int, seed: int = 0) -> Op[list[str]]:
        """Ids of ``n`` live documents drawn at random (seeded)."""
        answer = yield ("POST", f"{self._base}/sample", {"n": n, "seed": seed})
        return [str(i) for i in answer["ids"]]

    def _result(self, answer: Mapping[str, Any], k: int) -> SearchResult:
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

    def count(self, filter: Filter = None) -> Op[int]:
        return int((yield ("POST", f"{self._base}/count", {"filter": filter}))["count"])

    def explain(self, filter: Filter = None,
                options: SearchOptions | None = None) -> Op[FilterPlan]:
        body = {"filter": filter, **settings(options.oversample if options else None,
                                             options.effort if options else None)}
        if self._tiers is not None:
            body["tiers"] = self._tiers
        answer = yield ("POST", f"{self._base}/explain", body)
        return FilterPlan(matches=answer["matches"], share=answer["share"],
                          strategy=FilterStrategy(answer["strategy"]), recall=answer["recall"],
                          oversample=answer["oversample"], effort=answer["effort"])

    def stats(self, chain: Chain | str | None = None) -> Op[CollectionStats]:
        """What the collection holds and what its tiers cost (of ``chain``, or the view's)."""
        tiers = str(Chain.parse(chain)) if chain is not None else self._tiers
        path = f"{self._base}/stats" + ("" if tiers is None else f"?tiers={quoted(tiers)}")
        answer = dict((yield ("GET", path, None)))
        answer.pop("deleted_share", None)
        answer["tiers"] = tuple(TierStats(**t) for t in answer["tiers"])
        return CollectionStats(**answer)

    def last_plan(self) -> Op[dict[str, Any] | None]:
        """The results of the last ``tiervec plan`` on the collection, or ``None``."""
        try:
            return dict((yield ("GET", f"{self._base}/plan", None)))
        except errors.PlanNotFound:
            return None


def settings(oversample: int | Sequence[int] | None, effort: int | None) -> dict[str, Any]:
    """A request's oversampling and ANN effort (where given) as the HTTP API takes them."""
    out: dict[str, Any] = {}
    if oversample is not None:
        out["oversample"] = oversample if isinstance(oversample, int) else list(oversample)
    if effort is not None:
        out["effort"] = effort
    return out
