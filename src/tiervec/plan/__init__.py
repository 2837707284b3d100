"""The planner: the quality/memory/speed frontier measured on the user's data, and a
recommendation that meets a quality target within a RAM budget (``tiervec plan``)."""

from __future__ import annotations

from tiervec.eval.queries import QuerySet
from tiervec.plan.frontier import Setting, candidate_chains
from tiervec.plan.planner import Plan, PlanConfig, choose, make_plan, parse_count, parse_size
from tiervec.plan.queries import labelled_queries, pseudo_queries, text_queries

__all__ = [
    "Plan",
    "PlanConfig",
    "QuerySet",
    "Setting",
    "candidate_chains",
    "choose",
    "labelled_queries",
    "make_plan",
    "parse_count",
    "parse_size",
    "pseudo_queries",
    "text_queries",
]
