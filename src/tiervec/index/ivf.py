"""An inverted-file index (FAISS IVF) over the compressed codes of a chain's first tier.

``int8@ivf*4 -> float32@disk`` clusters the vectors into ``nlist`` lists (k-means on the first
codes added, ``nlist ~ 4 sqrt(n)``) and scans only the ``nprobe`` lists nearest each query. The
codes in the lists are the codec's own (``by_residual`` off, the codec's trained ranges), so
``int8`` keeps its 384 bytes/vector. (FAISS's binary IVF cannot filter inside its list scan:
binary codes use ``@hnsw``.)
The coarse clustering is fitted once, when the index is first built: :meth:`Collection.refit`
(or a compaction) rebuilds it after the collection has grown a lot.

Filtered search passes the allowed-rows bitmap to the list scan (FAISS ``IDSelectorBitmap``)
and widens ``nprobe`` until every query has enough allowed results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tiervec.codecs._faiss import faiss_module
from tiervec.codecs.base import Codec
from tiervec.codecs.binary import BinaryCodec
from tiervec.errors import InvalidTierSpec
from tiervec.index.base import ANNScanner, flat_storage

#: Lists scanned per query: at least this many, and ``nlist / NPROBE_SHARE``.
NPROBE_MIN = 8
NPROBE_SHARE = 16
#: k-means needs this many training vectors per list.
POINTS_PER_LIST = 39


def nlist_for(n: int) -> int:
    """Number of lists for ``n`` vectors: ``4 sqrt(n)``, at most ``n / 39``, at least 1."""
    return max(1, min(int(4 * math.sqrt(n)), n // POINTS_PER_LIST))


class IVFScanner(ANNScanner):
    """Approximate top-``m`` over a tier's codes through an inverted file."""

    def __init__(self, codec: Codec, index: Any = None) -> None:
        super().__init__(codec, index)
        if isinstance(codec, BinaryCodec):
            raise InvalidTierSpec(
                f"{codec.name!r} codes cannot live in an IVF index (FAISS's binary IVF cannot "
                "filter); put them in an HNSW graph (@hnsw) or scan them (@ram)"
            )
        if index is None:
            self._storage = flat_storage(codec, "ivf")

    def add(self, codes: np.ndarray) -> None:
        if self.index is None:  # the first codes added train the coarse quantizer
            self.index = self._trained(self._vectors(codes))
        super().add(codes)

    def _trained(self, x: np.ndarray) -> Any:
        faiss = faiss_module()
        nlist = nlist_for(len(x))
        storage = self._storage
        quantizer = faiss.IndexFlatIP(self.codec.dim)
        if isinstance(storage, faiss.IndexScalarQuantizer):
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, self.codec.dim, nlist, storage.sq.qtype, faiss.METRIC_INNER_PRODUCT,
                False)
            index.own_fields = True
            index.train(x)
            index.sq.trained = storage.sq.trained  # the codec's ranges: the same codes
        else:
            index = faiss.IndexIVFFlat(quantizer, self.codec.dim, nlist,
                                       faiss.METRIC_INNER_PRODUCT)
            index.own_fields = True
            index.train(x)
        quantizer.this.disown()
        return index

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def _effort(self, m: int, share: float) -> int:
        return min(self.index.nlist, max(NPROBE_MIN, self.index.nlist // NPROBE_SHARE))

    def _max_effort(self) -> int:
        return int(self.index.nlist)

    def _params(self, effort: int) -> Any:
        return faiss_module().SearchParametersIVF(nprobe=int(effort))
