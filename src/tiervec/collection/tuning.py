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
from collections.abc import Callable
from typing import Any

import numpy as np

from tiervec.collection.measured import RecallRecord
from tiervec.collection.reading import SnapshotReader
from tiervec.search import Query, SearchOptions
from tiervec.search.recall import (
    MIN_SEEN,
    QUERIES,
    Knobs,
    QuerySample,
    RecallMeasure,
    measure,
)
from tiervec.store.layout import RECALL

log = logging.getLogger(__name__)

#: Collections smaller than this are measured only when asked (:meth:`measure_recall`).
AUTO_MIN_ROWS = 1_000
#: A background measurement waits for writes to pause this long (a bulk ingest is measured
#: once, at its end), but not longer than ``MAX_WAIT`` seconds.
QUIET = 2.0
MAX_WAIT = 120.0


class RecallTuner(RecallRecord):
    """The recall target kept as the collection grows: measured in a background thread when a
    write calls for it (:meth:`committed`, :meth:`changed`), or when asked."""

    def __init__(self, reader: SnapshotReader, writable: Callable[[], bool]) -> None:
        super().__init__(reader)
        #: whether this object may measure and keep measurements (an open writer)
        self._writable = writable
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._last_commit = time.monotonic()  # a writer just opened: wait as after a commit
        self._sample: QuerySample | None = None
        self._sample_saved = 0
        #: Whether searches add their query vectors to the sample recall is measured on
        #: (kept in ``queries.npy`` beside the collection); ``False`` keeps none.
        self.keep_query_sample = True

    def measure_now(self, queries: int = QUERIES, seed: int = 0) -> RecallMeasure | None:
        """Measure in this thread (see :meth:`tiervec.Collection.measure_recall`)."""
        return self._measure(queries, seed, lambda: False)

    def wait(self, timeout: float | None = None) -> RecallMeasure | None:
        """Wait for a background measurement in flight (if any); the current measurement."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.recall()

    # -- writes that call for a new measurement -------------------------------------------------
    def committed(self) -> None:
        """A write committed: measure once writes pause if the collection outgrew the last
        measurement (also called when a writer opens)."""
        self._last_commit = time.monotonic()
        self.check()

    def changed(self) -> None:
        """The chain, the target or the deletions changed: measure again."""
        self.check(force=True)

    def new_space(self) -> None:
        """The stored vectors moved to another model's space (an upgrade's switch): the
        searched queries kept are of the old space, dropped; measure again."""
        with self.reader.build_lock:
            self._sample, self._sample_saved = None, 0
            self.reader.files.remove_query_sample()
        self.check(force=True)

    # -- the queries searched -------------------------------------------------------------------
    def query_sample(self) -> QuerySample:
        with self.reader.build_lock:  # searches in several threads: one sample
            if self._sample is None:
                kept = self.reader.files.read_query_sample()
                if kept is not None and (kept.ndim != 2 or kept.shape[1] != self.reader.dim):
                    kept = None
                self._sample = QuerySample(self.reader.dim, vectors=kept,
                                           seen=0 if kept is None else len(kept))
                self._sample_saved = self._sample.seen
            return self._sample

    def offer(self, query: Query) -> None:
        if not self._writable() or not self.keep_query_sample or query.vectors is None or \
                not query.mode.needs_vectors:
            return
        sample = self.query_sample()
        before = sample.seen
        if sample.offer(query.vectors) >= MIN_SEEN > before:
            measured = self.recall()  # enough real queries: measure on them from now on
            if measured is not None and measured.source == "synthetic":
                self.check(force=True)

    def _save_sample(self) -> None:
        sample = self._sample
        if sample is not None and sample.seen != self._sample_saved and self._writable() \
                and self.reader.manifest.count >= AUTO_MIN_ROWS:  # kept where recall is measured
            self.reader.files.write_query_sample(sample.snapshot())
            self._sample_saved = sample.seen

    # -- internals ------------------------------------------------------------------------------
    def _measure(self, queries: int, seed: int, stop: Any) -> RecallMeasure | None:
        target = self.recall_target
        reader = self.reader
        with reader.rw.read():
            pipeline, snap = reader.pipeline(), reader.snap
            full, count = reader.vectors(), reader.manifest.count
            chain = reader.manifest.chain
        if target is None or count == 0 or snap.documents == 0:
            return None
        first = pipeline.first.scanner()
        indexed = pipeline.chain is not None and pipeline.chain.tiers[0].location.indexed
        visited = getattr(first, "visited", None) if indexed else None
        knobs = Knobs(oversample=len(pipeline.oversample) > 0, effort=visited is not None,
                      visited=visited or (lambda m, e: float(count)),
                      rest=tuple(pipeline.oversample[1:]))

        def search(q: np.ndarray, k: int, options: SearchOptions) -> np.ndarray:
            with reader.rw.read():  # as a search does: writes wait for this batch only
                found, _ = reader.pipeline().run(Query(vectors=q, k=k, options=options),
                                                 reader.snap.alive, reader.filter_policy)
            rows = found.rows
            return np.where(rows < count, rows, -1)  # rows added since: not in the exact top

        seen = self.query_sample().snapshot()
        result = measure(search, full, snap.alive, knobs, target, chain, seen=seen,
                         queries=queries, seed=seed, stop=stop)
        if stop() or not self._writable():
            return None
        reader.files.write_side(RECALL, result.to_dict())
        self._save_sample()
        log.info("%s: recall@%d %.3f (target %.2f) with oversample %s, effort %s; measured with "
                 "%d %s queries on %d vectors in %.1f s", reader.path, result.k, result.recall,
                 result.target, result.oversample, result.effort, result.queries,
                 result.source, result.rows, result.seconds)
        return self.recall()

    def _due(self) -> bool:
        """Whether the collection outgrew (or never had) a measurement."""
        if not self._writable() or self.recall_target is None:
            return False
        rows = self.reader.manifest.count
        current = self.recall()
        return rows >= AUTO_MIN_ROWS and (current is None or current.stale(rows))

    def check(self, force: bool = False) -> None:
        """Start a background measurement if the collection outgrew the last one (or
        ``force``), unless one is in flight."""
        if not self._writable() or self.recall_target is None:
            return
        if not force and not self._due():
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return  # the one in flight; the next commit checks again
        stop = self._stop = threading.Event()
        thread = threading.Thread(target=self._measure_quietly, args=(stop,), daemon=True,
                                  name=f"tiervec-recall-{self.reader.path.name}")
        self._thread = thread
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
                        not self._due():
                    return
        except Exception as exc:  # a background job: a failure is logged, searches go on
            if not stop.is_set():
                log.warning("%s: measuring recall failed: %s", self.reader.path, exc)

    def stop(self) -> None:
        """Stop a background measurement and wait for it, keep the query sample (before
        closing)."""
        if self._stop is not None:
            self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._thread = None
        try:
            self._save_sample()
        except OSError as exc:  # a cache: losing it only means measuring on made-up queries
            log.warning("%s: could not keep the query sample: %s", self.reader.path, exc)
