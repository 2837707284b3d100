"""Scale-out on Ray, one run: distributed ingest against the single-process path, sharded
search against one node, and a capacity table from measured bytes per vector.

1. Ingest of SciFact's texts (5,183 documents, MiniLM-L6-v2): single process
   (``tiervec index``) vs local Ray with 1 and 2 encoding actors (2 shards), and with
   precomputed vectors (codes and writes only) both ways.
2. Search on N x 384 vectors (the speed benchmark's set: SciFact embeddings plus noise;
   default 200k, ``--n 1000000`` for the full set): one collection vs 1, 2 and 4 shards on
   local Ray, batches of 100 real SciFact queries: QPS, p50/p99 per batch, recall@10 vs exact,
   whether the exact chain's ids are identical, and the scatter-gather's cost over the
   slowest shard's own time in the same call, beside bare Ray actors' for the same payload.
3. Capacity for 100M and 1B vectors of 384 dims per chain: RAM and disk, nodes of a given
   RAM and disk, beside DiskANN (~60 RAM bytes/vector on BIGANN-1B) and Qdrant's sizing rule
   (vectors x dim x 4 B x 1.5).
4. Every search mode on SciFact (dense, lexical, hybrid) on one collection and on 2 and 4
   shards: nDCG@10, the share of places with one collection's id, the largest score gap, QPS.
5. Replicas: 2 shards x 2 actors, one actor of every shard killed after 150 of 500 searches.
6. Open time of a 2-shard collection and its first write of texts (caller encodes vs each
   shard loads the model).
7. Ingest of precomputed vectors from Parquet into one process and into 1 and 2 shards.

    python bench/scaleout.py [--n 200000] [--node-ram 64GiB] [--node-disk 4TiB] [--skip-ingest]
        [--sections modes,replicas,open,vectors] [--n-vectors 200000]

Writes bench/results/ray.json. On a 2-core machine every actor shares the same two cores:
the figures show the overhead of the machinery, not a cluster's speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

import tiervec
from _common import (
    CACHE,
    RESULTS,
    beir_collection,
    console,
    markdown_table,
    print_table,
    qps,
    shared_data,
    write_json,
)
from tiervec.distribute.cluster import connect, ray_module
from tiervec.distribute.ingest import ingest
from tiervec.distribute.merge import merge_top
from tiervec.ingest import index_corpus
from tiervec.search import Chain, Query

K = 10
BATCH = 100
CHAINS = ("float32", "binary*4 -> float32@disk")
CAPACITY_CHAINS = ("float32", "int8*4 -> float32@disk", "binary*4 -> float32@disk",
                   "binary*10 -> float32@disk", "pq48*10 -> float32@disk")


def ingest_rows(work: Path) -> tuple[list[list], np.ndarray, list[str]]:
    scifact = shared_data() / "beir" / "scifact"
    rows = []
    single_dir = work / "single"
    shutil.rmtree(work, ignore_errors=True)
    col = tiervec.create(single_dir)
    start = time.perf_counter()
    stats = index_corpus(col, scifact)
    seconds = time.perf_counter() - start
    n = stats.added
    rows.append(["single process (tiervec index)", "-", "1 (in process)", n, seconds])
    ids = col.sample_ids(n)
    docs = col.get(ids)
    vectors = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
    id_order = col.ids_at(np.arange(len(vectors)))
    col.close()
    for encoders in (1, 2):
        sharded = tiervec.create_sharded(work / f"ray-{encoders}", shards=2)
        start = time.perf_counter()
        got = ingest(sharded, scifact, encoders=encoders)
        seconds = time.perf_counter() - start
        rows.append([f"Ray Data, {encoders} encoding actor(s)", 2, encoders, got.added, seconds])
        sharded.close()
    # precomputed vectors: codes and writes only
    import pyarrow as pa
    import pyarrow.parquet as pq

    by_id = {d.id: d for d in docs if d is not None}
    table = pa.table({"_id": list(id_order), "title": [by_id[i].title for i in id_order],
                      "text": [by_id[i].text for i in id_order], "vector": vectors.tolist()})
    pq.write_table(table, work / "with-vectors.parquet")
    plain = tiervec.create(work / "single-vectors")
    start = time.perf_counter()
    plain.add([by_id[i] for i in id_order], vectors=vectors)
    plain.refit()
    rows.append(["single process, vectors given", "-", "-", len(id_order),
                 time.perf_counter() - start])
    plain.close()
    sharded = tiervec.create_sharded(work / "ray-vectors", shards=2)
    start = time.perf_counter()
    got = ingest(sharded, work / "with-vectors.parquet", vector_column="vector")
    rows.append(["Ray Data, vectors given", 2, "-", got.added, time.perf_counter() - start])
    sharded.close()
    return [[*r[:4], round(r[4], 1), round(r[3] / r[4], 1)] for r in rows], vectors, []


def synthetic_vectors(n: int, base: np.ndarray, seed: int = 0) -> np.ndarray:
    """The speed benchmark's vectors: SciFact embeddings plus correlated noise (0.5)."""
    from speed import synthetic

    return np.concatenate(list(synthetic(base, n, 0.5, seed)))


