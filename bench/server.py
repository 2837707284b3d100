"""tiervec's HTTP server beside Chroma's (`chroma run`), one run, on loopback.

SciFact (5,183 MiniLM-L6 document vectors, 1,109 queries) served by ``tiervec serve`` (chain
``binary*4 -> float32@disk``, oversampling raised per request until its recall@10 matches
Chroma's) and by Chroma's own server (HNSW, inner product, the same vectors and documents).
wrk (a C load generator) sends the same requests to both, each cell bounded in time:

- search by vector, k = 10, at 1, 8 and 32 concurrent clients: p50, p99, requests/s, errors,
  recall@10 against exact search; the in-process Collection API beside it (the HTTP overhead);
- search by text (tiervec encodes; Chroma's server cannot: its embedding runs in its client,
  from a model it downloads);
- a 90% search / 10% upsert mix (concurrent upserts grouped into one commit by tiervec), and
  upserts alone;
- the same with the server's batching of concurrent searches off (its gain, as rows);
- bulk ingest of 100k precomputed vectors over HTTP, JSON and binary, against the library;
- a soak: the mix for ``--soak-seconds`` with a kill -9 and a restart halfway; every
  acknowledged upsert must be there afterwards, with 0 errors outside the restart window.

    python bench/server.py [--seconds 15] [--soak-seconds 600] [--skip-chroma]

Chroma runs from the peers' virtual environment (``make bench-server`` makes it: chromadb is
not a tiervec dependency). Writes bench/results/server.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import tiervec
from _common import (
    CACHE,
    ROOT,
    beir_collection,
    console,
    print_table,
    scifact_queries,
    shared_data,
    write_json,
)
from tiervec.hits import to_hits
from tiervec.search import Query, SearchOptions
from tiervec.wire import encode_vectors

K = 10
CHAIN = "binary*4 -> float32@disk"
CHROMA = Path(os.environ.get("TIERVEC_CHROMA", ROOT / "bench" / ".peers" / "bin" / "chroma"))
CHROMA_BASE = "/api/v2/tenants/default_tenant/databases/default_database/collections"
sys.path.insert(0, str(ROOT / "tests"))
from live_server import LiveServer, free_port  # noqa: E402

Request = tuple[str, str, dict[str, Any]]


# -- the load driver: wrk, a C load generator (one Python client would be the bottleneck) -----
WRK_SCRIPT = r"""
local reqs, i = {}, 0
init = function(args)
  for line in io.lines(args[1]) do
    local method, path, body = line:match("^(%S+) (%S+)\t(.*)$")
    if body == "" then body = nil end
    reqs[#reqs + 1] = wrk.format(method, path, {["Content-Type"] = "application/json"}, body)
  end
  i = math.random(#reqs)
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
local shown = 0
response = function(status, headers, body)
  if status >= 400 and shown < 3 then  -- the first errors, to say what they were
    shown = shown + 1
    io.write("ERR " .. status .. " " .. string.sub(body or "", 1, 300):gsub("\n", " ") .. "\n")
  end
end
done = function(s, latency, requests)
  io.write(string.format('WRK{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"status_errors": %d, "socket_errors": %d}\n', s.requests, s.duration,
    latency:percentile(50), latency:percentile(99), s.errors.status,
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))
end
"""


def wrk(url: str, requests: list[Request], concurrency: int, seconds: float,
        work: Path) -> dict[str, Any]:
    """``concurrency`` connections cycling through ``requests`` for ``seconds`` (wrk)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; run `make bench-server` (it installs wrk) or "
                 "apt-get install wrk")
    script, bodies = work / "load.lua", work / "requests.txt"
    script.write_text(WRK_SCRIPT)
    bodies.write_text("".join(f"{m} {p}\t{json.dumps(b) if b else ''}\n"
                              for m, p, b in requests))
    cmd = ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d",
           f"{seconds:.0f}s", "--timeout", "10s", "-s", str(script), url, "--", str(bodies)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK{")), None)
    if line is None:
        sys.exit(f"wrk failed: {out.stdout}{out.stderr}")
    errors = [ln[4:] for ln in out.stdout.splitlines() if ln.startswith("ERR ")]
    return {**json.loads(line[3:]), "first_errors": errors[:3]}


@dataclass
class Cell:
    """One measured load: what was sent, at what concurrency, and what came back."""

    system: str
    workload: str
    concurrency: int
    wrk: dict[str, Any] = field(default_factory=dict)
    recall: float | None = None

    def row(self) -> dict[str, Any]:
        w = self.wrk
        return {"system": self.system, "workload": self.workload,
                "concurrency": self.concurrency, "requests": w["requests"],
                "p50_ms": round(w["p50_us"] / 1000, 3), "p99_ms": round(w["p99_us"] / 1000, 3),
                "requests_per_s": round(w["requests"] / (w["duration_us"] / 1e6), 1),
                "errors": w["status_errors"] + w["socket_errors"],
                "first_errors": w.get("first_errors", []),
                "recall_at_10": None if self.recall is None else round(self.recall, 4)}


def recall(found: dict[int, list[str]], exact: list[list[str]], n_queries: int) -> float:
    shares = [len(set(ids[:K]) & set(exact[i % n_queries])) / K for i, ids in found.items()]
    return float(np.mean(shares)) if shares else float("nan")


def recall_over_http(target: Any, q: np.ndarray, exact: list[list[str]]) -> float:
    """recall@10 against exact search of the requests the load sends, one query each."""
    found = {}
    with httpx.Client(base_url=target.url, timeout=60) as http:
        for i, v in enumerate(q):
            method, path, body = target.search_vector(v)
            response = http.request(method, path, json=body)
            response.raise_for_status()
            found[i] = target.ids(response.json())
    return recall(found, exact, len(q))


# -- the two servers ------------------------------------------------------------------------------
class Tiervec:
    name = "tiervec"

    def __init__(self, url: str, oversample: int) -> None:
        self.url = url
        self.oversample = oversample
        self.path = f"/v1/collections/{COLLECTION}"

    @staticmethod
    def floor() -> Request:
        return ("GET", "/healthz", {})

    def search_vector(self, q: np.ndarray) -> Request:
        return ("POST", f"{self.path}/search",
                {"vector": q.tolist(), "k": K, "oversample": self.oversample})

    def search_text(self, text: str) -> Request:
        return ("POST", f"{self.path}/search",
                {"query": text, "k": K, "oversample": self.oversample})

    def upsert(self, doc_id: str, vector: np.ndarray, text: str) -> Request:
        return ("PUT", f"{self.path}/documents",
                {"documents": [{"id": doc_id, "text": text}], "vectors": [vector.tolist()]})

    @staticmethod
    def ids(body: Any) -> list[str]:
        return [h["id"] for h in body["results"][0]]


class Chroma:
    name = "Chroma"

    def __init__(self, url: str, collection_id: str) -> None:
        self.url = url
        self.cid = collection_id
        self.path = f"{CHROMA_BASE}/{collection_id}"

    @staticmethod
    def floor() -> Request:
        return ("GET", "/api/v2/heartbeat", {})

    def search_vector(self, q: np.ndarray) -> Request:
        return ("POST", f"{self.path}/query", {"query_embeddings": [q.tolist()], "n_results": K,
                                               "include": ["documents", "metadatas",
                                                           "distances"]})

    def upsert(self, doc_id: str, vector: np.ndarray, text: str) -> Request:
        return ("POST", f"{self.path}/upsert",
                {"ids": [doc_id], "embeddings": [vector.tolist()], "documents": [text]})

    @staticmethod
    def ids(body: Any) -> list[str]:
        return list(body["ids"][0])


COLLECTION = "scifact"


def start_chroma(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    if not CHROMA.exists():
        sys.exit(f"Chroma's server is not installed at {CHROMA}; run `make bench-server` "
                 "(it makes the peers' virtual environment) or pass --skip-chroma")
    port = free_port()
    log = open(folder.parent / "chroma.log", "ab")
    process = subprocess.Popen([str(CHROMA), "run", "--path", str(folder), "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    sys.exit("Chroma's server did not start; see chroma.log")


def chroma_collection(url: str, name: str) -> str:
    response = httpx.post(f"{url}{CHROMA_BASE}", json={
        "name": name, "configuration": {"hnsw": {"space": "ip"}}}, timeout=60)
    response.raise_for_status()
    return str(response.json()["id"])


def chroma_add(url: str, cid: str, ids: list[str], x: np.ndarray, texts: list[str] | None,
               binary: bool = False, batch: int = 1000) -> float:
    """Seconds to add ``x`` in batches (JSON floats, or base64 float32 per embedding)."""
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as http:
        for i in range(0, len(ids), batch):
            emb: Any = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in
                        x[i:i + batch]] if binary else x[i:i + batch].tolist()
            body: dict[str, Any] = {"ids": ids[i:i + batch], "embeddings": emb}
            if texts is not None:
                body["documents"] = texts[i:i + batch]
            http.post(f"{CHROMA_BASE}/{cid}/add", json=body).raise_for_status()
    return time.perf_counter() - start


def tiervec_add(url: str, name: str, ids: list[str], x: np.ndarray, binary: bool,
                batch: int = 1000) -> float:
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as http:
        for i in range(0, len(ids), batch):
            vectors = encode_vectors(x[i:i + batch]) if binary else x[i:i + batch].tolist()
            http.post(f"/v1/collections/{name}/documents", json={
                "documents": [{"id": d} for d in ids[i:i + batch]],
                "vectors": vectors}).raise_for_status()
    return time.perf_counter() - start


# -- the measurements ---------------------------------------------------------------------------
def prepare(root: Path) -> tuple[list[str], list[str], np.ndarray, list[str], np.ndarray]:
    """The served folder (SciFact with its vectors, nothing re-encoded); ids, texts, vectors,
    query texts and query vectors."""
    data = shared_data() / "beir" / "scifact"
    q_texts, q = scifact_queries()  # (first: it opens the cached collection itself)
    cached = beir_collection(data, "scifact")
    ids = [str(i) for i in cached.ids_at(np.arange(len(cached)))]
    x = np.ascontiguousarray(np.concatenate([np.asarray(a) for a in cached.vectors().arrays]))
    docs = cached.get(ids)
    texts = [f"{d.title} {d.text}".strip() if d else "" for d in docs]
    with tiervec.create(root / COLLECTION, tiers=CHAIN) as col:
        col.add([d for d in docs if d is not None], vectors=x)
    cached.close()
    return ids, texts, x, q_texts, q


def exact_top(x: np.ndarray, q: np.ndarray, ids: list[str]) -> list[list[str]]:
    top = np.argsort(-(q @ x.T), axis=1)[:, :K]
    return [[ids[j] for j in row] for row in top]


def in_process(folder: Path, q: np.ndarray, oversample: int, n: int = 2000) -> dict[str, Any]:
    """The library's own latency for one search by vector with documents (what a request does
    once parsed), and batched throughput."""
    with tiervec.open(folder, read_only=True) as col:
        options = SearchOptions(oversample=oversample)
        lat = []
        for i in range(n):
            start = time.perf_counter()
            result = col.run(Query(vectors=q[i % len(q)][None], k=K, options=options))
            to_hits(col, result)
            lat.append(time.perf_counter() - start)
        start = time.perf_counter()
        col.run(Query(vectors=q, k=K, options=options))
        batched = len(q) / (time.perf_counter() - start)
    ms = np.asarray(lat) * 1000
    return {"system": "tiervec in-process", "workload": "vector", "concurrency": 1,
            "requests": len(lat), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "requests_per_s": round(len(lat) / (ms.sum() / 1000), 1), "errors": 0,
            "recall_at_10": None, "batched_queries_per_s": round(batched, 1)}


def loads(target: Any, q: np.ndarray, q_texts: list[str], x: np.ndarray, texts: list[str],
          args: argparse.Namespace, workloads: tuple[str, ...], concurrencies: tuple[int, ...],
          work: Path, label: str | None = None, vector_recall: float | None = None
          ) -> list[Cell]:
    """Each workload at each concurrency (the floor, an empty GET, at the first only)."""
    nq, cells = len(q), []
    for workload in workloads:
        if workload == "floor":
            requests = [target.floor()]
        elif workload == "text":
            requests = [target.search_text(t) for t in q_texts]
        elif workload == "vector":
            requests = [target.search_vector(v) for v in q]
        elif workload == "write":  # upserts of one document (new ids, then replacing them)
            requests = [target.upsert(f"write-{(i * 7919) % len(x)}", x[(i * 7919) % len(x)],
                                      texts[(i * 7919) % len(x)]) for i in range(len(x))]
        else:  # 90% search by vector, 10% upsert (new ids, then replacing them)
            requests = [target.upsert(f"mix-{(i * 7919) % len(x)}", x[(i * 7919) % len(x)],
                                      texts[(i * 7919) % len(x)]) if i % 10 == 9 else
                        target.search_vector(q[i % nq]) for i in range(10 * nq)]
        for c in concurrencies[:1] if workload == "floor" else concurrencies:
            cell = Cell(label or target.name, workload, c,
                        wrk(target.url, requests, c, args.seconds, work),
                        vector_recall if workload == "vector" else None)
            r = cell.row()
            console.print(f"  {cell.system:<22} {workload:<6} c={c:<3} {r['requests_per_s']:>9,.1f}"
                          f" req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
                          f"errors {r['errors']}")
            for error in r["first_errors"]:
                console.print(f"    error: {error}", highlight=False, markup=False)
            cells.append(cell)
    return cells


def choose_oversample(folder: Path, q: np.ndarray, exact: list[list[str]], floor: float) -> int:
    """The smallest oversampling whose recall@10 is at least ``floor`` (Chroma's)."""
    with tiervec.open(folder, read_only=True) as col:
        for factor in (4, 10, 20, 40, 100):
            result = col.run(Query(vectors=q, k=K, options=SearchOptions(oversample=factor)))
            got = recall(dict(enumerate(result.ids.tolist())), exact, len(q))
            console.print(f"  tiervec oversample {factor}: recall@10 {got:.4f}")
            if got >= floor:
                return factor
    return 100


def ingest(root: Path, n: int, run_chroma: bool) -> list[dict[str, Any]]:
    """Bulk ingest of ``n`` precomputed vectors (the synthetic 1M set's first ``n``)."""
    synthetic = sorted(CACHE.glob("synthetic-*"))
    if synthetic:
        with tiervec.open(synthetic[0], read_only=True) as col:
            x = np.ascontiguousarray(np.concatenate(
                [np.asarray(a) for a in col.vectors().arrays])[:n])
    else:  # no cached set: SciFact vectors with noise
        base = np.load(CACHE / "scifact-all-queries.npy")
        x = base[np.arange(n) % len(base)] + 0.05 * np.random.default_rng(0).standard_normal(
            (n, base.shape[1])).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"b{i}" for i in range(n)]
    rows = []
    folder = root / "ingest"
    folder.mkdir()
    start = time.perf_counter()
    with tiervec.create(folder / "library", model=None, dim=x.shape[1], tiers=CHAIN) as col:
        for i in range(0, n, 1000):
            col.add([{"id": d} for d in ids[i:i + 1000]], vectors=x[i:i + 1000])
    rows.append(("tiervec library (in-process)", "numpy", time.perf_counter() - start))
    with LiveServer(folder / "served") as live:
        for binary in (False, True):
            name = "binary" if binary else "json"
            httpx.post(f"{live.url}/v1/collections", json={
                "name": name, "model": None, "dim": x.shape[1], "tiers": CHAIN}).raise_for_status()
            seconds = tiervec_add(live.url, name, ids, x, binary)
            rows.append(("tiervec server", "base64 float32" if binary else "JSON", seconds))
    if run_chroma:
        process, url = start_chroma(folder / "chroma")
        try:
            for binary in (False, True):
                cid = chroma_collection(url, f"ingest-{'b64' if binary else 'json'}")
                seconds = chroma_add(url, cid, ids, x, None, binary)
                rows.append(("Chroma server", "base64 float32" if binary else "JSON", seconds))
        finally:
            process.terminate()
            process.wait(60)
    out = [{"system": s, "form": f, "vectors": n, "seconds": round(t, 2),
            "vectors_per_s": round(n / t, 0)} for s, f, t in rows]
    for r in out:
        console.print(f"  ingest {r['system']:<30} {r['form']:<15} {r['vectors_per_s']:>10,.0f}"
                      " vectors/s")
    return out


def soak(root: Path, x: np.ndarray, q: np.ndarray, seconds: float,
         concurrency: int = 8) -> dict[str, Any]:
    """The 90/10 mix for ``seconds`` with a kill -9 of the server and a restart halfway."""
    folder = root / "soak"
    shutil.copytree(root / "served" / COLLECTION, folder / COLLECTION)
    live = LiveServer(folder).start()
    acked: set[str] = set()
    errors = {"outside": 0, "inside": 0}
    window = {"down": 0.0, "up": 0.0}
    state = {"restarting": False, "count": 0}
    path = f"/v1/collections/{COLLECTION}"

    async def client(w: int, http: httpx.AsyncClient, deadline: float) -> None:
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            upsert = i % 10 == 0
            doc_id = f"soak-{w}-{i}"
            body: dict[str, Any]
            if upsert:
                method, url, body = "PUT", f"{path}/documents", {
                    "documents": [{"id": doc_id, "text": "soak"}],
                    "vectors": [x[(w * 100_003 + i) % len(x)].tolist()]}
            else:
                method, url, body = "POST", f"{path}/search", {
                    "vector": q[(w + i) % len(q)].tolist(), "k": K}
            try:
                response = await http.request(method, url, json=body)
                ok = response.status_code < 300
            except httpx.HTTPError:
                ok = False
            state["count"] += 1
            if ok and upsert:
                acked.add(doc_id)
            elif not ok:
                errors["inside" if state["restarting"] else "outside"] += 1
                await asyncio.sleep(0.05)

    async def run() -> None:
        deadline = time.perf_counter() + seconds
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
            tasks = [asyncio.create_task(client(w, http, deadline)) for w in range(concurrency)]
            await asyncio.sleep(seconds / 2)
            state["restarting"] = True
            window["down"] = time.perf_counter()
            await asyncio.to_thread(live.kill)
            await asyncio.to_thread(live.start)
            window["up"] = time.perf_counter()
            state["restarting"] = False
            await asyncio.gather(*tasks)

    asyncio.run(run())
    with httpx.Client(base_url=live.url, timeout=120) as http:
        ids = sorted(acked)
        lost = 0
        for i in range(0, len(ids), 5000):
            docs = http.post(f"{path}/documents/get", json={"ids": ids[i:i + 5000]}).json()
            lost += sum(d is None for d in docs["documents"])
    live.stop()
    out = {"seconds": seconds, "concurrency": concurrency, "requests": state["count"],
           "acknowledged_upserts": len(acked), "lost_upserts": lost,
           "errors_outside_restart": errors["outside"], "errors_in_restart": errors["inside"],
           "restart_window_s": round(window["up"] - window["down"], 2)}
    console.print(f"  soak: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per load cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--ingest", type=int, default=100_000, help="vectors to bulk-ingest")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--skip-chroma", action="store_true")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--workloads", nargs="+",
                        default=["floor", "vector", "text", "mix", "write"])
    args = parser.parse_args()
    conc = tuple(args.concurrency)
    root = Path(tempfile.mkdtemp(prefix="tiervec-bench-server-"))
    work = root / "wrk"
    work.mkdir()
    try:
        ids, texts, x, q_texts, q = prepare(root / "served")
        exact = exact_top(x, q, ids)
        cells: list[Cell] = []
        chroma_rec = None
        if not args.skip_chroma:
            process, url = start_chroma(root / "chroma")
            try:
                chroma = Chroma(url, chroma_collection(url, COLLECTION))
                chroma_add(url, chroma.cid, ids, x, texts)
                chroma_rec = recall_over_http(chroma, q, exact)
                console.print(f"Chroma recall@10 vs exact: {chroma_rec:.4f}")
                cells += loads(chroma, q, q_texts, x, texts, args,
                               _only(args, ("floor", "vector", "mix", "write")), conc, work,
                               vector_recall=chroma_rec)
            finally:
                process.terminate()
                process.wait(60)
        oversample = choose_oversample(root / "served" / COLLECTION, q, exact,
                                       chroma_rec if chroma_rec is not None else 0.99)
        inproc = in_process(root / "served" / COLLECTION, q, oversample)
        for label, flags, workloads, levels in (
                ("tiervec", (), ("floor", "vector", "text", "mix", "write"), conc),
                ("tiervec, no batching", ("--no-batching",), ("vector", "text"),
                 tuple(c for c in conc if c > 1))):
            fresh = root / f"served-{len(flags)}"  # each server starts from the same copy
            shutil.copytree(root / "served", fresh)
            with LiveServer(fresh, *flags) as live:
                target = Tiervec(live.url, oversample)
                rec = recall_over_http(target, q, exact)
                cells += loads(target, q, q_texts, x, texts, args, _only(args, workloads),
                               levels, work, label=label, vector_recall=rec)
        rows = [inproc] + [c.row() for c in cells]
        columns = ["system", "workload", "concurrency", "requests", "p50_ms", "p99_ms",
                   "requests_per_s", "errors", "recall_at_10"]
        print_table(f"SciFact over HTTP, k={K}, chain {CHAIN} at oversample {oversample}",
                    columns, [[r[c] if r[c] is not None else "-" for c in columns] for r in rows])
        ingested = [] if args.skip_ingest else ingest(root, args.ingest, not args.skip_chroma)
        print_table(f"bulk ingest of {args.ingest:,} precomputed vectors, 1,000 per request",
                    ["system", "form", "vectors", "seconds", "vectors_per_s"],
                    [[r[c] for c in ("system", "form", "vectors", "seconds", "vectors_per_s")]
                     for r in ingested])
        soaked = None if args.skip_soak else soak(root, x, q, args.soak_seconds)
        write_json("server", {"k": K, "chain": CHAIN, "oversample": oversample,
                              "chroma_recall_at_10": chroma_rec,
                              "chroma_version": _chroma_version(), "loads": rows,
                              "ingest": ingested, "soak": soaked,
                              "seconds_per_cell": args.seconds})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _only(args: argparse.Namespace, workloads: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(w for w in workloads if w in args.workloads)


def _chroma_version() -> str | None:
    pip = CHROMA.parent / "pip"
    if not pip.exists():
        return None
    out = subprocess.run([str(pip), "show", "chromadb"], capture_output=True, text=True).stdout
    return next((line.split()[-1] for line in out.splitlines() if line.startswith("Version")),
                None)


if __name__ == "__main__":
    main()
