"""What a search knows, carried through the pipeline as one object.

A :class:`Query` holds the query texts (if any), their vectors once encoded, ``k``, the filter,
the mode and per-request options. Front ends build one (``Query.of(...)``); the collection
encodes the texts (:meth:`Query.with_vectors`) and hands it to the stages, which read what they
need: dense stages the vectors, lexical stages (later) the texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from tiervec.errors import CollectionError, InvalidTierSpec
from tiervec.filters import Filter


class SearchMode(StrEnum):
    """Which retrievers a search runs. Only ``dense`` exists today; lexical and hybrid
    retrieval plug in as further modes (their retrievers read :attr:`Query.texts`)."""

    DENSE = "dense"


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Per-request settings that override the collection's.

    ``oversample``: candidates each passing stage hands on, as a multiple of ``k``: one factor
    for every stage, or one per stage (``(10, 4)`` for a three-tier chain); ``None`` keeps the
    chain's own.
    """

    oversample: int | tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        factors = self.oversample
        if factors is None:
            return
        values = (factors,) if isinstance(factors, int) else tuple(factors)
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                             for v in values):
            raise InvalidTierSpec(
                f"oversample must be a whole number >= 1 or a tuple of them, got {factors!r}")
        if not isinstance(factors, int):
            object.__setattr__(self, "oversample", values)

    def factors(self, default: Sequence[int]) -> list[int]:
        """The oversampling of each passing stage, ``default`` where not overridden."""
        if self.oversample is None:
            return list(default)
        if isinstance(self.oversample, int):
            return [self.oversample] * len(default)
        if len(self.oversample) != len(default):
            raise InvalidTierSpec(
                f"oversample {self.oversample} gives {len(self.oversample)} factors, but the "
                f"chain has {len(default)} tier(s) that pass candidates on; give one factor, "
                "or one per such tier")
        return list(self.oversample)


@dataclass(frozen=True, kw_only=True)
class Query:
    """A batch of queries: ``texts`` and/or ``vectors`` ``(n, dim)`` float32, and how to search.

    At least one of ``texts`` and ``vectors`` is given; dense stages need ``vectors``.
    """

    texts: tuple[str, ...] | None = None
    vectors: np.ndarray | None = None
    k: int = 10
    filter: Filter = None
    mode: SearchMode = SearchMode.DENSE
    options: SearchOptions = field(default_factory=SearchOptions)

    def __post_init__(self) -> None:
        k = self.k
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise CollectionError(f"k must be a positive integer, got {k!r}")
        object.__setattr__(self, "k", int(k))
        object.__setattr__(self, "mode", SearchMode(self.mode))
        if self.texts is None and self.vectors is None:
            raise CollectionError("a query needs texts or vectors")
        if self.texts is not None:
            object.__setattr__(self, "texts", tuple(self.texts))

    @classmethod
    def of(cls, queries: str | Sequence[str] | None = None, *, vectors: Any = None,
           **fields: Any) -> Query:
        """A query from one text, a list of texts, and/or vectors; ``fields`` as the class."""
        texts = [queries] if isinstance(queries, str) else queries
        return cls(texts=None if texts is None else tuple(texts), vectors=vectors, **fields)

    def __len__(self) -> int:
        if self.vectors is not None:
            return len(self.vectors)
        return len(self.texts or ())

    def with_vectors(self, vectors: np.ndarray) -> Query:
        """This query with its (encoded or checked) vectors."""
        return replace(self, vectors=vectors)

    @property
    def dense(self) -> np.ndarray:
        """The query vectors (raises if the query has not been encoded)."""
        if self.vectors is None:
            raise CollectionError("this stage scores query vectors; encode the texts first")
        return self.vectors
