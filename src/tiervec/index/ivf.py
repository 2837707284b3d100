"""An inverted-file index (FAISS IVF) over the compressed codes of a chain's first tier.

``int8@ivf*4 -> float32@disk`` clusters the vectors into ``nlist`` lists (spherical k-means,
``nlist ~ 4 sqrt(n)``) and scans only the ``nprobe`` lists nearest each query. The codes in the
lists are the codec's own (``by_residual`` off, the codec's trained ranges), so ``int8`` keeps
its 384 bytes/vector. ``binary`` codes live in a 4-bit fast-scan IVF (``IndexIVFPQFastScan``)
whose sub-quantizers are the 16 sign patterns of 4 dimensions: the lists hold the 1-bit codes
as they are (48 bytes for 384 dimensions) and FAISS's SIMD kernel scores float queries against
them without decoding, as the exhaustive ``binary`` scan does.

The lists are fitted on the full-precision vectors where the collection has them (k-means on
sign vectors makes poorer lists: on 1M x 384, binary x30, recall@10 0.947 against 0.964 at the
same nprobe), on a sample of ``40 * nlist`` rows, once, when the index is first built:
:meth:`Collection.refit` (or a compaction) rebuilds it after the collection has grown a lot.

Filtered search passes the allowed-rows bitmap to the list scan (FAISS ``IDSelectorBitmap``)
and widens ``nprobe`` until every query has enough allowed results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tiervec.codecs._faiss import faiss_module
from tiervec.codecs._fastscan import set_sign_centroids
from tiervec.codecs.base import Codec
from tiervec.codecs.binary import BinaryCodec, HammingCodec
from tiervec.errors import InvalidTierSpec
from tiervec.index.base import ANNScanner, flat_storage

#: Lists scanned per query: at least this many, and ``nlist / NPROBE_SHARE`` (1M x 384,
#: binary x30, 4,096 lists: recall@10 0.961 at nprobe 48, 0.968 at 96, at 0.8x the speed).
NPROBE_MIN = 8
NPROBE_SHARE = 64
#: ... and enough lists to hold this many allowed rows per result asked for (small or
#: filtered collections: a few thousand rows in 30 lists need most of them).
SCAN_PER_RESULT = 16
#: k-means needs this many training vectors per list; it is fitted on ``TRAIN_PER_LIST`` per
#: list (at most), in ``KMEANS_ITERATIONS`` iterations.
POINTS_PER_LIST = 39
TRAIN_PER_LIST = 40
KMEANS_ITERATIONS = 10
#: From this many lists on, the lists' centroids are found through an HNSW graph (k-means and
#: assignment stay near linear in the lists: 10M vectors, 12,649 lists) rather than by
#: comparing each vector with every centroid.
GRAPH_QUANTIZER_FROM = 8_192


def nlist_for(n: int) -> int:
    """Number of lists for ``n`` vectors: ``4 sqrt(n)``, at most ``n / 39``, at least 1."""
    return max(1, min(int(4 * math.sqrt(n)), n // POINTS_PER_LIST))


class IVFScanner(ANNScanner):
    """Approximate top-``m`` over a tier's codes through an inverted file."""

    def __init__(self, codec: Codec, index: Any = None) -> None:
        super().__init__(codec, index)
        if isinstance(codec, HammingCodec):
            raise InvalidTierSpec(
                f"{codec.name!r} codes cannot live in an IVF index (FAISS's binary IVF cannot "
                "filter); use 'binary@ivf' (float queries scored against the same bits) or "
                "'hamming@hnsw'"
            )
        if isinstance(codec, BinaryCodec) and codec.dim % 4:
            raise InvalidTierSpec(
                f"binary codes of {codec.dim} dimensions cannot live in an IVF index (its "
                "fast-scan kernel takes 4 dimensions at a time); use 'binary@hnsw' or scan "
                "them (@ram)"
            )
        if index is None and not isinstance(codec, BinaryCodec):
            self._storage = flat_storage(codec, "ivf")

    @classmethod
    def packs_bits(cls, codec: Codec) -> bool:
        return False  # binary codes: a PQ fast-scan index of float vectors that re-encodes them

    def fit(self, vectors: Any) -> None:
        n = len(vectors)
        if self.index is not None or n == 0:
            return
        nlist = nlist_for(n)
        rows = np.unique(np.linspace(0, n - 1, min(n, TRAIN_PER_LIST * nlist)).astype(np.int64))
        self.index = self._trained(np.asarray(vectors.take(rows), np.float32), nlist)

    def add(self, codes: np.ndarray) -> None:
        if self.index is None:  # not fitted: the first codes added train the lists
            x = self._vectors(codes)
            self.index = self._trained(x, nlist_for(len(x)))
        super().add(codes)

    def _trained(self, x: np.ndarray, nlist: int) -> Any:
        faiss = faiss_module()
        d = self.codec.dim
        quantizer = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT) \
            if nlist >= GRAPH_QUANTIZER_FROM else faiss.IndexFlatIP(d)
        if isinstance(self.codec, BinaryCodec):
            index = faiss.IndexIVFPQFastScan(quantizer, d, nlist, d // 4, 4,
                                             faiss.METRIC_INNER_PRODUCT, 32)
            index.by_residual = False
        elif isinstance(self._storage, faiss.IndexScalarQuantizer):
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, d, nlist, self._storage.sq.qtype, faiss.METRIC_INNER_PRODUCT, False)
        else:
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        index.cp.niter = KMEANS_ITERATIONS
        index.train(np.ascontiguousarray(x, np.float32))
        if isinstance(self.codec, BinaryCodec):  # the codec's sign bits, not a trained PQ
            set_sign_centroids(index.pq, np.full(d, self.codec.scale, np.float32))
        elif isinstance(self._storage, faiss.IndexScalarQuantizer):
            index.sq.trained = self._storage.sq.trained  # the codec's ranges: the same codes
        quantizer.this.disown()
        return index

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def _effort(self, m: int, share: float) -> int:
        nlist = int(self.index.nlist)
        allowed_per_list = max(self.ntotal * share / nlist, 1.0)
        enough = math.ceil(SCAN_PER_RESULT * m / allowed_per_list)
        return min(nlist, max(NPROBE_MIN, nlist // NPROBE_SHARE, enough))

    def _max_effort(self) -> int:
        return int(self.index.nlist)

    def visited(self, m: int, scale: int = 1) -> float:
        if self.index is None:
            return 0.0
        probes = min(self._max_effort(), self._effort(m, 1.0) * scale)
        return self.ntotal * probes / int(self.index.nlist)

    def _params(self, effort: int) -> Any:
        faiss = faiss_module()
        params = faiss.SearchParametersIVF(nprobe=int(effort))
        if int(self.index.nlist) >= GRAPH_QUANTIZER_FROM:  # the graph must find nprobe lists:
            # left at its efSearch of 16 it finds 16, whatever nprobe (10M: recall 0.93 at x640)
            params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(64, 2 * effort))
        return params
