"""Scalar quantization (int8, int4) with per-dimension ranges calibrated on the corpus.

Each dimension ``j`` maps ``[lo_j, lo_j + width_j]`` onto ``L + 1`` levels (``L`` = 255 or 15)::

    code = clip(floor(L * (x - lo) / width), 0, L)
    x'   = lo + (code + 0.5) / L * width

which is exactly FAISS's ``QT_8bit`` / ``QT_4bit`` scalar quantizer (int4 packs dimension ``2i``
in the low nibble of byte ``i`` and ``2i + 1`` in the high one), so FAISS's SIMD kernels scan our
codes. int8 takes each dimension's min and max; int4 clips its range at the quantile (searched on
the sample) that gives the smallest reconstruction error, since 16 levels cannot afford outliers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tiervec.codecs._faiss import FlatCodesScanner, faiss_module
from tiervec.codecs.base import Codec, Scanner
from tiervec.errors import InvalidVectors

#: Rows encoded at a time: keeps the temporaries of a chunk in cache.
_CHUNK = 1024


class ScalarCodec(Codec):
    """Uniform scalar quantizer with ``levels + 1`` codes per dimension."""

    trainable = True
    levels: ClassVar[int]
    #: Tail quantiles tried when calibrating the ranges (0 = min/max).
    clip_quantiles: ClassVar[tuple[float, ...]] = (0.0,)

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.lo = np.zeros(dim, np.float32)
        self.width = np.ones(dim, np.float32)

    code_dtype = np.dtype(np.uint8)

    def fit(self, sample: np.ndarray) -> ScalarCodec:
        x = self._check(sample)
        if len(x) == 0:
            raise InvalidVectors(
                f"the {self.name} codec needs at least one vector to fit its ranges")
        best = np.inf
        for q in self.clip_quantiles:
            lo, hi = (x.min(axis=0), x.max(axis=0)) if q == 0 else np.quantile(x, [q, 1 - q], 0)
            self.lo = lo.astype(np.float32)
            # A constant dimension keeps a tiny positive width so that codes stay defined.
            self.width = np.maximum(hi - lo, np.float32(1e-12)).astype(np.float32)
            self.fitted = True
            err = float(((self._levels_to_x(self._x_to_levels(x)) - x) ** 2).sum())
            if err < best:
                best, chosen = err, (self.lo, self.width)
        self.lo, self.width = chosen
        return self

    def _x_to_levels(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, np.uint8)
        step = np.float32(self.levels) / self.width
        for start in range(0, len(x), _CHUNK):
            s = x[start : start + _CHUNK] - self.lo
            s *= step
            np.floor(s, out=s)
            np.clip(s, 0, self.levels, out=s)
            out[start : start + _CHUNK] = s
        return out

    def _levels_to_x(self, levels: np.ndarray) -> np.ndarray:
        return self.lo + (levels.astype(np.float32) + np.float32(0.5)) * (self.width / self.levels)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        # <q, lo + (c + .5) * w / L> = <q, lo + .5 w / L> + <q * w / L, c>
        step = self.width / np.float32(self.levels)
        bias = queries @ (self.lo + np.float32(0.5) * step)
        levels = self._unpack(codes).astype(np.float32)
        return (bias[:, None] + (queries * step) @ levels.T).astype(np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return self._pack(self._x_to_levels(self._check(x)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return self._levels_to_x(self._unpack(codes))

    def _pack(self, levels: np.ndarray) -> np.ndarray:
        return levels

    def _unpack(self, codes: np.ndarray) -> np.ndarray:
        return codes

    def scanner(self) -> Scanner:
        self._require_fitted()
        faiss = faiss_module()
        sq = faiss.ScalarQuantizer
        qtype = sq.QT_8bit if self.levels == 255 else sq.QT_4bit
        index = faiss.IndexScalarQuantizer(self.dim, qtype, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(np.concatenate([self.lo, self.width]), index.sq.trained)
        index.is_trained = True
        return FlatCodesScanner(index)

    def params(self) -> dict[str, Any]:
        return {"ranges": "minmax" if self.clip_quantiles == (0.0,) else "clipped"}

    def state(self) -> dict[str, np.ndarray]:
        return {"lo": self.lo, "width": self.width}

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.lo = np.asarray(arrays["lo"], np.float32)
        self.width = np.asarray(arrays["width"], np.float32)
        self.fitted = True


class Int8Codec(ScalarCodec):
    """One byte per dimension; ranges are the min and max of each dimension in the sample."""

    name = "int8"
    levels = 255


class Int4Codec(ScalarCodec):
    """Half a byte per dimension; ranges clipped at the quantile with the least error."""

    name = "int4"
    levels = 15
    clip_quantiles = (0.0, 0.0005, 0.002, 0.005, 0.01, 0.02)

    @property
    def code_width(self) -> int:
        return (self.dim + 1) // 2

    def _pack(self, levels: np.ndarray) -> np.ndarray:
        if self.dim % 2:
            levels = np.pad(levels, ((0, 0), (0, 1)))
        return levels[:, 0::2] | (levels[:, 1::2] << 4)

    def _unpack(self, codes: np.ndarray) -> np.ndarray:
        out = np.empty((len(codes), codes.shape[1] * 2), np.uint8)
        out[:, 0::2] = codes & 0x0F
        out[:, 1::2] = codes >> 4
        return out[:, : self.dim]
