"""Measuring settings: every candidate chain's memory, disk reads, quality and speed.

Quality is a fraction of float32's on the same queries: nDCG@k over float32's nDCG@k with
labels, recall@k against exact float32 search without. Each quality comes with its standard
error over queries, so the planner can tell a real loss from noise. Chains that differ only in
oversampling share one fitted codec (fitting is the slow part: PQ k-means, ITQ, learned codes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from tiervec.eval.measure import judge, measure
from tiervec.eval.metrics import recall_vs_exact_per_query
from tiervec.eval.queries import QuerySet
from tiervec.search import Chain, Searchable

EXACT = "float32"


@dataclass(frozen=True)
class Setting:
    """One measured chain. ``quality`` is a fraction of float32 quality (1.0 = no loss)."""

    tiers: str
    ram_bytes_per_vector: int
    disk_bytes_per_vector: int
    disk_reads_per_query: int
    quality: float
    quality_se: float
    recall_at_k_vs_exact: float
    ndcg_at_k: float | None
    qps: float
    pareto: bool = False

    @property
    def latency_ms(self) -> float:
        """Mean time per query of a batched search, in milliseconds."""
        return 1000.0 / self.qps if self.qps > 0 else float("inf")

    def lower_bound(self, z: float) -> float:
        """``quality - z * quality_se``: the quality the setting keeps with high confidence."""
        return self.quality - z * self.quality_se

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        for key in ("quality", "quality_se", "recall_at_k_vs_exact", "ndcg_at_k"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 5)
        out["qps"] = round(self.qps, 1)
        return out


def candidate_chains(dim: int, k: int = 10, max_reads: int = 100,
                     learned: bool = False) -> list[str]:
    """The settings a plan tries for ``dim``-dimensional vectors: compressed tiers alone, and
    first tiers rescored from full-precision vectors on disk with at most ``max_reads`` reads."""
    alone = ["float32", "float16", "float8", "int8", "int4", "bin4", f"pca{dim // 2}+float8"]
    firsts = ["float8", "int8", "int4", "bin3", "bin2", "bin2sym", "center+binary", "binary",
              "itq+binary", "hamming", "rabitq", f"pca{dim // 2}+binary", f"pca{dim // 3}+binary"]
    firsts += [f"pq{m}" for m in (dim // 8, dim // 16, dim // 24) if m >= 1 and dim % m == 0]
    # OPQ at 16 and 32 B/vector (384-d): at 1M vectors and 200 reads, recall@10 0.797 and
    # 0.968 against pq16's 0.676 (bench/scale.py, README "Fewer bytes at scale")
    firsts += [f"opq{m}" for m in (dim // 12, dim // 24) if m >= 1 and dim % m == 0]
    if learned:
        firsts += ["lbin1", "lbin2"]
    factors = [f for f in (2, 4, 10, 20, 40) if f * k <= max_reads]
    rescored = [f"{c}*{f} -> float32@disk" for c in firsts for f in factors]
    return alone + rescored


class Measurer:
    """Measures chains on one query set against float32, reusing fitted codecs."""

    def __init__(self, collection: Searchable, queries: QuerySet, k: int = 10,
                 shared: dict[tuple, Searchable] | None = None) -> None:
        self.collection = collection
        self.queries = queries
        self.k = k
        #: Fitted views by chain shape; pass one measurer's to another to share the fits.
        self.views: dict[tuple, Searchable] = {} if shared is None else shared
        exact = self.view(Chain.parse(EXACT))
        self.exact_ids = exact.search_vectors(queries.vectors, k).ids
        self.exact_ndcg = self._ndcg(self.exact_ids) if queries.labelled else None

    def view(self, chain: Chain) -> Searchable:
        """The collection through ``chain``; chains that differ only in oversampling share
        codecs."""
        key = chain.shape()
        base = self.views.get(key)
        if base is None:
            base = self.views[key] = self.collection.with_tiers(chain)
        return base if str(base.chain) == str(chain) else base.with_tiers(chain)

    def measure(self, spec: str | Chain) -> Setting:
        found = measure(self.view(Chain.parse(spec)), self.queries, self.k)
        return self.rate(found.ids, found.tiers, found.ram_bytes_per_vector,
                         found.disk_bytes_per_vector, found.disk_reads_per_query, found.qps)

    def rate(self, ids: np.ndarray, tiers: str, ram: int, disk: int, reads: int,
             qps: float) -> Setting:
        """A :class:`Setting` for the result ``ids`` ``(n_queries, k)`` of any search (a peer's
        too), its quality judged against float32 on this measurer's queries."""
        recall = recall_vs_exact_per_query(ids, self.exact_ids, self.k)
        ndcg = None
        if self.exact_ndcg is not None:
            ndcg = self._ndcg(ids)
            quality, se = _ratio(ndcg, self.exact_ndcg)
        else:
            quality, se = float(recall.mean()), float(recall.std(ddof=1) / np.sqrt(len(recall)))
        return Setting(
            tiers=tiers, ram_bytes_per_vector=ram, disk_bytes_per_vector=disk,
            disk_reads_per_query=reads, quality=quality, quality_se=se,
            recall_at_k_vs_exact=float(recall.mean()),
            ndcg_at_k=None if ndcg is None else float(ndcg.mean()), qps=qps,
        )

    def _ndcg(self, ids: np.ndarray) -> np.ndarray:
        scores = np.zeros(ids.shape, np.float32)  # judged by rank: the order returned
        return judge(self.queries, ids, scores, [f"ndcg@{self.k}"], by_rank=True)[
            f"ndcg@{self.k}"]


def measure_all(measurer: Measurer, chains: Sequence[str],
                on_setting: Callable[[Setting], None] | None = None) -> list[Setting]:
    """Measure every chain, the Pareto-optimal ones marked."""
    settings = []
    for spec in chains:
        setting = measurer.measure(spec)
        settings.append(setting)
        if on_setting is not None:
            on_setting(setting)
    return mark_pareto(settings)


def mark_pareto(settings: Sequence[Setting]) -> list[Setting]:
    """Mark the settings no other one beats on both RAM bytes/vector and quality."""
    out = []
    for s in settings:
        dominated = any(
            o.ram_bytes_per_vector <= s.ram_bytes_per_vector and o.quality >= s.quality
            and (o.ram_bytes_per_vector < s.ram_bytes_per_vector or o.quality > s.quality)
            for o in settings
        )
        out.append(replace(s, pareto=not dominated))
    return out


def _ratio(values: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """``mean(values) / mean(reference)`` and its standard error (delta method, paired)."""
    ref = float(reference.mean())
    if ref <= 0:
        return 1.0, 0.0
    ratio = float(values.mean()) / ref
    spread = values - ratio * reference
    return ratio, float(spread.std(ddof=1) / (np.sqrt(len(values)) * ref))
