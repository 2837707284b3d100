"""The codec protocol: how a tier stores vectors and scores float queries against them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from tiervec.errors import DimensionMismatch, InvalidVectors


@runtime_checkable
class Scanner(Protocol):
    """An exhaustive top-m search over every code of a tier (the first tier of a chain).

    What else a scanner can do for a filtered search, it declares by also implementing
    :class:`MaskedScanner`, :class:`SubsetScanner` or :class:`FilteringIndex`.
    """

    @property
    def ntotal(self) -> int:
        """Number of codes added so far."""
        ...

    def add(self, codes: np.ndarray) -> None:
        """Append ``codes`` (rows ``ntotal .. ntotal + len(codes) - 1``)."""
        ...

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` rows per query: ``(scores, rows)``, each ``(n_queries, m)``, best first.

        ``rows`` is ``-1`` (and the score ``-inf``) where fewer than ``m`` codes exist.
        """
        ...


@runtime_checkable
class MaskedScanner(Scanner, Protocol):
    """A scanner that can score only the rows a bitmap allows."""

    @property
    def masks_cheaply(self) -> bool:
        """Whether the bitmap costs nothing (rows outside it are skipped, not scored)."""
        ...

    def search_masked(
        self, queries: np.ndarray, m: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` among the rows where ``mask`` is true (every row if ``None``)."""
        ...


@runtime_checkable
class SubsetScanner(Scanner, Protocol):
    """A scanner that can scan a few given rows alone, cheaper than scanning them all."""

    def search_subset(
        self, queries: np.ndarray, m: int, rows: np.ndarray, source: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` of ``rows`` (sorted), their codes read from ``source`` (a
        :class:`~tiervec.store.codes.CodeSource`) where given."""
        ...


@runtime_checkable
class FilteringIndex(Scanner, Protocol):
    """An ANN index that applies a bitmap inside its search, widening it until every query
    has enough allowed results; ``scale`` multiplies the effort it starts with."""

    def search_filtered(
        self, queries: np.ndarray, m: int, mask: np.ndarray | None, scale: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        ...

    def visited(self, m: int, scale: int = 1) -> float:
        """Codes compared per query for ``m`` candidates at ``scale`` (its cost)."""
        ...


class Codec(ABC):
    """Stores ``d``-dimensional float vectors as codes and scores float queries against them.

    Subclasses are small: ``encode``/``decode`` are vectorised numpy, and ``scanner`` returns the
    fastest exhaustive kernel for the codes (FAISS where it has one). Scores are inner products
    ``scores[i, j] = <q_i, decode(c_j)>`` unless the codec documents otherwise (e.g. Hamming).
    """

    name: ClassVar[str]
    #: Whether ``fit`` learns anything from the data (calibration ranges, rotations...).
    trainable: ClassVar[bool] = False
    #: Whether :meth:`score` is a matrix product (BLAS), so scoring many codes against many
    #: queries at once costs far less per pair than :meth:`score_candidates`.
    scores_by_matrix_product: ClassVar[bool] = True
    #: Whether the codes are the float32 vectors themselves, so that candidates are scored in
    #: place (:func:`tiervec.codecs._faiss.inner_products_by_rows`) instead of gathered.
    codes_are_vectors: ClassVar[bool] = False

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise InvalidVectors(f"a codec needs a positive dimension, got {dim}")
        self.dim = int(dim)
        self.fitted = not self.trainable

    # -- sizes ------------------------------------------------------------------------------
    #: dtype of the code arrays.
    code_dtype: ClassVar[np.dtype]

    @property
    def code_width(self) -> int:
        """Number of ``code_dtype`` items per vector (one per dimension unless overridden)."""
        return self.dim

    @property
    def bytes_per_vector(self) -> int:
        """Exact bytes one vector's codes take (codec state shared by all vectors excluded)."""
        return self.code_width * self.code_dtype.itemsize

    # -- fitting and coding -----------------------------------------------------------------
    def fit(self, sample: np.ndarray) -> Codec:
        """Learn the codec's parameters from ``sample`` ``(n, d)``; a no-op for fixed codecs."""
        self._check(sample)
        self.fitted = True
        return self

    @abstractmethod
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes ``(n, code_width)`` of ``code_dtype`` for float vectors ``x`` ``(n, d)``."""

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate float32 vectors ``(n, d)`` from ``codes``."""

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``(n_queries, n)`` scores of every query against every code."""
        return np.asarray(queries @ self.decode(codes).T, dtype=np.float32)

    def score_candidates(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``scores[i, j] = score(q_i, codes[i, j])`` for per-query candidates ``(nq, m, w)``."""
        nq, m = codes.shape[:2]
        decoded = self.decode(codes.reshape(nq * m, -1)).reshape(nq, m, self.dim)
        return np.einsum("qd,qmd->qm", queries, decoded, dtype=np.float32)

    def scanner(self) -> Scanner:
        """A new, empty exhaustive scanner over codes of this codec."""
        return BlockScanner(self)

    # -- persistence --------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """JSON-serialisable parameters (saved in the manifest)."""
        return {}

    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays (saved as ``.npy`` files beside the manifest)."""
        return {}

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`params` and :meth:`state` returned."""
        self.fitted = True

    # -- helpers ------------------------------------------------------------------------------
    def _check(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DimensionMismatch(
                f"{self.name} codec expects vectors of shape (n, {self.dim}), got {x.shape}"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise InvalidVectors(
                f"the {self.name} codec is not fitted: call fit(sample) with corpus vectors first"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, bytes_per_vector={self.bytes_per_vector})"


def top_m(scores: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``m`` columns per row of ``scores`` ``(nq, n)``: ``(scores, cols)`` sorted descending.

    Pads with ``-inf`` / ``-1`` when ``n < m``.
    """
    nq, n = scores.shape
    take = min(m, n)
    if take == 0:
        cols = np.empty((nq, 0), dtype=np.int64)
    elif take < n:
        cols = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    else:
        cols = np.broadcast_to(np.arange(n), (nq, n))
    part = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-part, axis=1, kind="stable")
    cols = np.take_along_axis(cols, order, axis=1).astype(np.int64)
    part = np.take_along_axis(part, order, axis=1).astype(np.float32)
    if take < m:
        cols = np.pad(cols, ((0, 0), (0, m - take)), constant_values=-1)
        part = np.pad(part, ((0, 0), (0, m - take)), constant_values=-np.inf)
    return part, cols


def merge_top_m(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two ``(scores, rows)`` top lists into the best ``m``."""
    scores = np.concatenate([a[0], b[0]], axis=1)
    rows = np.concatenate([a[1], b[1]], axis=1)
    best, cols = top_m(scores, m)
    return best, np.where(cols >= 0, np.take_along_axis(rows, np.maximum(cols, 0), axis=1), -1)


class BlockScanner:
    """Exhaustive scan with the codec's own ``score``, a block of codes at a time.

    The fallback for codecs without a FAISS kernel; memory use is ``nq x block`` scores.
    """

    def __init__(self, codec: Codec, block: int = 65536) -> None:
        self.codec = codec
        self.block = block
        self._chunks: list[np.ndarray] = []

    @property
    def ntotal(self) -> int:
        return sum(len(c) for c in self._chunks)

    def add(self, codes: np.ndarray) -> None:
        self._chunks.append(codes)  # memmaps stay on disk: blocks are read as scanned

    #: A bitmap restricts this scan at no extra cost (see :meth:`search_masked`).
    masks_cheaply = True

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search_masked(queries, m, None)

    def search_masked(
        self, queries: np.ndarray, m: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` among the rows where ``mask`` is true (every row if ``None``)."""
        nq = len(queries)
        best = (np.full((nq, 0), -np.inf, np.float32), np.full((nq, 0), -1, np.int64))
        offset = 0
        for chunk in self._chunks:
            for start in range(0, len(chunk), self.block):
                scores = self.codec.score(queries, chunk[start : start + self.block])
                if mask is not None:
                    lo = offset + start
                    scores[:, ~mask[lo : lo + scores.shape[1]]] = -np.inf
                s, cols = top_m(scores, m)
                cols = np.where(np.isfinite(s), cols, -1)
                rows = np.where(cols >= 0, cols + offset + start, -1)
                best = merge_top_m(best, (s, rows), m)
            offset += len(chunk)
        return best if best[0].shape[1] else empty_top(nq, m)


def empty_top(nq: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """A top list with no hits: scores ``-inf`` and rows ``-1``, shape ``(nq, m)``."""
    return np.full((nq, m), -np.inf, np.float32), np.full((nq, m), -1, np.int64)
