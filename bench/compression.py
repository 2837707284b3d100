"""The compression suite and the planner, measured: every codec and chain beside the peers.

One run, three parts (k = 10; quality = % of float32 nDCG@10 on the same queries):

1. SciFact and NFCorpus (test queries): every tiervec setting the planner tries, extra chains
   (reducers, float8 e5m2, a three-tier chain), sentence-transformers' quantization and FAISS's
   PQ / OPQ / RaBitQ through their own index classes (alone, and with ``IndexRefineFlat``
   rescoring as many full-precision vectors as tiervec's chains read).
2. The planner: it plans on one split (SciFact train, NFCorpus dev) for a grid of RAM budgets and
   quality targets, and each recommendation is verified on the test split.
3. The 1M x 384 synthetic set of the speed benchmark: recall@10 vs exact of the main chains,
   where the share of the corpus rescored is realistic; and codec encoding speed.

    python bench/compression.py [--datasets scifact nfcorpus-pp] [--synthetic-queries 200]

Writes bench/results/compression.json and prints the tables (and their Markdown).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import time

import numpy as np

from _common import (
    beir_collection,
    console,
    markdown_table,
    print_table,
    qps,
    shared_data,
    write_json,
)
from quality import st_peer
from speed import real_queries, synthetic_collection
from tiervec.codecs import make_codec
from tiervec.eval import load_beir, query_vectors
from tiervec.plan import PlanConfig, QuerySet, candidate_chains, choose, labelled_queries
from tiervec.plan.frontier import Measurer, Setting, mark_pareto

SPLITS = {"scifact": ("train", "test"), "nfcorpus-pp": ("dev", "test")}
EXTRA = ("float8e5m2", "pca256+float8", "trunc256+float8", "trunc192+int8",
         "opq16*10 -> float32@disk", "opq24*10 -> float32@disk",
         "pca128+itq+binary*10 -> float32@disk", "center+itq+binary*4 -> float32@disk",
         "pca256+bin2*10 -> int8@disk*2 -> float32@disk")
BUDGETS = (12, 16, 24, 32, 48, 64, 96, 128, 192, 384, 768)
TARGETS = (0.99, 0.995)
SYNTHETIC = ("binary*10 -> float32@disk", "binary*20 -> float32@disk",
             "center+binary*10 -> float32@disk", "itq+binary*10 -> float32@disk",
             "bin2*4 -> float32@disk", "bin2*10 -> float32@disk", "bin3*4 -> float32@disk",
             "bin2sym*10 -> float32@disk", "int4*4 -> float32@disk", "float8*2 -> float32@disk",
             "pq48*10 -> float32@disk", "pq24*10 -> float32@disk", "pq16*10 -> float32@disk",
             "rabitq*10 -> float32@disk", "pca128+binary*10 -> float32@disk",
             "pca128+itq+binary*10 -> float32@disk")
LEARNED = [importlib.util.find_spec("tiervec.codecs.learned") is not None]
COLUMNS = ("dataset", "system", "setting", "RAM B/vec", "reads/q", "% of float32", "±",
           "R@10 vs exact", "QPS")


def faiss_peers(col, measurer: Measurer, corpus: np.ndarray, queries: np.ndarray) -> list:
    """FAISS PQ / OPQ / RaBitQ indexes, alone and refined from float32 (IndexRefineFlat)."""
    import faiss

    out = []
    for factory in ("PQ16", "PQ24", "PQ48", "OPQ16,PQ16", "RaBitQ"):
        index = faiss.index_factory(col.dim, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(corpus)
        index.add(corpus)
        code = index.sa_code_size()
        for refine in (0, 10):
            searcher = index
            if refine:
                searcher = faiss.IndexRefineFlat(index, faiss.swig_ptr(corpus))
                searcher.k_factor = refine
            searcher.search(queries[:2], 10)
            start = time.perf_counter()
            _, rows = searcher.search(queries, 10)
            speed = len(queries) / (time.perf_counter() - start)
            name = f"{factory}" + (f" + IndexRefineFlat x{refine}" if refine else "")
            out.append(("FAISS", measurer.rate(col.ids_at(rows), name, code, 0, 10 * refine,
                                                speed)))
    return out


def st_peers(col, data, queries, measurer: Measurer) -> list:
    out = []
    for precision, multiplier in (("ubinary", 4), ("ubinary", 10), ("uint8", 4)):
        row = st_peer(col, data, queries, None, precision, multiplier)
        rows = row.pop("rows")
        out.append(("sentence-transformers", measurer.rate(
            col.ids_at(rows), f"{precision} + rescore x{multiplier}",
            row["ram_bytes_per_vector"], 0, 10 * multiplier, row["qps"])))
    return out


def bench_dataset(name: str) -> tuple[list, list]:
    plan_split, test_split = SPLITS[name]
    folder = shared_data() / "beir" / name
    col = beir_collection(folder, name)
    test_data = load_beir(folder, split=test_split)
    test = labelled_queries(col, test_data)
    plan = labelled_queries(col, load_beir(folder, split=plan_split))
    chains = candidate_chains(col.dim, learned=LEARNED[0]) + list(EXTRA)
    measure_test = Measurer(col, test)
    measure_plan = Measurer(col, plan, shared=measure_test.views)
    rows: list[tuple[str, Setting]] = []
    on_plan: dict[str, Setting] = {}
    with console.status(f"{name}: measuring") as status:
        for spec in chains:
            status.update(f"{name}: {spec}")
            setting = measure_test.measure(spec)
            console.log(f"{name}: {setting.tiers}: {100 * setting.quality:.2f}%")
            rows.append(("tiervec", setting))
            on_plan[setting.tiers] = measure_plan.measure(spec)
        corpus = np.ascontiguousarray(np.concatenate([np.asarray(a) for a in
                                                      col.vectors().arrays]))
        rows += faiss_peers(col, measure_test, corpus, test.vectors)
        rows += st_peers(col, test_data, query_vectors(col, test_data), measure_test)
    marked = mark_pareto([s for _, s in rows])
    rows = [(system, s) for (system, _), s in zip(rows, marked, strict=True)]
    cases = plan_cases(name, list(on_plan.values()), {s.tiers: s for _, s in rows})
    col.close()
    return [(name, system, s) for system, s in rows], cases


def plan_cases(name: str, planned: list[Setting], verified: dict[str, Setting]) -> list[dict]:
    """The planner on a grid of (budget, target): plan-split choice, test-split check."""
    out = []
    for target in TARGETS:
        for budget in BUDGETS:
            config = PlanConfig(min_quality=target)
            fits = [s for s in planned if s.ram_bytes_per_vector <= budget]
            best, _ = choose(fits, config, budget) if fits else (None, "")
            check = verified.get(best.tiers) if best else None
            out.append({
                "dataset": name, "budget_bytes_per_vector": budget, "min_quality": target,
                "recommended": best.tiers if best else None,
                "predicted": best.quality if best else None,
                "verified": check.quality if check else None,
                "met": bool(check and check.quality >= target),
            })
    return out


def bench_synthetic(n_queries: int) -> tuple[list, list]:
    col = synthetic_collection(1_000_000, 1.0, 0)
    queries = QuerySet("synthetic", [str(i) for i in range(n_queries)], real_queries(n_queries))
    measurer = Measurer(col, queries)
    chains = list(SYNTHETIC) + (["lbin1*10 -> float32@disk", "lbin2*4 -> float32@disk"]
                                if LEARNED[0] else [])
    rows = []
    with console.status("1M synthetic: measuring") as status:
        for spec in chains:
            status.update(f"1M synthetic: {spec}")
            start = time.perf_counter()
            setting = measurer.measure(spec)
            rows.append(("1M synthetic", "tiervec", setting))
            console.log(f"{spec}: recall {setting.recall_at_k_vs_exact:.3f} "
                        f"({time.perf_counter() - start:.0f} s with fitting)")
    x = np.ascontiguousarray(col.vectors().take(np.arange(1_000_000)))
    speeds = []
    for name in ("binary", "int8", "float8", "int4", "bin2", "float16"):
        codec = make_codec(name, col.dim).fit(x[:100_000])
        codec.encode(x[:10_000])
        start = time.perf_counter()
        codec.encode(x)
        speeds.append({"codec": name, "vectors_per_s": len(x) / (time.perf_counter() - start)})
    col.close()
    return rows, speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus-pp"])
    parser.add_argument("--synthetic-queries", type=int, default=200,
                        help="queries for the 1M frontier (0 skips it)")
    parser.add_argument("--no-learned", action="store_true",
                        help="skip the learned binarization codecs (they train with torch)")
    args = parser.parse_args()
    LEARNED[0] = LEARNED[0] and not args.no_learned
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    rows, cases = [], []
    for name in args.datasets:
        r, c = bench_dataset(name)
        rows += r
        cases += c
    speeds: list = []
    if args.synthetic_queries:
        r, speeds = bench_synthetic(args.synthetic_queries)
        rows += r
    table = [(d, system, s.tiers, s.ram_bytes_per_vector, s.disk_reads_per_query,
              f"{100 * s.quality:.2f}", f"{100 * s.quality_se:.2f}",
              f"{s.recall_at_k_vs_exact:.3f}", qps(s.qps)) for d, system, s in rows]
    print_table("Compression frontier (MiniLM-L6-v2, k=10; 1M synthetic: recall vs exact)",
                COLUMNS, table)
    console.print(markdown_table(COLUMNS, table), soft_wrap=True)
    plan_cols = ("dataset", "budget B/vec", "min quality", "recommended", "predicted %",
                 "verified %", "met")
    plan_table = [(c["dataset"], c["budget_bytes_per_vector"], c["min_quality"],
                   c["recommended"] or "-",
                   f"{100 * c['predicted']:.2f}" if c["predicted"] is not None else "-",
                   f"{100 * c['verified']:.2f}" if c["verified"] is not None else "-",
                   "yes" if c["met"] else "no") for c in cases]
    print_table("Planner: plan split -> test split", plan_cols, plan_table)
    console.print(markdown_table(plan_cols, plan_table), soft_wrap=True)
    made = [c for c in cases if c["recommended"]]
    gaps = [abs(c["predicted"] - c["verified"]) for c in made]
    summary = {"cases": len(cases), "recommended": len(made),
               "met": sum(c["met"] for c in made),
               "mean_abs_gap_points": 100 * float(np.mean(gaps)) if gaps else None,
               "max_abs_gap_points": 100 * float(np.max(gaps)) if gaps else None,
               "within_half_a_point": sum(g <= 0.005 for g in gaps)}
    console.print(summary)
    if speeds:
        print_table("Codec encoding, 1M x 384", ("codec", "vectors/s"),
                    [(s["codec"], f"{s['vectors_per_s']:,.0f}") for s in speeds])
    write_json("compression", {
        "k": 10, "model": "all-MiniLM-L6-v2",
        "rows": [{"dataset": d, "system": system, **s.to_dict()} for d, system, s in rows],
        "plan_cases": cases, "plan_summary": summary, "encode_speed": speeds,
    })


if __name__ == "__main__":
    main()
