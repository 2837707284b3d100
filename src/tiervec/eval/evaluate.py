"""Evaluate tier chains on a collection with labelled queries: quality, memory and speed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiervec.eval.beir import BeirDataset
from tiervec.eval.measure import Measurement, judge, measure, searched
from tiervec.eval.queries import QuerySet
from tiervec.search import Chain, FusionConfig, FusionMethod, Searchable, SearchMode, SearchResult
from tiervec.store.files import load_npy, save_npy

#: Chains ``tiervec eval`` compares when none are given.
DEFAULT_EVAL_CHAINS = (
    "float32",
    "float16",
    "int8",
    "int8*4 -> float32@disk",
    "hamming",
    "hamming*4 -> float32@disk",
    "hamming*10 -> float32@disk",
    "binary",
    "binary*2 -> float32@disk",
    "binary*4 -> float32@disk",
    "binary*10 -> float32@disk",
)

#: Fusions ``tiervec eval`` compares on a collection with a lexical index: the default, then
#: each method at an even weight as given.
DEFAULT_EVAL_FUSIONS = (
    FusionConfig(),
    *(FusionConfig(method=method, weight=0.5, coverage=False) for method in FusionMethod),
)

#: The small depths ``tiervec eval`` reports recall at (beside recall@100).
SMALL_DEPTHS = (1, 2, 5)

#: The exact search every chain's recall is measured against.
EXACT = "float32"


@dataclass(frozen=True)
class EvalRow:
    """One chain's measured cost and quality (k = 10 unless stated)."""

    tiers: str
    ram_bytes_per_vector: int
    disk_bytes_per_vector: int
    disk_reads_per_query: int
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    recall_at_10_vs_exact: float
    qps: float
    n_queries: int
    #: Recall at small depths (of the top ``k``): how often the first answers are right.
    recall_at_1: float = 0.0
    recall_at_2: float = 0.0
    recall_at_5: float = 0.0
    #: Each query's figures: query id -> {metric name: value} (:data:`PER_QUERY`).
    per_query: dict[str, dict[str, float]] = field(default_factory=dict, compare=False,
                                                   repr=False)

    def to_dict(self) -> dict[str, object]:
        """The JSON form (keys as printed by ``tiervec eval --json``)."""
        return {
            "tiers": self.tiers,
            "ram_bytes_per_vector": self.ram_bytes_per_vector,
            "disk_bytes_per_vector": self.disk_bytes_per_vector,
            "disk_reads_per_query": self.disk_reads_per_query,
            "ndcg@10": round(self.ndcg_at_10, 5),
            "recall@100": round(self.recall_at_100, 5),
            "mrr@10": round(self.mrr_at_10, 5),
            "recall@10_vs_exact": round(self.recall_at_10_vs_exact, 5),
            "recall@1": round(self.recall_at_1, 5),
            "recall@2": round(self.recall_at_2, 5),
            "recall@5": round(self.recall_at_5, 5),
            "qps": round(self.qps, 1),
            "n_queries": self.n_queries,
        }


def query_vectors(
    collection: Searchable, dataset: BeirDataset, cache: Path | None = None
) -> np.ndarray:
    """The dataset's query vectors, encoded once and cached in ``cache`` (by default the
    collection folder's ``cache/``, where the collection has a folder it may write)."""
    texts = list(dataset.queries.values())
    config = getattr(collection, "encoder_config", None)
    key = hashlib.sha256(
        repr((config.to_dict() if config else collection.model, texts)).encode("utf-8")
    ).hexdigest()[:20]
    folder, writable = cache, True
    if folder is None and getattr(collection, "path", None) is not None:
        folder = Path(collection.path) / "cache"  # type: ignore[attr-defined]
        writable = not getattr(collection, "read_only", True)
    path = folder / f"queries-{key}.npy" if folder is not None else None
    if path is not None and path.is_file():
        cached = load_npy(path, mmap=False)
        if cached.shape == (len(texts), collection.dim):
            return cached
    vectors = collection.encode_queries(texts)
    if path is not None and writable:
        path.parent.mkdir(exist_ok=True)
        save_npy(path, vectors)
    return vectors


