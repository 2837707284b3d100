"""int8 scalar quantization with per-dimension ranges calibrated on the corpus.

Each dimension ``j`` maps ``[lo_j, lo_j + width_j]`` onto 256 levels::

    code = clip(floor(255 * (x - lo) / width), 0, 255)
    x'   = lo + (code + 0.5) / 255 * width

which is exactly FAISS's ``QT_8bit`` scalar quantizer, so FAISS's SIMD kernel scans our codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tiervec.codecs._faiss import FlatCodesScanner, faiss_module
from tiervec.codecs.base import Codec, Scanner
from tiervec.errors import InvalidVectors


class Int8Codec(Codec):
    """One byte per dimension; ranges are the min and max of each dimension in the sample."""

    name = "int8"
    trainable = True

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.lo = np.zeros(dim, np.float32)
        self.width = np.ones(dim, np.float32)

    code_dtype = np.dtype(np.uint8)

    def fit(self, sample: np.ndarray) -> Int8Codec:
        x = self._check(sample)
        if len(x) == 0:
            raise InvalidVectors("the int8 codec needs at least one vector to fit its ranges")
        self.lo = x.min(axis=0)
        # A constant dimension keeps a tiny positive width so that codes stay defined.
        self.width = np.maximum(x.max(axis=0) - self.lo, np.float32(1e-12))
        self.fitted = True
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        self._require_fitted()
        x = self._check(x)
        scaled = (x - self.lo) * (np.float32(255.0) / self.width)
        return np.clip(np.floor(scaled), 0, 255).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return self.lo + (codes.astype(np.float32) + np.float32(0.5)) * (self.width / 255.0)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        # <q, lo + (c + .5) * w / 255> = <q, lo + .5 w / 255> + <q * w / 255, c>
        step = self.width / np.float32(255.0)
        bias = queries @ (self.lo + np.float32(0.5) * step)
        return (bias[:, None] + (queries * step) @ codes.T.astype(np.float32)).astype(np.float32)

    def scanner(self) -> Scanner:
        self._require_fitted()
        faiss = faiss_module()
        index = faiss.IndexScalarQuantizer(
            self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        faiss.copy_array_to_vector(np.concatenate([self.lo, self.width]), index.sq.trained)
        index.is_trained = True
        return FlatCodesScanner(index)

    def params(self) -> dict[str, Any]:
        return {"ranges": "minmax"}

    def state(self) -> dict[str, np.ndarray]:
        return {"lo": self.lo, "width": self.width}

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.lo = np.asarray(arrays["lo"], np.float32)
        self.width = np.asarray(arrays["width"], np.float32)
        self.fitted = True
