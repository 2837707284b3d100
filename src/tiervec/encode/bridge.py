"""Maps between two models' vector spaces: what lets a collection change its model without
re-encoding every document first (backward-compatible representations).

Both models encode the same sample of the collection's own texts; a linear map is fitted from
one space to the other on most of it and measured on the rest::

    texts ─┬─> current model ─> C (n, d_c) ──┐
           └─> new model     ─> N (n, d_n) ──┴─> fit  N -> C  ("to-current": new queries and
                                                               documents read the stored index)
                                                   or C -> N  ("to-new": the stored vectors are
                                                               moved into the new space, once)

Kinds: ``lstsq`` (ridge least squares with a bias: any dimensions), ``procrustes`` (the
nearest (semi-)orthogonal map between the centred spaces, scaled by the ratio of their spreads
and moved to the target's mean: it keeps angles between the centred vectors; for unequal
dimensions the partial isometry from the SVD of ``X^T Y``, the dimension-matching projection
and the rotation in one) and ``mlp`` (Procrustes plus a small residual network trained on what
it leaves: :mod:`tiervec.encode.residual`). Centring matters where a model's vectors share a
large common component (multilingual-e5-small's all lie within a narrow cone): measured, a
rotation of the raw vectors lost most of e5's quality. Mapped vectors are scaled to unit length
when the target model's are.

The choice between directions and kinds is measured, not assumed: on the held-out texts, each
candidate ranks the held-out documents for each held-out text (itself left out) and is scored by
how many of the new model's own top 10 it finds (:func:`agreement`); the current model alone is
scored the same way, so a map that would do worse than not upgrading is seen.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.encode.residual import Residual, fit_residual
from tiervec.errors import InvalidUpgrade

#: Share of the sample kept aside to measure the fitted maps.
HELD_OUT = 0.2
#: Neighbours compared by :func:`agreement`.
AGREEMENT_K = 10


class MapKind(StrEnum):
    LSTSQ = "lstsq"
    PROCRUSTES = "procrustes"
    MLP = "mlp"


class Direction(StrEnum):
    """``to-current``: the new model's vectors are mapped into the stored space (queries and new
    documents; the stored vectors stay). ``to-new``: the stored vectors are mapped into the new
    model's space (one matrix product; the tiers refitted) and queries are the new model's."""

    TO_CURRENT = "to-current"
    TO_NEW = "to-new"


@dataclass(frozen=True)
class SpaceMap:
    """``x -> x @ matrix + bias`` (plus ``residual(x)`` where a network was learned; then
    unit length when ``normalize``)."""

    kind: MapKind
    direction: Direction
    matrix: np.ndarray  # (source_dim, target_dim) float32
    bias: np.ndarray  # (target_dim,) float32
    normalize: bool = True
    residual: Residual | None = None

    @property
    def source_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def target_dim(self) -> int:
        return int(self.matrix.shape[1])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x`` ``(n, source_dim)`` in the target space, float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.source_dim:
            raise InvalidUpgrade(f"the map reads vectors of {self.source_dim} dimensions, got "
                                 f"shape {tuple(x.shape)}")
        out = x @ self.matrix + self.bias
        if self.residual is not None:
            out += self.residual(x)
        out = np.ascontiguousarray(out, dtype=np.float32)
        if self.normalize and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def save(self, path: Path) -> None:
        """Written whole to a temporary name, then renamed: never half a map under ``path``."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            arrays: dict[str, np.ndarray] = {
                "matrix": self.matrix, "bias": self.bias, "meta": np.array(json.dumps(
                    {"kind": self.kind.value, "direction": self.direction.value,
                     "normalize": self.normalize})),
                **(self.residual.arrays() if self.residual is not None else {})}
            np.savez(f, allow_pickle=False, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SpaceMap:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            residual = None
            if "w1" in data:
                residual = Residual(*(data[k].astype(np.float32) for k in ("w1", "b1", "w2",
                                                                             "b2")))
            return cls(MapKind(meta["kind"]), Direction(meta["direction"]),
                       data["matrix"].astype(np.float32), data["bias"].astype(np.float32),
                       bool(meta["normalize"]), residual)


def needed_sample(source_dim: int, target_dim: int) -> int:
    """Texts a map between these dimensions needs: its fitted part (after the held-out share)
    must hold more texts than either space has dimensions."""
    return math.ceil((max(source_dim, target_dim) + 1) / (1 - HELD_OUT))


def fit_map(source: np.ndarray, target: np.ndarray, kind: MapKind | str,
            direction: Direction | str, ridge: float = 1e-3) -> SpaceMap:
    """The ``kind`` map taking rows of ``source`` to the matching rows of ``target``."""
    kind, direction = MapKind(kind), Direction(direction)
    x, y = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if len(x) != len(y) or len(x) <= max(x.shape[1], y.shape[1]):
        raise InvalidUpgrade(
            f"a map from {x.shape[1]} to {y.shape[1]} dimensions needs more texts than "
            f"dimensions to fit on: {len(x)} given, at least "
            f"{needed_sample(x.shape[1], y.shape[1])} needed (with {HELD_OUT:.0%} held out)")
    normalize = bool(np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-3))
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    if kind is not MapKind.LSTSQ:  # a rotation of the centred vectors, scaled, moved
        u, _, vt = np.linalg.svd(xc.T @ yc, full_matrices=False)
        matrix = (u @ vt) * (np.linalg.norm(yc) / max(float(np.linalg.norm(xc)), 1e-12))
        bias = my - mx @ matrix
    else:
        gram = xc.T @ xc
        gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
        matrix = np.linalg.solve(gram, xc.T @ yc)
        bias = my - mx @ matrix
    matrix, bias = matrix.astype(np.float32), bias.astype(np.float32)
    residual = None
    if kind is MapKind.MLP:  # what the rotation leaves, learned
        xs = x.astype(np.float32)
        residual = fit_residual(xs, y.astype(np.float32) - (xs @ matrix + bias))
    return SpaceMap(kind, direction, matrix, bias, normalize, residual)


