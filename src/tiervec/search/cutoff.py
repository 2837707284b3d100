"""A calibrated relevance cut-off: a result's probability of being relevant, from its score
and the shape of its query's score list (after "Relevance Filtering for Embedding-based
Retrieval").

Raw scores do not mean the same across queries (a cosine of 0.5 is the best hit of one query
and the fiftieth of another), so one global score threshold cuts some queries too early and
others too late. A :class:`RelevanceModel` is a logistic regression over features that place a
score within its query's list: the score, its gap to the query's best, its z-score among the
query's top ``depth`` scores, that list's best, mean and spread, and the rank. Fitted on
labelled queries, it gives probabilities one threshold can cut for every query
(``search(..., min_relevance=0.5)``). Probabilities are made non-increasing down each list, so
what a cut keeps is always a prefix of the ranking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tiervec.errors import CalibrationMissing, PlanError
from tiervec.search.query import FusionConfig

FEATURES = ("score", "gap_to_best", "z_score", "best", "mean", "spread", "log_rank")
#: Scores of this many results describe a query (a search with ``min_relevance`` computes at
#: least these many, then returns at most ``k``).
DEFAULT_DEPTH = 100


@dataclass
class RelevanceModel:
    """Logistic regression of relevance on :data:`FEATURES` (standardised by ``mean`` and
    ``scale``), for the scores of one search mode (``kind``: ``dense``, ``lexical``, or
    ``hybrid`` with its ``fusion``)."""

    kind: str
    coef: list[float]
    intercept: float
    mean: list[float]
    scale: list[float]
    depth: int = DEFAULT_DEPTH
    fusion: dict[str, Any] | None = None
    fitted_on: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def features(scores: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """``(n, m, len(FEATURES))`` features of every result and the mask of real results
        (``-inf`` scores are padding); each query is described by its first ``depth`` scores."""
        scores = np.asarray(scores, dtype=np.float64)
        valid = np.isfinite(scores)
        head = np.where(valid[:, :depth], scores[:, :depth], np.nan)
        n = np.maximum(valid[:, :depth].sum(axis=1, keepdims=True), 1)
        with np.errstate(all="ignore"):
            best = np.where(valid[:, :1], scores[:, :1], 0.0)
            mean = np.where(n > 0, np.nansum(head, axis=1, keepdims=True) / n, 0.0)
            spread = np.sqrt(np.nansum((head - mean) ** 2, axis=1, keepdims=True) / n)
            filled = np.where(valid, scores, 0.0)
            z = (filled - mean) / np.maximum(spread, 1e-6)
        rank = np.log1p(np.broadcast_to(np.arange(scores.shape[1]), scores.shape))
        columns = [filled, filled - best, z, *(np.broadcast_to(a, scores.shape)
                                             for a in (best, mean, spread)), rank]
        return np.stack(columns, axis=-1), valid

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Probability of relevance of each result ``(n, m)`` (0 at padding), non-increasing
        along each row."""
        x, valid = self.features(scores, self.depth)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = z @ np.asarray(self.coef) + self.intercept
        p = np.where(valid, 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50))), 0.0)
        return np.minimum.accumulate(p, axis=1) if p.size else p

    @classmethod
    def fit(
        cls, scores: np.ndarray, relevant: np.ndarray, kind: str, *, depth: int = DEFAULT_DEPTH,
        fusion: Mapping[str, Any] | None = None,
    ) -> RelevanceModel:
        """Fit on the score lists of labelled queries ``(n, m)`` and whether each result is
        relevant (same shape)."""
        x, valid = cls.features(scores, depth)
        x, y = x[valid], np.asarray(relevant, dtype=bool)[valid]
        if y.all() or not y.any():
            raise PlanError(f"the labelled {kind} results are all relevant or all not; a "
                            "calibration needs both (more labelled queries)")
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (x - mean) / scale
        # the query features, or the score alone (one global threshold, calibrated): whichever
        # ranks the held-out half of the queries better, both ways round
        query_of = np.broadcast_to(np.arange(len(scores))[:, None], valid.shape)[valid]
        columns = _better_columns(z, y, query_of % 2 == 0)
        weights, intercept = logistic_regression(z[:, columns], y)
        coef = np.zeros(z.shape[1])
        coef[columns] = weights
        return cls(kind=kind, coef=[float(c) for c in coef],
                   intercept=intercept, mean=mean.tolist(),
                   scale=scale.tolist(), depth=depth,
                   fusion=dict(fusion) if fusion is not None else None,
                   fitted_on={"queries": len(scores), "results": len(y),
                              "relevant": int(y.sum())})

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RelevanceModel:
        data = dict(data)
        if data.pop("features", list(FEATURES)) != list(FEATURES):
            raise ValueError("this calibration was fitted on other features; fit it again "
                             "(tiervec tune)")
        return cls(**data)