def labelled_set(collection: Searchable, dataset: BeirDataset) -> QuerySet:
    """The dataset's judged queries as a :class:`QuerySet`, encoded with the collection's
    model (cached)."""
    return QuerySet(f"{dataset.name} {dataset.split}", list(dataset.queries),
                    query_vectors(collection, dataset), dataset.qrels,
                    list(dataset.queries.values()))


def evaluate(
    collection: Searchable,
    dataset: BeirDataset,
    tiers: Sequence[str | Chain] = DEFAULT_EVAL_CHAINS,
    *,
    k: int = 10,
    on_row: Callable[[EvalRow], None] | None = None,
    lexical: bool = False,
    fusions: Sequence[FusionConfig] = (),
) -> list[EvalRow]:
    """Measure each chain on ``dataset``'s judged queries, on the collection's stored vectors.

    Nothing is re-encoded: each chain's codecs are fitted on (a sample of) the stored
    full-precision vectors (:meth:`~tiervec.search.Searchable.with_tiers`). Quality uses
    top-``k`` results (nDCG@k, MRR@k, recall@k vs exact float32) and a top-100 search for
    recall@100; ``qps`` is the top-``k`` batch throughput, ids included. Deleted and replaced
    documents are never returned.

    ``lexical`` adds a row for BM25 and ``fusions`` one per hybrid fusion (both through the
    collection's own chain and lexical index).
    """
    queries = labelled_set(collection, dataset)
    exact = collection.with_tiers(EXACT)
    exact_ids = exact.search_vectors(queries.vectors, k).ids
    runs: list[tuple[Searchable, SearchMode, FusionConfig | None]] = []
    for spec in tiers:
        chain = Chain.parse(spec)
        runs.append((exact if str(chain) == EXACT else collection.with_tiers(chain),
                     SearchMode.DENSE, None))
    if lexical:
        runs.append((collection, SearchMode.LEXICAL, None))
    runs += [(collection, SearchMode.HYBRID, fusion) for fusion in fusions]
    rows_out = []
    for view, mode, fusion in runs:
        found = measure(view, queries, k, mode=mode, fusion=fusion)
        deep = searched(view, queries, 100, mode, fusion)
        row = eval_row(found, queries, deep, exact_ids, k)
        rows_out.append(row)
        if on_row is not None:
            on_row(row)
    return rows_out


def eval_row(found: Measurement, queries: QuerySet, deep: SearchResult, exact_ids: np.ndarray,
             k: int) -> EvalRow:
    """An :class:`EvalRow` from a top-``k`` measurement and a top-100 search result."""
    small = [f"recall@{d}" for d in SMALL_DEPTHS if d <= k]
    per = found.per_query(queries, [f"ndcg@{k}", f"mrr@{k}", *small])
    per["recall@100"] = judge(queries, deep.ids, deep.scores, ["recall@100"])["recall@100"]
    mean = {m: float(v.mean()) if len(v) else 0.0 for m, v in per.items()}
    shares = found.recall_vs_exact(exact_ids, k)
    return EvalRow(
        tiers=found.tiers, ram_bytes_per_vector=found.ram_bytes_per_vector,
        disk_bytes_per_vector=found.disk_bytes_per_vector,
        disk_reads_per_query=found.disk_reads_per_query, ndcg_at_10=mean[f"ndcg@{k}"],
        recall_at_100=mean["recall@100"], mrr_at_10=mean[f"mrr@{k}"],
        recall_at_10_vs_exact=float(shares.mean()) if len(shares) else 1.0, qps=found.qps,
        n_queries=len(queries), recall_at_1=mean.get("recall@1", 0.0),
        recall_at_2=mean.get("recall@2", 0.0), recall_at_5=mean.get("recall@5", 0.0),
        per_query={q: {m: round(float(v[i]), 5) for m, v in per.items()}
                   for i, q in enumerate(queries.ids)},
    )
