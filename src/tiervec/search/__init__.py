"""Search: tier chains (spec strings and config objects), the pipeline that runs them, results."""

from tiervec.search.pipeline import CodeSource, Searcher, TierRuntime
from tiervec.search.results import SearchResult
from tiervec.search.spec import DEFAULT_CHAIN, DEFAULT_OVERSAMPLE, Chain, Location, Tier

__all__ = [
    "DEFAULT_CHAIN",
    "DEFAULT_OVERSAMPLE",
    "Chain",
    "CodeSource",
    "Location",
    "SearchResult",
    "Searcher",
    "Tier",
    "TierRuntime",
]