def agreement(queries: np.ndarray, docs: np.ndarray, ideal_queries: np.ndarray,
              ideal_docs: np.ndarray, k: int = AGREEMENT_K) -> float:
    """Mean share of the ideal top ``k`` (``ideal_queries @ ideal_docs.T``, each query's own row
    left out) found in the top ``k`` of ``queries @ docs.T``: row ``i`` of the queries is the
    text of document ``i``."""
    k = min(k, len(docs) - 1)
    if k < 1:
        return float("nan")

    def top(q: np.ndarray, d: np.ndarray) -> np.ndarray:
        scores = q.astype(np.float32) @ d.astype(np.float32).T
        np.fill_diagonal(scores, -np.inf)
        return np.argpartition(-scores, k - 1, axis=1)[:, :k]

    got, want = top(queries, docs), top(ideal_queries, ideal_docs)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, want, strict=True)]))


@dataclass(frozen=True)
class MapChoice:
    """The map kept and every candidate's held-out figures."""

    chosen: SpaceMap
    candidates: list[dict[str, Any]]  # each kind and direction's held-out figures
    current_alone: float  # the current model's agreement with the new model
    sample: int
    held_out: int

    def report(self) -> dict[str, Any]:
        return {"kind": self.chosen.kind.value, "direction": self.chosen.direction.value,
                "sample": self.sample, "held_out": self.held_out,
                "current_alone": round(self.current_alone, 4),
                "candidates": self.candidates}


