"""Merging the shards' answers: a global top-k, a hybrid search's two lists fused, the
relevance cut-off, stats summed over shards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tiervec.search import CollectionStats, FusionConfig, SearchResult, ShardReport
from tiervec.search.cutoff import RelevanceModel, cut
from tiervec.search.hybrid import make_fusion
from tiervec.search.searchable import TierStats
from tiervec.search.stages import Candidates


def merge_top(results: Sequence[SearchResult], k: int, report: ShardReport) -> SearchResult:
    """The best ``k`` of each query over the shards' top lists (ties: the earlier shard's
    first), padded with ``""`` / ``-inf`` like a single collection's result."""
    n = len(results[0].ids) if results else 0
    if not results:
        return SearchResult(ids=np.full((n, k), "", dtype=object),
                            scores=np.full((n, k), -np.inf, np.float32), shards=report)
    ids = np.concatenate([r.ids for r in results], axis=1)
    scores = np.concatenate([np.asarray(r.scores, np.float32) for r in results], axis=1)
    spans = None
    if results[0].spans is not None:
        spans = np.concatenate([r.spans for r in results if r.spans is not None], axis=1)
    if ids.shape[1] < k:  # fewer than k candidates over all shards: pad
        pad = k - ids.shape[1]
        ids = np.concatenate([ids, np.full((n, pad), "", dtype=object)], axis=1)
        scores = np.concatenate([scores, np.full((n, pad), -np.inf, np.float32)], axis=1)
        if spans is not None:
            spans = np.concatenate([spans, np.full((n, pad, 2), -1, spans.dtype)], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis
    return SearchResult(
        ids=top(ids, order, axis=1), scores=top(scores, order, axis=1),
        spans=None if spans is None else np.take_along_axis(spans, order[:, :, None], axis=1),
        shards=report)


def sum_stats(stats: Sequence[CollectionStats],
              report: ShardReport | None = None) -> CollectionStats:
    """One collection's stats from its shards' (same chain and dimension; ``report``: which
    shards answered, kept as each shard's state)."""
    first = stats[0]
    tiers = tuple(
        TierStats(spec=t.spec, location=t.location, bytes_per_vector=t.bytes_per_vector,
                  ram_bytes=sum(s.tiers[i].ram_bytes for s in stats),
                  disk_bytes=sum(s.tiers[i].disk_bytes for s in stats))
        for i, t in enumerate(first.tiers))
    return CollectionStats(
        documents=sum(s.documents for s in stats), rows=sum(s.rows for s in stats),
        deleted=sum(s.deleted for s in stats), segments=sum(s.segments for s in stats),
        dim=first.dim, model=first.model, chain=first.chain, tiers=tiers,
        ram_bytes=sum(s.ram_bytes for s in stats), disk_bytes=sum(s.disk_bytes for s in stats),
        ram_bytes_per_vector=first.ram_bytes_per_vector,
        full_precision=all(s.full_precision for s in stats),
        recall=_worst_recall([s.recall for s in stats]),
        shards=None if report is None else {**dict.fromkeys(report.answered),
                                            **report.failed})


def _worst_recall(recalls: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The shard measurement with the lowest recall (an unmeasured shard's, if any)."""
    measured = [r for r in recalls if r is not None]
    if not recalls or len(measured) < len(recalls):
        return None
    return min(measured, key=lambda r: -1.0 if r.get("recall") is None else r["recall"])


def allocate(n: int, sizes: Sequence[int]) -> list[int]:
    """``n`` split over parts of ``sizes`` in proportion (largest remainders; none above a
    part's size)."""
    total = sum(sizes)
    n = min(n, total)
    if not total:
        return [0] * len(sizes)
    exact = [n * s / total for s in sizes]
    out = [int(e) for e in exact]
    for i in sorted(range(len(sizes)), key=lambda i: exact[i] - out[i], reverse=True):
        if sum(out) >= n:
            break
        if out[i] < sizes[i]:
            out[i] += 1
    return out


def fuse_top(lists: Sequence[SearchResult], fusion: FusionConfig, k: int,
             report: ShardReport) -> SearchResult:
    """A hybrid search's merged ``[dense, lexical]`` lists fused as one collection fuses its
    own (``fusion``'s method and weights), top ``k``; ties go to the smaller id, where one
    collection's go to the earlier stored. A result keeps the evidence span of its dense hit
    (none when BM25 alone found it, as on one collection)."""
    found = [r.ids[r.ids != ""].astype(str) for r in lists]
    names = np.unique(np.concatenate(found)) if found else np.empty(0, str)
    candidates = []
    for result, valid in zip(lists, found, strict=True):
        rows = np.full(result.ids.shape, -1, np.int64)
        rows[result.ids != ""] = np.searchsorted(names, valid)
        candidates.append(Candidates(np.asarray(result.scores, np.float32), rows))
    fused = make_fusion(fusion).fuse(candidates, k).padded(k)
    ids = np.full(fused.rows.shape, "", dtype=object)
    ids[fused.rows >= 0] = names[fused.rows[fused.rows >= 0]]
    spans, dense = None, lists[0]
    if dense.spans is not None:  # a chunked collection: the dense hit's best chunk
        spans = np.full((*ids.shape, 2), -1, np.int64)
        for q in range(len(ids)):
            where = dict(zip(dense.ids[q], dense.spans[q], strict=True))
            for c, name in enumerate(ids[q]):
                if name in where:
                    spans[q, c] = where[name]
    return SearchResult(ids=ids, scores=fused.scores.astype(np.float32), spans=spans,
                        shards=report)


def cut_top(result: SearchResult, model: RelevanceModel, min_relevance: float,
            k: int) -> SearchResult:
    """``result`` (a merged top list at least ``model.depth`` deep) cut where the calibrated
    probability of relevance falls below ``min_relevance`` (the cut one collection makes,
    over ids instead of rows), then to ``k``."""
    present = np.where(result.ids != "", 0, -1)
    scores, kept = cut(np.asarray(result.scores), present,
                       model.probabilities(np.asarray(result.scores)), min_relevance)
    keep = kept >= 0
    spans = None if result.spans is None else \
        np.where(keep[:, :, None], result.spans, -1)[:, :k]
    return SearchResult(ids=np.where(keep, result.ids, "")[:, :k], scores=scores[:, :k],
                        spans=spans, shards=result.shards)
