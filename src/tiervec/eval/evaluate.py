"""Evaluate tier chains on a collection with labelled queries: quality, memory and speed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tiervec.collection import Collection
from tiervec.eval.beir import BeirDataset
from tiervec.eval.metrics import evaluate_run, recall_vs_exact, run_from_arrays
from tiervec.search import Chain
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
            "qps": round(self.qps, 1),
            "n_queries": self.n_queries,
        }


def query_vectors(collection: Collection, dataset: BeirDataset) -> np.ndarray:
    """The dataset's query vectors, encoded once and cached in the collection's ``cache/``."""
    texts = list(dataset.queries.values())
    config = collection.encoder_config
    key = hashlib.sha256(
        repr((config.to_dict() if config else None, texts)).encode("utf-8")
    ).hexdigest()[:20]
    path = collection.path / "cache" / f"queries-{key}.npy"
    if path.is_file():
        cached = load_npy(path, mmap=False)
        if cached.shape == (len(texts), collection.dim):
            return cached
    vectors = collection.encoder.encode_queries(texts)
    if not collection.read_only:
        path.parent.mkdir(exist_ok=True)
        save_npy(path, vectors)
    return vectors


def evaluate(
    collection: Collection,
    dataset: BeirDataset,
    tiers: Sequence[str | Chain] = DEFAULT_EVAL_CHAINS,
    *,
    k: int = 10,
    on_row: Callable[[EvalRow], None] | None = None,
) -> list[EvalRow]:
    """Measure each chain on ``dataset``'s judged queries, on the collection's stored vectors.

    Nothing is re-encoded: each chain's codecs are fitted on (a sample of) the stored
    full-precision vectors. Quality uses top-``k`` results (nDCG@k, MRR@k, recall@k vs exact
    float32) and a top-100 search for recall@100; ``qps`` is the top-``k`` batch throughput.
    """
    queries = query_vectors(collection, dataset)
    query_ids = list(dataset.queries)
    exact = collection.searcher(EXACT)
    _, exact_rows = exact.search(queries, k)
    rows_out = []
    for spec in tiers:
        chain = Chain.parse(spec)
        searcher = exact if str(chain) == EXACT else collection.searcher(chain)
        searcher.search(queries[:2], k)  # warm-up (lazy structures, page cache)
        start = time.perf_counter()
        scores, rows = searcher.search(queries, k)
        elapsed = time.perf_counter() - start
        scores100, rows100 = searcher.search(queries, 100)
        ids, ids100 = collection.ids_for_rows(rows), collection.ids_for_rows(rows100)
        at_k = evaluate_run(dataset.qrels, run_from_arrays(query_ids, ids, scores),
                            [f"ndcg@{k}", f"mrr@{k}"])
        at_100 = evaluate_run(dataset.qrels, run_from_arrays(query_ids, ids100, scores100),
                              ["recall@100"])
        row = EvalRow(
            tiers=str(chain),
            ram_bytes_per_vector=chain.ram_bytes_per_vector(collection.dim),
            disk_bytes_per_vector=chain.disk_bytes_per_vector(collection.dim),
            disk_reads_per_query=chain.disk_reads_per_query(k, len(collection)),
            ndcg_at_10=at_k[f"ndcg@{k}"],
            recall_at_100=at_100["recall@100"],
            mrr_at_10=at_k[f"mrr@{k}"],
            recall_at_10_vs_exact=recall_vs_exact(rows, exact_rows, k),
            qps=len(queries) / max(elapsed, 1e-9),
            n_queries=len(queries),
        )
        rows_out.append(row)
        if on_row is not None:
            on_row(row)
    return rows_out
