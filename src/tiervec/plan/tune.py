"""Tuning hybrid search and fitting the relevance cut-off on labelled queries (``tiervec tune``).

The way the planner treats tier chains: choose on one set of labelled queries, verify on
held-out ones, store the result with ``--apply``.

1. :func:`tune_fusion` searches a grid of fusions (method, weight, RRF's ``c``, candidate
   depths). The dense and lexical lists are computed once, at the deepest depth, and fused in
   memory for every setting; the chosen fusion and the default are then verified by real
   hybrid searches on the held-out queries.
2. :func:`fit_calibrations` fits a :class:`~tiervec.search.cutoff.RelevanceModel` per mode on
   the tuning queries' top lists.
3. :func:`cutoff_report` measures, on the held-out queries, the precision, recall and F1 of
   the returned sets across thresholds: calibrated probability, a global raw-score threshold,
   and fixed top-k.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiervec.errors import PlanError
from tiervec.eval.measure import judge, searched
from tiervec.eval.queries import QuerySet
from tiervec.search import Candidates, FusionConfig, FusionMethod, Searchable, SearchMode
from tiervec.search.cutoff import DEFAULT_DEPTH, RelevanceModel
from tiervec.search.hybrid import make_fusion

log = logging.getLogger(__name__)

METRIC = "ndcg@10"
#: Recall levels at which the cut-off report compares precision, as shares of the recall the
#: whole top lists reach (on NFCorpus, with ~38 relevant documents a query, that is ~0.33).
RECALL_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def fusion_grid(depths: Sequence[int] = (50, 100, 200)) -> list[FusionConfig]:
    """The settings :func:`tune_fusion` tries: RRF with ``c`` in {10, 60} and three weights,
    min-max and DBSF with weights 0.1 .. 0.9; each at the given candidate depths. Their
    weights are fitted on the labelled queries themselves, so they apply as they are (no
    coverage scaling)."""
    out = []
    for depth in depths:
        sides: dict[str, Any] = {"dense_depth": depth, "lexical_depth": depth,
                                 "coverage": False}
        for c, w in itertools.product((10.0, 60.0), (0.3, 0.5, 0.7)):
            out.append(FusionConfig(method=FusionMethod.RRF, rrf_k=c, weight=w, **sides))
        for method in (FusionMethod.MINMAX, FusionMethod.DBSF):
            out += [FusionConfig(method=method, weight=round(w, 1), **sides)
                    for w in np.arange(0.1, 0.95, 0.1)]
    return out


@dataclass(frozen=True)
class Trial:
    fusion: FusionConfig
    quality: float


@dataclass
class FusionTuning:
    """The grid's results on the tuning queries and the verification on held-out ones."""

    trials: list[Trial]
    best: FusionConfig
    tune_queries: str
    verify_queries: str
    #: nDCG@10 on the held-out queries: dense, lexical, hybrid default, hybrid tuned.
    verified: dict[str, float] = field(default_factory=dict)

    @property
    def lost_to_default(self) -> bool:
        """Whether the grid's best scored below the default fusion on the held-out queries
        (it then is not the one to keep: see :attr:`chosen`)."""
        verified = self.verified
        return "hybrid tuned" in verified and \
            verified["hybrid tuned"] < verified.get("hybrid default", float("-inf"))

    @property
    def chosen(self) -> FusionConfig:
        """The fusion to keep: the grid's best, unless the default did better on the
        held-out queries."""
        return FusionConfig() if self.lost_to_default else self.best

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": METRIC, "tune_queries": self.tune_queries,
            "verify_queries": self.verify_queries, "best": self.best.to_dict(),
            "chosen": self.chosen.to_dict(), "lost_to_default": self.lost_to_default,
            "verified": {k: round(v, 5) for k, v in self.verified.items()},
            "trials": [{"fusion": t.fusion.to_dict(), "quality": round(t.quality, 5)}
                       for t in self.trials],
        }


