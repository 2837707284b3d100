"""What a search knows, carried through the pipeline as one object.

A :class:`Query` holds the query texts (if any), their vectors once encoded, ``k``, the filter,
the mode and per-request options. Front ends build one (``Query.of(...)``); the collection
encodes the texts (:meth:`Query.with_vectors`) and hands it to the stages, which read what they
need: dense stages the vectors, lexical stages the texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from tiervec._text import check_text
from tiervec.encode.chunking import Aggregate
from tiervec.errors import CollectionError, InvalidSearchOptions, InvalidText, InvalidTierSpec
from tiervec.filters import Filter
from tiervec.lexical.bm25 import TermStats


class SearchMode(StrEnum):
    """Which retrievers a search runs: the tier chain (``dense``), BM25 over the texts
    (``lexical``), or both fused (``hybrid``)."""

    DENSE = "dense"
    LEXICAL = "lexical"
    HYBRID = "hybrid"
    #: a multi-vector collection's FDE candidates re-ranked by MaxSim (what ``dense`` means on
    #: such a collection)
    MULTIVECTOR = "multivector"

    @property
    def needs_vectors(self) -> bool:
        return self is not SearchMode.LEXICAL

    @property
    def needs_texts(self) -> bool:
        return self in (SearchMode.LEXICAL, SearchMode.HYBRID)


class FusionMethod(StrEnum):
    """How a hybrid search merges its dense and lexical lists.

    ``rrf``: reciprocal rank fusion, ``w / (c + rank_dense) + (1 - w) / (c + rank_lexical)``;
    ``minmax``: each list's scores scaled to [0, 1] by its own minimum and maximum, then
    ``w * dense + (1 - w) * lexical``; ``dbsf``: distribution-based score fusion, each list
    scaled by its mean +- 3 standard deviations (clipped to [0, 1]), then the same weighted
    sum. A document missing from a list scores 0 there.
    """

    RRF = "rrf"
    MINMAX = "minmax"
    DBSF = "dbsf"


#: The default fusion's dense weight: below one half, so that a document at the top of the
#: lexical list outranks one only the dense side likes when both sides are equally sure of
#: their best (measured on SciFact, NFCorpus, QMSum and a LIMIT-style set: bench/fusion.py).
DEFAULT_DENSE_WEIGHT = 0.4


@dataclass(frozen=True, kw_only=True)
class FusionConfig:
    """A hybrid search's fusion: ``method``, the dense side's ``weight`` in [0, 1], RRF's
    ``rrf_k`` (``c``), the candidates taken from each side (``dense_depth``,
    ``lexical_depth``; at least ``k``), and whether the dense weight follows the share of the
    documents the model read (``coverage``). The default, min-max at 0.4 with coverage, was
    chosen by its worst case over every set measured (``bench/fusion.py``)."""

    method: FusionMethod = FusionMethod.MINMAX
    weight: float = DEFAULT_DENSE_WEIGHT
    rrf_k: float = 60.0
    dense_depth: int = 100
    lexical_depth: int = 100
    #: Scale the dense side's weight by the share of the documents' text the model read
    #: (:meth:`for_coverage`): a model reads only the start of a document longer than its
    #: window, so its score says little about the rest.
    coverage: bool = True

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", FusionMethod(self.method))
        except ValueError:
            raise InvalidSearchOptions(
                f"unknown fusion method {self.method!r}; use one of "
                f"{[m.value for m in FusionMethod]}") from None
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or \
                not 0.0 <= weight <= 1.0:
            raise InvalidSearchOptions(
                f"fusion weight must be a number in [0, 1] (the dense side's share), got "
                f"{weight!r}")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int | float) or \
                not 0.0 <= self.rrf_k <= 1e6:
            raise InvalidSearchOptions(f"rrf_k must be a number in [0, 1e6], got {self.rrf_k!r}")
        for name in ("dense_depth", "lexical_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
                raise InvalidSearchOptions(
                    f"{name} must be a whole number in [1, 100000], got {value!r}")
        if not isinstance(self.coverage, bool):
            raise InvalidSearchOptions(f"coverage must be true or false, got {self.coverage!r}")
        object.__setattr__(self, "weight", float(weight))
        object.__setattr__(self, "rrf_k", float(self.rrf_k))

    def for_coverage(self, read: float) -> FusionConfig:
        """This fusion with the dense weight ``w`` made ``w c / (w c + 1 - w)``, ``c`` the
        share of the documents' text the model read (``read``, in [0, 1]; 1 where it read
        all of it, as in chunked collections); unchanged where ``coverage`` is off."""
        if not self.coverage or read >= 1.0:
            return replace(self, coverage=False)
        scaled = self.weight * max(read, 0.0)
        rest = 1.0 - self.weight
        weight = scaled / (scaled + rest) if scaled + rest > 0 else 0.0
        return replace(self, weight=weight, coverage=False)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method.value, "weight": self.weight, "rrf_k": self.rrf_k,
                "dense_depth": self.dense_depth, "lexical_depth": self.lexical_depth,
                "coverage": self.coverage}

    @classmethod
    def stored(cls, data: Mapping[str, Any]) -> FusionConfig:
        """A fusion kept in a manifest or beside a calibration: one kept before ``coverage``
        existed applied its weight as given."""
        return cls.from_dict({"coverage": False, **data})

    @classmethod
    def from_dict(cls, data: Any) -> FusionConfig:
        if isinstance(data, FusionConfig):
            return data
        if not isinstance(data, Mapping):
            raise InvalidSearchOptions(f"fusion must be a mapping of options, got {data!r}")
        unknown = set(data) - {"method", "weight", "rrf_k", "dense_depth", "lexical_depth",
                               "coverage"}
        if unknown:
            raise InvalidSearchOptions(
                f"unknown fusion option(s) {sorted(unknown)}; use method, weight, rrf_k, "
                "dense_depth, lexical_depth, coverage")
        return cls(**dict(data))

    def describe(self) -> str:
        """A short label: ``rrf(k=60) w=0.5 100+100``."""
        how = f"rrf(k={self.rrf_k:g})" if self.method is FusionMethod.RRF else self.method.value
        read = " x read" if self.coverage else ""
        return f"{how} w={self.weight:g}{read} {self.dense_depth}+{self.lexical_depth}"


#: How a chunked document's score is made from its retrieved chunks' scores (the values of
#: :class:`~tiervec.encode.chunking.Aggregate`, the one type for it).
AGGREGATES = tuple(a.value for a in Aggregate)


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Per-request settings that override the collection's.

    ``oversample``: candidates each passing stage hands on, as a multiple of ``k``: one factor
    for every stage, or one per stage (``(10, 4)`` for a three-tier chain); ``None`` keeps the
    chain's own.
    """

    oversample: int | tuple[int, ...] | None = None
    #: A hybrid search's fusion (``None``: the collection's default, see ``tiervec tune``).
    fusion: FusionConfig | Mapping[str, Any] | None = None
    #: A chunked collection's chunk aggregate, one of :data:`AGGREGATES` (``None``: its own).
    aggregate: str | None = None
    #: A multi-vector collection's FDE candidates MaxSim re-ranks (``None``: its own).
    candidates: int | None = None
    #: An ANN first tier's effort (nprobe, efSearch) as a multiple of where it starts
    #: (``None``: the collection's measured setting, else 1).
    effort: int | None = None
    #: A sharded collection: answer from the shards that are up when others stay down (the
    #: result's ``shards`` names them); ``None``: the collection's setting.
    partial: bool | None = None

    def __post_init__(self) -> None:
        if self.partial is not None and not isinstance(self.partial, bool):
            raise InvalidSearchOptions(f"partial must be true or false, got {self.partial!r}")
        if self.effort is not None and (
                isinstance(self.effort, bool) or not isinstance(self.effort, int)
                or not 1 <= self.effort <= 1024):
            raise InvalidSearchOptions(f"effort must be a whole number in [1, 1024], "
                                       f"got {self.effort!r}")
        if self.candidates is not None and (
                isinstance(self.candidates, bool) or not isinstance(self.candidates, int)
                or not 1 <= self.candidates <= 100_000):
            raise InvalidSearchOptions(f"candidates must be a whole number in [1, 100000], "
                                       f"got {self.candidates!r}")
        if self.aggregate is not None and self.aggregate not in AGGREGATES:
            raise InvalidSearchOptions(f"unknown aggregate {self.aggregate!r}; choose one of "
                                       f"{', '.join(AGGREGATES)}")
        if self.fusion is not None:
            object.__setattr__(self, "fusion", FusionConfig.from_dict(self.fusion))
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

    At least one of ``texts`` and ``vectors`` is given; dense stages need ``vectors``, lexical
    ones ``texts``. ``min_relevance`` keeps only results whose calibrated probability of being
    relevant is at least that (a number in [0, 1]; see :mod:`tiervec.search.cutoff`).
    """

    texts: tuple[str, ...] | None = None
    vectors: np.ndarray | None = None
    k: int = 10
    filter: Filter = None
    mode: SearchMode = SearchMode.DENSE
    options: SearchOptions = field(default_factory=SearchOptions)
    min_relevance: float | None = None
    #: A multi-vector search's token vectors, one ``(n_tokens, d)`` array per query.
    tokens: tuple[np.ndarray, ...] | None = None
    #: BM25's statistics over a whole sharded collection (set by it for its shards, whose
    #: lexical stages score with them instead of their own; ``None``: the collection's own)
    lexical_stats: TermStats | None = None

    def __post_init__(self) -> None:
        k = self.k
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise CollectionError(f"k must be a positive integer, got {k!r}")
        object.__setattr__(self, "k", int(k))
        try:
            object.__setattr__(self, "mode", SearchMode(self.mode))
        except ValueError:
            raise InvalidSearchOptions(f"unknown search mode {self.mode!r}; use one of "
                                       f"{[m.value for m in SearchMode]}") from None
        if self.texts is None and self.vectors is None and self.tokens is None:
            raise CollectionError("a query needs texts or vectors")
        if self.texts is not None:
            object.__setattr__(self, "texts", tuple(self.texts))
            _check_query_texts(self.texts, embedded=self.mode.needs_vectors and
                               self.vectors is None and self.tokens is None)
        if self.mode.needs_texts and self.texts is None:
            raise InvalidSearchOptions(
                f"a {self.mode.value} search reads the query texts; pass texts (with or "
                "without their vectors)")
        if self.texts is not None and self.vectors is not None and \
                len(self.texts) != len(self.vectors):
            raise InvalidSearchOptions(
                f"{len(self.texts)} query texts but {len(self.vectors)} query vectors; give one "
                "vector per text")
        relevance = self.min_relevance
        if relevance is not None:
            if isinstance(relevance, bool) or not isinstance(relevance, int | float) or \
                    not 0.0 <= relevance <= 1.0:
                raise InvalidSearchOptions(
                    f"min_relevance must be a probability in [0, 1], got {relevance!r}")
            object.__setattr__(self, "min_relevance", float(relevance))

    @classmethod
    def of(cls, queries: str | Sequence[str] | None = None, *, vectors: Any = None,
           **fields: Any) -> Query:
        """A query from one text, a list of texts, and/or vectors; ``fields`` as the class."""
        texts = [queries] if isinstance(queries, str) else queries
        return cls(texts=None if texts is None else tuple(texts), vectors=vectors, **fields)

    def __len__(self) -> int:
        if self.vectors is not None:
            return len(self.vectors)
        if self.tokens is not None:
            return len(self.tokens)
        return len(self.texts or ())

    def with_vectors(self, vectors: np.ndarray) -> Query:
        """This query with its (encoded or checked) vectors."""
        return replace(self, vectors=vectors)

    def with_k(self, k: int) -> Query:
        return self if k == self.k else replace(self, k=k)

    @property
    def dense(self) -> np.ndarray:
        """The query vectors (raises if the query has not been encoded)."""
        if self.vectors is None:
            raise CollectionError("this stage scores query vectors; encode the texts first")
        return self.vectors


def _check_query_texts(texts: Sequence[str], embedded: bool) -> None:
    """Every query text a valid string, and not empty where it is to be ``embedded`` (as a
    document must have text): its vector would be arbitrary, and so would the results. Read by
    BM25 alone, or beside its vector (an evaluation's query), an empty text only finds nothing
    lexically."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidText(f"query {i} is {type(text).__name__} {text!r}; pass a str")
        if embedded and not text.strip():
            raise InvalidText(f"query {i} is empty; give it some text, or search by vector")
        check_text(text, f"query {i}")
