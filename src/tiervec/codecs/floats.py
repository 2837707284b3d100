"""float32 and float16 codecs: the vectors themselves, at full or half precision."""

from __future__ import annotations

import numpy as np

from tiervec.codecs._faiss import FlatCodesScanner, faiss_module
from tiervec.codecs.base import Codec, Scanner


class Float32Codec(Codec):
    """The exact vectors, 4 bytes per dimension. Scores are exact inner products."""

    name = "float32"
    codes_are_vectors = True

    code_dtype = np.dtype(np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self._check(x)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float32)

    def scanner(self) -> Scanner:
        faiss = faiss_module()
        return FlatCodesScanner(faiss.IndexFlatIP(self.dim))


class Float16Codec(Codec):
    """IEEE half precision, 2 bytes per dimension (relative error <= 2**-11)."""

    name = "float16"

    code_dtype = np.dtype(np.float16)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self._check(x).astype(np.float16)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float32)

    def scanner(self) -> Scanner:
        faiss = faiss_module()
        index = faiss.IndexScalarQuantizer(
            self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        return FlatCodesScanner(index)
