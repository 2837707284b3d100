"""Evaluation: BEIR datasets, metrics (pytrec_eval), exact reference search, chain comparison."""

from tiervec.eval.beir import BeirDataset, load_beir
from tiervec.eval.evaluate import DEFAULT_EVAL_CHAINS, EvalRow, evaluate, query_vectors
from tiervec.eval.metrics import evaluate_run, recall_vs_exact, run_from_arrays

__all__ = [
    "DEFAULT_EVAL_CHAINS",
    "BeirDataset",
    "EvalRow",
    "evaluate",
    "evaluate_run",
    "load_beir",
    "query_vectors",
    "recall_vs_exact",
    "run_from_arrays",
]
