"""Checks on user input shared by the collection, the CLI and evaluation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tiervec._text import check_text, check_value
from tiervec.corpus import Document, document_from_record
from tiervec.errors import DimensionMismatch, DuplicateIds, InvalidVectors, MalformedCorpus


def as_vectors(
    x: Any, dim: int | None, rows: int | None = None, what: str = "vectors"
) -> np.ndarray:
    """``x`` as a C-contiguous float32 ``(n, dim)`` array of finite values.

    A 1-d array is taken as one vector. ``rows`` is the number of vectors expected, if known.
    """
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVectors(
            f"{what} must be a numeric array, got {type(x).__name__} ({exc})"
        ) from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidVectors(f"{what} must be a 2-d array (n, dim), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatch(
            f"{what} have dimension {arr.shape[1]}, but the collection's is {dim}; encode them "
            "with the collection's model, or create a collection for this dimension"
        )
    if rows is not None and arr.shape[0] != rows:
        raise InvalidVectors(
            f"got {arr.shape[0]} {what} for {rows} documents; pass one per document"
        )
    if np.isfinite(arr.sum(dtype=np.float64)):  # fast path: one pass, no (n, d) mask
        return np.ascontiguousarray(arr)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        where = np.flatnonzero(bad)
        raise InvalidVectors(
            f"{what} contain NaN or infinite values (rows {where[:5].tolist()}"
            f"{' ...' if len(where) > 5 else ''}); fix or drop those vectors"
        )
    return np.ascontiguousarray(arr)


def as_documents(items: Iterable[Document | Mapping[str, Any]],
                 allow_empty: bool = False) -> list[Document]:
    """Documents from Document objects or ``{"_id"/"id", "text", ...}`` mappings (with
    ``allow_empty``, mappings with an id only: their vectors are given)."""
    docs = []
    for i, item in enumerate(items):
        if isinstance(item, Document):
            if not isinstance(item.id, str) or not item.id:
                raise MalformedCorpus(
                    f"document {i} has id {item.id!r}; give every document a non-empty string id"
                )
            docs.append(item)
        else:
            docs.append(document_from_record(item, f"document {i}",  # type: ignore[arg-type]
                                             allow_empty))
    _check_strings(docs)
    return docs


def _check_strings(docs: Sequence[Document]) -> None:
    """Every id, text, title and metadata string valid Unicode (one pass over the batch's
    strings; a document at a time only to name the culprit)."""
    joined = "\x00".join(s for d in docs for s in (d.id, d.title, d.text))
    if not joined.isascii():
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            for i, doc in enumerate(docs):
                check_text(doc.id, f"the id of document {i}")
                check_text(doc.text, f"the text of document {doc.id!r}")
                check_text(doc.title, f"the title of document {doc.id!r}")
    for doc in docs:
        if doc.metadata:
            check_value(dict(doc.metadata), f"the metadata of document {doc.id!r}")


def check_unique(ids: Sequence[str]) -> None:
    """Raise :class:`DuplicateIds` if ``ids`` repeat."""
    if len(set(ids)) == len(ids):
        return
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    raise DuplicateIds(
        f"{len(repeated)} ids appear more than once in the batch (e.g. {repeated[:5]}); "
        "ids must be unique: deduplicate the batch"
    )


def documents_to_write(
    items: Iterable[Document | Mapping[str, Any]], vectors: Any, dim: int
) -> tuple[list[Document], np.ndarray | None]:
    """Documents with unique ids, and their vectors checked against them (``None``: to be
    encoded), before anything is looked up or encoded."""
    docs = as_documents(items, allow_empty=vectors is not None)
    if not docs:
        if vectors is not None and len(vectors):
            raise InvalidVectors(f"got {len(vectors)} vectors for 0 documents; pass one "
                                 "document (at least an id) per vector")
        return docs, None
    check_unique([d.id for d in docs])
    return docs, None if vectors is None else as_vectors(vectors, dim, rows=len(docs))
