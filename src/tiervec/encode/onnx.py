"""ONNX backend: a sentence-transformers model exported to ONNX, run by onnxruntime on CPU.

The graph's inputs are ``input_ids`` and ``attention_mask``; its mean-pooled sentence vector is
the output of width ``dim`` with two axes (the packaged paraphrase-MiniLM-L3-v2 export has it).
The tokenizer comes from the packaged model the row names (same word pieces).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tiervec._extras import require
from tiervec.encode.base import EncoderConfig, ProgressFn, encode_sorted
from tiervec.encode.models import PackagedModel, resolve_model


class OnnxEncoder:
    """Encodes with an ONNX export of a packaged model; never reaches a model hub."""

    def __init__(self, config: EncoderConfig, model: PackagedModel) -> None:
        self.config = config
        self.row = model
        ort = require("onnxruntime")
        transformers = require("transformers")
        assert model.tokenizer is not None
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(resolve_model(model.tokenizer)), local_files_only=True)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model.path()), options,
                                            providers=["CPUExecutionProvider"])
        outputs = self.session.get_outputs()
        pooled = [i for i, o in enumerate(outputs) if len(o.shape) == 2
                  and o.shape[1] == model.dim]
        if not pooled:
            raise RuntimeError(f"{model.path()} has no pooled output of width {model.dim}")
        self._output = outputs[pooled[0]].name
        self.max_length = config.max_length or model.max_tokens

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def dim(self) -> int:
        return self.row.dim

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.config.query_prefix + t for t in texts])

    def encode_documents(self, texts: Sequence[str],
                         progress: ProgressFn | None = None) -> np.ndarray:
        return encode_sorted([self.config.document_prefix + t for t in texts], self._encode,
                             self.dim, progress)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        step = self.config.batch_size
        for start in range(0, len(texts), step):
            batch = self.tokenizer(texts[start:start + step], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="np")
            feed = {"input_ids": batch["input_ids"].astype(np.int64),
                    "attention_mask": batch["attention_mask"].astype(np.int64)}
            (vectors,) = self.session.run([self._output], feed)
            out[start:start + step] = vectors
        if self.config.normalize and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
