"""Evaluation: BEIR datasets, metrics (pytrec_eval), measuring chains on a Searchable."""

from tiervec.eval.beir import BeirDataset, load_beir
from tiervec.eval.evaluate import (
    DEFAULT_EVAL_CHAINS,
    DEFAULT_EVAL_FUSIONS,
    EvalRow,
    evaluate,
    labelled_set,
    query_vectors,
)
from tiervec.eval.measure import Measurement, judge, measure, searched
from tiervec.eval.metrics import evaluate_run, recall_vs_exact, run_from_arrays
from tiervec.eval.queries import QuerySet

__all__ = [
    "DEFAULT_EVAL_CHAINS",
    "DEFAULT_EVAL_FUSIONS",
    "BeirDataset",
    "EvalRow",
    "Measurement",
    "QuerySet",
    "evaluate",
    "evaluate_run",
    "judge",
    "labelled_set",
    "load_beir",
    "measure",
    "query_vectors",
    "recall_vs_exact",
    "run_from_arrays",
    "searched",
]
