"""Search: tier chains, the query, the stages a pipeline composes, and the id-level protocol.

- :mod:`~tiervec.search.spec`: chain specs (``"binary*4 -> float32@disk"``) and config objects;
- :mod:`~tiervec.search.query`: the :class:`Query` every stage reads;
- :mod:`~tiervec.search.stages`: the stage protocols (retriever, rescorer, fusion, collapse);
- :mod:`~tiervec.search.retrieve`, :mod:`~tiervec.search.rescore`: a chain's stages;
- :mod:`~tiervec.search.filtered`: the filter strategies;
- :mod:`~tiervec.search.hybrid`: lexical (BM25) and hybrid (fused) pipelines;
- :mod:`~tiervec.search.cutoff`: the calibrated relevance cut-off;
- :mod:`~tiervec.search.pipeline`: a composition of stages (rows in, rows out);
- :mod:`~tiervec.search.searchable`: the id-level :class:`Searchable` protocol that
  evaluation, the planner and the front ends take.
"""

from tiervec.search.filtered import FilterPlan, FilterPolicy, FilterStrategy
from tiervec.search.pipeline import Pipeline
from tiervec.search.query import FusionConfig, FusionMethod, Query, SearchMode, SearchOptions
from tiervec.search.results import Page, SearchResult, ShardReport
from tiervec.search.searchable import CollectionStats, Searchable, TierStats
from tiervec.search.spec import DEFAULT_CHAIN, DEFAULT_OVERSAMPLE, Chain, Location, Tier
from tiervec.search.stages import Candidates
from tiervec.search.tiers import TierRuntime
from tiervec.store.codes import CodeSource

__all__ = [
    "DEFAULT_CHAIN",
    "DEFAULT_OVERSAMPLE",
    "Candidates",
    "Chain",
    "CodeSource",
    "CollectionStats",
    "FilterPlan",
    "FilterPolicy",
    "FilterStrategy",
    "FusionConfig",
    "FusionMethod",
    "Location",
    "Page",
    "Pipeline",
    "Query",
    "SearchMode",
    "SearchOptions",
    "SearchResult",
    "Searchable",
    "ShardReport",
    "Tier",
    "TierRuntime",
    "TierStats",
]
