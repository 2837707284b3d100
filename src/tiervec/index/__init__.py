"""ANN indexes over a tier's codes (a chain's first tier at location ``@hnsw``)."""

from tiervec.index.hnsw import HNSW_M, HNSWScanner

__all__ = ["HNSW_M", "HNSWScanner"]
