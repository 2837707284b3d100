"""sentence-transformers backend (CPU, or GPU when torch sees one)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from tiervec._extras import require
from tiervec.encode import tokens
from tiervec.encode.base import EncoderConfig, ProgressFn, encode_sorted
from tiervec.encode.models import resolve_model

log = logging.getLogger(__name__)


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
        with quiet_loading():
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

    @property
    def max_window(self) -> int:
        """The longest input the model can read at all (its position table)."""
        config = getattr(self.model[0].auto_model, "config", None)
        return int(getattr(config, "max_position_embeddings", None) or self.max_length)

    @property
    def normalize(self) -> bool:
        """Whether vectors are normalised to unit length."""
        return self.config.normalize

    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's word pieces as character ranges ``(n, 2)`` (no special tokens, no
        truncation), from the model's own tokenizer."""
        return tokens.offsets(self.model.tokenizer, texts)

    def truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than the model reads (their end is not embedded)."""
        limit = self.max_length - self.model.tokenizer.num_special_tokens_to_add()
        ids = tokens.ids(self.model.tokenizer, [self.config.document_prefix + t for t in texts])
        return sum(len(i) > limit for i in ids)

    def token_vectors(
        self, texts: Sequence[str], window: int | None = None,
        progress: ProgressFn | None = None, query: bool = False,
    ) -> list[np.ndarray]:
        """The model's output for every word piece of each text ``(n_i, dim)`` (before
        pooling), read in overlapping windows of ``window`` tokens (default ``max_length``)
        when a text is longer (see :func:`tiervec.encode.tokens.windows`); ``query``: the
        texts are queries (the query prefix is read before them)."""
        window = window or self.max_length
        if window > self.max_window:
            log.warning("window %d is above the model's %d positions; using %d", window,
                        self.max_window, self.max_window)
            window = self.max_window
        prefix = self.config.query_prefix if query else self.config.document_prefix
        return tokens.token_outputs(self.model[0].auto_model, self.model.tokenizer, texts,
                                    prefix, window, self.config.batch_size, progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.config.query_prefix + t for t in texts])

    def encode_documents(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> np.ndarray:
        return encode_sorted([self.config.document_prefix + t for t in texts], self._encode,
                             self.dim, progress)

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
def quiet_loading() -> Iterator[None]:
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
