"""The packaged models side by side: documents/s here and nDCG@10 with exact search.

For each model of ``tiervec models``: the documents/s of tiervec's encoder on the first
``--docs`` SciFact documents (title + abstract, one run after a warm-up, alone on the machine),
and nDCG@10 on SciFact and NFCorpus test queries with exact float32 search, from the vectors
bench/_model_vectors.py caches (encoded once; ``--encode`` encodes what is missing, which takes
about half an hour per set for the slow models here).

    python bench/models.py [--docs 200] [--encode]

Writes bench/results/models.json and the package's table that ``tiervec models`` prints
(src/tiervec/encode/models-measured.json).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date

import numpy as np

from _common import ROOT, console, print_table, write_json
from _model_vectors import SETS, cached, encoded, encoder, texts_of
from tiervec.encode.models import KNOWN_MODELS, MEASURED
from tiervec.eval import QuerySet, judge


def docs_per_s(model: str, n: int) -> float:
    texts = texts_of("scifact")[:n]
    enc = encoder(model)
    enc.encode_documents(texts[:16])  # warm-up
    began = time.perf_counter()
    enc.encode_documents(texts)
    return round(n / (time.perf_counter() - began), 1)


def ndcg(model: str, name: str, encode: bool) -> float | None:
    if not encode and not (cached(model, name) / f"queries-{SETS[name][1]}.npy").exists():
        return None
    data = encoded(model, name)
    scores = data.queries @ data.docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    ids = np.array(data.doc_ids, dtype=object)[top]
    qs = QuerySet(name, data.query_ids, data.queries, data.qrels, data.query_texts)
    found = judge(qs, ids, np.take_along_axis(scores, top, axis=1), ["ndcg@10"], by_rank=True)
    return round(float(found["ndcg@10"].mean()), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--encode", action="store_true")
    args = parser.parse_args()
    figures: dict[str, dict[str, float | None]] = {}
    for model in KNOWN_MODELS:
        if not model.installed():
            continue
        figures[model.name] = {"docs_per_s": docs_per_s(model.name, args.docs),
                               **{name: ndcg(model.name, name, args.encode) for name in SETS}}
    load = round(os.getloadavg()[0], 2)
    print_table(f"Packaged models: SciFact documents/s ({args.docs}, 2 threads) and nDCG@10 "
                f"(test, exact search); load average {load}",
                ["model", "dim", "docs/s", "SciFact", "NFCorpus"],
                [[m.name, m.dim, *[figures.get(m.name, {}).get(k) or "-"
                                   for k in ("docs_per_s", "scifact", "nfcorpus")]]
                 for m in KNOWN_MODELS])
    run = {"date": date.today().isoformat(), "cpus": os.cpu_count(), "load": load,
           "docs": args.docs}
    MEASURED.write_text(json.dumps({"run": run, "models": figures}, indent=2) + "\n")
    console.print(f"wrote {MEASURED.relative_to(ROOT)}")
    write_json("models", {"run": run, "models": figures})


if __name__ == "__main__":
    main()
