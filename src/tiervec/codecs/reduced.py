"""A codec behind reducers: ``pca256+float8`` is PCA to 256 dimensions, then float8 codes.

The composite is itself a :class:`~tiervec.codecs.base.Codec` over the original dimension, so
tiers, chains and collections use it like any other: corpus vectors go through the reducers and
then the inner codec; queries go through the reducers' query maps, and their per-query offsets
(``<q, mu>`` for a mean) are added back to the scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tiervec.codecs.base import Codec, Scanner
from tiervec.codecs.reducers import Reducer


class ReducedCodec(Codec):
    """``reducers`` applied in order, then ``inner`` (whose dimension is the last output)."""

    def __init__(self, reducers: Sequence[Reducer], inner: Codec) -> None:
        super().__init__(reducers[0].dim_in)
        self.reducers = list(reducers)
        self.inner = inner
        self.name = "+".join([*(r.name for r in self.reducers), inner.name])  # type: ignore[misc]
        self.trainable = inner.trainable or any(r.trainable for r in self.reducers)  # type: ignore[misc]
        self.fitted = not self.trainable
        self.code_dtype = inner.code_dtype  # type: ignore[misc]
        self.scores_by_matrix_product = inner.scores_by_matrix_product  # type: ignore[misc]

    @property
    def code_width(self) -> int:
        return self.inner.code_width

    @property
    def bytes_per_vector(self) -> int:
        return self.inner.bytes_per_vector

    def reduce(self, x: np.ndarray) -> np.ndarray:
        """Corpus vectors through every reducer."""
        for r in self.reducers:
            x = r.apply(x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def reduce_queries(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Queries through every reducer: ``(q', offset)`` with scores = inner scores + offset."""
        offset = np.zeros(len(q), np.float32)
        for r in self.reducers:
            q, extra = r.apply_query(q)
            offset += extra
        return np.ascontiguousarray(q, dtype=np.float32), offset

    def fit(self, sample: np.ndarray) -> ReducedCodec:
        x = self._check(sample)
        for r in self.reducers:
            r.fit(x)
            x = r.apply(x)
        self.inner.fit(np.ascontiguousarray(x, dtype=np.float32))
        self.fitted = True
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return self.inner.encode(self.reduce(self._check(x)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        y = self.inner.decode(codes)
        for r in reversed(self.reducers):
            y = r.invert(y)
        return np.asarray(y, dtype=np.float32)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q, offset = self.reduce_queries(queries)
        return self.inner.score(q, codes) + offset[:, None]

    def score_candidates(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q, offset = self.reduce_queries(queries)
        return self.inner.score_candidates(q, codes) + offset[:, None]

    def scanner(self) -> Scanner:
        self._require_fitted()
        return ReducedScanner(self, self.inner.scanner())

    def params(self) -> dict[str, Any]:
        return {"reducers": [r.params() for r in self.reducers], "codec": self.inner.params()}

    def state(self) -> dict[str, np.ndarray]:
        out = {f"r{i}-{k}": v for i, r in enumerate(self.reducers) for k, v in r.state().items()}
        out.update({f"codec-{k}": v for k, v in self.inner.state().items()})
        return out

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for i, r in enumerate(self.reducers):
            prefix = f"r{i}-"
            mine = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            r.load_state(params["reducers"][i], mine)
        inner = {k[6:]: v for k, v in arrays.items() if k.startswith("codec-")}
        self.inner.load_state(params["codec"], inner)
        self.fitted = True


class ReducedScanner:
    """The inner codec's scanner, fed reduced queries; offsets added to the scores."""

    def __init__(self, codec: ReducedCodec, inner: Scanner) -> None:
        self.codec = codec
        self.inner = inner

    @property
    def ntotal(self) -> int:
        return self.inner.ntotal

    def add(self, codes: np.ndarray) -> None:
        self.inner.add(codes)

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        q, offset = self.codec.reduce_queries(queries)
        scores, rows = self.inner.search(q, m)
        return np.where(rows >= 0, scores + offset[:, None], -np.inf).astype(np.float32), rows
