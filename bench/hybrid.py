"""Hybrid retrieval on BEIR SciFact and NFCorpus: dense, BM25, fused, tuned; the peers; the
calibrated relevance cut-off; ingest with and without the lexical index.

One run measures, on each dataset's test queries (``k = 10``; recall at 100):

- tiervec dense (float32 exact, the default chain), BM25 (ours), hybrid with each fusion at
  its defaults, and hybrid with the fusion ``tiervec tune`` picks on the tuning split
  (SciFact train, NFCorpus dev; never the test queries);
- bm25s over the same tokens (our analyzer's), SQLite FTS5 (porter stemming, ``bm25()``), and
  LanceDB (FTS, vector, hybrid with its RRF reranker) and Milvus Lite (BM25 function, dense,
  hybrid with RRF and weighted rankers) on the same texts and vectors, run in their own
  virtual environment (``bench/_hybrid_peers.py``);
- the relevance cut-off: calibrations fitted on the tuning split, precision of the returned
  sets at each recall on the test split, against a global raw-score threshold and fixed top-k
  (table and a precision-recall plot per dataset);
- ingest with precomputed vectors (encoding excluded), with and without the lexical index.

QPS: one query per call in a loop (as a user calls ``search``; the peers are measured the same
way); "batch QPS": all test queries in one call, where the engine takes batches.
Results: ``bench/results/hybrid.json``, ``bench/results/hybrid-cutoff-<dataset>.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import tiervec
from _common import (
    CACHE,
    RESULTS,
    ROOT,
    beir_collection,
    console,
    markdown_table,
    print_table,
    qps,
    shared_data,
    write_json,
)
from tiervec.eval import judge, load_beir, query_vectors
from tiervec.eval.measure import searched
from tiervec.eval.queries import QuerySet
from tiervec.lexical import Analyzer
from tiervec.lexical.analyze import document_text
from tiervec.plan.plot import plot_cutoff
from tiervec.plan.tune import RECALL_LEVELS, cutoff_report, fit_calibrations, tune_fusion
from tiervec.search import FusionConfig, FusionMethod, Query, SearchMode, SearchOptions

DATASETS = {"scifact": ("scifact", "train"), "nfcorpus": ("nfcorpus-pp", "dev")}
PEERS_PYTHON = ROOT / "bench" / ".peers" / "bin" / "python"
K, DEEP = 10, 100
METRICS = ["ndcg@10", "recall@100"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--no-peers", action="store_true", help="Skip LanceDB and Milvus Lite.")
    parser.add_argument("--ingest-copies", type=int, default=10,
                        help="Copies of SciFact for the ingest measurement.")
    args = parser.parse_args()
    report: dict[str, Any] = {"k": K, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="tiervec-hybrid-") as tmp:
        for name in args.datasets.split(","):
            folder, tune_split = DATASETS[name]
            report["datasets"][name] = run_dataset(name, shared_data() / "beir" / folder,
                                                   tune_split, Path(tmp), not args.no_peers)
        report["ingest"] = ingest(Path(tmp), args.ingest_copies)
    summary(report)
    write_json("hybrid", report)


# -- one dataset --------------------------------------------------------------------------------
def run_dataset(name: str, folder: Path, tune_split: str, tmp: Path, peers: bool) -> dict:
    cached = beir_collection(folder, folder.name)  # vectors encoded once, cached
    col = copy_with_lexical(cached, tmp / name)
    cached.close()
    test = labelled(col, folder, "test")
    tune = labelled(col, folder, tune_split)
    console.print(f"[bold]{name}[/]: {len(col):,} documents, {len(test)} test queries, "
                  f"{len(tune)} {tune_split} queries to tune on")
    tuning = tune_fusion(col, tune, test)
    rows = [
        ours(col.with_tiers("float32"), test, SearchMode.DENSE, None, "tiervec dense float32"),
        ours(col, test, SearchMode.DENSE, None, f"tiervec dense {col.chain}"),
        ours(col, test, SearchMode.LEXICAL, None, "tiervec BM25"),
    ]
    rows.append(ours(col, test, SearchMode.HYBRID, FusionConfig(),
                     f"tiervec hybrid {FusionConfig().describe()} (default)"))
    for method in FusionMethod:
        fusion = FusionConfig(method=method, weight=0.5, coverage=False)
        rows.append(ours(col, test, SearchMode.HYBRID, fusion,
                         f"tiervec hybrid {fusion.describe()}"))
    rows.append(ours(col, test, SearchMode.HYBRID, tuning.best,
                     f"tiervec hybrid tuned: {tuning.best.describe()}"))
    rows.append(bm25s_row(col, test))
    rows.append(fts5_row(col, test))
    if peers:
        rows += peer_rows(col, test, tmp / f"{name}-peers")
    oracle = tune_fusion(col, test, test).trials[0]  # the grid's ceiling on the test queries
    print_table(f"{name} test ({len(test)} queries, {len(col):,} docs; k={K})",
                ["search", "nDCG@10", "Recall@100", "QPS", "batch QPS"],
                [[r["name"], r["ndcg@10"], r["recall@100"], qps(r["qps"]),
                  qps(r["batch_qps"]) if r.get("batch_qps") else "-"] for r in rows])
    console.print(f"best fusion of the grid on the test queries themselves (a ceiling, not a "
                  f"result): {oracle.fusion.describe()} nDCG@10 {oracle.quality:.4f}")
    return {"documents": len(col), "test_queries": len(test), "tune_split": tune_split,
            "rows": rows, "tuning": tuning.to_dict(),
            "test_ceiling": {"fusion": oracle.fusion.to_dict(), "ndcg@10": oracle.quality},
            "cutoff": cutoff(name, col, tune, test, tuning.best),
            "ram_bytes_per_vector": col.chain.ram_bytes_per_vector(col.dim),
            "lexical_disk_bytes": lexical_bytes(col)}


def copy_with_lexical(cached: tiervec.Collection, folder: Path) -> tiervec.Collection:
    """A fresh collection of the cached one's documents and vectors, with a lexical index."""
    col = tiervec.create(folder, model=cached.model, lexical=True)
    ids = cached.ids_at(np.arange(len(cached)))
    vectors = cached.vectors().take(np.arange(len(cached)))
    col.add(cached.get(list(ids)), vectors=vectors)
    return col


