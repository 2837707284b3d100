"""Dimension reducers and rotations that compose in front of any codec (``pca256+float8``).

A reducer maps corpus vectors ``x`` (``d_in``) to ``y`` (``d_out``) before the codec codes them,
and maps queries so that inner products carry over::

    linear:  y = W (x - mu),   q' = W q,   <q, x> ~ <q', y> + <q, mu>

(exact for a rotation; PCA drops the variance outside its ``d_out`` components). The
``<q, mu>`` term is a per-query constant added back to scores, so rankings never depend on it.

- ``center``: subtract the corpus mean (``W = I``).
- ``rot``: a random orthogonal rotation (seeded), spreading variance evenly over dimensions.
- ``itq``: iterative quantization (Gong & Lazebnik): the rotation that minimises the
  quantization error of the signs, ``min_R ||sign(XR) - XR||``.
- ``pca<k>``: the top ``k`` principal components of the corpus (mean removed).
- ``trunc<k>``: Matryoshka truncation to the first ``k`` dimensions; documents are re-normalised
  (cosine on the prefix, the Matryoshka convention).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from tiervec.errors import InvalidTierSpec, InvalidVectors

#: Rows of the sample used to fit a reducer (the rest adds cost, not accuracy).
FIT_ROWS = 100_000
ITQ_ITERATIONS = 50
#: Rows ITQ iterates on (each iteration costs ``rows x d^2``).
ITQ_ROWS = 20_000
SEED = 0


class Reducer(ABC):
    """Maps ``d_in``-dimensional vectors to ``d_out`` ones before a codec sees them."""

    name: str
    trainable: ClassVar[bool] = True

    def __init__(self, dim_in: int, dim_out: int | None = None) -> None:
        self.dim_in = dim_in
        self.dim_out = dim_in if dim_out is None else dim_out

    def min_fit_rows(self) -> int:
        """Fewest vectors :meth:`fit` accepts."""
        return 1 if self.trainable else 0

    def fit(self, x: np.ndarray) -> None:
        """Learn the map from corpus vectors ``x`` ``(n, d_in)``."""
        need = self.min_fit_rows()
        if len(x) < need:
            raise InvalidVectors(
                f"{self.name} needs at least {need} vectors to fit (got {len(x)}): a "
                f"{self.dim_in}-dimensional covariance is singular with fewer. Add more documents "
                "before choosing this tier, or use a reducer that needs no training "
                f"('trunc{self.dim_out}' or 'rot')"
            )
        self._fit(x[:FIT_ROWS])

    def _fit(self, x: np.ndarray) -> None:  # noqa: B027 - fixed reducers learn nothing
        """Learn from ``x`` (at most :data:`FIT_ROWS` rows)."""

    @abstractmethod
    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map corpus vectors ``(n, d_in)`` to ``(n, d_out)``."""

    @abstractmethod
    def apply_query(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map queries: ``(q', offset)`` with ``<q, x> ~ <q', apply(x)> + offset``."""

    @abstractmethod
    def invert(self, y: np.ndarray) -> np.ndarray:
        """Approximately map reduced vectors back to ``d_in`` dimensions."""

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(  # noqa: B027 - reducers without state restore nothing
        self, params: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> None:
        """Restore what :meth:`params` and :meth:`state` returned."""


class LinearReducer(Reducer):
    """``y = W (x - mu)``; ``W`` is ``(d_out, d_in)`` with orthonormal rows, or the identity."""

    def __init__(self, dim_in: int, dim_out: int | None = None) -> None:
        super().__init__(dim_in, dim_out)
        self.mean = np.zeros(dim_in, np.float32)
        self.matrix: np.ndarray | None = None  # None: the identity

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x - self.mean
        return y if self.matrix is None else y @ self.matrix.T

    def apply_query(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offset = (q @ self.mean).astype(np.float32)
        return (q if self.matrix is None else q @ self.matrix.T), offset

    def invert(self, y: np.ndarray) -> np.ndarray:
        return (y if self.matrix is None else y @ self.matrix) + self.mean

    def state(self) -> dict[str, np.ndarray]:
        out = {"mean": self.mean}
        if self.matrix is not None:
            out["matrix"] = self.matrix
        return out

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.mean = np.asarray(arrays["mean"], np.float32)
        matrix = arrays.get("matrix")
        self.matrix = None if matrix is None else np.asarray(matrix, np.float32)


class Center(LinearReducer):
    name = "center"

    def _fit(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)


class RandomRotation(LinearReducer):
    name = "rot"
    trainable = False

    def __init__(self, dim_in: int, dim_out: int | None = None) -> None:
        super().__init__(dim_in)
        q, r = np.linalg.qr(np.random.default_rng(SEED).standard_normal((dim_in, dim_in)))
        self.matrix = (q * np.sign(np.diag(r))).T.astype(np.float32)  # Haar-distributed


class ITQRotation(LinearReducer):
    name = "itq"

    def min_fit_rows(self) -> int:
        return self.dim_in

    def _fit(self, x: np.ndarray) -> None:
        v = np.ascontiguousarray(x[:ITQ_ROWS], dtype=np.float32)
        rng = np.random.default_rng(SEED)
        rotation = np.linalg.qr(rng.standard_normal((self.dim_in,) * 2))[0].astype(np.float32)
        for _ in range(ITQ_ITERATIONS):
            b = np.where(v @ rotation > 0, np.float32(1), np.float32(-1))
            u, _, wt = np.linalg.svd(v.T @ b)  # orthogonal Procrustes: argmax tr(R^T V^T B)
            rotation = u @ wt
        self.matrix = np.ascontiguousarray(rotation.T, dtype=np.float32)


class PCA(LinearReducer):
    def __init__(self, dim_in: int, dim_out: int | None = None) -> None:
        super().__init__(dim_in, dim_out)
        self.name = f"pca{self.dim_out}"

    def min_fit_rows(self) -> int:
        return self.dim_in

    def _fit(self, x: np.ndarray) -> None:
        mean = x.mean(axis=0, dtype=np.float64)
        centred = x.astype(np.float64) - mean
        _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        self.mean = mean.astype(np.float32)
        self.matrix = np.ascontiguousarray(vectors[:, ::-1][:, : self.dim_out].T, np.float32)


class Truncate(Reducer):
    """The first ``k`` dimensions; documents re-normalised (Matryoshka)."""

    trainable = False

    def __init__(self, dim_in: int, dim_out: int | None = None) -> None:
        super().__init__(dim_in, dim_out)
        self.name = f"trunc{self.dim_out}"

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = np.ascontiguousarray(x[:, : self.dim_out])
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return y / np.where(norms > 0, norms, 1).astype(np.float32)

    def apply_query(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(q[:, : self.dim_out]), np.zeros(len(q), np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        return np.pad(y, ((0, 0), (0, self.dim_in - self.dim_out)))


#: Reducers by name; ``pca`` and ``trunc`` take the output dimension as a suffix.
REDUCERS: dict[str, type[Reducer]] = {
    "center": Center, "rot": RandomRotation, "itq": ITQRotation, "pca": PCA, "trunc": Truncate,
}
SIZED = {"pca", "trunc"}


def make_reducer(family: str, dim_in: int, size: int | None) -> Reducer:
    """Reducer ``family`` (with output ``size`` for ``pca``/``trunc``) for ``dim_in`` inputs."""
    if family in SIZED:
        if size is None or not 1 <= size <= dim_in:
            raise InvalidTierSpec(
                f"{family}{size or ''}: the output dimension must be between 1 and the input "
                f"dimension {dim_in}, e.g. '{family}{max(1, dim_in // 2)}'"
            )
        return REDUCERS[family](dim_in, size)
    if size is not None:
        raise InvalidTierSpec(f"{family}{size}: {family} takes no size; write '{family}'")
    return REDUCERS[family](dim_in)