def queries() -> np.ndarray:
    from _common import scifact_queries

    return scifact_queries()[1][:1000].astype(np.float32)


def batches(q: np.ndarray) -> list[np.ndarray]:
    return [q[i:i + BATCH] for i in range(0, len(q), BATCH)]


def time_batches(run, qs: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    run(qs[0])  # warm
    found, times = [], []
    for q in qs:
        start = time.perf_counter()
        found.append(run(q))
        times.append(time.perf_counter() - start)
    return np.concatenate(found), times


def search_rows(x: np.ndarray, q: np.ndarray, work: Path) -> list[list]:
    ray = ray_module()
    docs = [tiervec.Document(id=f"v{i}", text="") for i in range(len(x))]
    qs = batches(q)
    exact = None
    rows = []
    for chain in CHAINS:
        single = tiervec.create(work / f"one-{chain[:6]}", model=None, dim=x.shape[1],
                                tiers=chain)
        for s in range(0, len(x), 100_000):
            single.add(docs[s:s + 100_000], vectors=x[s:s + 100_000])
        single.refit()
        ids, times = time_batches(lambda b, c=single: c.search_vectors(b, K).ids, qs)
        single.close()
        if exact is None:
            exact = ids
        rows.append(_row(chain, "one node", ids, exact, times, None, chain == "float32"))
        for shards in (1, 2, 4):
            col = tiervec.create_sharded(work / f"sh{shards}-{chain[:6]}", shards=shards,
                                         model=None, dim=x.shape[1], tiers=chain)
            for s in range(0, len(x), 100_000):
                col.add(docs[s:s + 100_000], vectors=x[s:s + 100_000])
            col.refit()
            got, times = time_batches(lambda b, c=col: c.search_vectors(b, K).ids, qs)
            echoes = [ray.remote(Echo).options(num_cpus=0, max_concurrency=8).remote()
                      for _ in range(shards)]
            over = [scatter_overhead(col, b, echoes) for b in qs]
            for echo in echoes:
                ray.kill(echo)
            rows.append(_row(chain, f"{shards} shard(s)", got, exact, times, over,
                             chain == "float32"))
            col.close()
            shutil.rmtree(work / f"sh{shards}-{chain[:6]}", ignore_errors=True)
        shutil.rmtree(work / f"one-{chain[:6]}", ignore_errors=True)
    return rows


def scatter_overhead(col, batch: np.ndarray, echoes: list) -> tuple[float, float]:
    """Seconds one batched search call spends beyond its slowest shard's own search (the
    sharded collection's scatter, gather and merge, each shard timing itself inside the same
    call), and the same for bare Ray actors sent the same query that wait as long as each
    shard searched and answer a result of the same shape (Ray's own share of it)."""
    start = time.perf_counter()
    query = col.prepare(Query(vectors=batch, k=K))
    refs = [a.run_timed.remote(query, col._chain) for a in col._actors]
    answers, report = col._gather(refs)
    merge_top([found for found, _ in answers], K, report)
    over = time.perf_counter() - start - max(seconds for _, seconds in answers)
    ray = ray_module()
    waits = [seconds for _, seconds in answers]
    start = time.perf_counter()
    ray.get([e.answer.remote(query, w) for e, w in zip(echoes, waits, strict=True)])
    return over, time.perf_counter() - start - max(waits)


class Echo:
    """A bare actor standing in for a shard: Ray's round trip for the same payload."""

    def answer(self, query: Query, seconds: float):
        from tiervec.search.results import SearchResult

        time.sleep(seconds)
        n = len(query.vectors)
        return SearchResult(ids=np.full((n, query.k), "v0000000", dtype=object),
                            scores=np.zeros((n, query.k), np.float32))


def _row(chain, setting, ids, exact, times, over, check_identical) -> list:
    t = np.array(times) * 1000
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, exact, strict=True)]))
    identical = bool((ids == exact).all()) if check_identical else None
    ray_ms = None if over is None else round(float(np.median([r for _, r in over]) * 1000), 2)
    over = None if over is None else round(float(np.median([o for o, _ in over]) * 1000), 2)
    return [chain, setting, qps(BATCH * len(t) / (t.sum() / 1000)), round(float(np.median(t)), 1),
            round(float(np.percentile(t, 99)), 1), round(recall, 4),
            "-" if identical is None else ("yes" if identical else "NO"),
            "-" if over is None else over, "-" if ray_ms is None else ray_ms]