def labelled(col: tiervec.Collection, folder: Path, split: str) -> QuerySet:
    data = load_beir(folder, split=split)
    vectors = query_vectors(col, data, cache=CACHE / f"{folder.name}-queries")
    return QuerySet(f"{data.name} {split}", list(data.queries), vectors, data.qrels,
                    list(data.queries.values()))


def quality(queries: QuerySet, ids: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {m: round(float(v.mean()), 4) for m, v in judge(queries, ids, scores, METRICS).items()}


def ours(searchable: Any, queries: QuerySet, mode: SearchMode, fusion: FusionConfig | None,
         name: str) -> dict:
    deep = searched(searchable, queries, DEEP, mode, fusion)
    texts = queries.texts or []

    def one(i: int) -> None:
        searchable.run(Query(
            texts=(texts[i],) if mode.needs_texts else None,
            vectors=queries.vectors[i:i + 1] if mode.needs_vectors else None, k=K, mode=mode,
            options=SearchOptions(fusion=fusion)))

    loop = loop_qps(one, len(queries))
    start = time.perf_counter()
    searched(searchable, queries, K, mode, fusion)
    batch = len(queries) / (time.perf_counter() - start)
    return {"name": name, **quality(queries, deep.ids, deep.scores), "qps": loop,
            "batch_qps": batch}


def loop_qps(one: Any, n: int) -> float:
    one(0)
    start = time.perf_counter()
    for i in range(n):
        one(i)
    return n / (time.perf_counter() - start)


def documents(col: tiervec.Collection) -> tuple[list[str], list[str]]:
    ids = [str(i) for i in col.ids_at(np.arange(len(col)))]
    return ids, [document_text(d.title, d.text) for d in col.get(ids) if d is not None]


def bm25s_row(col: tiervec.Collection, queries: QuerySet) -> dict:
    import bm25s

    config = col.lexical_config
    assert config is not None
    analyzer = Analyzer(config)
    ids, texts = documents(col)
    retriever = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
    retriever.index(analyzer.terms_of(texts), show_progress=False)
    tokens = [analyzer.terms(t) or ["\x00"] for t in queries.texts or []]
    names = np.array([*ids, ""], dtype=object)

    def run(batch: list[list[str]], k: int) -> tuple[np.ndarray, np.ndarray]:
        rows, scores = retriever.retrieve(batch, k=k, show_progress=False, n_threads=1)
        rows = np.where(scores > 0, rows, len(ids))
        return names[rows], np.where(scores > 0, scores, -np.inf)

    found, scores = run(tokens, DEEP)
    loop = loop_qps(lambda i: run([tokens[i]], K), len(tokens))
    start = time.perf_counter()
    run(tokens, K)
    batch = len(tokens) / (time.perf_counter() - start)
    return {"name": f"bm25s {bm25s.__version__} (same tokens)",
            **quality(queries, found, scores), "qps": loop, "batch_qps": batch}


def fts5_row(col: tiervec.Collection, queries: QuerySet) -> dict:
    """SQLite FTS5, the other candidate for the lexical index: porter stemming, bm25()."""
    ids, texts = documents(col)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='porter unicode61')")
    db.executemany("INSERT INTO t (rowid, body) VALUES (?, ?)", enumerate(texts))
    words = [" OR ".join(f'"{w}"' for w in re.findall(r"\w\w+", t.lower()))
             for t in queries.texts or []]

    def run(i: int, k: int) -> list[tuple[int, float]]:
        if not words[i]:
            return []
        return db.execute("SELECT rowid, -bm25(t) FROM t WHERE t MATCH ? ORDER BY bm25(t) "
                          "LIMIT ?", (words[i], k)).fetchall()

    found = np.full((len(words), DEEP), "", dtype=object)
    scores = np.full((len(words), DEEP), -np.inf, dtype=np.float32)
    for i in range(len(words)):
        for j, (row, score) in enumerate(run(i, DEEP)):
            found[i, j], scores[i, j] = ids[row], score
    loop = loop_qps(lambda i: run(i, K), len(words))
    return {"name": f"SQLite {sqlite3.sqlite_version} FTS5 (porter, bm25())",
            **quality(queries, found, scores), "qps": loop}


