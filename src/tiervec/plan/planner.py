"""The planner: measure the frontier on the user's data, recommend, verify on held-out queries.

The recommendation is the setting with the fewest RAM bytes per vector whose quality, measured
on the planning queries, clears ``min_quality`` with confidence (its quality minus ``z``
standard errors over queries), within the RAM budget and latency target; ties go to fewer disk
reads, then higher quality. It is then measured again on queries the choice never saw, and both
figures are reported: a plan says how good it predicted itself to be.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tiervec.errors import BudgetTooSmall, PlanError
from tiervec.eval.queries import QuerySet
from tiervec.plan.frontier import Measurer, Setting, candidate_chains, measure_all
from tiervec.search import Chain, Location, Searchable


@dataclass(frozen=True, kw_only=True)
class PlanConfig:
    """What a plan must meet. ``ram_budget`` is in bytes for ``for_vectors`` vectors (default:
    the collection's size); ``min_quality`` is a fraction of float32 quality."""

    min_quality: float = 0.99
    ram_budget: int | None = None
    for_vectors: int | None = None
    max_latency_ms: float | None = None
    k: int = 10
    max_reads: int = 100
    learned: bool = False
    #: Standard errors a setting's quality must clear ``min_quality`` by (one-sided 95%).
    confidence_z: float = 1.645
    chains: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min_quality <= 1:
            raise PlanError(
                f"min_quality is a fraction of float32 quality in (0, 1], got {self.min_quality}"
                " (e.g. 0.99 keeps 99%)"
            )
        if self.ram_budget is not None and self.ram_budget <= 0:
            raise PlanError(f"ram_budget must be a positive number of bytes, got {self.ram_budget}")
        if self.for_vectors is not None and self.for_vectors <= 0:
            raise PlanError(f"for_vectors must be positive, got {self.for_vectors}")


@dataclass(frozen=True)
class Plan:
    """The measured frontier, the recommendation and why, and its held-out verification."""

    config: PlanConfig
    n_vectors: int
    budget_bytes_per_vector: float | None
    settings: list[Setting]
    recommended: Setting | None
    reason: str
    verified: Setting | None
    plan_queries: str
    verify_queries: str | None

    def to_dict(self) -> dict[str, object]:
        c = self.config
        return {
            "min_quality": c.min_quality, "ram_budget": c.ram_budget,
            "for_vectors": c.for_vectors or self.n_vectors, "max_latency_ms": c.max_latency_ms,
            "k": c.k, "max_reads": c.max_reads, "confidence_z": c.confidence_z,
            "budget_bytes_per_vector": self.budget_bytes_per_vector,
            "plan_queries": self.plan_queries, "verify_queries": self.verify_queries,
            "recommended": self.recommended.to_dict() if self.recommended else None,
            "reason": self.reason,
            "verified": self.verified.to_dict() if self.verified else None,
            "predicted_quality": self.recommended.quality if self.recommended else None,
            "verified_quality": self.verified.quality if self.verified else None,
            "settings": [s.to_dict() for s in self.settings],
        }


def make_plan(
    collection: Searchable,
    queries: QuerySet,
    verify: QuerySet | None = None,
    config: PlanConfig | None = None,
    on_setting: Callable[[Setting], None] | None = None,
) -> Plan:
    """Measure candidate settings on ``queries``, recommend one, verify it on ``verify``."""
    config = config or PlanConfig()
    _check_full_precision(collection)
    chains = list(config.chains or candidate_chains(collection.dim, config.k, config.max_reads,
                                                    config.learned))
    n = config.for_vectors or len(collection)
    budget = None if config.ram_budget is None else config.ram_budget / n
    if budget is not None:
        _check_budget(chains, collection.dim, budget, config, n)
        chains = [c for c in chains
                  if Chain.parse(c).ram_bytes_per_vector(collection.dim) <= budget]
    chains = [c for c in chains if Chain.parse(c).disk_reads_per_query(config.k, len(collection))
              <= max(config.max_reads, config.k) or _is_exact(c)]
    measurer = Measurer(collection, queries, config.k)
    settings = measure_all(measurer, chains, on_setting)
    best, reason = choose(settings, config, budget)
    verified = None
    if best is not None and verify is not None and len(verify):
        verifier = Measurer(collection, verify, config.k, shared=measurer.views)
        verified = verifier.measure(best.tiers)
    return Plan(config, n, budget, settings, best, reason, verified, queries.name,
                verify.name if verify is not None else None)


def choose(settings: list[Setting], config: PlanConfig,
           budget: float | None) -> tuple[Setting | None, str]:
    """The cheapest setting that meets the constraints, and why (see the module docstring)."""
    z, target = config.confidence_z, config.min_quality
    fits = [s for s in settings if config.max_latency_ms is None
            or s.latency_ms <= config.max_latency_ms]
    if not fits:
        fastest = min(settings, key=lambda s: s.latency_ms)
        return None, (f"no setting meets the latency target of {config.max_latency_ms} ms/query;"
                      f" the fastest is {fastest.tiers} at {fastest.latency_ms:.3f} ms")
    good = [s for s in fits if s.lower_bound(z) >= target]
    if not good:
        top = max(fits, key=lambda s: s.quality)
        where = "within the budget" if budget is not None else "among the settings tried"
        return None, (
            f"no setting {where} keeps {target:.1%} of float32 quality with confidence; the best "
            f"is {top.tiers} at {top.quality:.2%} (± {top.quality_se:.2%}). Raise the RAM "
            "budget, lower --min-quality, or allow more disk reads (--max-reads)"
        )
    best = min(good, key=lambda s: (s.ram_bytes_per_vector, s.disk_reads_per_query, -s.quality))
    cheaper = [s for s in fits if s.ram_bytes_per_vector < best.ram_bytes_per_vector]
    why = (f"{best.tiers} is the cheapest setting in RAM ({best.ram_bytes_per_vector} B/vector, "
           f"{best.disk_reads_per_query} disk reads/query) that keeps {best.quality:.2%} of "
           f"float32 quality (at least {best.lower_bound(z):.2%} at 95% confidence, target "
           f"{target:.1%})")
    if cheaper:
        runner = max(cheaper, key=lambda s: s.quality)
        why += (f"; the best cheaper one, {runner.tiers} ({runner.ram_bytes_per_vector} "
                f"B/vector), keeps {runner.quality:.2%} (at least {runner.lower_bound(z):.2%})")
    return best, why


def _check_budget(chains: list[str], dim: int, budget: float, config: PlanConfig,
                  n: int) -> None:
    sizes = sorted((Chain.parse(c).ram_bytes_per_vector(dim), c) for c in chains)
    smallest, spec = sizes[0]
    if smallest > budget:
        need = smallest * n
        raise BudgetTooSmall(
            f"a RAM budget of {format_bytes(config.ram_budget or 0)} for {n:,} vectors is "
            f"{budget:.1f} bytes per vector, below the smallest setting tiervec offers for "
            f"{dim}-d vectors: {smallest} bytes/vector ({spec}). Raise the budget to at least "
            f"{format_bytes(need)}, or plan for fewer vectors"
        )


def _check_full_precision(collection: Searchable) -> None:
    if not collection.stats().full_precision:
        raise PlanError(
            f"the collection {collection!r} has no full-precision vectors for some of its "
            "segments: the planner measures every setting against "
            "exact float32 search and re-compresses from those vectors. Re-index the corpus "
            "into a new collection (tiervec index) and plan on that"
        )
    if len(collection) == 0:
        raise PlanError("the collection is empty; index a corpus before planning")


def _is_exact(spec: str) -> bool:
    chain = Chain.parse(spec)
    return len(chain.tiers) == 1 and chain.tiers[0].location is Location.RAM


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_COUNTS = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_size(text: str | int) -> int:
    """Bytes from ``"4GiB"``, ``"500MB"``, ``"1.5e9"`` or an int."""
    return _parse(text, _UNITS, "a size such as 4GiB, 512MiB, 2GB or 1000000")


def parse_count(text: str | int) -> int:
    """A count from ``"50M"``, ``"1.5B"``, ``"100k"`` or an int."""
    return _parse(text, _COUNTS, "a count such as 50M, 1.5B, 100k or 1000000")


def _parse(text: str | int, units: dict[str, int], example: str) -> int:
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
    if not match or match[2] not in units:
        raise PlanError(f"cannot read {text!r}: write {example}")
    return int(float(match[1]) * units[match[2]])


def format_bytes(n: float) -> str:
    """``4294967296`` -> ``"4.0 GiB"``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
