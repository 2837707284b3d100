"""What a collection's reads know of its recall target: the kept target, the last measurement
(``recall.json``, re-read when it changes), what stats and ``explain`` show of it. Measuring
is the writer's (:mod:`tiervec.collection.tuning`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tiervec.collection.reading import SnapshotReader
from tiervec.search import FilterPlan, Query, SearchOptions
from tiervec.search.recall import RecallMeasure, RecallTarget, tuned_options
from tiervec.store.layout import RECALL


class RecallRecord:
    """The recall target and its last measurement, as reads see them."""

    def __init__(self, reader: SnapshotReader) -> None:
        self.reader = reader
        self._cache: tuple[int | None, RecallMeasure | None] | None = None

    def recall(self) -> RecallMeasure | None:
        """The last recall measurement of the collection's chain (``None``: not measured yet;
        see :meth:`~tiervec.Collection.measure_recall`)."""
        files = self.reader.files
        stamp = files.side_stamp(RECALL)
        cached = self._cache
        if cached is None or cached[0] != stamp:
            data = files.read_side(RECALL) if stamp is not None else None
            measure = None
            try:
                measure = RecallMeasure.from_dict(data) if data else None
            except (TypeError, ValueError, KeyError):
                measure = None  # from another version: measured again
            cached = self._cache = (stamp, measure)
        measure = cached[1]
        return measure if measure is not None and measure.chain == self.reader.manifest.chain \
            and self.recall_target is not None else None

    @property
    def recall_target(self) -> RecallTarget | None:
        """The recall@k against exact search the collection keeps (``None``: none kept, the
        chain's own oversampling is used as written)."""
        search = self.reader.manifest.search
        if "recall_target" not in search:
            return RecallTarget()
        stored = search["recall_target"]
        return None if stored is None else RecallTarget.from_dict(stored)

    def offer(self, query: Query) -> None:
        """A prepared query's vectors, for the sample recall is measured on (a writer's; see
        :mod:`tiervec.collection.tuning`)."""

    def with_recall(self, plan: FilterPlan, options: SearchOptions) -> FilterPlan:
        """``plan`` with the setting a search would run with and its measured recall."""
        measure = self.recall()
        if measure is None:
            return plan
        factors = list(self.reader.pipeline().oversample)
        tuned = tuned_options(options, measure, factors)
        first = tuned.factors(factors)[0] if factors else None
        return replace(plan, recall=measure.estimate(first, tuned.effort), oversample=first,
                       effort=tuned.effort)

    def summary(self) -> dict[str, Any] | None:
        target = self.recall_target
        if target is None:
            return None
        measure = self.recall()
        if measure is None:
            return {**target.to_dict(), "recall": None, "measured_at": None}
        return measure.summary()
