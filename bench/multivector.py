"""Multi-vector retrieval on BEIR SciFact and NFCorpus: MiniLM's single vector, exact MaxSim
over its token vectors (brute force), MUVERA candidates + MaxSim re-ranking at several
candidate counts and tier chains, fastembed's MUVERA on the same tokens, and bytes per stored
token against PLAID-style residual compression.

- MUVERA's parameters are chosen on the tuning split (SciFact train, NFCorpus dev: never the
  test queries) by the recall of exact MaxSim's top 10 among the top 100 FDE candidates, for
  each FDE size; the sweep is reported.
- The multi-vector collection (every token's vector, unit length, from one pass of the model
  over the whole document in windows of 256) is cached in ``bench/.cache/multivector-*``.
- "candidate recall": the share of exact MaxSim's top 10 found among the FDE candidates;
  "MaxSim scores": the share of the documents MaxSim re-ranks.
- QPS: one query per call (query encoding excluded: token vectors computed once).
- fastembed's ``Muvera`` (same partitions, projections and repetitions) runs in the peers'
  environment (``bench/_multivector_peers.py``) on the same token files.

Results: ``bench/results/multivector.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import tiervec
from _common import (
    CACHE,
    ROOT,
    beir_collection,
    console,
    indexed_once,
    print_table,
    qps,
    shared_data,
    write_json,
)
from tiervec.codecs import make_codec
from tiervec.encode import load_encoder
from tiervec.encode.muvera import MultiVectorConfig, Muvera, MuveraConfig, unit_tokens
from tiervec.eval import judge, load_beir, query_vectors
from tiervec.eval.queries import QuerySet
from tiervec.search import Chain, Query, SearchOptions
from tiervec.search.maxsim import maxsim

DATASETS = {"scifact": ("beir/scifact", "train"), "nfcorpus": ("beir/nfcorpus-pp", "dev")}
PEERS_PYTHON = ROOT / "bench" / ".peers" / "bin" / "python"
K, DEEP = 10, 100
METRICS = ["ndcg@10", "recall@100"]
CANDIDATES = [10, 25, 50, 100, 150, 250]
CHAINS = ["float32", "int4", "binary*4 -> float32@disk"]
#: the sweep: (reps, k_sim, dim_proj)
SWEEP = [(10, 3, 16), (20, 3, 16), (20, 4, 8), (20, 4, 16), (40, 4, 16), (20, 5, 16),
         (20, 4, 32), (40, 5, 16)]
TUNE_QUERIES = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--no-peers", action="store_true", help="Skip fastembed.")
    args = parser.parse_args()
    report: dict[str, Any] = {"k": K, "datasets": {}}
    for name in args.datasets.split(","):
        folder, tune_split = DATASETS[name]
        report["datasets"][name] = run_dataset(name, shared_data() / folder, tune_split,
                                               not args.no_peers)
    write_json("multivector", report)


class Tokens:
    """Every document's unit token vectors (memory-mapped from the collection) and queries'."""

    def __init__(self, col: tiervec.Collection) -> None:
        store = col._reader.token_store(col._reader.snap)
        self.store = store
        arrays = store.full.arrays
        self.vectors = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        self.ptr = store.ptr
        self.ids = np.array([str(i) for i in col.ids_at(np.arange(len(self.ptr) - 1))],
                            dtype=object)


def run_dataset(name: str, folder: Path, tune_split: str, peers: bool) -> dict[str, Any]:
    encoder = load_encoder()
    test, tune = load_beir(folder, "test"), load_beir(folder, tune_split)
    col, index = multivector_collection(name, folder, encoder)
    docs = Tokens(col)
    console.print(f"[bold]{name}[/]: {len(col):,} documents, {docs.ptr[-1]:,} tokens "
                  f"({docs.ptr[-1] / len(col):.0f} per document)")
    test_tokens = query_tokens(encoder, test, name, "test")
    tune_tokens = query_tokens(encoder, tune, name, tune_split)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(tune_tokens), min(TUNE_QUERIES, len(tune_tokens)),
                              replace=False))
    sweep = sweep_muvera(docs, [tune_tokens[i] for i in pick], name)
    exact, exact_seconds = brute_force(docs, test_tokens)
    queries = QuerySet(f"{name} test", list(test.queries), np.zeros((len(test.queries), 1)),
                       test.qrels, list(test.queries.values()))
    rows = [single_vector(name, folder, test)]
    exact_ids = docs.ids[exact[1]]
    rows.append({"name": "exact MaxSim (brute force, numpy)",
                 **quality(queries, exact_ids, exact[0]),
                 "qps": len(test_tokens) / exact_seconds, "maxsim_share": 1.0,
                 "candidate_recall": 1.0})
    top10 = [set(r) for r in exact_ids[:, :K].tolist()]
    stacked, ptr = unit_tokens(test_tokens)
    fdes = col._reader.muvera().queries(stacked, ptr)
    for chain in CHAINS:
        view = col.with_tiers(chain)
        for c in CANDIDATES:
            rows.append(muvera_row(col, view, chain, c, test_tokens, fdes, queries, top10))
    print_table(f"{name} test ({len(test.queries)} queries, {len(col):,} docs; k={K})",
                ["search", "nDCG@10", "Recall@100", "cand. recall@10", "MaxSim scores",
                 "RAM MiB", "QPS"],
                [[r["name"], r["ndcg@10"], r.get("recall@100", "-"),
                  r.get("candidate_recall", "-"),
                  f"{100 * r['maxsim_share']:.1f}%" if "maxsim_share" in r else "-",
                  f"{r['ram_bytes'] / 2**20:.1f}" if "ram_bytes" in r else "-",
                  qps(r["qps"])] for r in rows])
    storage = token_storage(docs, test_tokens, queries, exact, name)
    peer = fastembed_row(docs, test_tokens, top10, name) if peers else None
    return {"documents": len(col), "tokens": int(docs.ptr[-1]), "index": index,
            "muvera": col.multivector.to_dict() if col.multivector else None,
            "fde_dim": col.dim, "sweep": sweep, "rows": rows, "storage": storage,
            "fastembed": peer}


def multivector_collection(name: str, folder: Path, encoder: Any,
                           ) -> tuple[tiervec.Collection, dict[str, Any]]:
    path = CACHE / f"multivector-{name}"
    return indexed_once(
        path, lambda: tiervec.create(path, encoder=encoder, multivector=MultiVectorConfig(),
                                     lexical=False),
        folder, f"{name} with token vectors",
        lambda: tiervec.Collection.open(path, encoder=encoder))


def query_tokens(encoder: Any, data: Any, name: str, split: str) -> list[np.ndarray]:
    """Each query's unit token vectors (cached)."""
    path = CACHE / f"multivector-{name}-{split}-queries.npz"
    if not path.exists():
        stacked, ptr = unit_tokens(encoder.token_vectors(list(data.queries.values()),
                                                         query=True))
        np.savez(path, tokens=stacked, ptr=ptr)
    saved = np.load(path)
    tokens, ptr = saved["tokens"], saved["ptr"]
    return [tokens[a:b] for a, b in itertools.pairwise(ptr)]


