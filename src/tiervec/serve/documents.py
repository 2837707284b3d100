"""Search responses written from documents kept serialised in memory.

Fetching a hit's title, text and metadata from SQLite and encoding them as JSON costs more
than the search itself on small collections. The server keeps the JSON of recently returned
documents (a bounded LRU cache, in bytes) and writes a response by joining them with the
scores. Every write to the collection goes through the server, which drops the written ids
from the cache once committed; a generation counter keeps a read that raced a write from
caching what it read.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from tiervec.search import Searchable, SearchResult, ShardReport

#: Default memory for serialised documents, per collection.
CACHE_BYTES = 64 * 1024 * 1024


class DocumentCache:
    """``id -> b'"id":...,"title":...,"text":...,"metadata":{...}'`` for one collection."""

    def __init__(self, searchable: Searchable, max_bytes: int = CACHE_BYTES) -> None:
        self.searchable = searchable
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._generation = 0
        self._lock = threading.Lock()

    def fragments(self, ids: Sequence[str]) -> list[bytes | None]:
        """The serialised documents of ``ids`` (``None`` for unknown ids)."""
        with self._lock:
            found = [self._entries.get(i) for i in ids]
            for i, frag in zip(ids, found, strict=True):
                if frag is not None:
                    self._entries.move_to_end(i)
            generation = self._generation
        missing = [i for i, frag in zip(ids, found, strict=True) if frag is None]
        if not missing:
            return found
        docs = dict(zip(missing, self.searchable.get(missing), strict=True))
        fresh = {}
        for doc_id, doc in docs.items():
            if doc is not None:
                fresh[doc_id] = json.dumps(
                    {"id": doc.id, "title": doc.title, "text": doc.text,
                     "metadata": dict(doc.metadata)}, ensure_ascii=False,
                    separators=(",", ":"), default=str)[1:-1].encode("utf-8")
        with self._lock:
            if generation == self._generation:  # no write since the read began
                for doc_id, frag in fresh.items():
                    self._put(doc_id, frag)
        return [f if f is not None else fresh.get(i) for i, f in zip(ids, found, strict=True)]

    def forget(self, ids: Iterable[str] | None = None) -> None:
        """Drop ``ids`` (all with ``None``) after a write that changed them."""
        with self._lock:
            self._generation += 1
            if ids is None:
                self._entries.clear()
                self._bytes = 0
                return
            for doc_id in ids:
                frag = self._entries.pop(doc_id, None)
                if frag is not None:
                    self._bytes -= len(frag)

    def _put(self, doc_id: str, frag: bytes) -> None:
        old = self._entries.pop(doc_id, None)
        if old is not None:
            self._bytes -= len(old)
        if len(frag) > self.max_bytes:
            return
        self._entries[doc_id] = frag
        self._bytes += len(frag)
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)


def results_json(result: SearchResult, cache: DocumentCache | None) -> bytes:
    """The JSON of ``result`` as the search response's ``results``: a list per query of hits,
    each its id and score, and with ``cache`` its title, text and metadata."""
    rows = []
    for q, (ids, scores) in enumerate(zip(result.ids, result.scores, strict=True)):
        # a score overflowing float32 (unnormalised vectors) is not JSON: such hits are dropped
        keep = [(str(i), float(s), _span(result, q, j))
                for j, (i, s) in enumerate(zip(ids, scores, strict=True))
                if i != "" and math.isfinite(s)]
        if cache is None:
            hits = [b'{"id":%s,"score":%s%s}' % (json.dumps(i).encode(), repr(s).encode(), span)
                    for i, s, span in keep]
        else:
            frags = cache.fragments([i for i, _, _ in keep])
            hits = [b'{"score":%s%s,%s}' % (repr(s).encode(), span, frag) if frag is not None
                    else b'{"id":%s,"score":%s%s,"title":"","text":"","metadata":{}}' % (
                        json.dumps(i).encode(), repr(s).encode(), span)
                    for (i, s, span), frag in zip(keep, frags, strict=True)]
        rows.append(b"[" + b",".join(hits) + b"]")
    return b"[" + b",".join(rows) + b"]"


def shards_json(report: ShardReport | None) -> bytes:
    """``,"shards":{...}`` of a sharded collection's search: the shards that answered and,
    with partial results, why the others did not (else nothing)."""
    if report is None:
        return b""
    return b',"shards":' + json.dumps({"answered": list(report.answered),
                                        "failed": report.failed}).encode()


def _span(result: SearchResult, query: int, rank: int) -> bytes:
    """``,"span":[start,end]`` of a chunked collection's hit (else nothing)."""
    if result.spans is None or result.spans[query, rank, 0] < 0:
        return b""
    start, end = result.spans[query, rank]
    return b',"span":[%d,%d]' % (start, end)