def fuse_results(dense: Any, lexical: Any, fusion: FusionConfig, k: int) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Fuse two id-level results (``ids``/``scores``, at least as deep as the fusion's
    depths) as a hybrid search would: ``(ids, scores)`` ``(n, k)``."""
    d, m = fusion.dense_depth, fusion.lexical_depth
    ids = np.concatenate([dense.ids[:, :d], lexical.ids[:, :m]], axis=1).astype(str)
    names, codes = np.unique(ids, return_inverse=True)
    codes = np.where(ids == "", -1, codes.reshape(ids.shape))
    lists = [Candidates(dense.scores[:, :d], codes[:, :d]),
             Candidates(lexical.scores[:, :m], codes[:, d:])]
    fused = make_fusion(fusion).fuse(lists, k)
    names = np.append(names.astype(object), "")
    return names[fused.rows], fused.scores


def tune_fusion(
    searchable: Searchable, tune: QuerySet, verify: QuerySet,
    grid: Sequence[FusionConfig] | None = None, k: int = 10,
    on_trial: Callable[[Trial], None] | None = None,
) -> FusionTuning:
    """The fusion of ``grid`` (default :func:`fusion_grid`) with the best mean nDCG@10 on
    ``tune``, verified with real hybrid searches on ``verify``."""
    grid = list(grid or fusion_grid())
    deepest = max(max(f.dense_depth, f.lexical_depth) for f in grid)
    dense = searched(searchable, tune, deepest, SearchMode.DENSE)
    lexical = searched(searchable, tune, deepest, SearchMode.LEXICAL)
    trials = []
    for fusion in grid:
        ids, scores = fuse_results(dense, lexical, fusion, k)
        trial = Trial(fusion, float(judge(tune, ids, scores, [METRIC])[METRIC].mean()))
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
    trials.sort(key=lambda t: -t.quality)
    best = trials[0].fusion
    verified = {name: quality(searchable, verify, k, mode, fusion) for name, mode, fusion in (
        ("dense", SearchMode.DENSE, None), ("lexical", SearchMode.LEXICAL, None),
        ("hybrid default", SearchMode.HYBRID, FusionConfig()),
        ("hybrid tuned", SearchMode.HYBRID, best))}
    return FusionTuning(trials, best, tune.name, verify.name, verified)


def quality(searchable: Searchable, queries: QuerySet, k: int, mode: SearchMode,
            fusion: FusionConfig | None) -> float:
    """Mean nDCG@10 of a real search of ``queries`` in ``mode``."""
    result = searched(searchable, queries, k, mode, fusion)
    return float(judge(queries, result.ids, result.scores, [METRIC])[METRIC].mean())


def relevant_mask(queries: QuerySet, ids: np.ndarray) -> np.ndarray:
    """Whether each returned id is judged relevant (relevance > 0) for its query."""
    assert queries.qrels is not None
    return np.array([[queries.qrels[q].get(str(i), 0) > 0 for i in row]
                     for q, row in zip(queries.ids, ids, strict=True)], dtype=bool)


def fit_calibrations(
    searchable: Searchable, tune: QuerySet, modes: Mapping[SearchMode, FusionConfig | None],
    depth: int = DEFAULT_DEPTH,
) -> dict[str, RelevanceModel]:
    """A relevance calibration per mode (``mode -> fusion``, for hybrid) fitted on ``tune``'s
    top ``depth`` lists; a mode whose results are all relevant or all not (too few labelled
    queries) is left out with a warning."""
    out = {}
    for mode, fusion in modes.items():
        result = searched(searchable, tune, depth, mode, fusion)
        try:
            out[mode.value] = RelevanceModel.fit(
                result.scores, relevant_mask(tune, result.ids), mode.value, depth=depth,
                fusion=fusion.to_dict() if mode is SearchMode.HYBRID and fusion else None)
        except PlanError as exc:
            log.warning("no %s calibration: %s", mode.value, exc)
    return out


@dataclass
class CutoffCurve:
    """Micro-averaged precision and recall of the returned sets, one point per threshold."""

    name: str
    thresholds: list[float]
    precision: list[float]
    recall: list[float]

    @property
    def f1(self) -> list[float]:
        return [2 * p * r / (p + r) if p + r else 0.0
                for p, r in zip(self.precision, self.recall, strict=True)]

    def precision_at(self, recall: float) -> float:
        """The best precision at a recall of at least ``recall`` (0 if never reached)."""
        reached = [p for p, r in zip(self.precision, self.recall, strict=True) if r >= recall]
        return max(reached, default=0.0)

    @property
    def max_recall(self) -> float:
        return max(self.recall, default=0.0)

    def levels(self) -> list[float]:
        """The recall levels of :data:`RECALL_LEVELS` on this curve's reachable range."""
        return [round(r * self.max_recall, 3) for r in RECALL_LEVELS]

    def wins_over(self, other: CutoffCurve, points: int = 50) -> tuple[int, int]:
        """At how many of ``points`` recall levels (evenly up to the reachable recall) this
        curve's precision is at least ``other``'s: ``(wins, points)``."""
        top = min(self.max_recall, other.max_recall)
        levels = [top * (i + 1) / points for i in range(points)]
        return sum(self.precision_at(r) >= other.precision_at(r) for r in levels), points

    def best_f1(self) -> tuple[float, float]:
        """``(F1, threshold)`` of the best point."""
        f1 = self.f1
        if not f1:
            return 0.0, 0.0
        i = int(np.argmax(f1))
        return f1[i], self.thresholds[i]

    def to_dict(self) -> dict[str, Any]:
        f1, at = self.best_f1()
        return {"name": self.name, "best_f1": round(f1, 5), "best_threshold": at,
                "max_recall": round(self.max_recall, 5),
                "precision_at_recall": {str(r): round(self.precision_at(r), 5)
                                        for r in (*self.levels(), 0.8)},
                **self._sampled(200)}

    def _sampled(self, most: int) -> dict[str, list[float]]:
        """The curve's points, at most ``most`` of them (evenly by threshold rank)."""
        n = len(self.thresholds)
        keep: list[int] = np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int)
                                    ).tolist() if n else []
        return {"thresholds": [round(self.thresholds[i], 6) for i in keep],
                "precision": [round(self.precision[i], 5) for i in keep],
                "recall": [round(self.recall[i], 5) for i in keep]}


