"""Encoders: texts -> float32 vectors ``(n, d)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiervec.encode.base import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.models import KNOWN_MODELS, resolve_model

if TYPE_CHECKING:
    from tiervec.encode.sentence_transformers import SentenceTransformerEncoder


def load_encoder(config: EncoderConfig | str | None = None) -> SentenceTransformerEncoder:
    """The encoder for ``config`` (a config, a model name or path, or the default model)."""
    from tiervec.encode.sentence_transformers import SentenceTransformerEncoder

    if isinstance(config, str):
        config = EncoderConfig(model=config)
    return SentenceTransformerEncoder(config)


__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "Encoder",
    "EncoderConfig",
    "load_encoder",
    "resolve_model",
]
