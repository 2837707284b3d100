"""Scale on one node: 10M x 384 vectors generated, ingested, searched, beside FAISS.

Vectors are sampled around real SciFact MiniLM-L6-v2 embeddings (the recipe of
``bench/speed.py``: a real document embedding plus Gaussian noise with the covariance of those
embeddings, re-normalised; seeded), written to disk in chunks of 100,000. Queries are 1,000 real
SciFact queries (and NFCorpus's test queries for the recall margin); their exact top 100 is
computed once by a blocked scan and cached.

Phases (all by default; ``--phases`` picks some):

- ``generate``: the vectors, the queries, their exact top 100.
- ``ingest``: a fresh collection fed 100,000 precomputed vectors per ``add`` (every add
  committed and fsynced) in a child process; killed with SIGKILL partway, then resumed from
  what it holds: vectors/s, peak RSS, no lost or duplicated vectors. The collection measures
  its recall by itself once the writes pause.
- ``margin``: the collection's own recall estimate (stored vectors as queries) beside real
  queries' recall at every oversampling: how far apart they are (``QUERY_MARGIN``).
- ``search``: the collection's chain at its measured setting, the same codes in an IVF
  (``binary@ivf``), cold (page cache of the float32 file dropped before each batch) and warm;
  FAISS ``IVF,PQ`` (HNSW coarse quantizer) refined from the same float32 file, FAISS
  ``IndexFlatIP`` exact on 100 queries. RAM bytes/vector, recall@10, p50/p99 of one query at a
  time, QPS in batches of 100, build time.

    python bench/scale.py [--n 10000000] [--dir bench/.cache/scale] [--keep]

Writes ``bench/results/scale-<n>.json``; the data (about 33 GB at 10M) is deleted at the end
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import gc
import json
import mmap
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tiervec
from _common import (
    CACHE,
    console,
    markdown_table,
    print_table,
    qps,
    recall_at,
    timed,
    write_json,
)
from _scale_data import CHUNK, generate, read_rows
from tiervec.search.spec import DEFAULT_CHAIN

K = 10
BATCH = 100
IVF_CHAIN = "binary@ivf*4 -> float32@disk"


# -- ingest ------------------------------------------------------------------------------------
def ingest_child(folder: Path, n: int) -> None:
    """Add the vectors the collection lacks, ``CHUNK`` per commit; print a JSON summary."""
    path = folder / "collection"
    col = tiervec.open(path) if (path / "manifest.json").exists() else \
        tiervec.create(path, model=None, dim=384, lexical=False)
    begin = len(col)
    start = time.perf_counter()
    peak_anon = 0.0
    for lo in range(begin - begin % CHUNK, n, CHUNK):
        x = read_rows(folder / "vectors.npy", lo, min(n, lo + CHUNK))
        col.add([{"id": f"v{lo + i}"} for i in range(len(x))], vectors=x)
        peak_anon = max(peak_anon, _status().get("RssAnon", 0.0))
    seconds = time.perf_counter() - start
    added = len(col) - begin
    status = _status()
    began = time.perf_counter()
    measure = col.wait_for_recall()
    if measure is None:
        measure = col.measure_recall()
    waited = time.perf_counter() - began
    col.close()
    print(json.dumps({
        "resumed_from": begin, "added": added, "seconds": round(seconds, 2),
        "vectors_per_s": round(added / seconds, 1) if seconds else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_anon_mb_while_adding": peak_anon,
        "rss_anon_mb_at_end": status.get("RssAnon"), "rss_file_mb_at_end": status.get("RssFile"),
        "recall_wait_s": round(waited, 1),
        "recall": None if measure is None else measure.summary()}))


def _status() -> dict[str, float]:
    """This process's RSS parts in MB (``/proc/self/status``)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def ingest(folder: Path, n: int, kill_after: float) -> dict[str, Any]:
    """A fresh ingest killed ``kill_after`` seconds after it created its collection, then
    resumed to the end."""
    path = folder / "collection"
    if path.exists():
        shutil.rmtree(path)
    cmd = [sys.executable, __file__, "--ingest-child", "--dir", str(folder.parent),
           "--n", str(n)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    while not (path / "manifest.json").exists() and first.poll() is None:
        time.sleep(0.05)
    time.sleep(kill_after)  # after the collection was created: partway through its adds
    first.send_signal(signal.SIGKILL)
    first.wait()
    col = tiervec.open(path, read_only=True)
    held = len(col)
    col.close()
    console.print(f"killed after {kill_after:.0f} s holding {held:,} vectors; resuming")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    col = tiervec.open(path, read_only=True)
    count = len(col)
    probe = [f"v{i}" for i in np.random.default_rng(1).choice(n, 100_000, replace=False)]
    lost = len(col.missing(probe))
    beyond = 10 - len(col.missing([f"v{n + i}" for i in range(10)]))
    col.close()
    summary.update({"killed_after_s": kill_after, "held_at_kill": held, "count": count,
                    "lost_of_100k_probed": lost, "extra_rows": count - n,
                    "ids_beyond_n": beyond})
    return summary


# -- margin ------------------------------------------------------------------------------------
def margin(folder: Path) -> dict[str, Any]:
    """The collection's recall estimate beside real queries' recall: made-up queries along the
    ladder; then each workload's first half of queries as the seen sample, its setting
    checked on the other half."""
    from tiervec.search import Query, SearchOptions

    path = folder / "collection"
    (path / "queries.npy").unlink(missing_ok=True)
    col = tiervec.open(path)
    synthetic = col.measure_recall()
    assert synthetic is not None and synthetic.source == "synthetic"
    estimate = {p.oversample: p.recall for p in synthetic.points if p.effort == 1}
    pipeline = col.pipeline()
    workloads = {name: (np.load(folder / f"queries-{name}.npy"),
                        np.load(folder / f"exact-{name}.npy")) for name in ("scifact", "nfcorpus")}
    rows = []
    for name, (q, exact) in workloads.items():
        for factor in sorted(estimate):
            found = pipeline.run(Query(vectors=q, k=K, options=SearchOptions(oversample=factor)))
            real = recall_at(found[0].rows, exact)
            rows.append({"queries": name, "oversample": factor, "estimate": estimate[factor],
                         "real": real})
    col.close()
    seen = []
    for name, (q, exact) in workloads.items():
        (path / "queries.npy").unlink(missing_ok=True)
        col = tiervec.open(path)
        half = len(q) // 2
        col.search_vectors(q[:half], K)  # the workload's first half: the sample it keeps
        measure = col.measure_recall()
        assert measure is not None and measure.source == "seen"
        found = _rows(col.search_vectors(q[half:], K).ids)  # at the measured setting
        seen.append({"queries": name, "sample": half, "held_out": len(q) - half,
                     "oversample": measure.oversample, "estimate": measure.recall,
                     "held_out_recall": recall_at(found, exact[half:])})
        col.close()
    (path / "queries.npy").unlink(missing_ok=True)
    return {"synthetic": rows, "chosen_synthetic": synthetic.summary(), "seen": seen}


def _rows(ids: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda s: int(s[1:]) if s else -1)(ids)


# -- search ------------------------------------------------------------------------------------
def drop_cache(col: tiervec.Collection) -> None:
    """Evict the float32 files the search reads from the page cache (a cold disk tier): the
    pages are unmapped from this process first (MADV_DONTNEED), else the kernel keeps them."""
    pipeline = col.pipeline()
    arrays = [*pipeline.first.full.arrays, *pipeline.tiers[-1].source.arrays]
    for array in arrays:
        if isinstance(array, np.memmap) and array._mmap is not None:
            array._mmap.madvise(mmap.MADV_DONTNEED)
        path = getattr(array, "filename", None)
        if path:
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def drop_files_from_cache(folder: Path) -> None:
    """Evict every file of ``folder`` from the page cache (for the open time)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def latency(search, queries: np.ndarray, count: int = 200) -> tuple[float, float]:
    """p50 / p99 milliseconds of one query at a time."""
    times = []
    for q in queries[:count]:
        start = time.perf_counter()
        search(q[None, :])
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def batch_qps(search, queries: np.ndarray, before=None) -> tuple[float, np.ndarray]:
    """QPS over batches of ``BATCH`` (``before()`` runs untimed before each batch)."""
    total, found = 0.0, []
    for lo in range(0, len(queries), BATCH):
        if before is not None:
            before()
        start = time.perf_counter()
        found.append(search(queries[lo : lo + BATCH]))
        total += time.perf_counter() - start
    return len(queries) / total, np.concatenate(found)


def tiervec_rows(folder: Path, q: np.ndarray, exact: np.ndarray, add) -> None:
    path = folder / "collection"
    with tiervec.open(path) as col:  # as ingested (an earlier run may have left the IVF)
        if str(col.chain) != DEFAULT_CHAIN:
            col.set_tiers(DEFAULT_CHAIN)
    for name in ("recall.json", "queries.npy"):  # as ingested: no query seen yet
        (path / name).unlink(missing_ok=True)
    drop_files_from_cache(path)
    start = time.perf_counter()
    col = tiervec.open(path)
    opened = time.perf_counter() - start
    col.keep_query_sample = False  # the test queries must not become the measurement's
    col.search_vectors(q[:1], K)  # builds the first tier's scanner (codes into RAM)
    first_search = time.perf_counter() - start - opened
    status = _status()
    measure = col.wait_for_recall()  # what a freshly ingested collection measures by itself
    setting = f"{col.chain} at x{measure.oversample if measure else '?'} (measured)"

    def search(x: np.ndarray) -> np.ndarray:
        return _rows(col.search_vectors(x, K).ids)

    add("tiervec", setting, col.stats().ram_bytes_per_vector, col, search, q, exact,
        build=first_search, extra={"open_s": round(opened, 2), "rss_after_open": status,
                                   "recall_measure": measure and measure.summary()})
    add("tiervec", setting + ", cold float32 file", col.stats().ram_bytes_per_vector, col,
        search, q, exact, before=lambda: drop_cache(col))
    # SciFact's other 109 queries searched (never the 1,000 tested): measured on them
    col.keep_query_sample = True
    col.search_vectors(np.load(folder / "queries-scifact-seen.npy"), K)
    col.keep_query_sample = False
    measure = col.wait_for_recall()
    assert measure is not None and measure.source == "seen"
    setting = f"{col.chain} at x{measure.oversample} (measured on {measure.queries} seen queries)"
    add("tiervec", setting, col.stats().ram_bytes_per_vector, col, search, q, exact,
        extra={"recall_measure": measure.summary()})
    start = time.perf_counter()
    col.set_tiers(IVF_CHAIN)  # the same codes in an IVF, measured again in the background
    measure = col.wait_for_recall()
    assert measure is not None and measure.chain == IVF_CHAIN
    built = time.perf_counter() - start - measure.seconds
    setting = (f"{IVF_CHAIN} at x{measure.oversample}, effort {measure.effort} (measured in "
               f"{measure.seconds:.0f} s)")
    add("tiervec", setting, col.stats().ram_bytes_per_vector, col, search, q, exact,
        build=built, extra={"recall_measure": measure.summary()})
    add("tiervec", setting + ", cold float32 file", col.stats().ram_bytes_per_vector, col,
        search, q, exact, before=lambda: drop_cache(col))
    col.close()


def ivf_rows(folder: Path, q: np.ndarray, exact: np.ndarray, add) -> None:
    """The ``binary@ivf`` rows alone, over the index an earlier search phase built and saved
    (``--phases ivf``), measured on the same 109 seen SciFact queries."""
    col = tiervec.open(folder / "collection")
    assert str(col.chain) == IVF_CHAIN, col.chain
    col.keep_query_sample = False
    (folder / "collection" / "queries.npy").unlink(missing_ok=True)
    col._recall._sample = None  # as in the main run: only the 109 seen queries
    col.keep_query_sample = True
    col.search_vectors(np.load(folder / "queries-scifact-seen.npy"), K)
    col.keep_query_sample = False
    measure = col.measure_recall()
    assert measure is not None and measure.source == "seen"

    def search(x: np.ndarray) -> np.ndarray:
        return _rows(col.search_vectors(x, K).ids)

    setting = (f"{IVF_CHAIN} at x{measure.oversample}, effort {measure.effort} (measured in "
               f"{measure.seconds:.0f} s)")
    add("tiervec", setting, col.stats().ram_bytes_per_vector, col, search, q, exact,
        extra={"recall_measure": measure.summary()})
    add("tiervec", setting + ", cold float32 file", col.stats().ram_bytes_per_vector, col,
        search, q, exact, before=lambda: drop_cache(col))
    col.close()


def faiss_rows(folder: Path, n: int, q: np.ndarray, exact: np.ndarray, add) -> None:
    """FAISS IVF-PQ (HNSW coarse quantizer) with float32 refining from the same file; exact."""
    import faiss

    col = tiervec.open(folder / "collection", read_only=True)
    full = col.vectors()  # the collection's own float32 files, as tiervec reads them
    nlist = int(2 * np.sqrt(n))
    start = time.perf_counter()
    index = faiss.index_factory(384, f"IVF{nlist}_HNSW32,PQ48", faiss.METRIC_INNER_PRODUCT)
    index.train(full.take(np.arange(min(n, 40 * nlist))))
    for array in full.arrays:
        index.add(np.ascontiguousarray(array))
    built = time.perf_counter() - start
    ram = 48 + 8  # PQ48 codes + list ids
    ivf = faiss.extract_index_ivf(index)
    for nprobe, factor in ((32, 10), (64, 20), (128, 40)):
        ivf.nprobe = nprobe

        def search(x: np.ndarray, factor: int = factor) -> np.ndarray:
            _, cand = index.search(x, K * factor)
            vectors = full.take(cand)  # the float32 file tiervec rescoring reads
            scores = np.einsum("qd,qmd->qm", x, vectors)
            scores[cand < 0] = -np.inf
            best = np.argsort(-scores, axis=1)[:, :K]
            return np.take_along_axis(cand, best, axis=1)

        add("FAISS", f"IVF{nlist}_HNSW32,PQ48 nprobe {nprobe} -> top {K * factor} refined "
            "from the float32 file", ram, None, search, q, exact, build=built,
            reads=K * factor)
    index.reset()  # its codes' RAM back before the exact scan
    gc.collect()
    flat_q = q[:100]

    def flat(x: np.ndarray) -> np.ndarray:  # FAISS IndexFlatIP a segment at a time
        best_s = np.full((len(x), K), -np.inf, np.float32)
        best_r = np.full((len(x), K), -1, np.int64)
        for array, first in zip(full.arrays, full.starts, strict=True):
            block = faiss.IndexFlatIP(x.shape[1])
            block.add(np.ascontiguousarray(array))
            s, r = block.search(x, K)
            both_s, both_r = np.hstack([best_s, s]), np.hstack([best_r, r + first])
            order = np.argsort(-both_s, axis=1)[:, :K]
            best_s = np.take_along_axis(both_s, order, 1)
            best_r = np.take_along_axis(both_r, order, 1)
        return best_r

    (_, seconds) = timed(lambda: flat(flat_q))
    add("FAISS", "IndexFlatIP exact (100 queries, a segment at a time)", 1536, None, None,
        flat_q, exact[:100], fixed=(1.0, len(flat_q) / seconds))
    col.close()


def search_phase(folder: Path, n: int, skip_faiss: bool,
                 ivf_only: bool = False) -> list[dict[str, Any]]:
    q = np.load(folder / "queries-scifact.npy")
    exact = np.load(folder / "exact-scifact.npy")
    rows: list[dict[str, Any]] = []

    def add(system, setting, ram, col, search, queries, truth, *, build=None, before=None,
            extra=None, reads=None, fixed=None) -> None:
        if fixed is not None:
            recall, batch = fixed
            p50 = p99 = None
        else:
            batch, found = batch_qps(search, queries, before)
            recall = recall_at(found, truth)
            p50, p99 = latency(search, queries) if before is None else (None, None)
            if reads is None and col is not None:
                measure = col.recall()
                reads = K * (measure.oversample or 1) if measure else None
        rows.append({"system": system, "setting": setting, "ram_bytes_per_vector": ram,
                     "recall@10": recall, "p50_ms": p50, "p99_ms": p99, "batch_qps": batch,
                     "disk_reads_per_query": reads,
                     "build_s": None if build is None else round(build, 1), **(extra or {})})
        console.print(f"  {system} {setting}: recall {recall:.4f}, {batch:,.0f} QPS")

    if ivf_only:
        ivf_rows(folder, q, exact, add)
        return rows
    tiervec_rows(folder, q, exact, add)
    if not skip_faiss:
        faiss_rows(folder, n, q, exact, add)
    return rows


COLUMNS = ("system", "setting", "RAM B/vec", "reads/q", "recall@10", "p50 ms", "p99 ms",
           "batch QPS", "build s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=CACHE / "scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phases", default="generate,ingest,margin,search")
    parser.add_argument("--kill-after", type=float, default=10.0,
                        help="seconds before the first ingest is killed (SIGKILL)")
    parser.add_argument("--skip-faiss", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--ingest-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.dir / f"n{args.n}"
    if args.ingest_child:
        ingest_child(folder, args.n)
        return
    phases = args.phases.split(",")
    out: dict[str, Any] = {"n": args.n, "dim": 384, "k": K, "seed": args.seed}
    result_path = Path(__file__).parent / "results" / f"scale-{args.n}.json"
    if result_path.exists():  # phases run separately add to one file
        out = {**json.loads(result_path.read_text()), **out}
    if "generate" in phases:
        start = time.perf_counter()
        generate(folder, args.n, args.seed)
        out["generate_s"] = round(time.perf_counter() - start, 1)
        out["exact"] = json.loads((folder / "exact-scifact.json").read_text())
    if "ingest" in phases:
        out["ingest"] = ingest(folder, args.n, args.kill_after)
        drop_files_from_cache(folder)  # the generated file out of the page cache: the
        # collection's own files are what the search reads
        console.print(out["ingest"])
    if "margin" in phases:
        out["margin"] = margin(folder)
        table = [(r["queries"], r["oversample"], r["estimate"], r["real"])
                 for r in out["margin"]["synthetic"]]
        columns = ("real queries", "oversample", "estimate (made-up queries)", "real recall@10")
        print_table("Recall estimate from made-up queries vs real queries", columns, table)
        console.print(markdown_table(columns, table), soft_wrap=True)
        table = [(r["queries"], r["sample"], r["oversample"], r["estimate"], r["held_out"],
                  r["held_out_recall"]) for r in out["margin"]["seen"]]
        columns = ("workload", "queries seen", "oversample chosen", "estimate",
                   "held-out queries", "their recall@10")
        print_table("Measured on the queries seen, checked on held-out ones", columns, table)
        console.print(markdown_table(columns, table), soft_wrap=True)
    if "search" in phases:
        out["search"] = search_phase(folder, args.n, args.skip_faiss)
        out["search_load_average"] = [round(x, 2) for x in os.getloadavg()]
    if "ivf" in phases:  # the IVF rows again, over the saved index
        out["ivf_rerun"] = search_phase(folder, args.n, args.skip_faiss, ivf_only=True)
        out["ivf_rerun_load_average"] = [round(x, 2) for x in os.getloadavg()]
        table = [(r["setting"], r["recall@10"], r["p50_ms"], r["p99_ms"], r["batch_qps"],
                  r["disk_reads_per_query"]) for r in out["ivf_rerun"]]
        columns = ("setting", "recall@10", "p50 ms", "p99 ms", "batch QPS", "reads/q")
        print_table("IVF rows, over the saved index", columns, table)
        console.print(markdown_table(columns, table), soft_wrap=True)
    if out.get("search"):
        table = [(r["system"], r["setting"], r["ram_bytes_per_vector"],
                  r["disk_reads_per_query"] or "", r["recall@10"],
                  "" if r["p50_ms"] is None else f"{r['p50_ms']:.2f}",
                  "" if r["p99_ms"] is None else f"{r['p99_ms']:.2f}", qps(r["batch_qps"]),
                  "" if r["build_s"] is None else f"{r['build_s']:.1f}") for r in out["search"]]
        print_table(f"Search at {args.n:,} x 384", COLUMNS, table)
        console.print(markdown_table(COLUMNS, table), soft_wrap=True)
    write_json(f"scale-{args.n}", out)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
