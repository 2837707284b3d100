"""Search speed at 1M x 384: tiervec's chains beside FAISS and usearch, one run.

Vectors mimic real embeddings: each is a real SciFact document embedding (MiniLM-L6-v2) plus
Gaussian noise with the covariance of those embeddings (times ``--noise``), re-normalised;
seeded. Queries are 1,000 real SciFact queries. Reports QPS and recall@10 against exact float32
search, RAM bytes/vector, and disk reads per query.

    python bench/speed.py [--n 1000000] [--queries 1000] [--noise 0.5]

Writes bench/results/speed.json. The collection is cached in bench/.cache (1.6 GB at 1M).
"""

from __future__ import annotations

import argparse
import gc
from functools import partial

import numpy as np

import tiervec
from _common import (
    CACHE,
    beir_collection,
    console,
    markdown_table,
    print_table,
    qps,
    recall_at,
    scifact_queries,
    shared_data,
    timed,
    write_json,
)
from tiervec.codecs.binary import pack_signs
from tiervec.search import CodeSource

K = 10
TIERVEC_CHAINS = (
    "float32",
    "int8*4 -> float32@disk",
    "hamming*20 -> float32@disk",
    "hamming*40 -> float32@disk",
    "binary",
    "binary*4 -> float32@disk",
    "binary*10 -> float32@disk",
    "binary*20 -> float32@disk",
    "binary*40 -> float32@disk",
    "binary*80 -> float32@disk",
)
#: Candidates per query for the candidate-stage kernel comparison.
SCAN_M = 200
COLUMNS = ("system", "setting", "RAM B/vec", "disk reads/q", "recall@10", "QPS", "x FAISS flat")


