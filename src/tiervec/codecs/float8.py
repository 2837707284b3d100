"""float8 codecs (OCP FP8 ``e4m3fn`` and ``e5m2``): one byte per dimension, floating point.

``code = fp8(x * s)`` and ``x' = float(code) / s``, with one scale ``s`` fitted on the corpus so
that its largest magnitude maps near the top of the format's range and small components stay out
of the subnormals (embeddings live in about ``[-0.3, 0.3]``, where raw ``e4m3`` would lose most
of its precision). Rounding is to nearest, ties to even; values beyond the range saturate.
Encoding uses torch's vectorised cast when torch is installed (>1M vectors/s for 384-d) and
``ml_dtypes`` otherwise, bit-identical either way; decoding is a 256-entry table look-up.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np

from tiervec._extras import require
from tiervec.codecs.base import Codec
from tiervec.errors import InvalidVectors

#: Fraction of the format's largest finite value that the corpus's largest magnitude maps to.
HEADROOM = 0.5


class Float8Codec(Codec):
    """``e4m3fn`` float8: 3 mantissa bits (relative error <= 2**-4), range +-448."""

    name = "float8"
    trainable = True
    fmt: ClassVar[str] = "float8_e4m3fn"
    max_value: ClassVar[float] = 448.0

    code_dtype = np.dtype(np.uint8)

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.scale = np.float32(1.0)
        self._table: np.ndarray | None = None

    def fit(self, sample: np.ndarray) -> Float8Codec:
        x = self._check(sample)
        if len(x) == 0:
            raise InvalidVectors(
                f"the {self.name} codec needs at least one vector to fit its scale")
        peak = float(np.abs(x).max())
        self.scale = np.float32(self.max_value * HEADROOM / peak if peak > 0 else 1.0)
        self.fitted = True
        return self

    @property
    def table(self) -> np.ndarray:
        """float32 value of each of the 256 codes (NaN codes decode to 0)."""
        if self._table is None:
            dtype = getattr(require("ml_dtypes"), self.fmt)
            values = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
            self._table = np.nan_to_num(values, nan=0.0) / self.scale
        return self._table

    def encode(self, x: np.ndarray) -> np.ndarray:
        self._require_fitted()
        x = self._check(x)
        limit = np.float32(self.max_value)
        try:
            torch = importlib.import_module("torch")
        except ImportError:
            dtype = getattr(require("ml_dtypes"), self.fmt)
            return np.clip(x * self.scale, -limit, limit).astype(dtype).view(np.uint8)
        t = torch.from_numpy(x * self.scale).clamp_(-float(limit), float(limit))
        return t.to(getattr(torch, self.fmt)).view(torch.uint8).numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return np.take(self.table, codes)

    def params(self) -> dict[str, Any]:
        return {"format": self.fmt, "scale": float(self.scale)}

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.scale = np.float32(params["scale"])
        self._table = None
        self.fitted = True


class Float8E5M2Codec(Float8Codec):
    """``e5m2`` float8: 2 mantissa bits (relative error <= 2**-3), range +-57344."""

    name = "float8e5m2"
    fmt = "float8_e5m2"
    max_value = 57344.0
