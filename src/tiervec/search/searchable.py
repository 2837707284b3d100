"""The id-level search protocol: what evaluation, the planner and every front end take.

A :class:`Searchable` answers in user ids, never in row numbers, and applies deletions and
filters on every path. :class:`tiervec.Collection` implements it; so do its views for other
chains (:meth:`Searchable.with_tiers`, for evaluation), and later a sharded collection and the
HTTP client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tiervec.corpus import Document
from tiervec.filters import Filter
from tiervec.search.filtered import FilterPlan
from tiervec.search.query import FusionConfig, Query, SearchMode, SearchOptions
from tiervec.search.results import SearchResult
from tiervec.search.spec import Chain, Location


@dataclass(frozen=True)
class TierStats:
    """One tier's codes: where they live and what they take for the collection's rows."""

    spec: str
    location: str
    bytes_per_vector: int
    ram_bytes: int
    disk_bytes: int


def tier_stats(chain: Chain, dim: int, rows: int) -> tuple[TierStats, ...]:
    """What each tier of ``chain`` takes for ``rows`` vectors of ``dim`` dimensions (RAM tiers
    with an ANN index's links or ids)."""
    out = []
    last = len(chain.tiers) - 1
    for i, tier in enumerate(chain.tiers):
        on_disk = tier.location is Location.DISK
        per = tier.bytes_per_vector(dim) if on_disk else Chain((tier,)).ram_bytes_per_vector(dim)
        out.append(TierStats(spec=tier.spec(last=i == last), location=str(tier.location),
                             bytes_per_vector=per, ram_bytes=0 if on_disk else per * rows,
                             disk_bytes=per * rows if on_disk else 0))
    return tuple(out)


@dataclass(frozen=True)
class CollectionStats:
    """What a collection holds and what its tiers cost.

    ``rows`` counts every stored vector, ``deleted`` those deleted or replaced but not yet
    compacted away (their codes still take space); ``ram_bytes``/``disk_bytes`` are the tiers'
    codes (and ANN links) for ``rows`` vectors.
    """

    documents: int
    rows: int
    deleted: int
    segments: int
    dim: int
    model: str | None
    chain: str
    tiers: tuple[TierStats, ...]
    ram_bytes: int
    disk_bytes: int
    ram_bytes_per_vector: int
    full_precision: bool
    #: The recall target kept and its last measurement (``None``: no target kept); see
    #: :meth:`tiervec.search.recall.RecallMeasure.summary`.
    recall: dict[str, Any] | None = None
    #: A sharded collection's shards: ``None`` for one that answers, else why not (the
    #: figures above count those that answer); ``None`` for one collection.
    shards: dict[str, str | None] | None = None
    #: A model upgrade under way (``None``: none); see :meth:`Collection.upgrade_status`.
    upgrade: dict[str, Any] | None = None

    @property
    def deleted_share(self) -> float:
        return self.deleted / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["deleted_share"] = round(self.deleted_share, 6)
        return out


@runtime_checkable
class Searchable(Protocol):
    """Search by texts or vectors, get documents, count and explain filters, in user ids."""

    @property
    def dim(self) -> int: ...

    @property
    def chain(self) -> Chain: ...

    @property
    def model(self) -> str | None: ...

    def __len__(self) -> int: ...

    def run(self, query: Query) -> SearchResult:
        """The one search path: encode the texts if needed, apply deletions and the filter,
        run the stages, return ids."""
        ...

    @property
    def has_lexical(self) -> bool:
        """Whether lexical and hybrid searches can run (a lexical index exists)."""
        ...

    def search(self, queries: str | Sequence[str], k: int = 10, *, filter: Filter = None,
               mode: SearchMode | str = SearchMode.DENSE, fusion: Any = None,
               min_relevance: float | None = None) -> SearchResult: ...

    def search_vectors(self, vectors: Any, k: int = 10, *, filter: Filter = None,
                       min_relevance: float | None = None) -> SearchResult: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors ``(n, dim)`` from the collection's model."""
        ...

    def get(self, ids: Sequence[str] | np.ndarray) -> list[Document | None]: ...

    def missing(self, ids: Sequence[str]) -> list[str]: ...

    def sample_ids(self, n: int, seed: int = 0) -> list[str]:
        """Ids of ``n`` live documents drawn at random (seeded)."""
        ...

    def count(self, filter: Filter = None) -> int: ...

    def explain(self, filter: Filter = None,
                options: SearchOptions | None = None) -> FilterPlan: ...

    def with_tiers(self, tiers: str | Chain) -> Searchable:
        """The same documents searched through another chain, its codecs fitted on the stored
        vectors in memory (nothing is written)."""
        ...

    def stats(self, chain: Chain | None = None) -> CollectionStats:
        """What the collection holds and what its tiers cost (of ``chain``, default its
        own)."""
        ...


class SearchMethods:
    """``search`` and ``search_vectors`` in terms of ``run`` (one path for every search): what
    :class:`~tiervec.Collection` and its views share."""

    def run(self, query: Query) -> SearchResult:
        raise NotImplementedError

    def search(
        self, queries: str | Sequence[str], k: int = 10, *, filter: Filter = None,
        mode: SearchMode | str = SearchMode.DENSE,
        fusion: FusionConfig | Mapping[str, Any] | None = None, min_relevance: float | None = None,
        oversample: int | Sequence[int] | None = None, effort: int | None = None,
        partial: bool | None = None,
    ) -> SearchResult:
        """Top ``k`` documents for each query text: ``ids`` and ``scores`` ``(n_queries, k)``.

        ``filter`` restricts results to documents whose metadata match, as a dict
        (``{"year": {"$gte": 2020}, "tags": {"$in": ["a"]}}``) or a string
        (``'year >= 2020 and lang == "en"'``); a filtered search returns
        ``min(k, matching documents)`` results per query.

        ``mode``: ``"dense"`` (the tier chain), ``"lexical"`` (BM25; only documents sharing a
        term with the query) or ``"hybrid"`` (both, fused by ``fusion``, default
        :attr:`fusion`). ``min_relevance`` keeps only results whose calibrated probability of
        relevance reaches it (fit one with ``tiervec tune``), possibly none. ``oversample``
        and ``effort`` override the collection's measured setting for this search (see
        :class:`~tiervec.search.SearchOptions`); ``partial``, a sharded collection's setting
        for whether a search may answer without the shards that are down.
        """
        return self.run(Query.of(queries, k=k, filter=filter, mode=mode,
                                 options=SearchOptions(fusion=fusion, oversample=_tuple(oversample),
                                                       effort=effort, partial=partial),
                                 min_relevance=min_relevance))

    def search_vectors(self, vectors: Any, k: int = 10, *, filter: Filter = None,
                       min_relevance: float | None = None,
                       oversample: int | Sequence[int] | None = None,
                       effort: int | None = None, partial: bool | None = None) -> SearchResult:
        """Top ``k`` documents for each query vector ``(n_queries, dim)`` (or one ``(dim,)``)."""
        return self.run(Query(vectors=vectors, k=k, filter=filter, min_relevance=min_relevance,
                              options=SearchOptions(oversample=_tuple(oversample),
                                                    effort=effort, partial=partial)))


def _tuple(oversample: int | Sequence[int] | None) -> int | tuple[int, ...] | None:
    return oversample if oversample is None or isinstance(oversample, int) else \
        tuple(oversample)
