"""ANN indexes over a tier's codes (a chain's first tier at location ``@hnsw`` or ``@ivf``)."""

from tiervec.index.base import ANNScanner
from tiervec.index.hnsw import HNSW_M, HNSWScanner
from tiervec.index.ivf import IVFScanner

__all__ = ["HNSW_M", "ANNScanner", "HNSWScanner", "IVFScanner"]
