"""The queries a plan is measured with: labelled (BEIR qrels), user-supplied, or pseudo-queries.

With labels, a setting's quality is its nDCG@k as a fraction of float32's on the same queries.
Without, it is its agreement with exact float32 search (recall@k vs exact): Distill-VQ's point
that ranking fidelity is what compression must keep. Pseudo-queries are the titles of sampled
documents (or, without titles, one sentence of each), so a plan needs nothing but the corpus.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tiervec.collection import Collection
from tiervec.errors import PlanError
from tiervec.eval.beir import BeirDataset

#: Queries sampled when the user gives none.
DEFAULT_PSEUDO_QUERIES = 600
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class QuerySet:
    """Query vectors ``(n, d)`` with their ids; ``qrels`` are ``None`` for unlabelled queries."""

    name: str
    ids: list[str]
    vectors: np.ndarray
    qrels: dict[str, dict[str, int]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labelled(self) -> bool:
        return self.qrels is not None

    def subset(self, rows: Sequence[int] | np.ndarray, name: str) -> QuerySet:
        rows = np.asarray(rows, dtype=np.int64)
        ids = [self.ids[i] for i in rows]
        qrels = None if self.qrels is None else {q: self.qrels[q] for q in ids}
        return QuerySet(name, ids, self.vectors[rows], qrels)

    def split(self, seed: int = 0) -> tuple[QuerySet, QuerySet]:
        """Two disjoint halves (seeded): one to plan on, one to verify the plan."""
        order = np.random.default_rng(seed).permutation(len(self))
        half = len(self) // 2
        return (self.subset(np.sort(order[:half]), f"{self.name} (plan half)"),
                self.subset(np.sort(order[half:]), f"{self.name} (verify half)"))


def labelled_queries(collection: Collection, dataset: BeirDataset) -> QuerySet:
    """A BEIR split's judged queries, encoded with the collection's model (cached).

    Raises :class:`PlanError` when judgements name documents the collection does not hold:
    the plan would score settings against documents none of them can return.
    """
    from tiervec.eval.evaluate import query_vectors

    judged = sorted({d for docs in dataset.qrels.values() for d in docs})
    unknown = collection.missing(judged)
    if unknown:
        examples = ", ".join(map(repr, unknown[:3]))
        raise PlanError(
            f"{len(unknown)} of the {len(judged)} documents judged in {dataset.name} "
            f"{dataset.split} are not in the collection (e.g. {examples}); index the "
            "dataset's own corpus into the collection, or give qrels that match it"
        )
    vectors = query_vectors(collection, dataset)
    name = f"{dataset.name} {dataset.split}"
    return QuerySet(name, list(dataset.queries), vectors, dataset.qrels)


def text_queries(collection: Collection, texts: Sequence[str], name: str) -> QuerySet:
    """User-supplied unlabelled queries, encoded with the collection's model."""
    texts = [t.strip() for t in texts if t.strip()]
    if len(texts) < 2:
        raise PlanError(
            f"{name}: need at least 2 non-empty queries to plan with, got {len(texts)}; give "
            "one query per line, or leave the queries out to use pseudo-queries"
        )
    vectors = collection.encoder.encode_queries(texts)
    return QuerySet(name, [f"q{i}" for i in range(len(texts))], vectors)


def pseudo_queries(collection: Collection, n: int = DEFAULT_PSEUDO_QUERIES,
                   seed: int = 0) -> QuerySet:
    """Titles (or one sentence) of ``n`` sampled documents, as unlabelled queries."""
    count = len(collection)
    if count < 2:
        raise PlanError(
            f"the collection holds {count} document(s); index a corpus before planning"
        )
    rows = np.sort(np.random.default_rng(seed).choice(count, min(n, count), replace=False))
    docs = collection.get(collection.ids_for_rows(rows))
    rng = np.random.default_rng(seed + 1)
    texts = []
    for doc in docs:
        if doc is None:
            continue
        if doc.title.strip():
            texts.append(doc.title)
            continue
        sentences = [s for s in _SENTENCE.split(doc.text) if len(s.split()) >= 4]
        if sentences:
            texts.append(sentences[int(rng.integers(len(sentences)))])
    return text_queries(collection, texts, f"{len(texts)} pseudo-queries (sampled titles)")
