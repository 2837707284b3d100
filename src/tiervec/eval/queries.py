"""A set of query vectors with their ids and, for labelled queries, their judgements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuerySet:
    """Query vectors ``(n, d)`` with their ids; ``qrels`` are ``None`` for unlabelled queries;
    ``texts`` (for lexical and hybrid search) where the queries came from texts."""

    name: str
    ids: list[str]
    vectors: np.ndarray
    qrels: dict[str, dict[str, int]] | None = None
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labelled(self) -> bool:
        return self.qrels is not None

    def subset(self, rows: Sequence[int] | np.ndarray, name: str) -> QuerySet:
        rows = np.asarray(rows, dtype=np.int64)
        ids = [self.ids[i] for i in rows]
        qrels = None if self.qrels is None else {q: self.qrels[q] for q in ids}
        texts = None if self.texts is None else [self.texts[i] for i in rows]
        return QuerySet(name, ids, self.vectors[rows], qrels, texts)

    def split(self, seed: int = 0) -> tuple[QuerySet, QuerySet]:
        """Two disjoint halves (seeded): one to plan on, one to verify the plan."""
        order = np.random.default_rng(seed).permutation(len(self))
        half = len(self) // 2
        return (self.subset(np.sort(order[:half]), f"{self.name} (plan half)"),
                self.subset(np.sort(order[half:]), f"{self.name} (verify half)"))