def _better_columns(z: np.ndarray, y: np.ndarray, half: np.ndarray) -> list[int]:
    """All features, or the score alone, by mean average precision over two folds."""
    options = [list(range(z.shape[1])), [FEATURES.index("score")]]
    quality = []
    for columns in options:
        total = 0.0
        for train in (half, ~half):
            test = ~train
            if len(set(y[train])) < 2 or len(set(y[test])) < 2:
                return options[0]
            weights, intercept = logistic_regression(z[train][:, columns], y[train])
            total += average_precision(y[test], z[test][:, columns] @ weights + intercept)
        quality.append(total)
    return options[int(np.argmax(quality))]


def logistic_regression(x: np.ndarray, y: np.ndarray, c: float = 1.0,
                        iterations: int = 100) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising ``c * log-loss + ||w||^2 / 2`` (the intercept not
    penalised: scikit-learn's ``LogisticRegression(C=c)``), by Newton's method: a few features,
    so each step is one small linear solve."""
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    target = np.asarray(y, dtype=np.float64)
    beta = np.zeros(d + 1)
    penalty = np.eye(d + 1) / c
    penalty[d, d] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -50, 50)))
        gradient = design.T @ (p - target) + penalty @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian + 1e-10 * np.eye(d + 1), gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:d], float(beta[d])


def average_precision(relevant: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ranking by ``scores`` (equal scores one threshold, as
    scikit-learn's ``average_precision_score``)."""
    order = np.argsort(-scores, kind="stable")
    hits, ranked = np.asarray(relevant, bool)[order], scores[order]
    last = np.r_[np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1]  # end of each score
    true_pos = np.cumsum(hits)[last]
    precision = true_pos / (last + 1)
    recall = true_pos / max(int(hits.sum()), 1)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def cut(scores: np.ndarray, rows: np.ndarray, probabilities: np.ndarray,
        min_relevance: float) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` and ``rows`` with the results below ``min_relevance`` turned into padding."""
    keep = (probabilities >= min_relevance) & (rows >= 0)
    return np.where(keep, scores, -np.inf).astype(np.float32), np.where(keep, rows, -1)


def checked_model(model: RelevanceModel | None, kind: str, fusion: Mapping[str, Any],
                  where: str) -> RelevanceModel:
    """``model``, the calibration of ``kind`` searches of the collection at ``where``, if it
    was fitted (for ``fusion``, a hybrid one); else :class:`CalibrationMissing` saying how to
    fit one."""
    if model is None:
        raise CalibrationMissing(
            f"no relevance calibration was fitted for {kind} search on collection "
            f"{where!r}; fit one on labelled queries with `tiervec tune DATASET "
            f"--collection {where} --apply`, or search without min_relevance")
    if kind == "hybrid" and (model.fusion is None or
                             FusionConfig.stored(model.fusion) != FusionConfig.stored(fusion)):
        raise CalibrationMissing(
            f"the hybrid calibration was fitted for fusion {model.fusion}, not "
            f"{dict(fusion)}; search with the collection's fusion, or fit a "
            "calibration for this one (`tiervec tune`)")
    return model
