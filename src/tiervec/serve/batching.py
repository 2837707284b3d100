"""Concurrent searches coalesced into batches: tiervec's kernels answer many queries in one
call far faster than one at a time.

Searches that arrive while a batch runs wait for the next one (no timer: a lone search starts
at once). In a batch, every query text is encoded in one encoder call, and the queries that
share ``k``, filter and options are searched in one kernel call. A query that fails is
searched again alone, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from tiervec.search import Query, Searchable, SearchResult

log = logging.getLogger(__name__)

Outcome = SearchResult | Exception
#: What to make of a result, in the search's thread (e.g. fetch the hits' documents).
Finish = Callable[[SearchResult], Any]


def _identity(result: SearchResult) -> Any:
    return result


class SearchBatcher:
    """Runs a collection's searches off the event loop, batched when ``enabled``."""

    def __init__(self, searchable: Searchable, *, enabled: bool = True,
                 max_batch: int = 256, threads: int = 8) -> None:
        self.searchable = searchable
        self.enabled = enabled
        self.max_batch = max_batch
        # batches run one at a time, on a thread of their own (a lighter hop than a shared
        # pool); without batching, searches run side by side
        self._threads = ThreadPoolExecutor(1 if enabled else threads,
                                           thread_name_prefix="tiervec-search")
        self._pending: list[tuple[Query, Finish, asyncio.Future[Any]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        #: Batches run and queries they held (what the batching bought, for stats).
        self.batches = 0
        self.queries = 0

    async def search(self, query: Query, finish: Finish = _identity) -> Any:
        """``finish(result)`` of ``query``'s result, both run off the event loop."""
        loop = asyncio.get_running_loop()
        if not self.enabled:
            return await loop.run_in_executor(
                self._threads, lambda: finish(self.searchable.run(query)))
        if not self._draining:  # idle: search now, in this request's task (no hand-over)
            self._draining = True
            try:
                (outcome,) = await loop.run_in_executor(
                    self._threads, _run_and_finish, self.searchable, [(query, finish)])
            finally:
                self.batches += 1
                self.queries += 1
                self._draining = False
                if self._pending:  # searches that came meanwhile: the next batch
                    self._draining = True
                    self._task = loop.create_task(self._drain())
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((query, finish, future))
        return await future

    def close(self) -> None:
        """Stop the search thread (searches in flight finish first)."""
        self._threads.shutdown(wait=True)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        self._threads, _run_and_finish, self.searchable,
                        [(q, f) for q, f, _ in batch])
                except Exception as exc:  # run_batch catches per query; this is a bug
                    log.exception("a search batch failed")
                    outcomes = [exc] * len(batch)
                self.batches += 1
                self.queries += len(batch)
                for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # the client went away
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining = False
            self._task = None


def _run_and_finish(searchable: Searchable, items: list[tuple[Query, Finish]]) -> list[Any]:
    outcomes: list[Any] = run_batch(searchable, [q for q, _ in items])
    for i, ((_, finish), outcome) in enumerate(zip(items, outcomes, strict=True)):
        if not isinstance(outcome, Exception):
            try:
                outcomes[i] = finish(outcome)
            except Exception as exc:
                outcomes[i] = exc
    return outcomes


def run_batch(searchable: Searchable, queries: list[Query]) -> list[Outcome]:
    """Each query's result or error: texts encoded together, like queries searched together."""
    outcomes: list[Outcome | None] = [None] * len(queries)
    queries = list(queries)
    _encode_texts(searchable, queries, outcomes)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, query in enumerate(queries):
        if outcomes[i] is None:
            groups[_key(query)].append(i)
    for members in groups.values():
        _search_group(searchable, [queries[i] for i in members], members, outcomes)
    return [o if o is not None else RuntimeError("query not searched") for o in outcomes]


def _encode_texts(searchable: Searchable, queries: list[Query],
                  outcomes: list[Outcome | None]) -> None:
    todo = [i for i, q in enumerate(queries) if q.vectors is None and q.mode.needs_vectors]
    if not todo:
        return
    texts = [t for i in todo for t in queries[i].texts or ()]
    try:
        vectors = searchable.encode_queries(texts)
    except Exception as exc:
        for i in todo:
            outcomes[i] = exc
        return
    start = 0
    for i in todo:
        n = len(queries[i].texts or ())
        queries[i] = queries[i].with_vectors(vectors[start:start + n])
        start += n


def _key(query: Query) -> Hashable:
    filt = query.filter
    if filt is not None and not isinstance(filt, str):
        filt = json.dumps(filt, sort_keys=True, default=str)
    return (query.k, filt, query.mode, query.options, query.min_relevance)


def _search_group(searchable: Searchable, group: list[Query], members: list[int],
                  outcomes: list[Outcome | None]) -> None:
    if len(group) > 1:
        first = group[0]
        stacked = None if first.vectors is None else np.concatenate([q.dense for q in group])
        texts = None if first.texts is None or any(q.texts is None for q in group) else \
            tuple(t for q in group for t in q.texts or ())
        try:
            result = searchable.run(replace(first, vectors=stacked, texts=texts))
        except Exception:
            pass  # search each alone: the error belongs to one of them, or to all
        else:
            start = 0
            for i, q in zip(members, group, strict=True):
                n = len(q)
                outcomes[i] = SearchResult(
                    result.ids[start:start + n], result.scores[start:start + n],
                    None if result.spans is None else result.spans[start:start + n],
                    result.shards)
                start += n
            return
    for i, q in zip(members, group, strict=True):
        try:
            outcomes[i] = searchable.run(q)
        except Exception as exc:
            outcomes[i] = exc
