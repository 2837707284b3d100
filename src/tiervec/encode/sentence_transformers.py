"""sentence-transformers backend (CPU, or GPU when torch sees one)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from tiervec._extras import require
from tiervec.encode.base import EncoderConfig, ProgressFn
from tiervec.encode.models import resolve_model

#: Texts encoded per call to the model; progress is reported after each chunk.
CHUNK = 256


class SentenceTransformerEncoder:
    """Encodes with a local sentence-transformers model; never reaches a model hub.

    Documents are sorted by length before batching (as sentence-transformers itself does), then
    encoded in chunks so that progress can be reported, and put back in input order.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()
        self._path = resolve_model(self.config.model)
        st = require("sentence_transformers")
        device = self.config.device or _default_device()
        with _quiet_loading():
            self.model: Any = st.SentenceTransformer(
                str(self._path), device=device, local_files_only=True
            )
        if self.config.max_length is not None:
            self.model.max_seq_length = self.config.max_length

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_length(self) -> int:
        """Tokens per text the model reads; longer texts are truncated."""
        return int(self.model.max_seq_length)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.config.query_prefix + t for t in texts])

    def encode_documents(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> np.ndarray:
        texts = [self.config.document_prefix + t for t in texts]
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), CHUNK):
            idx = order[start : start + CHUNK]
            out[idx] = self._encode([texts[i] for i in idx])
            if progress is not None:
                progress(len(idx))
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=self.config.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar, restoring the caller's setting after."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