def _curve(name: str, keep: Callable[[float], np.ndarray], thresholds: Sequence[float],
           relevant: np.ndarray, total: int) -> CutoffCurve:
    points, precision, recall = [], [], []
    for t in thresholds:
        kept = keep(t)
        returned = int(kept.sum())
        if not returned:
            continue  # nothing returned: no point of the curve
        hits = int((kept & relevant).sum())
        points.append(float(t))
        precision.append(hits / returned)
        recall.append(hits / total if total else 0.0)
    return CutoffCurve(name, points, precision, recall)


def _thresholds(values: np.ndarray, most: int = 2000) -> list[float]:
    """Every distinct value as a threshold, or ``most`` of them evenly by rank."""
    distinct = np.unique(values)
    if len(distinct) > most:
        distinct = distinct[np.linspace(0, len(distinct) - 1, most).round().astype(int)]
    return distinct.tolist()


def cutoff_report(
    searchable: Searchable, queries: QuerySet, model: RelevanceModel, mode: SearchMode,
    fusion: FusionConfig | None = None,
) -> list[CutoffCurve]:
    """The calibrated cut-off against a global raw-score threshold and fixed top-k on
    ``queries`` (held out), over the top ``model.depth`` results of each."""
    assert queries.qrels is not None
    result = searched(searchable, queries, model.depth, mode, fusion)
    relevant = relevant_mask(queries, result.ids)
    total = sum(sum(1 for r in queries.qrels[q].values() if r > 0) for q in queries.ids)
    probabilities = model.probabilities(result.scores)
    scores = result.scores
    valid = np.isfinite(scores)
    raw, calibrated = _thresholds(scores[valid]), _thresholds(probabilities[valid])
    ranks = np.broadcast_to(np.arange(1, scores.shape[1] + 1), scores.shape)
    return [
        _curve("calibrated", lambda t: valid & (probabilities >= t), calibrated, relevant,
               total),
        _curve("raw score", lambda t: valid & (scores >= t), raw, relevant, total),
        _curve("top-k", lambda t: valid & (ranks <= t), range(1, scores.shape[1] + 1),
               relevant, total),
    ]
