"""Model upgrades without re-indexing: what a map between two models' spaces keeps, measured.

For each pair (current model -> new model) and set (SciFact, NFCorpus test queries), exact
float32 search, nDCG@10 of:

- the current model alone, the new model alone (re-encoded: the target);
- the new model's queries mapped onto the stored documents (``to-current``), or the stored
  documents mapped into the new space (``to-new``), by map kind and by sample size (texts of the
  collection encoded by both models to fit the map on); the map tiervec itself would choose
  (held-out agreement, :func:`tiervec.encode.bridge.choose_map`) is marked;
- ``both queries``: the current model's query vector plus the mapped new one (to-current);
- 25/50/75% backfilled: that share of the documents re-encoded by the new model, the rest
  mapped (to-new: one space, mixed).

    python bench/upgrade.py [--pairs L3:L6,L6:E5] [--sets scifact,nfcorpus]

Vectors come from bench/_model_vectors.py's cache (encoded once by tiervec's encoders).
Writes bench/results/upgrade.json.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from _common import console, print_table, write_json
from _model_vectors import Encoded, encoded
from tiervec.encode.bridge import Direction, MapKind, choose_map, fit_map
from tiervec.eval import QuerySet, judge

SHORT = {"L3": "paraphrase-MiniLM-L3-v2", "L6": "all-MiniLM-L6-v2",
         "E5": "multilingual-e5-small", "MPNET": "all-mpnet-base-v2"}
SAMPLES = (1000, 2000, 5000)
SHARES = (0.25, 0.5, 0.75)


def ndcg(data: Encoded, queries: np.ndarray, docs: np.ndarray) -> float:
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    ids = np.array(data.doc_ids, dtype=object)[top]
    qs = QuerySet("q", data.query_ids, queries, data.qrels, data.query_texts)
    found = judge(qs, ids, np.take_along_axis(scores, top, axis=1), ["ndcg@10"], by_rank=True)
    return round(float(found["ndcg@10"].mean()), 4)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


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
        choice = choose_map(old.docs[sample], new.docs[sample], seed=seed)
        chosen = (choice.chosen.kind.value, choice.chosen.direction.value)
        for direction in Direction:
            for kind in MapKind:
                if direction is Direction.TO_CURRENT:
                    m = fit_map(new.docs[sample], old.docs[sample], kind, direction)
                    value = ndcg(old, m.apply(new.queries), old.docs)
                else:
                    m = fit_map(old.docs[sample], new.docs[sample], kind, direction)
                    value = ndcg(new, new.queries, m.apply(old.docs))
                agreement = next(c["agreement"] for c in choice.candidates
                                 if (c["kind"], c["direction"]) == (kind.value, direction.value))
                add(f"{direction.value} {kind.value}", size, value, agreement=agreement,
                    chosen=(kind.value, direction.value) == chosen)
        m = fit_map(new.docs[sample], old.docs[sample], choice.chosen.kind, Direction.TO_CURRENT)
        add(f"both queries ({choice.chosen.kind.value})", size,
            ndcg(old, unit(old.queries + m.apply(new.queries)), old.docs))
        largest = (sample, choice)
    assert largest is not None
    sample, choice = largest
    m = fit_map(old.docs[sample], new.docs[sample], choice.chosen.kind, Direction.TO_NEW)
    mapped = m.apply(old.docs)
    order = rng.permutation(n)
    for share in SHARES:
        done = order[:int(share * n)]
        docs = mapped.copy()
        docs[done] = new.docs[done]
        add(f"to-new {choice.chosen.kind.value}, {share:.0%} backfilled", len(sample),
            ndcg(new, new.queries, docs))
    for row in rows:
        row["vs current"] = round(row["ndcg@10"] - base, 4)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="L3:L6,L6:E5")
    parser.add_argument("--sets", default="scifact,nfcorpus")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for pair in args.pairs.split(","):
        a, b = (SHORT.get(p.upper(), p) for p in pair.split(":"))
        for name in args.sets.split(","):
            rows = pair_rows(encoded(a, name), encoded(b, name))
            results[f"{a} -> {b} / {name}"] = rows
            print_table(f"{a} -> {b}, {name} (test, nDCG@10, exact search)",
                        ["variant", "sample", "nDCG@10", "vs current", "held-out agreement"],
                        [[r["variant"] + (" (chosen)" if r.get("chosen") else ""),
                          r["sample"] or "", r["ndcg@10"], f"{r['vs current']:+.4f}",
                          r.get("agreement", "")] for r in rows])
    console.print("documents as their own queries for the held-out agreement")
    write_json("upgrade", {"results": results})


if __name__ == "__main__":
    main()
