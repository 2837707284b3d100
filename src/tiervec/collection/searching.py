"""The searcher: every query of a collection runs here, over one snapshot of its reader.

:meth:`Searcher.run` is the one search path: the query prepared (texts encoded, vectors
checked), offered to the recall sample, then searched over the latest committed state with
the readers' retry rule (:meth:`Searcher.search_latest`). :meth:`Searcher.search` is that
search over a given snapshot and pipeline, which :class:`~tiervec.collection.views.TieredView`
uses for other chains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tiervec.collection.chunks import evidence
from tiervec.collection.defaults import SearchDefaults
from tiervec.collection.measured import RecallRecord
from tiervec.collection.prepare import prepare_query
from tiervec.collection.reading import SnapshotReader
from tiervec.collection.snapshot import Snapshot
from tiervec.filters import Filter
from tiervec.lexical import TermStats
from tiervec.search import (
    FilterPlan,
    FilterStrategy,
    Pipeline,
    Query,
    SearchMode,
    SearchOptions,
    SearchResult,
)
from tiervec.search.cutoff import cut
from tiervec.search.hybrid import mode_pipeline
from tiervec.search.maxsim import MaxSimRescorer
from tiervec.search.recall import tuned_options
from tiervec.search.stages import ChunkCollapse


class Searcher:
    """Queries over ``reader``'s snapshots, with the measured setting of ``recall``."""

    #: How often a reader searches again when a writer's compaction raced it (see
    #: :meth:`search_latest`).
    READER_RETRIES = 3

    def __init__(self, reader: SnapshotReader, recall: RecallRecord) -> None:
        self.reader = reader
        self.recall = recall

    def defaults(self) -> SearchDefaults:
        """The fusion and calibrations the collection keeps."""
        return SearchDefaults(self.reader.manifest.search, str(self.reader.path))

    def run(self, query: Query) -> SearchResult:
        query = self.prepare(query)
        self.recall.offer(query)
        return self.search_latest(query)

    def search_latest(self, query: Query) -> SearchResult:
        """``query`` (prepared) over the latest committed state: the readers' contract with a
        writer in another process. A reader adopts the newest manifest, then searches under
        the read lock; a compaction committed in between may have removed the segment files
        of the snapshot just adopted (``FileNotFoundError``) or purged rows whose ids are gone
        (an empty id at a found row): the reader adopts the newer state and searches again,
        up to :attr:`READER_RETRIES` times. A writer's own snapshot never goes stale."""
        reader = self.reader
        for attempt in range(self.READER_RETRIES):
            last = attempt == self.READER_RETRIES - 1
            reader.refresh()
            try:
                with reader.rw.read():
                    result, rows = self.search(query, reader.snap, reader.pipeline())
            except FileNotFoundError:
                if not reader.read_only or last:
                    raise
                continue
            if last or not np.any((result.ids == "") & (rows >= 0)):
                return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def prepare(self, query: Query) -> Query:
        """``query`` with checked query vectors, its texts encoded where it has none and its
        mode needs them; a lexical or hybrid query is checked against the lexical index."""
        if query.min_relevance is not None:
            self.defaults().relevance_model(query)  # fail before encoding
        reader = self.reader
        manifest = reader.manifest
        return prepare_query(
            query, where=str(reader.path), dim=reader.dim, lexical=manifest.lexical is not None,
            multivector=manifest.multivector is not None, encoder=lambda: reader.encoder,
            muvera=reader.muvera, encode_queries=self.encode_queries)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.reader.encoder.encode_queries(list(texts))

    def search(
        self, query: Query, snap: Snapshot, pipeline: Pipeline
    ) -> tuple[SearchResult, np.ndarray]:
        """``query`` (prepared) over ``snap``, its dense side through ``pipeline``; also the
        rows found."""
        reader, defaults = self.reader, self.defaults()
        allowed = reader.allowed(query.filter, snap)
        if pipeline is reader.built:  # the chain as stored: its measured setting applies
            query = replace(query, options=tuned_options(query.options, self.recall.recall(),
                                                         pipeline.oversample))
        model = None if query.min_relevance is None else defaults.relevance_model(query)
        lexical = reader.lexical_for(snap) if query.mode.needs_texts else None
        chunking = snap.manifest.chunking_config()
        if chunking is not None and query.mode.needs_vectors:
            aggregate = query.options.aggregate or chunking.aggregate
            assert snap.owners is not None
            pipeline = replace(pipeline, collapse=ChunkCollapse(snap.owners, aggregate))
        mv = snap.manifest.multivector_config()
        if mv is not None and query.mode.needs_vectors:
            depth = query.options.candidates or mv.candidates
            pipeline = replace(pipeline, rerank=MaxSimRescorer(reader.token_store(snap)),
                               rerank_depth=depth)
        mode = SearchMode.DENSE if query.mode is SearchMode.MULTIVECTOR else query.mode
        fusion = defaults.fusion_for(query)
        if mode is SearchMode.HYBRID and fusion.coverage:
            fusion = fusion.for_coverage(reader.read_share(snap))
        stages = mode_pipeline(mode, pipeline, lexical, snap.documents_alive, fusion)
        inner = query if model is None else query.with_k(max(query.k, model.depth))
        candidates, _ = stages.run(inner, allowed, reader.filter_policy)
        scores, rows = candidates.scores, candidates.rows
        if model is not None:
            assert query.min_relevance is not None
            scores, rows = cut(scores, rows, model.probabilities(scores), query.min_relevance)
            scores, rows = scores[:, : query.k], rows[:, : query.k]
        ids = snap.ids(reader.docs, rows)
        spans = None
        if chunking is not None:
            spans = evidence(reader.files, snap, query.vectors, rows, candidates.parts)
        return SearchResult(ids=ids, scores=scores, spans=spans), rows

    def lexical_stats(self, texts: Sequence[str]) -> TermStats:
        reader = self.reader
        reader.refresh()
        with reader.rw.read():
            snap = reader.snap
            return reader.lexical_for(snap).term_stats(texts, snap.documents_alive,
                                                       reader.window())

    def explain(self, filter: Filter, options: SearchOptions) -> FilterPlan:
        reader = self.reader
        reader.refresh()
        with reader.rw.read():
            snap, count = reader.snap, reader.manifest.count
            mask = reader.allowed(filter, snap)
            n = count if mask is None else int(np.count_nonzero(mask))
            strategy = reader.pipeline().strategy(n, reader.filter_policy) if count else \
                FilterStrategy.SCAN
            if snap.heads is not None:  # a chunked collection: documents, not chunks
                count = snap.documents
                n = count if mask is None else int(np.count_nonzero(mask & snap.heads))
        plan = FilterPlan(matches=n, share=n / count if count else 0.0, strategy=strategy)
        return self.recall.with_recall(plan, options)
