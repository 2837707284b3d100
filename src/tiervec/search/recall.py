"""Recall that holds as a collection grows: measure a chain's recall@k against exact search on
the collection's own data, and choose the cheapest setting that meets a target.

The denser a collection, the more candidates compressed codes need: ``binary*4 ->
float32@disk`` finds 96% of the exact top 10 on SciFact's 5k documents and 76% at 1M vectors.
A :class:`RecallTarget` (default recall@10 >= 0.95) is kept by measuring, not guessing:

1. Queries: the collection's own queries where it has seen enough of them (a reservoir
   sample of the query vectors searched, :class:`QuerySample`), else query-like vectors made
   from its data: a stored vector plus Gaussian noise with the covariance of the stored
   vectors. Stored vectors themselves make far too easy queries (at 1M vectors they promise
   recall 0.98 at ``x6`` where real SciFact queries get 0.83): real queries sit farther from
   the data, and recall depends on how far (``bench/scale.py``, margin phase).
2. Exact top ``k`` from the full-precision vectors on disk, one blocked scan
   (``queries x rows x dim`` multiply-adds: the measurement's bounded cost, stated in
   :attr:`RecallMeasure.seconds`).
3. The chain's recall over a ladder of settings (:data:`LADDER` oversampling of the first
   tier; for an ANN first tier also :data:`EFFORTS`, multiples of its nprobe / efSearch),
   searched by bisection (recall grows with both); the cheapest setting whose recall clears
   the target by :data:`CONFIDENCE_Z` standard errors, with the miss rate allowed shrunk by
   :data:`MARGIN` for the queries to come, is kept.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from tiervec.codecs.base import merge_top_m, top_m
from tiervec.errors import InvalidRecallTarget
from tiervec.search.query import SearchOptions
from tiervec.store.codes import CodeSource

DEFAULT_TARGET = 0.95
DEFAULT_K = 10
#: Oversampling of the first tier tried (candidates = k x factor).
LADDER = (1, 2, 3, 4, 6, 8, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224, 320, 448, 640)
#: Multiples of an ANN first tier's starting effort (nprobe, efSearch) tried.
EFFORTS = (1, 2, 4, 8, 16)
#: Queries a measurement uses.
QUERIES = 200
#: Seen queries a measurement needs to use them rather than made-up ones; how many are kept.
MIN_SEEN = 100
SAMPLE_SIZE = 1_000
#: Made-up queries sit this many standard deviations of the data's spread (its covariance)
#: from a stored vector. Recall@10 of ``binary*k -> float32@disk`` at x28 / x56 / x112, 10M
#: vectors: real SciFact queries 0.914 / 0.961 / 0.985; made-up at 1.0: 0.970 / 0.989 / 0.997
#: (too easy), at 1.5: 0.889 / 0.950 / 0.977 (a little harder than real, as at 1M).
NOISE_SCALE = 1.5
#: Standard errors (over queries) a setting's recall must clear the target by.
CONFIDENCE_Z = 1.645
#: The allowed miss rate ``1 - target`` is divided by this, for the queries to come (at 1M
#: vectors, made-up queries missed 0.84-1.16x as often as real SciFact queries at the same
#: setting; half of SciFact's queries as the sample: the other half missed 1.6x as often).
MARGIN = 1.25
#: A collection is measured again once it holds this many times the rows it was measured at.
GROWTH = 1.5
#: One disk read (a full-precision vector rescored) costs about as much as scanning this many
#: codes in RAM (1M x 384, binary@ivf: 4 ns a code in FAISS's list scan, 100 ns a read).
READ_COST = 25


@dataclass(frozen=True)
class RecallTarget:
    """Recall@``k`` against exact search the collection keeps (``target`` in (0, 1])."""

    target: float = DEFAULT_TARGET
    k: int = DEFAULT_K

    def __post_init__(self) -> None:
        target = self.target
        if isinstance(target, bool) or not isinstance(target, int | float) or \
                not math.isfinite(target) or not 0 < target <= 1:
            raise InvalidRecallTarget(
                f"a recall target is a fraction in (0, 1], got {target!r} (e.g. 0.95: find 95% "
                "of the exact top k)")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= 1000:
            raise InvalidRecallTarget(f"the recall target's k is a whole number in [1, 1000], "
                                      f"got {self.k!r}")
        object.__setattr__(self, "target", float(target))

    def needed(self, margin: float = 1.0) -> float:
        """Recall an estimate must reach: the miss rate allowed, over ``margin``."""
        return 1.0 - (1.0 - self.target) / margin

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "k": self.k}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RecallTarget:
        data = data or {}
        return cls(target=data.get("target", DEFAULT_TARGET), k=int(data.get("k", DEFAULT_K)))


@dataclass(frozen=True)
class Point:
    """One setting measured: first-tier oversampling, ANN effort multiple, recall, cost."""

    oversample: int
    effort: int
    recall: float
    cost: float
    #: standard error of ``recall`` over the queries
    se: float = 0.0

    def meets(self, need: float) -> bool:
        """Whether the recall clears ``need`` with confidence (:data:`CONFIDENCE_Z` standard
        errors: one-sided 95%)."""
        return self.recall - CONFIDENCE_Z * self.se >= need


@dataclass
class RecallMeasure:
    """A measurement: the setting kept, its estimated recall, and what the measurement cost.

    ``setting`` is ``None`` where the chain has nothing to tune (one scanned tier).
    """

    chain: str
    target: float
    k: int
    rows: int
    queries: int
    recall: float
    met: bool
    oversample: int | None
    effort: int | None
    seconds: float
    measured_at: str
    #: "seen" (the collection's own queries) or "synthetic" (made from its vectors)
    source: str = "synthetic"
    margin: float = MARGIN
    points: list[Point] = field(default_factory=list)

    def estimate(self, oversample: int | None, effort: int | None) -> float | None:
        """The recall measured at the largest setting at or below ``(oversample, effort)``
        (a lower bound; ``None`` where nothing measured lies below it)."""
        if not self.points:
            return self.recall
        below = [p.recall for p in self.points
                 if (oversample is None or p.oversample <= oversample)
                 and (effort is None or p.effort <= effort)]
        return max(below) if below else None

    def stale(self, rows: int) -> bool:
        """Whether a collection of ``rows`` rows should be measured again."""
        return rows >= self.rows * GROWTH or rows * GROWTH <= self.rows

    def summary(self) -> dict[str, Any]:
        """What stats show: the measurement without its points."""
        out = asdict(self)
        del out["points"]
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["points"] = [asdict(p) for p in self.points]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecallMeasure:
        data = dict(data)
        data["points"] = [Point(**p) for p in data.get("points", [])]
        return cls(**data)


def tuned_options(options: SearchOptions, measure: RecallMeasure | None,
                  factors: Sequence[int]) -> SearchOptions:
    """``options`` with the measured setting where the request set none (``factors``: the
    chain's own oversampling of each passing stage; the first is the measured one)."""
    if measure is None:
        return options
    oversample, effort = options.oversample, options.effort
    if oversample is None and measure.oversample is not None and factors:
        oversample = (measure.oversample, *factors[1:])
    if effort is None:
        effort = measure.effort
    if (oversample, effort) == (options.oversample, options.effort):
        return options
    return replace(options, oversample=oversample, effort=effort)


class QuerySample:
    """A uniform sample of the query vectors a collection was searched with (reservoir
    sampling, at most ``size`` kept), for measuring recall on real queries."""

    def __init__(self, dim: int, size: int = SAMPLE_SIZE, seed: int = 0,
                 vectors: np.ndarray | None = None, seen: int = 0) -> None:
        self.size = size
        self.vectors = np.empty((0, dim), np.float32) if vectors is None else \
            np.asarray(vectors, np.float32)[:size]
        self.seen = max(int(seen), len(self.vectors))
        self._rng = np.random.default_rng(seed + self.seen)
        self._lock = threading.Lock()

    def offer(self, queries: np.ndarray) -> int:
        """Consider a batch of query vectors; how many queries have been seen since (queries
        of another dimension, searched as the collection changed model, are left out)."""
        queries = np.asarray(queries, np.float32)
        with self._lock:
            if queries.ndim != 2 or queries.shape[1] != self.vectors.shape[1]:
                return self.seen
            room = self.size - len(self.vectors)
            if room > 0:
                self.vectors = np.concatenate([self.vectors, queries[:room]])
            rest = queries[max(room, 0):]
            if len(rest):  # each later query replaces a kept one with chance size / seen
                seen = self.seen + max(room, 0) + np.arange(1, len(rest) + 1)
                slot = (self._rng.random(len(rest)) * seen).astype(np.int64)
                keep = slot < self.size
                self.vectors[slot[keep]] = rest[keep]  # in place: snapshot() copies
            self.seen += len(queries)
            return self.seen

    def snapshot(self) -> np.ndarray:
        with self._lock:
            return self.vectors.copy()


def sample_rows(alive: np.ndarray | None, count: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows (sorted) drawn among the live ones of ``count``."""
    live = np.arange(count) if alive is None else np.flatnonzero(alive)
    take = min(n, len(live))
    return np.sort(np.random.default_rng(seed).choice(live, take, replace=False))


def exact_top(full: CodeSource, queries: np.ndarray, k: int, alive: np.ndarray | None = None,
              block: int = 65_536, stop: Callable[[], bool] | None = None,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` rows by inner product over every full-precision vector, one blocked
    scan of the memory maps; dead rows (``alive`` false) never count. ``stop()`` true ends
    the scan early (the result is then partial)."""
    best = (np.full((len(queries), k), -np.inf, np.float32),
            np.full((len(queries), k), -1, np.int64))
    q = np.ascontiguousarray(queries, np.float32)
    for array, start in zip(full.arrays, full.starts, strict=True):
        for lo in range(0, len(array), block):
            if stop is not None and stop():
                return best
            chunk = np.asarray(array[lo : lo + block], np.float32)
            scores = q @ chunk.T
            first = start + lo
            if alive is not None:
                scores[:, ~alive[first : first + len(chunk)]] = -np.inf
            s, cols = top_m(scores, k)
            rows = np.where(np.isfinite(s), cols + first, -1)
            best = merge_top_m(best, (s, rows), k)
    return best


def recall_of(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top ``k`` found."""
    per_query = recall_per_query(found, exact, k)
    return float(per_query.mean()) if len(per_query) else 1.0


def recall_per_query(found: np.ndarray, exact: np.ndarray, k: int) -> np.ndarray:
    """Each query's ``|top_k(found) ∩ top_k(exact)| / |top_k(exact)|`` (rows or ids; ``-1``
    and ``""`` padding ignored; 1 when exact is empty)."""
    shares = []
    for got, want in zip(found, exact, strict=True):
        truth = set(want[:k].tolist()) - {-1, ""}
        shares.append(len(set(got[:k].tolist()) & truth) / len(truth) if truth else 1.0)
    return np.asarray(shares, dtype=np.float64)


#: ``search(queries, k, options) -> rows (nq, k)`` over the collection's pipeline.
SearchFn = Callable[[np.ndarray, int, SearchOptions], np.ndarray]


@dataclass(frozen=True)
class Knobs:
    """What a chain lets the tuner turn: first-tier oversampling (chains of 2+ tiers), ANN
    effort (an indexed first tier), and the cost model's scale."""

    oversample: bool
    effort: bool
    #: codes an ANN first tier visits per query at effort 1 for ``k * oversample`` candidates
    #: (scan: every row); see :func:`cost`
    visited: Callable[[int, int], float]
    rest: tuple[int, ...] = ()


def synthetic_queries(full: CodeSource, alive: np.ndarray | None, n: int,
                      seed: int = 0, scale: float | None = None) -> np.ndarray:
    """``n`` query-like vectors: stored vectors plus Gaussian noise with ``scale`` (default
    :data:`NOISE_SCALE`) times the stored vectors' covariance (estimated on 5,000 of them)."""
    scale = NOISE_SCALE if scale is None else scale
    rng = np.random.default_rng(seed)
    base = full.take(sample_rows(alive, len(full), n, seed)).astype(np.float64)
    sample = full.take(sample_rows(alive, len(full), 5_000, seed + 1)).astype(np.float64)
    centred = sample - sample.mean(axis=0)
    cov = centred.T @ centred / max(len(sample) - 1, 1)
    eigen, basis = np.linalg.eigh(cov)
    noise = (rng.standard_normal(base.shape) * np.sqrt(np.clip(eigen, 0, None))) @ basis.T
    noise *= scale
    return (base + noise).astype(np.float32)


def measure(
    search: SearchFn, full: CodeSource, alive: np.ndarray | None, knobs: Knobs,
    target: RecallTarget, chain: str, *, seen: np.ndarray | None = None,
    queries: int = QUERIES, seed: int = 0, stop: Callable[[], bool] = lambda: False,
) -> RecallMeasure:
    """Measure the chain behind ``search`` on ``full``'s vectors with ``queries`` of the
    ``seen`` query vectors (made-up ones where fewer than :data:`MIN_SEEN` were seen), and
    choose the cheapest setting (see the module docstring)."""
    started = time.perf_counter()
    count = len(full)
    k = target.k
    if seen is not None and len(seen) >= MIN_SEEN:
        pick = np.random.default_rng(seed).choice(len(seen), min(queries, len(seen)),
                                                  replace=False)
        q, source = np.asarray(seen[np.sort(pick)], np.float32), "seen"
    else:
        q, source = synthetic_queries(full, alive, queries, seed), "synthetic"
    exact = exact_top(full, q, k, alive, stop=stop)[1]
    need = target.needed(MARGIN)
    points: dict[tuple[int, int], Point] = {}

    def run(oversample: int, effort: int) -> Point:
        key = (oversample, effort)
        if key not in points:
            options = SearchOptions(
                oversample=(oversample, *knobs.rest) if knobs.oversample else None,
                effort=effort if knobs.effort else None)
            per_query = recall_per_query(search(q, k, options), exact, k)
            se = float(per_query.std(ddof=1) / np.sqrt(len(per_query))) \
                if len(per_query) > 1 else 0.0
            points[key] = Point(oversample, effort,
                                round(float(per_query.mean()), 4) if len(per_query) else 1.0,
                                cost(knobs, k, oversample, effort), round(se, 5))
        return points[key]

    ladder = LADDER if knobs.oversample else (1,)
    efforts = EFFORTS if knobs.effort else (1,)
    best: Point | None = None
    for effort in efforts:
        if stop():
            break
        if best is not None and cost(knobs, k, ladder[0], effort) >= best.cost:
            break  # more effort cannot be cheaper than what already meets the target
        found = _lowest_meeting(partial(_at_effort, run, effort), ladder, need)
        if found is not None and (best is None or found.cost < best.cost):
            best = found
    if best is None:  # nothing met it: keep the highest recall measured
        best = max(points.values(), key=lambda p: (p.recall, -p.cost))
    return RecallMeasure(
        chain=chain, target=target.target, k=k, rows=count, queries=len(q),
        recall=round(best.recall, 4),
        met=best.meets(need),
        oversample=best.oversample if knobs.oversample else None,
        effort=best.effort if knobs.effort else None,
        seconds=round(time.perf_counter() - started, 3),
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"), source=source,
        points=sorted(points.values(), key=lambda p: (p.effort, p.oversample)))


def _at_effort(run: Callable[[int, int], Point], effort: int, oversample: int) -> Point:
    return run(oversample, effort)


def _lowest_meeting(run: Callable[[int], Point], ladder: Sequence[int],
                    need: float) -> Point | None:
    """The lowest ladder step whose recall meets ``need`` (bisection: recall grows along
    the ladder), or ``None`` if even the top does not."""
    top = run(ladder[-1])
    if not top.meets(need):
        return None
    lo, hi = -1, len(ladder) - 1  # ladder[hi] meets, ladder[lo] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(ladder[mid]).meets(need):
            hi = mid
        else:
            lo = mid
    return run(ladder[hi])


def cost(knobs: Knobs, k: int, oversample: int, effort: int) -> float:
    """Work per query in units of one code scanned: codes visited plus disk reads."""
    reads = k * oversample if knobs.oversample else 0
    return knobs.visited(k * oversample, effort) + READ_COST * reads