def brute_force(docs: Tokens, queries: list[np.ndarray], batch: int = 16,
                block: int = 1 << 16) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """Exact MaxSim of every query against every document: top ``DEEP`` (scores, rows), and
    the seconds it took."""
    sizes = np.diff(docs.ptr)
    scores = np.empty((len(queries), DEEP), np.float32)
    rows = np.empty((len(queries), DEEP), np.int64)
    start = time.perf_counter()
    for lo in range(0, len(queries), batch):
        group = queries[lo : lo + batch]
        stacked = np.concatenate(group)
        sims = np.empty((len(docs.vectors), len(stacked)), np.float32)
        for at in range(0, len(docs.vectors), block):
            sims[at : at + block] = docs.vectors[at : at + block] @ stacked.T
        best = np.maximum.reduceat(sims, docs.ptr[:-1][sizes > 0], axis=0)
        del sims
        edges = np.cumsum([0] + [len(g) for g in group])
        for j in range(len(group)):
            full = np.full(len(sizes), -np.inf, np.float32)
            full[sizes > 0] = best[:, edges[j]:edges[j + 1]].sum(axis=1)
            top = np.argpartition(-full, DEEP)[:DEEP]
            top = top[np.argsort(-full[top], kind="stable")]
            scores[lo + j], rows[lo + j] = full[top], top
    return (scores, rows), time.perf_counter() - start


