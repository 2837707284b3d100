"""Quality vs memory on BEIR SciFact and NFCorpus, tiervec's chains beside the peers, one run.

Rows per dataset: exact float32; sentence-transformers' own quantization path
(``quantize_embeddings`` + ``semantic_search_faiss`` with its rescoring of float queries against
the binary/int8 documents); tiervec's chains at several oversampling factors. k = 10.

    python bench/quality.py [--datasets scifact nfcorpus-pp]

Writes bench/results/quality.json and prints a table (and its Markdown, for the README).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from _common import (
    beir_collection,
    console,
    markdown_table,
    print_table,
    qps,
    recall_at,
    shared_data,
    write_json,
)
from tiervec.eval import (
    DEFAULT_EVAL_CHAINS,
    evaluate,
    evaluate_run,
    load_beir,
    query_vectors,
    run_from_arrays,
)

CHAINS = DEFAULT_EVAL_CHAINS
ST_PEERS = (("ubinary", 4), ("ubinary", 10), ("uint8", 4))
COLUMNS = ("dataset", "method", "RAM B/vec", "disk reads/q", "nDCG@10", "% of float32",
           "R@10 vs exact", "Recall@100", "MRR@10", "QPS")


def st_peer(col, data, queries, exact_rows, precision: str, multiplier: int) -> dict:
    """sentence-transformers' quantized search with its own rescoring."""
    from sentence_transformers.util.quantization import quantize_embeddings, semantic_search_faiss

    corpus = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
    codes = quantize_embeddings(corpus, precision=precision, calibration_embeddings=corpus)
    query_ids = list(data.queries)

    def run(k: int) -> tuple[np.ndarray, np.ndarray, float]:
        # the index is built inside the call; the time it reports covers the search alone
        hits, elapsed, _ = semantic_search_faiss(
            queries, corpus_embeddings=codes, corpus_precision=precision, top_k=k,
            calibration_embeddings=corpus, rescore=True, rescore_multiplier=multiplier,
            exact=True, output_index=True,
        )
        rows = np.array([[h["corpus_id"] for h in q] + [-1] * (k - len(q)) for q in hits])
        scores = np.array([[h["score"] for h in q] + [-np.inf] * (k - len(q)) for q in hits])
        return rows, scores, elapsed

    rows, scores, elapsed = run(10)
    rows100, scores100, _ = run(100)
    ids, ids100 = col.ids_at(rows), col.ids_at(rows100)
    at10 = evaluate_run(data.qrels, run_from_arrays(query_ids, ids, scores), ["ndcg@10", "mrr@10"])
    at100 = evaluate_run(data.qrels, run_from_arrays(query_ids, ids100, scores100), ["recall@100"])
    bytes_per_vector = {"ubinary": col.dim // 8, "uint8": col.dim}[precision]
    return {
        "method": f"sentence-transformers {precision} + rescore x{multiplier}",
        "ram_bytes_per_vector": bytes_per_vector,
        "disk_reads_per_query": 0,
        "ndcg@10": at10["ndcg@10"],
        "mrr@10": at10["mrr@10"],
        "recall@100": at100["recall@100"],
        "recall@10_vs_exact": recall_at(rows, exact_rows) if exact_rows is not None else None,
        "qps": len(queries) / elapsed,
        "rows": rows,
    }


def bench_dataset(name: str) -> list[dict]:
    data = load_beir(shared_data() / "beir" / name)
    col = beir_collection(data.path, name)
    queries = query_vectors(col, data)
    _, exact_rows = col.pipeline("float32").search(queries, 10)
    out = []
    for row in evaluate(col, data, CHAINS):
        d = row.to_dict()
        out.append({"method": f"tiervec {d.pop('tiers')}", **d})
    for precision, multiplier in ST_PEERS:
        row = st_peer(col, data, queries, exact_rows, precision, multiplier)
        row.pop("rows")
        out.append(row)
    base = next(r["ndcg@10"] for r in out if r["method"] == "tiervec float32")
    for r in out:
        r["dataset"] = name
        r["ndcg_share_of_float32"] = r["ndcg@10"] / base
        r["n_docs"] = len(col)
        r["n_queries"] = len(queries)
    col.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus-pp"])
    args = parser.parse_args()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    rows = []
    for name in args.datasets:
        rows += bench_dataset(name)
    table = [
        (r["dataset"], r["method"], r["ram_bytes_per_vector"], r["disk_reads_per_query"],
         r["ndcg@10"], f"{100 * r['ndcg_share_of_float32']:.2f}", r["recall@10_vs_exact"],
         r["recall@100"], r["mrr@10"], qps(r["qps"]))
        for r in rows
    ]
    print_table("Quality vs memory (MiniLM-L6-v2, k=10)", COLUMNS, table)
    console.print(markdown_table(COLUMNS, table), soft_wrap=True)
    write_json("quality", {"k": 10, "model": "all-MiniLM-L6-v2", "rows": rows})


if __name__ == "__main__":
    main()