def choose_map(current: np.ndarray, new: np.ndarray, new_queries: np.ndarray | None = None,
               kinds: tuple[MapKind, ...] = tuple(MapKind),
               directions: tuple[Direction, ...] = tuple(Direction), seed: int = 0,
               among: tuple[MapKind, ...] | None = None) -> MapChoice:
    """Fit every kind in every direction on the sample's texts encoded by both models
    (``current`` and ``new`` documents, ``new_queries`` the new model's query encoding of the
    same texts, default its document vectors) and keep the one whose search agrees best with
    the new model on the held-out texts (of the kinds ``among``, default all; every kind is
    measured and reported). The search measured is the one an upgrade runs until
    its backfill ends: both models' query vectors, one mapped, added (:func:`ensemble`)."""
    n = len(current)
    if n != len(new) or n < needed_sample(current.shape[1], new.shape[1]):
        raise InvalidUpgrade(
            f"fitting a map from {new.shape[1]} to {current.shape[1]} dimensions needs at least "
            f"{needed_sample(current.shape[1], new.shape[1])} texts encoded by both models; "
            f"{min(n, len(new))} given: sample more texts (the collection's own, or pass more)")
    queries = new if new_queries is None else new_queries
    order = np.random.default_rng(seed).permutation(n)
    cut = n - max(int(n * HELD_OUT), AGREEMENT_K + 1)
    fit, held = order[:cut], order[cut:]
    c, q, ideal = current[held], queries[held], new[held]
    current_alone = agreement(c, c, q, ideal)
    candidates: list[dict[str, Any]] = []
    best: tuple[float, SpaceMap] | None = None
    for direction in directions:
        for kind in kinds:
            if direction is Direction.TO_CURRENT:
                m = fit_map(new[fit], current[fit], kind, direction)
                mapped_q = m.apply(q)
                alone = agreement(mapped_q, c, q, ideal)
                both = agreement(ensemble(mapped_q, c), c, q, ideal)
                cosine = _mean_cosine(m.apply(ideal), c)
            else:
                m = fit_map(current[fit], new[fit], kind, direction)
                docs = m.apply(c)
                alone = agreement(q, docs, q, ideal)
                both = agreement(ensemble(q, docs), docs, q, ideal)
                cosine = _mean_cosine(docs, ideal)
            candidates.append({"kind": kind.value, "direction": direction.value,
                               "agreement": round(both, 4), "new_queries_only": round(alone, 4),
                               "cosine": round(cosine, 4)})
            if among is not None and kind not in among:
                continue
            if best is None or both > best[0] + 1e-6:  # a tie keeps the first direction
                best = (both, m)
    if best is None:
        raise InvalidUpgrade(f"no map of the kinds {[k.value for k in among or ()]} was fitted")
    return MapChoice(best[1], candidates, current_alone, n, len(held))


def ensemble(*parts: np.ndarray) -> np.ndarray:
    """Query vectors of two models in one space, added and scaled to unit length: what an
    upgrade searches with until its backfill ends (measured: well above either model's mapped
    queries alone, and at or near the current model's quality; see docs/models.md)."""
    total = np.sum([np.asarray(p, np.float32) for p in parts], axis=0)
    return (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)).astype(
        np.float32)


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.maximum(na, 1e-12)))


class UpgradeEncoder:
    """The encoder of a collection mid-upgrade, in its stored space: documents are the new
    model's (mapped into the stored space where that is still the current model's); queries
    add the current model's vector (mapped likewise, where the model is still at hand) to the
    new model's: see :func:`ensemble`."""

    def __init__(self, new: Any, new_map: SpaceMap | None, current: Any | None,
                 current_map: SpaceMap | None) -> None:
        self.new, self.new_map = new, new_map
        self.current, self.current_map = current, current_map

    @property
    def model_id(self) -> str:
        return str(self.new.model_id)

    @property
    def dim(self) -> int:
        return self.new_map.target_dim if self.new_map is not None else int(self.new.dim)

    @property
    def max_length(self) -> int | None:
        return getattr(self.new, "max_length", None)

    @staticmethod
    def _through(space_map: SpaceMap | None, vectors: np.ndarray) -> np.ndarray:
        return vectors if space_map is None else space_map.apply(vectors)

    def encode_queries(self, texts: Any) -> np.ndarray:
        new = self._through(self.new_map, self.new.encode_queries(texts))
        if self.current is None:
            return new
        return ensemble(new, self._through(self.current_map, self.current.encode_queries(texts)))

    def encode_documents(self, texts: Any, progress: Any = None) -> np.ndarray:
        return self.stored_and_native(self.new.encode_documents(texts, progress))[0]

    def stored_and_native(self, native: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The new model's document vectors ``native`` in the stored space, and themselves
        where the two spaces differ."""
        if self.new_map is None:
            return native, None
        return self.new_map.apply(native), native
