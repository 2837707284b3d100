"""The encoder protocol and its configuration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

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