def capacity_rows(node_ram: int, node_disk: int, disk_overhead: float) -> list[list]:
    """RAM and disk per chain for 100M and 1B vectors; the nodes needed so that each holds
    at most 70% of its RAM and 80% of its disk."""

    def nodes(ram: float, disk: float) -> int:
        return max(1, int(np.ceil(ram / (0.7 * node_ram))), int(np.ceil(disk / (0.8 * node_disk))))

    rows = []
    for n in (100_000_000, 1_000_000_000):
        for chain in CAPACITY_CHAINS:
            c = Chain.parse(chain)
            ram = c.ram_bytes_per_vector(384) * n
            # every tier's codes are files (the RAM tier's are loaded from them), plus the
            # documents' ids, texts and postings
            disk = (c.ram_bytes_per_vector(384) + c.disk_bytes_per_vector(384)
                    + disk_overhead) * n
            m = nodes(ram, disk)
            rows.append([f"{n:,}", f"tiervec {chain}", c.ram_bytes_per_vector(384),
                         _gib(ram), _gib(disk), m, _gib(ram / m), _gib(disk / m)])
        ram, disk = 60 * n, 4 * 384 * n  # DiskANN: PQ codes in RAM, full vectors on disk
        m = nodes(ram, disk)
        rows.append([f"{n:,}", "DiskANN (~60 B/vector RAM)", 60, _gib(ram), _gib(disk), m,
                     _gib(ram / m), _gib(disk / m)])
        ram = 384 * 4 * 1.5 * n
        m = nodes(ram, 0)
        rows.append([f"{n:,}", "Qdrant rule (n x d x 4 B x 1.5)", int(384 * 4 * 1.5), _gib(ram),
                     "", m, _gib(ram / m), ""])
    return rows


def _gib(b: float) -> str:
    return f"{b / 2**30:,.0f}" if b >= 2**30 else f"{b / 2**30:.2f}"


def disk_overhead(work: Path) -> float:
    """Measured disk bytes per document beyond its tiers' codes (SQLite: ids, texts,
    metadata; postings), from the single-process SciFact collection."""
    folder = work / "single"
    if not folder.exists():
        return 0.0
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    with tiervec.open(folder, read_only=True) as col:
        codes = col.stats().ram_bytes + col.stats().disk_bytes
        return (total - codes) / len(col)