def synthetic(base: np.ndarray, n: int, noise: float, seed: int, chunk: int = 100_000):
    """Yield ``(n, d)`` unit vectors sampled around ``base`` rows, ``chunk`` at a time."""
    rng = np.random.default_rng(seed)
    centred = base - base.mean(axis=0)
    cov = centred.T @ centred / (len(base) - 1)
    chol = np.linalg.cholesky(cov + 1e-6 * np.eye(base.shape[1]))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        noise_part = rng.standard_normal((m, base.shape[1])) @ chol.T
        x = base[rng.integers(0, len(base), m)] + noise * noise_part
        yield (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_collection(n: int, noise: float, seed: int) -> tiervec.Collection:
    folder = CACHE / f"synthetic-{n}-{noise}-{seed}"
    if (folder / "manifest.json").exists():
        col = tiervec.open(folder)
        if len(col) == n:
            return col
        col.close()
        import shutil

        shutil.rmtree(folder)
    scifact = beir_collection(shared_data() / "beir" / "scifact", "scifact")
    base = np.concatenate([np.asarray(a) for a in scifact.vectors().arrays])
    scifact.close()
    # chains at fixed oversampling are what this compares: no recall target (nor its
    # background measurement) on this collection
    col = tiervec.create(folder, model=None, dim=base.shape[1], recall_target=None)
    done = 0
    with console.status("building the synthetic collection"):
        for x in synthetic(base, n, noise, seed):
            docs = [tiervec.Document(id=f"v{done + i}", text="") for i in range(len(x))]
            col.add(docs, vectors=x)
            done += len(x)
    col.refit()
    return col


def real_queries(count: int) -> np.ndarray:
    return scifact_queries()[1][:count]


def peers(x: np.ndarray, queries: np.ndarray, vectors: CodeSource, add) -> None:
    """FAISS exact, usearch exact, FAISS Hamming + float rescoring (from the same disk file)."""
    import faiss
    from usearch.index import MetricKind
    from usearch.index import search as usearch_search

    dim = x.shape[1]
    flat = faiss.IndexFlatIP(dim)
    flat.add(x)
    (_, exact), t = timed(partial(flat.search, queries, K), repeat=2)
    add("FAISS", "IndexFlatIP (exact float32)", 4 * dim, 0, exact, t)
    del flat
    gc.collect()
    found, t = timed(lambda: usearch_search(x, queries, K, MetricKind.IP, exact=True, threads=2))
    add("usearch", "exact search (float32)", 4 * dim, 0, found.keys, t)
    binary = faiss.IndexBinaryFlat(dim)
    binary.add(pack_signs(x))
    for factor in (10, 20, 40):
        def hamming_then_float(factor: int = factor) -> np.ndarray:
            _, cand = binary.search(pack_signs(queries), K * factor)
            exact_vectors = vectors.take(cand)  # the same memory-mapped float32 file as tiervec
            scores = np.einsum("qd,qmd->qm", queries, exact_vectors)
            best = np.argsort(-scores, axis=1)[:, :K]
            return np.take_along_axis(cand, best, axis=1)

        found, t = timed(hamming_then_float, repeat=3)
        add("FAISS", f"IndexBinaryFlat top-{K * factor} -> float32 rescoring", dim // 8,
            K * factor, found, t)


def candidate_stage(col: tiervec.Collection, queries: np.ndarray) -> list[dict]:
    """Scan kernels alone, top-SCAN_M per query: tiervec's asymmetric 1-bit scan against the
    peer kernels a user would reach for to do the same (float query x sign codes) work."""
    import faiss

    x = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
    codes = pack_signs(x)
    out = []

    def add(kernel: str, work: str, ram: int, fn) -> None:
        fn()
        _, t = timed(fn, repeat=3)
        out.append({"kernel": kernel, "work": work, "ram_bytes_per_vector": ram,
                    "qps": len(queries) / t})

    scanner = col.pipeline("binary").tiers[0]
    scanner.build_scanner()
    add("tiervec binary scan (FAISS 4-bit fast-scan LUTs)", "float query x sign codes",
        codes.shape[1], lambda: scanner.scanner.search(queries, SCAN_M))
    signs = np.where(x > 0, 1.0, -1.0).astype(np.float32)
    del x
    flat = faiss.IndexFlatIP(signs.shape[1])
    flat.add(signs)
    del signs
    add("FAISS IndexFlatIP over +-1 floats (BLAS)", "float query x sign codes",
        4 * flat.d, partial(flat.search, queries, SCAN_M))
    del flat
    binary = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    binary.add(codes)
    add("FAISS IndexBinaryFlat (Hamming)", "sign query x sign codes (less accurate)",
        codes.shape[1], lambda: binary.search(pack_signs(queries), SCAN_M))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=1.0,
                        help="noise scale; 1.0 = the covariance of the real embeddings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    queries = real_queries(args.queries)
    col = synthetic_collection(args.n, args.noise, args.seed)
    dim = col.dim
    vectors = col.vectors()
    x = np.concatenate([np.asarray(a) for a in vectors.arrays])
    rows = []

    truth: list[np.ndarray] = []

    def add(system: str, setting: str, ram: int, reads: int, found: np.ndarray, seconds: float):
        if not truth:  # the first row is the exact search
            truth.append(found)
        rows.append({"system": system, "setting": setting, "ram_bytes_per_vector": ram,
                     "disk_reads_per_query": reads, "recall@10": recall_at(found, truth[0]),
                     "qps": len(queries) / seconds})

    peers(x, queries, vectors, add)
    del x
    gc.collect()
    for spec in TIERVEC_CHAINS:
        searcher = col.pipeline(spec)
        searcher.search(queries[:8], K)
        (_, found), t = timed(lambda s=searcher: s.search(queries, K), repeat=3)
        chain = searcher.chain
        add("tiervec", spec, chain.ram_bytes_per_vector(dim),
            chain.disk_reads_per_query(K, len(col)), found, t)
        del searcher
        gc.collect()
    result, t = timed(lambda: col.search_vectors(queries, K), repeat=3)
    found = np.vectorize(lambda s: int(s[1:]) if s else -1)(result.ids)
    add("tiervec", f"Collection.search_vectors, {col.chain} (ids from SQLite)",
        col.chain.ram_bytes_per_vector(dim), col.chain.disk_reads_per_query(K, len(col)), found, t)
    scans = candidate_stage(col, queries)

    base_qps = rows[0]["qps"]
    for r in rows:
        r["speedup_vs_faiss_flat"] = r["qps"] / base_qps
    table = [(r["system"], r["setting"], r["ram_bytes_per_vector"], r["disk_reads_per_query"],
              r["recall@10"], qps(r["qps"]), f"{r['speedup_vs_faiss_flat']:.1f}") for r in rows]
    title = f"Search speed, {args.n:,} x {dim} (SciFact-like), {len(queries)} real queries, k={K}"
    print_table(title, COLUMNS, table)
    console.print(markdown_table(COLUMNS, table), soft_wrap=True)
    scan_columns = ("kernel", "work", "RAM B/vec", "QPS")
    scan_table = [(r["kernel"], r["work"], r["ram_bytes_per_vector"], qps(r["qps"])) for r in scans]
    print_table(f"Candidate stage alone: top-{SCAN_M} per query", scan_columns, scan_table)
    console.print(markdown_table(scan_columns, scan_table), soft_wrap=True)
    write_json("speed", {"n": args.n, "dim": dim, "queries": len(queries), "noise": args.noise,
                         "seed": args.seed, "k": K, "rows": rows, "candidate_stage": scans})
    col.close()


if __name__ == "__main__":
    main()
