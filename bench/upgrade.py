"""Model upgrades without re-indexing: what a map between two models' spaces keeps, measured.

For each pair (current model -> new model) and set (SciFact, NFCorpus test queries), exact
float32 search, nDCG@10 of:

- the current model alone, the new model alone (re-encoded: the target);
- the new model's queries mapped onto the stored documents (``to-current``), or the stored
  documents mapped into the new space (``to-new``), by map kind and by sample size (texts of the
  collection encoded by both models to fit the map on), searched as an upgrading collection
  does (both models' query vectors added) and with the new model's queries alone; the map
  tiervec itself would choose (held-out agreement, :func:`tiervec.encode.bridge.choose_map`)
  is marked;
- the sample's rows holding the new model's own vectors (encoded to fit the maps), the rest
  mapped: measured to decide whether the switch should store them at once (it does not: it
  can score below all mapped; they wait for their segment's backfill);
- 25/50/75% backfilled: that share of the documents re-encoded by the new model, the rest
  mapped (one space, mixed).

    python bench/upgrade.py [--pairs L3:L6,L6:E5,L6:MPNET@scifact] [--sets scifact,nfcorpus]

Vectors come from bench/_model_vectors.py's cache (encoded once by tiervec's encoders).
Writes bench/results/upgrade.json.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from typing import Any

import numpy as np

import tiervec
from _common import CACHE, console, print_table, write_json
from _model_vectors import Encoded, documents, encoded
from tiervec.collection.upgrading import DEFAULT_KIND
from tiervec.corpus import Document
from tiervec.encode.bridge import Direction, MapKind, choose_map, ensemble, fit_map
from tiervec.eval import QuerySet, judge

SHORT = {"L3": "paraphrase-MiniLM-L3-v2", "L6": "all-MiniLM-L6-v2",
         "E5": "multilingual-e5-small", "MPNET": "all-mpnet-base-v2"}
SAMPLES = (1000, 2000, 5000)
SHARES = (0.25, 0.5, 0.75)
SEGMENTS = 4  # the live collection's: a backfill step is a quarter


def ndcg(data: Encoded, queries: np.ndarray, docs: np.ndarray) -> float:
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    ids = np.array(data.doc_ids, dtype=object)[top]
    qs = QuerySet("q", data.query_ids, queries, data.qrels, data.query_texts)
    found = judge(qs, ids, np.take_along_axis(scores, top, axis=1), ["ndcg@10"], by_rank=True)
    return round(float(found["ndcg@10"].mean()), 4)


def pair_rows(old: Encoded, new: Encoded, seed: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(variant: str, sample: int | None, value: float, **extra: Any) -> None:
        rows.append({"variant": variant, "sample": sample, "ndcg@10": value, **extra})

    base = ndcg(old, old.queries, old.docs)
    add("current model alone", None, base)
    add("new model alone (re-encoded)", None, ndcg(new, new.queries, new.docs))
    rng = np.random.default_rng(seed)
    n = len(old.docs)
    largest = None
    for size in sorted({min(s, n) for s in SAMPLES}):
        sample = rng.permutation(n)[:size]
        choice = choose_map(old.docs[sample], new.docs[sample], seed=seed)  # every kind
        kept = choose_map(old.docs[sample], new.docs[sample], seed=seed,
                          kinds=(MapKind(DEFAULT_KIND),)).chosen  # what upgrade() keeps
        chosen = (kept.kind.value, kept.direction.value)
        for direction in Direction:
            for kind in MapKind:
                figures = next(c for c in choice.candidates
                               if (c["kind"], c["direction"]) == (kind.value, direction.value))
                if direction is Direction.TO_CURRENT:  # queries mapped, stored vectors kept
                    m = fit_map(new.docs[sample], old.docs[sample], kind, direction)
                    alone = ndcg(old, m.apply(new.queries), old.docs)
                    both = ndcg(old, ensemble(m.apply(new.queries), old.queries), old.docs)
                else:  # stored vectors mapped into the new space
                    m = fit_map(old.docs[sample], new.docs[sample], kind, direction)
                    docs = m.apply(old.docs)
                    alone = ndcg(new, new.queries, docs)
                    both = ndcg(new, ensemble(new.queries, m.apply(old.queries)), docs)
                add(f"{direction.value} {kind.value}: both models' queries", size, both,
                    agreement=figures["agreement"], chosen=(kind.value, direction.value) == chosen)
                add(f"{direction.value} {kind.value}: new model's queries alone", size, alone,
                    agreement=figures["new_queries_only"])
        # the sample's rows with the new model's own vectors (encoded to fit the maps), the
        # others mapped: why upgrade() keeps them for their segment's backfill instead
        m = fit_map(old.docs[sample], new.docs[sample], DEFAULT_KIND, Direction.TO_NEW)
        docs = m.apply(old.docs)
        docs[sample] = new.docs[sample]
        add(f"to-new {DEFAULT_KIND}, the sample's rows re-encoded: both models' queries", size,
            ndcg(new, ensemble(new.queries, m.apply(old.queries)), docs))
        largest = (sample, choice)
    assert largest is not None
    sample, choice = largest
    m = fit_map(old.docs[sample], new.docs[sample], DEFAULT_KIND, Direction.TO_NEW)
    mapped, mapped_q = m.apply(old.docs), m.apply(old.queries)
    order = rng.permutation(n)
    for share in SHARES:
        done = order[:int(share * n)]
        docs = mapped.copy()
        docs[done] = new.docs[done]
        add(f"{share:.0%} backfilled ({DEFAULT_KIND}, both models' queries)",
            len(sample), ndcg(new, ensemble(new.queries, mapped_q), docs))
        add(f"{share:.0%} backfilled (new model's queries alone)", len(sample),
            ndcg(new, new.queries, docs))
    for row in rows:
        row["vs current"] = round(row["ndcg@10"] - base, 4)
    return rows


def live_upgrade(old_model: str, new_model: str, name: str, sample: int,
                 cpu_share: float) -> dict[str, Any]:
    """A real collection (the set's documents with the current model's vectors, in
    :data:`SEGMENTS` segments) upgraded by :meth:`Collection.upgrade` and backfilled a segment
    at a time: nDCG@10 through the collection at each step, the backfill's documents/s, and
    search latency (one query at a time) idle and while the backfill runs."""
    old = encoded(old_model, name)
    ids, texts = documents(name)
    folder = CACHE / "upgrade-live" / f"{name}-{old_model}"
    segment = -(-len(ids) // SEGMENTS)
    shutil.rmtree(folder, ignore_errors=True)
    col = tiervec.create(folder, model=old_model, recall_target=None)
    for lo in range(0, len(ids), segment):
        col.add([Document(id=i, text=t) for i, t in zip(ids[lo:lo + segment],
                                                          texts[lo:lo + segment], strict=True)],
                vectors=old.docs[lo:lo + segment])
    queries = QuerySet("q", old.query_ids, old.queries, old.qrels, old.query_texts)

    def quality() -> float:
        found = col.search(old.query_texts, k=10)
        return round(float(judge(queries, found.ids, found.scores, ["ndcg@10"])["ndcg@10"]
                           .mean()), 4)

    def latencies(n: int = 150, warm: int = 0) -> np.ndarray:
        for q in old.query_texts[-warm:] if warm else ():  # models loaded, caches warm
            col.search(q, k=10)
        out = []
        for q in old.query_texts[:n]:
            began = time.perf_counter()
            col.search(q, k=10)
            out.append(time.perf_counter() - began)
        return np.array(out) * 1000

    steps = [{"step": "current model alone", "ndcg@10": quality(), "backfilled": 0.0}]
    idle_before = latencies(warm=20)
    began = time.perf_counter()
    status = col.upgrade(new_model, sample=sample)
    start_s = time.perf_counter() - began
    steps.append({"step": f"upgraded ({status.map['kind']}, {status.map['direction']}, "
                          f"{sample:,} texts), before any backfill",
                  "ndcg@10": quality(), "backfilled": 0.0})
    for _ in range(SEGMENTS - 1):  # 25, 50, 75% backfilled
        status = col.backfill(max_segments=1)
        steps.append({"step": f"{status.backfilled:.0%} backfilled", "ndcg@10": quality(),
                      "backfilled": status.backfilled})
    idle = latencies(warm=20)  # the same search path (both models' queries), nothing else
    # the rest while searches run: latency under the backfill, its speed
    done_docs = [0]
    thread = threading.Thread(target=lambda: col.backfill(
        cpu_share=cpu_share, progress=lambda n: done_docs.__setitem__(0, done_docs[0] + n)))
    began = time.perf_counter()
    thread.start()
    busy: list[float] = []
    while thread.is_alive():
        busy.extend(latencies(10))
    thread.join()
    seconds = time.perf_counter() - began
    steps.append({"step": "backfill finished (the new model alone)", "ndcg@10": quality(),
                  "backfilled": 1.0})
    col.close()

    def pct(a: Any, p: float) -> float:
        return round(float(np.percentile(a, p)), 1) if len(a) else float("nan")

    return {"set": name, "pair": f"{old_model} -> {new_model}", "steps": steps,
            "start_seconds": round(start_s, 1),
            "backfill_docs_per_s": round(done_docs[0] / seconds, 1), "cpu_share": cpu_share,
            "latency_ms": {"before the upgrade": {"p50": pct(idle_before, 50),
                                                  "p99": pct(idle_before, 99)},
                           "upgrading, idle": {"p50": pct(idle, 50), "p99": pct(idle, 99)},
                           "during the backfill": {"p50": pct(busy, 50), "p99": pct(busy, 99),
                                                   "searches": len(busy)}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="L3:L6,L6:E5,L6:MPNET")
    parser.add_argument("--sets", default="scifact,nfcorpus")
    parser.add_argument("--live", default="L3:L6", help="the pair upgraded in a real "
                        "collection while searched ('' for none)")
    parser.add_argument("--live-set", default="scifact")
    parser.add_argument("--live-sample", type=int, default=2000)
    parser.add_argument("--cpu-share", type=float, default=0.5)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for pair in args.pairs.split(","):
        pair, _, only = pair.partition("@")  # "L6:E5@scifact": that pair on those sets only
        a, b = (SHORT.get(p.upper(), p) for p in pair.split(":"))
        for name in (only or args.sets).split("+" if only else ","):
            rows = pair_rows(encoded(a, name), encoded(b, name))
            results[f"{a} -> {b} / {name}"] = rows
            print_table(f"{a} -> {b}, {name} (test, nDCG@10, exact search)",
                        ["variant", "sample", "nDCG@10", "vs current", "held-out agreement"],
                        [[r["variant"] + (" (chosen)" if r.get("chosen") else ""),
                          r["sample"] or "", r["ndcg@10"], f"{r['vs current']:+.4f}",
                          r.get("agreement", "")] for r in rows])
    console.print("documents as their own queries for the held-out agreement")
    live = None
    if args.live:
        a, b = (SHORT.get(p.upper(), p) for p in args.live.split(":"))
        live = live_upgrade(a, b, args.live_set, args.live_sample, args.cpu_share)
        print_table(f"{live['pair']} on {args.live_set}: a collection upgraded in place "
                    "(nDCG@10 through the collection)", ["step", "nDCG@10"],
                    [[r["step"], r["ndcg@10"]] for r in live["steps"]])
        print_table(f"search latency, one query at a time (backfill at cpu share "
                    f"{args.cpu_share:g}: {live['backfill_docs_per_s']} docs/s)",
                    ["when", "p50 ms", "p99 ms"],
                    [[k, v["p50"], v["p99"]] for k, v in live["latency_ms"].items()])
    write_json("upgrade", {"results": results, "live": live})


if __name__ == "__main__":
    main()
