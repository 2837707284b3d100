"""The encoder protocol and its configuration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: The model new collections use unless told otherwise.
DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """How texts become vectors. Saved in a collection's manifest, so queries match documents.

    ``model`` is a known model name (see :data:`tiervec.encode.models.KNOWN_MODELS`) or a local
    sentence-transformers folder. Prefixes are prepended to every query / document text (e5-style
    models want ``"query: "`` and ``"passage: "``).
    """

    model: str = DEFAULT_MODEL
    query_prefix: str = ""
    document_prefix: str = ""
    normalize: bool = True
    batch_size: int = 32
    max_length: int | None = None
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a manifest (``device`` is a run-time choice, not stored)."""
        out = asdict(self)
        out.pop("device")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {
            "model", "query_prefix", "document_prefix", "normalize", "batch_size", "max_length"
        }
        return cls(**{k: v for k, v in data.items() if k in names})


ProgressFn = Callable[[int], None]

#: Texts encoded per call to a model; progress is reported after each chunk.
CHUNK = 256


def encode_sorted(texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], dim: int,
                  progress: ProgressFn | None = None) -> np.ndarray:
    """``encode`` over ``texts`` longest first, in chunks of :data:`CHUNK` (so that batches
    pad little and progress can be reported), put back in input order: ``(n, dim)`` float32."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), dim), np.float32)
    for start in range(0, len(texts), CHUNK):
        idx = order[start : start + CHUNK]
        out[idx] = encode([texts[i] for i in idx])
        if progress is not None:
            progress(len(idx))
    return out


class Encoder(Protocol):
    """Turns texts into float32 matrices ``(n, dim)``."""

    @property
    def model_id(self) -> str:
        """The model's name or path, as configured."""
        ...

    @property
    def dim(self) -> int:
        """Output dimension."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` float32 query vectors (query prefix applied)."""
        ...

    def encode_documents(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> np.ndarray:
        """``(n, dim)`` float32 document vectors; ``progress(n)`` reports ``n`` more done."""
        ...


@runtime_checkable
class TokenEncoder(Encoder, Protocol):
    """An encoder that also exposes its word pieces: what chunking (late and naive),
    multi-vector encodings and the count of truncated texts need. The sentence-transformers
    encoder is one; an :class:`Encoder` that is not still embeds whole texts."""

    @property
    def max_length(self) -> int:
        """Word pieces per text the model reads; longer texts are truncated."""
        ...

    @property
    def max_window(self) -> int:
        """The longest input the model can read at all (its position table)."""
        ...

    @property
    def normalize(self) -> bool:
        """Whether vectors are normalised to unit length."""
        ...

    def truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than the model reads."""
        ...

    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's word pieces as character ranges ``(n, 2)``."""
        ...

    def token_vectors(self, texts: Sequence[str], window: int | None = None,
                      progress: ProgressFn | None = None,
                      query: bool = False) -> list[np.ndarray]:
        """The model's output for every word piece of each text ``(n_i, dim)``."""
        ...


def truncated_count(encoder: Encoder, texts: Sequence[str]) -> int:
    """How many of ``texts`` ``encoder`` reads only the start of (0 for an encoder that does
    not say)."""
    return int(encoder.truncated(texts)) if isinstance(encoder, TokenEncoder) else 0