def quality(queries: QuerySet, ids: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {m: round(float(v.mean()), 4) for m, v in judge(queries, ids, scores, METRICS).items()}


def single_vector(name: str, folder: Path, test: Any) -> dict[str, Any]:
    """MiniLM's own single vector per document (the cached collection), float32 exact."""
    col = beir_collection(folder, folder.name)
    vectors = query_vectors(col, test, cache=CACHE / f"{folder.name}-queries")
    queries = QuerySet(f"{name} test", list(test.queries), vectors, test.qrels)
    view = col.with_tiers("float32")
    found = view.run(Query(vectors=vectors, k=DEEP))
    start = time.perf_counter()
    for i in range(len(vectors)):
        view.run(Query(vectors=vectors[i:i + 1], k=K))
    rate = len(vectors) / (time.perf_counter() - start)
    col.close()
    return {"name": "single vector (MiniLM mean pooling, float32)",
            **quality(queries, found.ids, found.scores), "qps": rate}


def muvera_row(col: tiervec.Collection, view: Any, chain: str, candidates: int,
               tokens: list[np.ndarray], fdes: np.ndarray, queries: QuerySet,
               top10: list[set]) -> dict[str, Any]:
    """One chain and candidate count: the candidates' recall of exact MaxSim's top 10 (the
    chain alone, over query FDEs), then the whole search (FDE candidates + MaxSim) one query
    per call."""
    pipeline = view.pipeline if not isinstance(view, tiervec.Collection) else view.pipeline()
    _, rows = pipeline.search(fdes, candidates)
    found = col.ids_at(rows)
    cand_recall = np.mean([len(t & set(r.tolist())) / K
                           for t, r in zip(top10, found, strict=True)])
    options = SearchOptions(candidates=candidates)
    ids, scores = [], []
    start = time.perf_counter()
    for q in tokens:
        top = view.run(Query(tokens=(q,), k=K, options=options))
        ids.append(top.ids[0])
        scores.append(top.scores[0])
    rate = len(tokens) / (time.perf_counter() - start)
    judged = quality(queries, np.array(ids, dtype=object), np.array(scores, np.float32))
    return {"name": f"MUVERA ({chain}) top {candidates} + MaxSim",
            "ndcg@10": judged["ndcg@10"], "candidate_recall": round(float(cand_recall), 4),
            "maxsim_share": candidates / len(col), "qps": rate, "chain": chain,
            "candidates": candidates,
            "ram_bytes": col.stats(Chain.parse(chain)).ram_bytes}


def sweep_muvera(docs: Tokens, queries: list[np.ndarray], name: str) -> list[dict[str, Any]]:
    """Candidate recall of exact MaxSim's top 10 among the top 100 of exact FDE search, on
    tuning queries, for each parameter set."""
    (_, exact), _ = brute_force(docs, queries)
    top10 = [set(r[:K].tolist()) for r in exact]
    stacked, ptr = unit_tokens(queries)
    out = []
    for reps, k_sim, dim_proj in SWEEP:
        muvera = Muvera(MuveraConfig(reps=reps, k_sim=k_sim, dim_proj=dim_proj),
                        docs.vectors.shape[1])
        start = time.perf_counter()
        fdes = muvera.documents(docs.vectors, docs.ptr)
        build = time.perf_counter() - start
        scores = muvera.queries(stacked, ptr) @ fdes.T
        row = {"reps": reps, "k_sim": k_sim, "dim_proj": dim_proj, "dim": muvera.dim,
               "docs_per_s": round((len(docs.ptr) - 1) / build, 1)}
        for c in (50, 100, 200):
            top = np.argpartition(-scores, c, axis=1)[:, :c]
            row[f"recall@{c}"] = round(float(np.mean(
                [len(t & set(r.tolist())) / K for t, r in zip(top10, top, strict=True)])), 4)
        out.append(row)
    print_table(f"{name}: MUVERA parameters on {len(queries)} tuning queries (exact FDE "
                "search; exact MaxSim's top 10 among the top C)",
                ["reps", "k_sim", "dim_proj", "FDE dim", "recall@50", "recall@100",
                 "recall@200", "FDE docs/s"],
                [[r["reps"], r["k_sim"], r["dim_proj"], r["dim"], r["recall@50"],
                  r["recall@100"], r["recall@200"], r["docs_per_s"]] for r in out])
    return out


def token_storage(docs: Tokens, tokens: list[np.ndarray], queries: QuerySet,
                  exact: tuple[np.ndarray, np.ndarray], name: str) -> list[dict[str, Any]]:
    """Bytes per stored token and the quality of MaxSim over each token form, re-ranking
    exact MaxSim's own top 100 (so only the token form differs)."""
    dim = docs.vectors.shape[1]
    sample = docs.vectors[np.sort(np.random.default_rng(0).choice(
        len(docs.vectors), min(100_000, len(docs.vectors)), replace=False))]
    forms: list[tuple[str, int, Any]] = [("float32 (stored on disk)", 4 * dim, None)]
    for codec_name in ("int8", "binary"):
        codec = make_codec(codec_name, dim)
        if codec.trainable:
            codec.fit(sample)
        forms.append((f"{codec_name} (tiervec token codec)",
                      int(codec.encode(sample[:1]).nbytes), codec))
    for bits in (2, 1):
        forms.append((f"PLAID-style residual, {bits} bit/dim + centroid id",
                      dim * bits // 8 + 4, bits))
    out = []
    for form, nbytes, how in forms:
        if how is None:
            vectors = docs.vectors
        elif isinstance(how, int):
            vectors = Residual(sample, how).reconstruct(docs.vectors)
        else:
            vectors = np.concatenate([how.decode(how.encode(docs.vectors[lo:lo + 65_536]))
                                      for lo in range(0, len(docs.vectors), 65_536)])
        ids, scores = [], []
        for i, q in enumerate(tokens):
            rows = exact[1][i]
            index, sizes = docs.store.ranges(rows)
            got = maxsim(np.asarray(vectors[index], np.float32) @ q.T, sizes)
            order = np.argsort(-got, kind="stable")
            ids.append(docs.ids[rows[order]])
            scores.append(got[order])
        del vectors
        judged = quality(queries, np.array(ids, dtype=object), np.array(scores, np.float32))
        out.append({"form": form, "bytes_per_token": nbytes, **judged,
                    "gib_here": round(nbytes * len(docs.vectors) / 2**30, 3)})
    print_table(f"{name}: bytes per stored token and MaxSim over each form (re-ranking exact "
                "MaxSim's top 100)",
                ["token form", "bytes/token", "GiB here", "nDCG@10", "Recall@100"],
                [[r["form"], r["bytes_per_token"], r["gib_here"], r["ndcg@10"],
                  r["recall@100"]] for r in out])
    return out


class Residual:
    """ColBERTv2/PLAID-style residual compression, as the storage anchor: k-means centroids
    (4-byte id per token) plus ``bits`` per dimension of the residual, bucketed by the
    residuals' per-dimension quantiles and decoded to each bucket's mean."""

    def __init__(self, sample: np.ndarray, bits: int, centroids: int = 2048) -> None:
        import faiss

        kmeans = faiss.Kmeans(sample.shape[1], centroids, niter=10, seed=0, verbose=False)
        kmeans.train(np.ascontiguousarray(sample, np.float32))
        self.kmeans = kmeans
        residual = sample - kmeans.centroids[kmeans.index.search(sample, 1)[1][:, 0]]
        levels = 2 ** bits
        qs = np.linspace(0, 1, levels + 1)[1:-1]
        self.cuts = np.quantile(residual, qs, axis=0).T  # (dim, levels - 1)
        bucket = self._bucket(residual)
        self.weights = np.stack([
            np.array([residual[bucket[:, j] == b, j].mean() if np.any(bucket[:, j] == b)
                      else 0.0 for b in range(levels)]) for j in range(sample.shape[1])])

    def _bucket(self, residual: np.ndarray) -> np.ndarray:
        return np.stack([np.searchsorted(self.cuts[j], residual[:, j])
                         for j in range(residual.shape[1])], axis=1)

    def reconstruct(self, vectors: np.ndarray, block: int = 65_536) -> np.ndarray:
        out = np.empty(vectors.shape, np.float32)
        columns = np.arange(vectors.shape[1])[None, :]
        for lo in range(0, len(vectors), block):
            part = np.ascontiguousarray(vectors[lo : lo + block], np.float32)
            centre = self.kmeans.centroids[self.kmeans.index.search(part, 1)[1][:, 0]]
            out[lo : lo + block] = centre + self.weights[columns, self._bucket(part - centre)]
        return out


def fastembed_row(docs: Tokens, tokens: list[np.ndarray], top10: list[set],
                  name: str) -> dict[str, Any] | None:
    """fastembed's MUVERA on the same tokens (its own process): FDE build speed and the
    candidate recall of exact FDE search, beside ours with the same parameters."""
    if not PEERS_PYTHON.exists():
        console.print("[yellow]peers' environment missing (make bench-multivector installs "
                      "it); fastembed skipped[/]")
        return None
    config = MuveraConfig()  # the collection's parameters
    with tempfile.TemporaryDirectory(prefix="tiervec-mv-") as tmp:
        folder = Path(tmp)
        stacked, ptr = unit_tokens(tokens)
        np.save(folder / "doc_tokens.npy", docs.vectors)
        np.save(folder / "doc_ptr.npy", docs.ptr)
        np.save(folder / "query_tokens.npy", stacked)
        np.save(folder / "query_ptr.npy", ptr)
        args = {"k_sim": config.k_sim, "dim_proj": config.dim_proj, "reps": config.reps,
                "candidates": CANDIDATES, "folder": str(folder)}
        subprocess.run([str(PEERS_PYTHON), str(ROOT / "bench" / "_multivector_peers.py"),
                        json.dumps(args)], check=True)
        peer = json.loads((folder / "result.json").read_text())
        found = np.load(folder / "candidates.npy")
    ours = Muvera(config, docs.vectors.shape[1])
    start = time.perf_counter()
    fdes = ours.documents(docs.vectors, docs.ptr)
    ours_build = time.perf_counter() - start
    scores = ours.queries(stacked, ptr) @ fdes.T
    rows = []
    for c in CANDIDATES:
        mine = np.argpartition(-scores, c, axis=1)[:, :c]
        theirs = found[:, :c]
        rows.append({"candidates": c,
                     "tiervec": _recall(docs, mine, top10), "fastembed": _recall(docs, theirs,
                                                                                 top10)})
    n = len(docs.ptr) - 1
    print_table(f"{name}: MUVERA FDEs, tiervec vs fastembed {peer['version']} (same "
                f"parameters: {config.describe()}; exact FDE search)",
                ["candidates", "tiervec cand. recall@10", "fastembed cand. recall@10"],
                [[r["candidates"], r["tiervec"], r["fastembed"]] for r in rows])
    console.print(f"FDE build: tiervec {n / ours_build:,.0f} docs/s (one vectorised pass), "
                  f"fastembed {n / peer['build_seconds']:,.0f} docs/s (a call per document)")
    return {"version": peer["version"], "tiervec_docs_per_s": n / ours_build,
            "fastembed_docs_per_s": n / peer["build_seconds"], "recall": rows}


def _recall(docs: Tokens, rows: np.ndarray, top10: list[set]) -> float:
    return round(float(np.mean([len(t & set(docs.ids[r].tolist())) / K
                                for t, r in zip(top10, rows, strict=True)])), 4)


if __name__ == "__main__":
    main()
