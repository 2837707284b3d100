"""FAISS's learned quantizers as tiervec codecs: PQ, OPQ and RaBitQ, on equal terms in chains.

- ``pq<M>``: product quantization, ``M`` sub-vectors of 8 bits (``M`` bytes per vector); the
  exhaustive scan is FAISS's ``IndexPQ`` look-up-table kernel over our codes.
- ``opq<M>``: a reducer, the rotation OPQ learns for ``M`` sub-spaces; ``opq<M>`` alone as a
  codec means ``opq<M>+pq<M>``.
- ``rabitq`` / ``rabitq<b>``: RaBitQ (``b`` = 1..4 bits per dimension plus 8 bytes of per-vector
  factors); FAISS's ``IndexRaBitQ`` kernel scans, with its default 4-bit query quantization.

Codes are FAISS's standalone codes (``sa_encode``), so nothing is re-encoded when a scanner is
built, and the trained quantizer is saved as FAISS's own serialisation (a ``uint8`` array).
Candidates of a later tier are scored against the decoded vectors (``sa_decode``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tiervec.codecs._faiss import FlatCodesScanner, faiss_module
from tiervec.codecs.base import Codec, Scanner
from tiervec.codecs.reducers import LinearReducer
from tiervec.errors import InvalidTierSpec, InvalidVectors

#: k-means needs at least this many training vectors per PQ sub-quantizer (2**8 centroids).
PQ_MIN_ROWS = 256
#: Alternations of rotation and PQ training (FAISS's default is 50; the rotation settles sooner).
OPQ_ITERATIONS = 20


class FaissCodec(Codec):
    """A FAISS ``IndexFlatCodes`` quantizer (built from a factory string) used as a codec."""

    trainable = True
    code_dtype = np.dtype(np.uint8)
    min_rows = 1

    def __init__(self, dim: int, name: str) -> None:
        super().__init__(dim)
        self.name = name  # type: ignore[misc]
        self.index = self._new_index()

    def _new_index(self) -> Any:
        raise NotImplementedError

    @property
    def code_width(self) -> int:
        return int(self.index.sa_code_size())

    def fit(self, sample: np.ndarray) -> FaissCodec:
        x = self._check(sample)
        if len(x) < self.min_rows:
            raise InvalidVectors(
                f"the {self.name} codec needs at least {self.min_rows} vectors to train "
                f"(got {len(x)}); add more documents first, or use a codec that needs less "
                "training such as 'int8' or 'binary'"
            )
        self.index = self._new_index()
        self.index.train(x)
        self.fitted = True
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return np.asarray(self.index.sa_encode(self._check(x)), np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return np.asarray(self.index.sa_decode(np.ascontiguousarray(codes, np.uint8)), np.float32)

    def scanner(self) -> Scanner:
        return self._flat_scanner()

    def _flat_scanner(self) -> FlatCodesScanner:
        self._require_fitted()
        faiss = faiss_module()
        index = faiss.deserialize_index(faiss.serialize_index(self.index))
        index.reset()
        return FlatCodesScanner(index)

    def state(self) -> dict[str, np.ndarray]:
        return {"index": faiss_module().serialize_index(self.index)}

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.index = faiss_module().deserialize_index(np.asarray(arrays["index"], np.uint8))
        self.fitted = True


class PQCodec(FaissCodec):
    """``M`` bytes per vector: one 8-bit k-means code per ``d / M``-dimensional sub-vector."""

    min_rows = PQ_MIN_ROWS

    def __init__(self, dim: int, m: int) -> None:
        if m < 1 or dim % m:
            raise InvalidTierSpec(
                f"pq{m}: the number of sub-quantizers must divide the dimension {dim}; "
                f"valid choices include {', '.join(f'pq{v}' for v in _divisors(dim))}"
            )
        self.m = m
        super().__init__(dim, f"pq{m}")

    def _new_index(self) -> Any:
        faiss = faiss_module()
        index = faiss.IndexPQ(self.dim, self.m, 8, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.min_points_per_centroid = 1  # we check the sample size ourselves
        return index


class RaBitQCodec(FaissCodec):
    """RaBitQ: ``b`` bits per dimension plus per-vector correction factors.

    Scores are RaBitQ's own estimator (FAISS's kernel), for candidates too: FAISS's
    ``sa_decode`` ignores the extra bits of multi-bit codes, so decoding would waste them.
    """

    scores_by_matrix_product = False  # one small FAISS index per query

    def __init__(self, dim: int, bits: int = 1) -> None:
        if not 1 <= bits <= 4:
            raise InvalidTierSpec(f"rabitq{bits}: RaBitQ takes 1 to 4 bits, e.g. 'rabitq2'")
        self.bits = bits
        super().__init__(dim, "rabitq" if bits == 1 else f"rabitq{bits}")

    def _new_index(self) -> Any:
        faiss = faiss_module()
        return faiss.IndexRaBitQ(self.dim, faiss.METRIC_INNER_PRODUCT, self.bits)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return self.score_candidates(queries, np.broadcast_to(codes, (len(queries), *codes.shape)))

    def score_candidates(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        nq, m = codes.shape[:2]
        out = np.full((nq, m), -np.inf, np.float32)
        scanner = self._flat_scanner()
        q = np.ascontiguousarray(queries, np.float32)
        for i in range(nq):  # one small index per query: RaBitQ's estimator on its candidates
            scanner.index.reset()
            scanner.add(codes[i])
            scores, cols = scanner.search(q[i : i + 1], m)
            keep = cols[0] >= 0
            out[i, cols[0][keep]] = scores[0][keep]
        return out


class OPQRotation(LinearReducer):
    """The rotation OPQ learns so that ``M`` sub-spaces quantize with the least error."""

    def __init__(self, dim_in: int, m: int | None = None) -> None:
        m = m or 1
        if dim_in % m:
            raise InvalidTierSpec(
                f"opq{m}: the number of sub-spaces must divide the dimension {dim_in}; "
                f"valid choices include {', '.join(f'opq{v}' for v in _divisors(dim_in))}"
            )
        super().__init__(dim_in)
        self.m = m
        self.name = f"opq{m}"

    def min_fit_rows(self) -> int:
        return max(PQ_MIN_ROWS, self.dim_in)

    def _fit(self, x: np.ndarray) -> None:
        faiss = faiss_module()
        opq = faiss.OPQMatrix(self.dim_in, self.m)
        opq.niter = OPQ_ITERATIONS
        pq = faiss.ProductQuantizer(self.dim_in, self.m, 8)
        pq.cp.min_points_per_centroid = 1
        opq.pq = pq
        opq.train(np.ascontiguousarray(x, np.float32))
        a = faiss.vector_to_array(opq.A).reshape(self.dim_in, self.dim_in)
        self.matrix = np.ascontiguousarray(a, np.float32)  # y = A x


def _divisors(dim: int) -> list[int]:
    return [v for v in (4, 8, 12, 16, 24, 32, 48, 64, 96, 128) if dim % v == 0][:6]
