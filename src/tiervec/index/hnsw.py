"""An HNSW graph (FAISS) over the compressed codes of a chain's first tier.

``binary@hnsw*10 -> float32@disk`` walks a graph over the 1-bit codes (FAISS
``IndexBinaryHNSW``, Hamming distance) instead of scanning every code, and rescores the
candidates from disk as usual. Codecs whose exhaustive kernel is a FAISS flat-codes index
(``int8``, ``int4``, ``float16``, ``float32``) keep exactly those codes as the graph's storage
(``IndexHNSW`` over that index): the graph adds about ``8 * M`` bytes per vector.

Filtered search applies the allowed-rows bitmap inside the graph traversal (FAISS
``IDSelectorBitmap``), starts with an ``efSearch`` that grows as the allowed share shrinks
(fewer of the nodes visited count), and widens it until every query has enough allowed results.
"""

from __future__ import annotations

import math
from typing import Any

from tiervec.codecs._faiss import faiss_module
from tiervec.codecs.base import Codec
from tiervec.codecs.binary import BinaryCodec
from tiervec.index.base import ANNScanner, flat_storage

#: Graph degree (FAISS ``M``): level-0 nodes keep ``2 * M`` neighbours.
HNSW_M = 32
EF_CONSTRUCTION = 64
#: ``efSearch`` is at least this, and at least ``EF_SEARCH_FACTOR`` times the candidates asked
#: for (on 1M x 384, int8 codes x4 candidates: recall@10 0.946 at factor 3, 0.952 at 4).
EF_SEARCH_MIN = 64
EF_SEARCH_FACTOR = 4
#: A filter that allows ``share`` of the rows multiplies efSearch by ``share ** -EF_SHARE_POWER``
#: (1M x 384, int8 x4, recall@10 at 10% allowed: 0.900 at x1, 0.950 at x3, 0.964 at x4;
#: at 50%: 0.947 at x1, 0.972 at x2).
EF_SHARE_POWER = 0.6


def graph_bytes_per_vector(m: int = HNSW_M) -> int:
    """RAM the graph adds per vector (level-0 neighbour lists, 4-byte ids)."""
    return 8 * m


class HNSWScanner(ANNScanner):
    """Approximate top-``m`` over a tier's codes through an HNSW graph."""

    def __init__(self, codec: Codec, m: int = HNSW_M, index: Any = None) -> None:
        faiss = faiss_module()
        if index is None:
            if isinstance(codec, BinaryCodec):
                index = faiss.IndexBinaryHNSW(codec.code_width * 8, m)
            else:
                self._storage = flat_storage(codec, "hnsw")
                index = faiss.IndexHNSW(self._storage, m)
                index.own_fields = False
            index.hnsw.efConstruction = EF_CONSTRUCTION
        super().__init__(codec, index)

    def _effort(self, m: int, share: float) -> int:
        return math.ceil(max(EF_SEARCH_MIN, EF_SEARCH_FACTOR * m) * share**-EF_SHARE_POWER)

    def _max_effort(self) -> int:
        return max(self.ntotal, EF_SEARCH_MIN)

    def visited(self, m: int, scale: int = 1) -> float:
        ef = min(self._max_effort(), self._effort(m, 1.0) * scale)
        return float(min(self.ntotal, ef * 2 * HNSW_M))  # each node visited: its 2M links

    def _params(self, effort: int) -> Any:
        return faiss_module().SearchParametersHNSW(efSearch=int(effort))
