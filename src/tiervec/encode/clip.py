"""Image-text models of the CLIP family, loaded from a local folder (transformers' ``CLIPModel``
with its tokenizer and image processor saved beside it).

A collection whose model is such a folder holds images: each document's text is a reference to
one, a path to an image file or a ``data:image/...;base64,...`` URI (:func:`image_uri` makes
one from bytes), and its vector is the image tower's; queries are texts, encoded by the text
tower into the same space. Everything else (tier chains, filters, the server) is unchanged.
Vectors are scaled to unit length, as CLIP compares them by cosine.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._extras import require
from tiervec.encode.base import EncoderConfig, ProgressFn
from tiervec.encode.sentence_transformers import quiet_loading
from tiervec.errors import InvalidText

#: Texts or images per call to a tower.
BATCH = 32


def image_uri(data: bytes, mime: str = "image/png") -> str:
    """A ``data:`` URI holding image bytes: a document's text in an image collection."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class ClipEncoder:
    """Images (documents) and texts (queries) into one space, from a local CLIP folder."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        transformers = require("transformers")
        torch = require("torch")
        folder = str(Path(config.model).expanduser())
        with quiet_loading():
            self.model: Any = transformers.CLIPModel.from_pretrained(folder,
                                                                     local_files_only=True)
        self.model.eval()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.processor = transformers.AutoImageProcessor.from_pretrained(
            folder, local_files_only=True)
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self._torch = torch
        self._lock = threading.Lock()
        text = self.model.config.text_config
        self.max_length = config.max_length or int(text.max_position_embeddings)

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Texts through the text tower."""
        out = []
        for lo in range(0, len(texts), BATCH):
            batch = self.tokenizer([self.config.query_prefix + t for t in texts[lo:lo + BATCH]],
                                   padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
            out.append(self._features(self.model.get_text_features, batch))
        return self._stack(out)

    def encode_documents(self, texts: Sequence[str],
                         progress: ProgressFn | None = None) -> np.ndarray:
        """Documents' images (each text a path or a ``data:`` URI) through the image tower."""
        return self.encode_images(texts, progress)

    def encode_images(self, images: Sequence[Any], progress: ProgressFn | None = None
                      ) -> np.ndarray:
        """Images (paths, ``data:`` URIs, bytes or PIL images) through the image tower."""
        pil = require("PIL.Image")
        out = []
        for lo in range(0, len(images), BATCH):
            chunk = [_open(pil, item, lo + i) for i, item in enumerate(images[lo:lo + BATCH])]
            batch = self.processor(images=chunk, return_tensors="pt")
            out.append(self._features(self.model.get_image_features, batch))
            if progress is not None:
                progress(len(chunk))
        return self._stack(out)

    def _features(self, tower: Any, batch: Any) -> np.ndarray:
        with self._lock, self._torch.inference_mode():
            found = tower(**{k: v.to(self.device) for k, v in batch.items()})
        found = getattr(found, "pooler_output", found)  # a model output or the tensor itself
        vectors = found.float().cpu().numpy()
        if self.config.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _stack(self, parts: list[np.ndarray]) -> np.ndarray:
        if not parts:
            return np.empty((0, self.dim), np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _open(image_module: Any, item: Any, index: int) -> Any:
    """A PIL image in RGB from a path, a ``data:`` URI, bytes or a PIL image."""
    if isinstance(item, image_module.Image):
        return item.convert("RGB")
    try:
        if isinstance(item, bytes | bytearray):
            raw = bytes(item)
        elif isinstance(item, str) and item.startswith("data:"):
            raw = base64.b64decode(item.split(",", 1)[1], validate=True)
        elif isinstance(item, str | Path):
            raw = Path(item).expanduser().read_bytes()
        else:
            raise TypeError(type(item).__name__)
        return image_module.open(io.BytesIO(raw)).convert("RGB")
    except (OSError, ValueError, IndexError, TypeError, binascii.Error) as exc:
        shown = item if isinstance(item, str) and len(item) < 80 else f"{str(item)[:60]}..."
        raise InvalidText(
            f"document {index}: {shown!r} is not an image ({exc}); in an image collection a "
            "document's text is the path of an image file or a data:image/...;base64,... URI "
            "(tiervec.encode.clip.image_uri makes one from bytes)") from None
