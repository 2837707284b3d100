"""Retrieval metrics, by trec_eval-style names (``"ndcg@10"``), computed with pytrec_eval.

- ``ndcg@k``: nDCG with graded relevance, cut at ``k`` (trec_eval ``ndcg_cut``).
- ``recall@k``: share of the relevant documents found in the top ``k``.
- ``mrr@k``: mean of ``1 / rank`` of the first relevant document within the top ``k`` (0 if none).
- ``map@k``, ``p@k``: mean average precision and precision at ``k``.

Scores are means over the queries of ``qrels``; a query with no results counts as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tiervec._extras import require
from tiervec.errors import TiervecError
from tiervec.search.recall import recall_per_query as recall_vs_exact_per_query

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

_TREC = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut", "p": "P", "mrr": "recip_rank"}


def _parse(name: str) -> tuple[str, int]:
    base, _, cut = name.lower().partition("@")
    if base not in _TREC or not cut.isdigit() or int(cut) < 1:
        raise TiervecError(
            f"unknown metric {name!r}; use one of {', '.join(k + '@K' for k in _TREC)} "
            "(e.g. 'ndcg@10')"
        )
    return base, int(cut)


def evaluate_run(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over the queries of ``qrels``: ``{"ndcg@10": 0.65, ...}``."""
    return {
        name: float(np.mean(list(values.values())))
        for name, values in evaluate_per_query(qrels, run, metrics).items()
    }


def evaluate_per_query(
    qrels: Qrels, run: Run, metrics: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Each metric for each query of ``qrels``: ``{"ndcg@10": {query_id: 0.7, ...}, ...}``."""
    pytrec_eval = require("pytrec_eval")

    if not qrels:
        raise TiervecError("no judged queries to evaluate: qrels is empty")
    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    parsed = {name: _parse(name) for name in metrics}
    # trec_eval ranks by score descending, ties by document id descending; its recip_rank has
    # no cut-off, so MRR@k is recip_rank on each query's top k in that order
    ranked = {q: sorted(((d, float(s)) for d, s in docs.items()),
                        key=lambda kv: (kv[1], kv[0]), reverse=True) for q, docs in run.items()}
    full = {q: dict(docs) for q, docs in ranked.items()}
    out: dict[str, dict[str, float]] = {}
    measures = {f"{_TREC[b]}.{c}" for b, c in parsed.values() if b != "mrr"}
    per_query = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(full) if measures else {}
    for name, (base, cut) in parsed.items():
        if base == "mrr":
            top = {q: dict(docs[:cut]) for q, docs in ranked.items()}
            scores = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top)
            key = "recip_rank"
        else:
            scores, key = per_query, f"{_TREC[base]}_{cut}"
        out[name] = {q: float(scores.get(q, {}).get(key, 0.0)) for q in judged}
    return out


def run_from_arrays(query_ids: Sequence[str], ids: np.ndarray, scores: np.ndarray) -> dict:
    """A pytrec_eval run ``{query_id: {doc_id: score}}`` from ``(n_queries, k)`` arrays."""
    run: dict[str, dict[str, float]] = {}
    for qid, row_ids, row_scores in zip(query_ids, ids, scores, strict=True):
        run[qid] = {str(d): float(s) for d, s in zip(row_ids, row_scores, strict=True) if d != ""}
    return run


def recall_vs_exact(rows: np.ndarray, exact_rows: np.ndarray, k: int) -> float:
    """Mean over queries of ``|top_k(rows) ∩ top_k(exact)| / |top_k(exact)|`` (ANN recall).

    ``-1`` (rows) and ``""`` (ids) padding does not count, so a collection of fewer than ``k``
    vectors can score 1.
    """
    shares = recall_vs_exact_per_query(rows, exact_rows, k)
    return float(shares.mean()) if len(shares) else 1.0