def peer_rows(col: tiervec.Collection, queries: QuerySet, folder: Path) -> list[dict]:
    if not PEERS_PYTHON.is_file():
        console.print("[yellow]peers skipped[/]: run `make bench-hybrid` (it installs them)")
        return []
    folder.mkdir(parents=True)
    ids = [str(i) for i in col.ids_at(np.arange(len(col)))]
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc in col.get(ids):
            assert doc is not None
            fh.write(json.dumps({"id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    np.save(folder / "doc_vectors.npy", col.vectors().take(np.arange(len(col))))
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in zip(queries.ids, queries.texts or [], strict=True):
            fh.write(json.dumps({"id": qid, "text": text}) + "\n")
    np.save(folder / "query_vectors.npy", queries.vectors)
    out = folder / "peers.json"
    subprocess.run([str(PEERS_PYTHON), str(ROOT / "bench" / "_hybrid_peers.py"), str(folder),
                    str(out), "--k", str(DEEP)], check=True)
    rows = []
    for peer, result in json.loads(out.read_text())["peers"].items():
        for mode, found in result.get("modes", {}).items():
            name = f"{peer} {result.get('version', '')} {mode}"
            if "error" in found:
                rows.append({"name": name, "error": found["error"], "ndcg@10": float("nan"),
                             "recall@100": float("nan"), "qps": 0.0})
                continue
            ids_ = np.full((len(queries), DEEP), "", dtype=object)
            scores = np.full((len(queries), DEEP), -np.inf, dtype=np.float32)
            for i, (row_ids, row_scores) in enumerate(zip(found["ids"], found["scores"],
                                                         strict=True)):
                ids_[i, : len(row_ids)] = row_ids
                # best first as returned: rank-derived scores keep the peer's order
                scores[i, : len(row_ids)] = -np.arange(len(row_scores), dtype=np.float32)
            rows.append({"name": name, **quality(queries, ids_, scores), "qps": found["qps"],
                         "index_s": result.get("index_s"),
                         "settings": found.get("settings") or result.get("settings")})
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def cutoff(name: str, col: tiervec.Collection, tune: QuerySet, test: QuerySet,
           best: FusionConfig) -> dict:
    modes = {SearchMode.DENSE: None, SearchMode.LEXICAL: None, SearchMode.HYBRID: best}
    models = fit_calibrations(col, tune, modes)
    curves = {m.value: cutoff_report(col, test, models[m.value], m, f)
              for m, f in modes.items() if m.value in models}
    table, wins = [], {}
    for mode, mode_curves in curves.items():
        calibrated, raw = mode_curves[0], mode_curves[1]
        won, points = calibrated.wins_over(raw)
        wins[mode] = {"levels_calibrated_at_least_raw": won, "levels": points,
                      "precision_at_0.8": {c.name: round(c.precision_at(0.8), 4)
                                           for c in mode_curves}}
        for curve in mode_curves:
            table.append([mode, curve.name, round(curve.best_f1()[0], 3),
                          round(curve.max_recall, 3),
                          *(round(curve.precision_at(r), 3) for r in curve.levels()),
                          round(curve.precision_at(0.8), 3),
                          f"{won}/{points}" if curve is calibrated else ""])
    print_table(f"{name}: relevance cut-off on the test queries (precision at each recall, as "
                "a share of the recall the top-100 lists reach)",
                ["mode", "cut-off", "best F1", "max recall",
                 *(f"P@{r:g}" for r in RECALL_LEVELS), "P@R=0.8", "calibrated >= raw"], table)
    png = plot_cutoff(curves, RESULTS / f"hybrid-cutoff-{name}.png",
                      f"{name} test: relevance cut-off (fitted on {tune.name})")
    console.print(f"wrote {png.relative_to(ROOT)}")
    return {"curves": {mode: [c.to_dict() for c in cs] for mode, cs in curves.items()},
            "calibrated_vs_raw": wins}


def lexical_bytes(col: tiervec.Collection) -> int:
    return sum(p.stat().st_size for p in col.path.glob("segments/*/lex-*.npy"))


# -- ingest -------------------------------------------------------------------------------------
def ingest(tmp: Path, copies: int) -> dict:
    """Documents per second adding SciFact (``copies`` times, new ids) with its vectors."""
    cached = beir_collection(shared_data() / "beir" / "scifact", "scifact")
    ids = cached.ids_at(np.arange(len(cached)))
    docs = cached.get(list(ids))
    vectors = cached.vectors().take(np.arange(len(cached)))
    cached.close()
    out = {}
    for lexical in (False, True):
        folder = tmp / f"ingest-{lexical}"
        col = tiervec.create(folder, model=None, dim=vectors.shape[1], lexical=lexical)
        start = time.perf_counter()
        for c in range(copies):
            batch = [{"id": f"{d.id}-{c}", "title": d.title, "text": d.text}
                     for d in docs if d is not None]
            col.add(batch, vectors=vectors)
        seconds = time.perf_counter() - start
        out["with lexical index" if lexical else "without"] = {
            "documents": len(col), "seconds": round(seconds, 2),
            "docs_per_s": round(len(col) / seconds, 1)}
        col.close()
        shutil.rmtree(folder)
    print_table(f"ingest: {copies} x SciFact with precomputed vectors (encoding excluded)",
                ["", "documents", "seconds", "docs/s"],
                [[k, v["documents"], v["seconds"], v["docs_per_s"]] for k, v in out.items()])
    return out


def summary(report: dict) -> None:
    columns = ["search", *[f"{d} nDCG@10" for d in report["datasets"]],
               *[f"{d} QPS" for d in report["datasets"]]]
    names = [r["name"] for r in next(iter(report["datasets"].values()))["rows"]]
    rows = []
    for i, name in enumerate(names):
        per = [d["rows"][i] if i < len(d["rows"]) else {} for d in report["datasets"].values()]
        rows.append([name, *[p.get("ndcg@10", "-") for p in per],
                     *[qps(p["qps"]) if p.get("qps") else "-" for p in per]])
    console.print(markdown_table(columns, rows))


if __name__ == "__main__":
    main()
