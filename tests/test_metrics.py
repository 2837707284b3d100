"""Retrieval metrics against answers computed by hand on tiny runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tiervec.errors import TiervecError
from tiervec.eval.metrics import evaluate_run, recall_vs_exact, run_from_arrays

# Three judged queries. q1 has graded relevance (d5 judged not relevant), q2's only relevant
# document is ranked third, and q3 is missing from the run (it counts as 0 everywhere).
QRELS = {
    "q1": {"d1": 2, "d2": 1, "d5": 0},
    "q2": {"d3": 1},
    "q3": {"d9": 1},
}
# Rankings by score: q1 -> d2 (rel 1), d4 (unjudged), d1 (rel 2), d5 (rel 0);
#                    q2 -> d7, d8, d3 (rel 1).
RUN = {
    "q1": {"d1": 0.7, "d2": 0.9, "d4": 0.8, "d5": 0.6},  # dict order is not the ranking
    "q2": {"d7": 0.9, "d8": 0.8, "d3": 0.7},
    "q_unjudged": {"d1": 1.0},  # not in the qrels: ignored
}


def test_ndcg_with_graded_relevance():
    # nDCG@k = DCG@k / IDCG@k, DCG@k = sum_{i=1..k} rel_i / log2(i + 1) (trec_eval: linear gain),
    # IDCG@k = DCG@k of the judged relevances sorted descending.
    dcg_q1 = 1 / math.log2(2) + 0 / math.log2(3) + 2 / math.log2(4)  # d2, d4, d1 -> 2.0
    idcg_q1 = 2 / math.log2(2) + 1 / math.log2(3)  # ideal: 2, 1 (then 0)
    dcg_q2 = 1 / math.log2(4)  # d3 at rank 3
    idcg_q2 = 1.0
    expected = (dcg_q1 / idcg_q1 + dcg_q2 / idcg_q2 + 0.0) / 3
    assert evaluate_run(QRELS, RUN, ["ndcg@3"])["ndcg@3"] == pytest.approx(expected, abs=1e-4)
    assert expected == pytest.approx((0.76018 + 0.5) / 3, abs=1e-4)


def test_ndcg_cut_at_1():
    # q1: d2 (rel 1) first, ideal first is rel 2 -> 1/2; q2: d7 not relevant -> 0; q3 -> 0.
    assert evaluate_run(QRELS, RUN, ["ndcg@1"])["ndcg@1"] == pytest.approx(0.5 / 3, abs=1e-4)


def test_recall():
    # recall@k = |relevant (rel >= 1) in the top k| / |relevant|
    got = evaluate_run(QRELS, RUN, ["recall@2", "recall@3", "recall@100"])
    assert got["recall@2"] == pytest.approx((1 / 2 + 0 + 0) / 3)  # q1 finds d2 of {d1, d2}
    assert got["recall@3"] == pytest.approx((2 / 2 + 1 / 1 + 0) / 3)
    assert got["recall@100"] == pytest.approx(2 / 3)


def test_mrr_with_the_first_relevant_beyond_k():
    # mrr@k = mean of 1 / rank of the first relevant document if rank <= k, else 0.
    got = evaluate_run(QRELS, RUN, ["mrr@2", "mrr@3", "mrr@10"])
    assert got["mrr@2"] == pytest.approx((1 + 0 + 0) / 3)  # q2's d3 is at rank 3 > 2
    assert got["mrr@3"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert got["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_mrr_when_the_first_hit_is_not_relevant():
    qrels = {"q": {"b": 1, "c": 1}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    got = evaluate_run(qrels, run, ["mrr@1", "mrr@2"])
    assert got == pytest.approx({"mrr@1": 0.0, "mrr@2": 0.5})


def test_mrr_with_tied_scores_is_monotone_in_k_and_agrees_with_precision():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0}}  # tied: trec_eval ranks b (larger id) first
    got = evaluate_run(qrels, run, ["mrr@1", "mrr@2", "p@1"])
    assert got["mrr@2"] == pytest.approx(0.5)
    assert got["mrr@1"] <= got["mrr@2"]  # a cut-off metric cannot drop when k grows
    assert got["mrr@1"] == got["p@1"]  # one result: first relevant at rank 1 iff P@1 = 1


def test_precision_and_map():
    got = evaluate_run(QRELS, RUN, ["p@2", "map@3"])
    assert got["p@2"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    # AP@k = sum over relevant d in the top k of P@rank(d), divided by |relevant| (trec_eval).
    ap_q1 = (1 / 1 + 2 / 3) / 2  # d2 at rank 1, d1 at rank 3
    ap_q2 = (1 / 3) / 1  # d3 at rank 3
    assert got["map@3"] == pytest.approx((ap_q1 + ap_q2 + 0) / 3, abs=1e-4)


def test_query_missing_from_the_run_counts_as_zero():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    metrics = ["ndcg@10", "recall@10", "mrr@10"]
    half = {"ndcg@10": 0.5, "recall@10": 0.5, "mrr@10": 0.5}
    assert evaluate_run(qrels, {"q1": {"d1": 1.0}}, metrics) == pytest.approx(half)
    # A query with an empty result list (all padding) counts as 0 too.
    assert evaluate_run(qrels, {"q1": {"d1": 1.0}, "q2": {}}, metrics) == pytest.approx(half)


def test_metric_names_are_case_insensitive_and_keep_their_spelling():
    got = evaluate_run(QRELS, RUN, ["NDCG@3", "Recall@2"])
    assert set(got) == {"NDCG@3", "Recall@2"}
    assert got["Recall@2"] == pytest.approx(1 / 6)


def test_results_are_plain_floats():
    got = evaluate_run(QRELS, RUN, ["ndcg@3"])
    assert type(got["ndcg@3"]) is float


@pytest.mark.parametrize("name", ["foo@10", "ndcg", "ndcg@", "ndcg@0", "ndcg@x", "recall@-1", ""])
def test_unknown_metric_raises(name):
    with pytest.raises(TiervecError, match="unknown metric"):
        evaluate_run(QRELS, RUN, [name])


def test_recall_vs_exact():
    rows = np.array([[0, 1, 2], [3, 4, -1]])
    exact = np.array([[2, 1, 9], [3, -1, -1]])
    # q0 finds {1, 2} of its 3 exact hits; q1's exact list holds one real hit, 3 (the -1
    # padding never counts), and finds it: (2/3 + 1/1) / 2.
    assert recall_vs_exact(rows, exact, 3) == pytest.approx(5 / 6)
    # Only the first k columns count: q0 {0} vs {2} -> 0, q1 {3} vs {3} -> 1.
    assert recall_vs_exact(rows, exact, 1) == pytest.approx(0.5)
    assert recall_vs_exact(exact, exact, 1) == pytest.approx(1.0)


def test_run_from_arrays_drops_padding_ids():
    ids = np.array([["a", "b", ""], ["c", "", ""]], dtype=object)
    scores = np.array([[0.9, 0.5, -np.inf], [0.7, -np.inf, -np.inf]], np.float32)
    run = run_from_arrays(["q1", "q2"], ids, scores)
    assert run == {"q1": {"a": pytest.approx(0.9), "b": 0.5}, "q2": {"c": pytest.approx(0.7)}}
    assert all(type(s) is float for docs in run.values() for s in docs.values())


def test_run_from_arrays_feeds_evaluate_run():
    ids = np.array([["d2", "d4", "d1"], ["d7", "d8", "d3"]], dtype=object)
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]], np.float32)
    run = run_from_arrays(["q1", "q2"], ids, scores)
    assert evaluate_run(QRELS, run, ["mrr@3"]) == pytest.approx({"mrr@3": (1 + 1 / 3) / 3})


def test_run_from_arrays_needs_one_query_id_per_row():
    with pytest.raises(ValueError):
        run_from_arrays(["q1"], np.array([["a"], ["b"]], dtype=object), np.zeros((2, 1)))
