"""Keeping a collection's recall target as it grows: the chain measured on the collection's
own vectors (see :mod:`tiervec.search.recall`), again whenever it has grown or shrunk by half
or been compacted, in a background thread of the writer (writes and searches go on).

The measurement is kept beside the collection (``recall.json``, a cache: lost, it is measured
again) and searches through the stored chain use its setting unless a request sets its own.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from tiervec.collection.writing import Writing
from tiervec.search import Chain, Query, SearchOptions
from tiervec.search.recall import (
    MIN_SEEN,
    QUERIES,
    Knobs,
    QuerySample,
    RecallMeasure,
    RecallTarget,
    measure,
)
from tiervec.store import writes
from tiervec.store.layout import RECALL
from tiervec.store.writes import WriteStats

log = logging.getLogger(__name__)

#: Collections smaller than this are measured only when asked (:meth:`measure_recall`).
AUTO_MIN_ROWS = 1_000
#: A background measurement waits for writes to pause this long (a bulk ingest is measured
#: once, at its end), but not longer than ``MAX_WAIT`` seconds.
QUIET = 2.0
MAX_WAIT = 120.0


class Tuning(Writing):
    """The recall target: set, measured (by itself or when asked), waited for."""

    _recall_thread: threading.Thread | None = None
    _recall_stop: threading.Event | None = None
    _last_commit: float = 0.0
    _sample: QuerySample | None = None
    _sample_saved: int = 0
    #: Whether searches add their query vectors to the sample recall is measured on (kept in
    #: ``queries.npy`` beside the collection); ``False`` keeps none (made-up queries are used).
    keep_query_sample: bool = True

    def _start_tuning(self) -> None:
        """A writer just opened: a measurement due waits for writes to pause, as after a
        commit (an ingest that starts right away is measured once it stops)."""
        self._last_commit = time.monotonic()
        self._recall_check()

    def set_recall_target(self, target: float | RecallTarget | None, *, k: int = 10) -> None:
        """Keep recall@``k`` against exact search at ``target`` or above (``None``: keep no
        target; searches use the chain's own oversampling). Measured again in the background."""
        self._require_writable()
        kept = target if isinstance(target, RecallTarget) or target is None else \
            RecallTarget(target=target, k=k)
        with self._write_mutex:
            search = {**self._manifest.search,
                      "recall_target": None if kept is None else kept.to_dict()}
            manifest = writes.commit_settings(self._files, self._manifest, search)
            with self._rw.write():
                self._manifest = manifest
                self._snap.manifest = manifest
        self._recall_check(force=True)

    def measure_recall(self, *, queries: int = QUERIES, seed: int = 0) -> RecallMeasure | None:
        """Measure the chain's recall now (in this thread) and keep the cheapest setting that
        meets the target; ``None`` where no target is kept or the collection is empty."""
        self._require_writable()
        return self._measure(queries, seed, lambda: False)

    def wait_for_recall(self, timeout: float | None = None) -> RecallMeasure | None:
        """Wait for a background measurement in flight (if any); the current measurement."""
        thread = self._recall_thread
        if thread is not None:
            thread.join(timeout)
        return self.recall()

    # -- writes that call for a new measurement -------------------------------------------------
    def _adopt(self, manifest: Any, appended: Any) -> None:
        super()._adopt(manifest, appended)
        self._last_commit = time.monotonic()
        self._recall_check()

    def compact(self, *, vacuum: bool = True) -> WriteStats:
        stats = super().compact(vacuum=vacuum)
        if stats.deleted:
            self._recall_check(force=True)
        return stats

    def set_tiers(self, tiers: str | Chain) -> None:
        super().set_tiers(tiers)
        self._recall_check(force=True)

    # -- the queries searched -------------------------------------------------------------------
    def _query_sample(self) -> QuerySample:
        with self._build_lock:  # searches in several threads: one sample
            if self._sample is None:
                kept = self._files.read_query_sample()
                if kept is not None and (kept.ndim != 2 or kept.shape[1] != self.dim):
                    kept = None
                self._sample = QuerySample(self.dim, vectors=kept,
                                           seen=0 if kept is None else len(kept))
                self._sample_saved = self._sample.seen
            return self._sample

    def _offer(self, query: Query) -> None:
        if self.read_only or not self.keep_query_sample or query.vectors is None or \
                not query.mode.needs_vectors:
            return
        sample = self._query_sample()
        before = sample.seen
        if sample.offer(query.vectors) >= MIN_SEEN > before:
            measured = self.recall()  # enough real queries: measure on them from now on
            if measured is not None and measured.source == "synthetic":
                self._recall_check(force=True)

    def _save_sample(self) -> None:
        sample = self._sample
        if sample is not None and sample.seen != self._sample_saved and self._lock is not None \
                and self._manifest.count >= AUTO_MIN_ROWS:  # kept where recall is measured
            self._files.write_query_sample(sample.snapshot())
            self._sample_saved = sample.seen

    # -- internals ------------------------------------------------------------------------------
    def _measure(self, queries: int, seed: int, stop: Any) -> RecallMeasure | None:
        target = self.recall_target
        with self._rw.read():
            pipeline, snap = self.pipeline(), self._snap
            full, count = self.vectors(), self._manifest.count
            chain = self._manifest.chain
        if target is None or count == 0 or snap.documents == 0:
            return None
        first = pipeline.first.scanner()
        indexed = pipeline.chain is not None and pipeline.chain.tiers[0].location.indexed
        visited = getattr(first, "visited", None) if indexed else None
        knobs = Knobs(oversample=len(pipeline.oversample) > 0, effort=visited is not None,
                      visited=visited or (lambda m, e: float(count)),
                      rest=tuple(pipeline.oversample[1:]))

        def search(q: np.ndarray, k: int, options: SearchOptions) -> np.ndarray:
            with self._rw.read():  # as a search does: writes wait for this batch only
                alive = self._snap.alive
                found, _ = self.pipeline().run(Query(vectors=q, k=k, options=options),
                                                    alive, self.filter_policy)
            rows = found.rows
            return np.where(rows < count, rows, -1)  # rows added since: not in the exact top

        seen = self._query_sample().snapshot()
        result = measure(search, full, snap.alive, knobs, target, chain, seen=seen,
                         queries=queries, seed=seed, stop=stop)
        if stop() or self._lock is None:
            return None
        self._files.write_side(RECALL, result.to_dict())
        self._save_sample()
        log.info("%s: recall@%d %.3f (target %.2f) with oversample %s, effort %s; measured with "
                 "%d %s queries on %d vectors in %.1f s", self.path, result.k, result.recall,
                 result.target, result.oversample, result.effort, result.queries,
                 result.source, result.rows, result.seconds)
        return self.recall()

    def _recall_due(self) -> bool:
        """Whether the collection outgrew (or never had) a measurement."""
        if self.read_only or self._lock is None or self.recall_target is None:
            return False
        rows = self._manifest.count
        current = self.recall()
        return rows >= AUTO_MIN_ROWS and (current is None or current.stale(rows))

    def _recall_check(self, force: bool = False) -> None:
        """Start a background measurement if the collection outgrew the last one."""
        if self.read_only or self._lock is None or self.recall_target is None:
            return
        if not force and not self._recall_due():
            return
        thread = self._recall_thread
        if thread is not None and thread.is_alive():
            return  # the one in flight; the next commit checks again
        stop = self._recall_stop = threading.Event()
        thread = threading.Thread(target=self._measure_quietly, args=(stop,), daemon=True,
                                  name=f"tiervec-recall-{self.path.name}")
        self._recall_thread = thread
        thread.start()

    def _measure_quietly(self, stop: threading.Event) -> None:
        """The background job: wait for writes to pause, measure, again while outgrown."""
        try:
            while True:
                began = time.monotonic()
                while not stop.is_set() and time.monotonic() - began < MAX_WAIT:
                    quiet = time.monotonic() - self._last_commit
                    if quiet >= QUIET:
                        break
                    stop.wait(QUIET - quiet)
                if stop.is_set() or self._measure(QUERIES, 0, stop.is_set) is None or \
                        not self._recall_due():
                    return
        except Exception as exc:  # a background job: a failure is logged, searches go on
            if not stop.is_set():
                log.warning("%s: measuring recall failed: %s", self.path, exc)

    def _stop_recall(self) -> None:
        """Stop a background measurement and wait for it, keep the query sample (before
        closing)."""
        if self._recall_stop is not None:
            self._recall_stop.set()
        thread = self._recall_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._recall_thread = None
        try:
            self._save_sample()
        except OSError as exc:  # a cache: losing it only means measuring on made-up queries
            log.warning("%s: could not keep the query sample: %s", self.path, exc)
