"""Long documents: truncation vs naive chunking vs late chunking, on QMSum (LongEmbed's
long-meeting task, documents of ~10,000 words), BEIR SciFact and NFCorpus.

Each variant is a collection of the same corpus with the default model (all-MiniLM-L6-v2) and
the default chain, searched with the same query vectors; results are documents:

- **truncate 256**: a vector per document of its first 256 word pieces (what
  sentence-transformers does by default, and tiervec without chunking);
- **truncate 512**: the same with the model's whole position table (QMSum only);
- **naive 128/16**: chunks of 128 word pieces overlapping by 16, each embedded alone;
- **late 128/16**: the same chunks, pooled from one pass of the model over the whole document
  (windows of 256 word pieces overlapping by a quarter); **w512**: windows of 512.

Chunked documents score by their best chunk (``max``); ``top3`` and ``sum`` are measured on the
same collections. Quality: nDCG@10 and Recall@100 against the qrels; the paired standard error
of each difference in nDCG@10 says whether a margin is real. Cost: index time (encoding
included), vectors per document, RAM of the compressed tier per document, QPS (one query per
call). Collections are cached in ``bench/.cache/longdocs-*`` (index times kept beside them).
Results: ``bench/results/longdocs.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

import tiervec
from _common import CACHE, indexed_once, print_table, qps, shared_data, write_json
from tiervec.encode import EncoderConfig
from tiervec.encode.chunking import ChunkingConfig
from tiervec.eval import judge, load_beir, query_vectors
from tiervec.eval.measure import searched
from tiervec.eval.queries import QuerySet
from tiervec.search import Query, SearchMode, SearchOptions

DATASETS = {"qmsum": "long/qmsum", "scifact": "beir/scifact", "nfcorpus": "beir/nfcorpus-pp"}
K, DEEP = 10, 100
METRICS = ["ndcg@10", "recall@100"]
#: name -> (encoder max_length, chunking); ``long`` variants run on the long-document sets only
VARIANTS: dict[str, tuple[int | None, ChunkingConfig | None, bool]] = {
    "truncate 256": (None, None, False),
    "truncate 512": (512, None, True),
    "naive 128/16": (None, ChunkingConfig(method="naive", tokens=128, overlap=16), False),
    "late 128/16": (None, ChunkingConfig(method="late", tokens=128, overlap=16), False),
    "late 128/16 w512": (None, ChunkingConfig(method="late", tokens=128, overlap=16,
                                              window=512), True),
}
LONG = {"qmsum"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args()
    report: dict[str, Any] = {"k": K, "datasets": {}}
    for name in args.datasets.split(","):
        report["datasets"][name] = run_dataset(name, shared_data() / DATASETS[name])
    write_json("longdocs", report)


def run_dataset(name: str, folder: Path) -> dict[str, Any]:
    data = load_beir(folder, split="test")
    rows, per_query = [], {}
    for variant, (max_length, chunking, long_only) in VARIANTS.items():
        if long_only and name not in LONG:
            continue
        col, index = collection(name, variant, folder, max_length, chunking)
        vectors = query_vectors(col, data, cache=CACHE / f"longdocs-{name}-queries-"
                                f"{max_length or 256}")
        queries = QuerySet(f"{name} test", list(data.queries), vectors, data.qrels,
                           list(data.queries.values()))
        chunks = col.stats().rows
        aggregates = ["max", "top3", "sum"] if chunking is not None else [None]
        for aggregate in aggregates:
            label = variant if aggregate in (None, "max") else f"{variant} {aggregate}"
            options = SearchOptions(aggregate=aggregate)
            found = searched_with(col, queries, options)
            scores = judge(queries, found.ids, found.scores, METRICS)
            per_query[label] = scores["ndcg@10"]
            row = {"name": label, **{m: round(float(v.mean()), 4) for m, v in scores.items()},
                   "vectors_per_doc": round(chunks / len(col), 2),
                   "ram_bytes_per_doc": round(col.chain.ram_bytes_per_vector(col.dim) *
                                              chunks / len(col), 1),
                   **index}
            if aggregate in (None, "max"):
                row["qps"] = loop_qps(col, queries, options)
            rows.append(row)
        col.close()
    print_table(f"{name}: {len(data.queries)} test queries, documents (k={K})",
                ["variant", "nDCG@10", "Recall@100", "vectors/doc", "RAM B/doc", "index s",
                 "docs/s", "QPS"],
                [[r["name"], r["ndcg@10"], r["recall@100"], f"{r['vectors_per_doc']:.2f}",
                  f"{r['ram_bytes_per_doc']:,.0f}", f"{r['index_seconds']:,.0f}",
                  f"{r['docs_per_s']:,.1f}", qps(r["qps"]) if "qps" in r else "-"]
                 for r in rows])
    margins = compare(per_query, name)
    return {"queries": len(data.queries), "rows": rows, "margins": margins}


def collection(name: str, variant: str, folder: Path, max_length: int | None,
               chunking: ChunkingConfig | None) -> tuple[tiervec.Collection, dict[str, Any]]:
    """The variant's collection (cached), and how long indexing it took."""
    path = CACHE / f"longdocs-{name}-{variant.replace(' ', '-').replace('/', '-')}"
    return indexed_once(
        path, lambda: tiervec.create(path, model=EncoderConfig(max_length=max_length),
                                     chunking=chunking, lexical=False),
        folder, f"{name} as {variant}")


def searched_with(col: tiervec.Collection, queries: QuerySet, options: SearchOptions) -> Any:
    if options.aggregate is None:
        return searched(col, queries, DEEP, SearchMode.DENSE, None)
    return col.run(Query(vectors=queries.vectors, k=DEEP, options=options))


def loop_qps(col: tiervec.Collection, queries: QuerySet, options: SearchOptions) -> float:
    vectors = queries.vectors
    col.run(Query(vectors=vectors[:1], k=K, options=options))
    start = time.perf_counter()
    for i in range(len(vectors)):
        col.run(Query(vectors=vectors[i:i + 1], k=K, options=options))
    return len(vectors) / (time.perf_counter() - start)


def compare(per_query: dict[str, np.ndarray], name: str) -> list[dict[str, Any]]:
    """Late chunking against the others: mean paired nDCG@10 difference and its standard
    error."""
    pairs = [("late 128/16", "naive 128/16"), ("late 128/16", "truncate 256"),
             ("naive 128/16", "truncate 256"), ("late 128/16 w512", "late 128/16"),
             ("late 128/16 w512", "truncate 512"), ("late 128/16 w512", "naive 128/16")]
    out = []
    for a, b in pairs:
        if a not in per_query or b not in per_query:
            continue
        diff = per_query[a] - per_query[b]
        se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
        out.append({"a": a, "b": b, "difference": round(float(diff.mean()), 4),
                    "standard_error": round(se, 4),
                    "beyond_se": bool(diff.mean() > se)})
    print_table(f"{name}: nDCG@10 differences (paired over queries)",
                ["a", "b", "a - b", "standard error", "a > b by more than 1 SE"],
                [[m["a"], m["b"], m["difference"], m["standard_error"],
                  "yes" if m["beyond_se"] else "no"] for m in out])
    return out


if __name__ == "__main__":
    main()