SECTIONS = ("ingest", "search", "capacity", "modes", "replicas", "vectors", "open")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--n-vectors", type=int, default=200_000,
                        help="precomputed vectors for the ingest at 1 and 2 shards")
    parser.add_argument("--node-ram", default="64GiB")
    parser.add_argument("--node-disk", default="4TiB")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"which parts to run, of {', '.join(SECTIONS)} (the others keep "
                        "their last results in the JSON)")
    args = parser.parse_args()
    from tiervec.plan import parse_size

    sections = set(args.sections.split(","))
    if args.skip_ingest:
        sections.discard("ingest")
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    connect(num_cpus=2)
    from tiervec.cli.distribute import quiet_ray_data

    quiet_ray_data(verbose=False)  # Ray Data's per-stage logs would bury the tables
    work = CACHE / "ray"
    work.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "ray.json"
    out: dict = json.loads(previous.read_text()) if previous.exists() else {}
    out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    if "ingest" in sections:
        ingest_cols = ("path", "shards", "encoders", "docs", "seconds", "docs/s")
        rows, _, _ = ingest_rows(work / "ingest")
        _show("Ingest, SciFact texts (MiniLM-L6-v2, 2 cores)", ingest_cols, rows)
        out["ingest"] = [dict(zip(ingest_cols, r, strict=True)) for r in rows]
    base = None
    if sections & {"search", "capacity", "vectors"}:
        # SciFact's MiniLM vectors: the ingest's own collection, else the cached one
        single = work / "ingest" / "single"
        col = tiervec.open(single, read_only=True) if (single / "manifest.json").exists() \
            else beir_collection(shared_data() / "beir" / "scifact", "scifact")
        base = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
        col.close()
    if "search" in sections:
        out["n"] = args.n
        x = synthetic_vectors(args.n, base)
        search_cols = ("chain", "setting", "QPS", "p50 ms/batch", "p99 ms/batch", "recall@10",
                       "ids identical", "+ms p50 over slowest shard", "bare Ray actors +ms p50")
        rows = search_rows(x, queries(), work / "search")
        _show(f"Sharded search, {args.n:,} x 384, batches of {BATCH} queries", search_cols,
              rows)
        out["search"] = [dict(zip(search_cols, r, strict=True)) for r in rows]
    if "capacity" in sections:
        overhead = disk_overhead(work / "ingest")
        cap_cols = ("vectors", "system / chain", "RAM B/vec", "RAM GiB", "disk GiB",
                    f"nodes ({args.node_ram} RAM, {args.node_disk} disk)", "RAM GiB/node",
                    "disk GiB/node")
        rows = capacity_rows(parse_size(args.node_ram), parse_size(args.node_disk), overhead)
        _show(f"Capacity (384 dims; disk adds {overhead:,.0f} B/document measured for ids, "
              "texts and postings)", cap_cols, rows)
        out["capacity"] = [dict(zip(cap_cols, r, strict=True)) for r in rows]
        out["disk_overhead_bytes_per_document"] = round(overhead, 1)
    _cluster_sections(sections, work, base, args.n_vectors, out)
    write_json("ray", out)


def _cluster_sections(sections: set[str], work: Path, base: np.ndarray | None,
                      n_vectors: int, out: dict) -> None:
    """Every search mode on shards, a replica killed under searches, ingest of precomputed
    vectors, open time (``_scaleout_cluster``)."""
    import _scaleout_cluster as more

    if "modes" in sections or "replicas" in sections or "open" in sections:
        cols = ("mode", "setting", "nDCG@10", "ids as one collection", "max |score diff|",
                "QPS")
        rows = more.modes_rows(work / "modes")
        _show("Every search mode, SciFact test (300 queries, float32, batches of 100)", cols,
              rows)
        out["modes"] = [dict(zip(cols, r, strict=True)) for r in rows]
    if "replicas" in sections:
        cols = ("searches", "errors", "partial results", "ids identical",
                "p50 ms before kill", "p50 ms after", "actors down", "revived")
        rows = more.replica_rows(work / "modes")
        _show("2 shards x 2 replicas; one actor of every shard killed after 150 searches",
              cols, rows)
        out["replicas"] = [dict(zip(cols, r, strict=True)) for r in rows]
    if "open" in sections:
        cols = ("first write of 20 texts", "open s (2 shards)", "first upsert s")
        rows = more.open_rows(work / "modes")
        _show("Opening a 2-shard collection and its first write", cols, rows)
        out["open"] = [dict(zip(cols, r, strict=True)) for r in rows]
    if "vectors" in sections:
        assert base is not None
        cols = ("path", "shards", "vectors", "seconds", "vectors/s")
        rows = more.ingest_rows(work / "vectors", base, n_vectors)
        _show(f"Ingest of {n_vectors:,} precomputed 384-d vectors (Parquet)", cols, rows)
        out["vectors"] = [dict(zip(cols, r, strict=True)) for r in rows]
        shutil.rmtree(work / "vectors", ignore_errors=True)


def _show(title: str, columns, rows) -> None:
    print_table(title, columns, rows)
    console.print(markdown_table(columns, rows))


if __name__ == "__main__":
    main()
