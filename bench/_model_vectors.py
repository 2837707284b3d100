"""Every packaged model's vectors of a BEIR set (documents and queries), encoded once by
tiervec's own encoder and cached in ``bench/.cache/models`` (documents in chunks, so that an
interrupted run resumes): shared by bench/models.py and bench/upgrade.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import CACHE, console, shared_data
from tiervec.corpus import read_corpus
from tiervec.encode import Encoder, load_encoder
from tiervec.eval import load_beir

FOLDER = CACHE / "models"
SETS = {"scifact": ("beir/scifact", "test"), "nfcorpus": ("beir/nfcorpus-pp", "test")}
CHUNK = 512


@dataclass
class Encoded:
    """One model's vectors of one set: document ids and vectors, the labelled queries' ids,
    texts and vectors, and the documents' encoding speed (docs/s, measured when encoded)."""

    doc_ids: list[str]
    docs: np.ndarray
    query_ids: list[str]
    query_texts: list[str]
    queries: np.ndarray
    qrels: dict[str, dict[str, int]]
    docs_per_s: float


_ENCODERS: dict[str, Encoder] = {}


def encoder(model: str) -> Encoder:
    if model not in _ENCODERS:
        _ENCODERS[model] = load_encoder(model)
    return _ENCODERS[model]


def documents(name: str) -> tuple[list[str], list[str]]:
    folder = shared_data() / SETS[name][0]
    docs = list(read_corpus(folder))
    return [d.id for d in docs], [d.embedding_text() for d in docs]


def encoded(model: str, name: str, split: str | None = None) -> Encoded:
    """``model``'s vectors of set ``name`` (queries of ``split``, the set's test split by
    default), encoding what the cache lacks."""
    split = split or SETS[name][1]
    folder = FOLDER / model / name
    folder.mkdir(parents=True, exist_ok=True)
    ids, texts = documents(name)
    parts, seconds = [], 0.0
    for start in range(0, len(texts), CHUNK):
        path = folder / f"docs-{start:07d}.npy"
        if not path.exists():
            began = time.perf_counter()
            vectors = encoder(model).encode_documents(texts[start:start + CHUNK])
            took = time.perf_counter() - began
            np.save(path.with_suffix(".tmp.npy"), vectors)
            path.with_suffix(".tmp.npy").rename(path)
            (folder / f"docs-{start:07d}.seconds").write_text(f"{took}")
            console.print(f"{model} {name}: {start + len(vectors):,}/{len(texts):,} documents "
                          f"({len(vectors) / took:.1f}/s)")
        parts.append(np.load(path))
        seconds += float((folder / f"docs-{start:07d}.seconds").read_text())
    data = load_beir(shared_data() / SETS[name][0], split=split)
    query_ids = list(data.queries)
    query_texts = [data.queries[q] for q in query_ids]
    qpath = folder / f"queries-{split}.npy"
    if not qpath.exists():
        np.save(qpath, encoder(model).encode_queries(query_texts))
    return Encoded(ids, np.concatenate(parts), query_ids, query_texts, np.load(qpath),
                   data.qrels, len(texts) / seconds)


def texts_of(name: str) -> list[str]:
    return documents(name)[1]


def cached(model: str, name: str) -> Path:
    return FOLDER / model / name


if __name__ == "__main__":  # encode ahead: python bench/_model_vectors.py MODEL SET [SPLIT...]
    import sys

    model, name, *splits = sys.argv[1:]
    for split in splits or [None]:
        encoded(model, name, split)
