"""The one result type every search returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class ShardReport:
    """Which shards of a sharded collection answered a search (``failed``: shard name -> why
    not). Only a search that allowed partial results can have ``failed`` shards."""

    answered: tuple[str, ...]
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.failed)


@dataclass(frozen=True)
class Page:
    """One page of a collection's documents in id order (:meth:`Collection.scroll`), and the
    cursor of the next (``None`` after the last page)."""

    documents: list[Any]
    cursor: str | None


class _Top(NamedTuple):
    ids: np.ndarray
    scores: np.ndarray


class SearchResult(_Top):
    """Top-``k`` results of ``n_queries`` queries, best first; unpacks as ``ids, scores``.

    - ``ids``: ``(n_queries, k)`` object array of document ids (``""`` where fewer than ``k``
      documents exist).
    - ``scores``: ``(n_queries, k)`` float32 scores of the chain's last tier (``-inf`` padding);
      for a float32 last tier ``scores[i, j] = <q_i, d_j>``.
    - ``spans``: a chunked collection's evidence, ``(n_queries, k, 2)`` int64: the character
      range ``[start, end)`` in each document's text of its best chunk (``-1`` where there is
      none: padding, or a document found by BM25 alone); ``None`` for other collections.
    - ``shards``: a sharded collection's :class:`ShardReport` (which shards answered);
      ``None`` for other collections.
    """

    spans: np.ndarray | None
    shards: ShardReport | None

    def __new__(cls, ids: np.ndarray, scores: np.ndarray, spans: np.ndarray | None = None,
                shards: ShardReport | None = None) -> SearchResult:
        self = super().__new__(cls, ids, scores)
        self.spans = spans
        self.shards = shards
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickling keeps the spans
        return self.ids, self.scores, self.spans, self.shards

    def to_arrow(self) -> Any:
        """The hits as a ``pyarrow.Table`` (``tiervec[parquet]``), one row per hit: ``query``
        (its index in the batch), ``rank`` (from 0), ``id``, ``score``, and for a chunked
        collection ``span_start`` / ``span_end``; padding left out."""
        from tiervec._extras import require

        pa = require("pyarrow")
        query, rank = np.nonzero(self.ids != "")
        columns: dict[str, Any] = {
            "query": pa.array(query.astype(np.int32)), "rank": pa.array(rank.astype(np.int32)),
            "id": pa.array(self.ids[query, rank].astype(str)),
            "score": pa.array(np.asarray(self.scores, np.float32)[query, rank])}
        if self.spans is not None:
            columns["span_start"] = pa.array(self.spans[query, rank, 0])
            columns["span_end"] = pa.array(self.spans[query, rank, 1])
        return pa.table(columns)

    def to_pandas(self) -> Any:
        """:meth:`to_arrow` as a ``pandas.DataFrame`` (``tiervec[parquet]``)."""
        from tiervec._extras import require

        require("pandas")
        return self.to_arrow().to_pandas()
