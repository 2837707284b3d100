"""Running a chain: the first tier scans every code, each later tier rescores candidates.

Results are internal rows; :class:`tiervec.Collection` turns them into user ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from tiervec.codecs._faiss import inner_products_by_rows
from tiervec.codecs.base import BlockScanner, Codec, Scanner, empty_top, top_m
from tiervec.search.filtered import FilterPolicy, exact_allowed, overfetch, strategy_for
from tiervec.search.spec import Chain, Location, Tier


class CodeSource:
    """One codec's codes over every segment: in-RAM arrays or read-only memory maps.

    :meth:`take` reads only the rows asked for, in ascending row order (sequential-ish reads on a
    memory-mapped file), and returns them in the order asked.
    """

    def __init__(self, arrays: Sequence[np.ndarray] = ()) -> None:
        self.arrays: list[np.ndarray] = []
        self.starts: list[int] = []
        for array in arrays:
            self.append(array)

    def __len__(self) -> int:
        return self.starts[-1] + len(self.arrays[-1]) if self.arrays else 0

    def append(self, array: np.ndarray) -> None:
        """Add the codes of the next segment (rows ``len(self) ..``)."""
        self.starts.append(len(self))
        self.arrays.append(array)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Codes for ``rows`` (any shape, ``-1`` allowed: zeros): ``rows.shape + (width,)``."""
        first = self.arrays[0]
        flat = rows.ravel()
        valid = flat >= 0
        all_valid = bool(valid.all())
        unique, inverse = np.unique(flat if all_valid else flat[valid], return_inverse=True)
        if len(self.arrays) == 1:
            gathered = np.take(first, unique, axis=0)
        else:
            gathered = np.empty((len(unique), *first.shape[1:]), first.dtype)
            segment = np.searchsorted(self.starts, unique, side="right") - 1
            bounds = np.searchsorted(segment, np.arange(len(self.arrays) + 1))
            for s, (lo, hi) in enumerate(pairwise(bounds)):
                if hi > lo:
                    np.take(self.arrays[s], unique[lo:hi] - self.starts[s], axis=0,
                            out=gathered[lo:hi])
        if all_valid:
            out = np.take(gathered, inverse, axis=0)
        else:
            out = np.zeros((len(flat), *first.shape[1:]), first.dtype)
            out[valid] = gathered[inverse]
        return out.reshape(*rows.shape, *first.shape[1:])


@dataclass
class TierRuntime:
    """A tier ready to search: its fitted codec and its codes (a scanner for a first tier)."""

    tier: Tier
    codec: Codec
    source: CodeSource
    scanner: Scanner | None = None
    #: A RAM tier whose scanner scans subsets keeps its memory-mapped codes (no RAM) to read them.
    keeps_codes: bool = False

    def append(self, codes: np.ndarray) -> None:
        """Add a new segment's codes (memory-mapped ones are read into RAM where the tier's
        scanner would otherwise keep them on disk)."""
        if self.scanner is not None:
            self.scanner.add(self._resident(codes))
            if self.keeps_codes:  # memory-mapped copies kept for subset scans
                self.source.append(codes)
        else:
            self.source.append(codes)

    def _resident(self, codes: np.ndarray) -> np.ndarray:
        if self.tier.location is Location.DISK or getattr(self.scanner, "scans_subsets", False):
            return codes
        return np.array(codes) if isinstance(codes, np.memmap) else codes

    def build_scanner(self, full: CodeSource | None = None) -> None:
        """Make this tier scannable. RAM codes move into the codec's scanner (no second copy);
        disk codes are scanned block by block through their memory maps. An ANN index fits
        on ``full``, the full-precision vectors of the same rows, where given."""
        if self.scanner is not None:
            return
        if self.tier.location.indexed:
            from tiervec.index import HNSWScanner, IVFScanner

            kind = HNSWScanner if self.tier.location is Location.HNSW else IVFScanner
            index = kind(self.codec)
            if full is not None and len(full) and len(full) == len(self.source):
                index.fit(full)
            scanner: Scanner = index
        elif self.tier.location is Location.RAM:
            scanner = self.codec.scanner()
        else:
            scanner = BlockScanner(self.codec)
        self.scanner = scanner
        for array in self.source.arrays:
            scanner.add(self._resident(array))
        mapped = all(isinstance(a, np.memmap) for a in self.source.arrays)
        self.keeps_codes = self.tier.location is not Location.DISK and mapped and getattr(
            scanner, "scans_subsets", False)
        if self.tier.location is not Location.DISK and not self.keeps_codes:
            self.source = CodeSource()  # RAM copies: the scanner holds the only one


class Searcher:
    """Runs a chain over tiers that share one row numbering.

    ``full`` holds the full-precision vectors (exact search of a small allowed set).
    """

    def __init__(
        self, chain: Chain, tiers: Sequence[TierRuntime], count: int,
        full: CodeSource | None = None,
    ) -> None:
        self.chain = chain
        self.tiers = list(tiers)
        self.count = count
        self.full = full if full is not None else CodeSource()

    def append(
        self, codes_by_tier: Sequence[np.ndarray], rows: int, vectors: np.ndarray | None = None
    ) -> None:
        """Add a segment: ``codes_by_tier[i]`` are tier ``i``'s codes for ``rows`` new vectors
        (``vectors``: their full-precision vectors, memory-mapped)."""
        for tier, codes in zip(self.tiers, codes_by_tier, strict=True):
            tier.append(codes)
        if vectors is not None:
            self.full.append(vectors)
        self.count += rows

    def build_first(self) -> None:
        """Make the first tier scannable (an ANN index fits on the full-precision vectors)."""
        self.tiers[0].build_scanner(self.full)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        policy: FilterPolicy | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ``(scores, rows)``, each ``(n_queries, k)``; ``-inf``/``-1`` pad short lists.

        Tier ``i`` passes ``k * oversample_i`` candidates to tier ``i + 1``, which rescores them
        with its own codes; the scores returned are the last tier's. ``allowed`` (a boolean mask
        over the rows) restricts the results to those rows (:mod:`tiervec.search.filtered`).
        """
        return self.search_allowed(queries, k, allowed, policy)[:2]

    def strategy(self, n_allowed: int, policy: FilterPolicy | None = None) -> str:
        """How a search restricted to ``n_allowed`` rows runs (see
        :mod:`tiervec.search.filtered`): ``scan``/``graph`` when nothing is excluded."""
        policy = policy or FilterPolicy()
        graph = self.chain.tiers[0].location.indexed
        if n_allowed >= self.count:
            return "graph" if graph else "scan"
        if n_allowed == 0 or (
                n_allowed <= min(policy.exact_max, policy.subset_min) and len(self.full)):
            return "exact"  # whatever the first tier can do: no need to build its index
        first = self.tiers[0]
        self.build_first()
        cheap = getattr(first.scanner, "masks_cheaply", False)
        subset = getattr(first.scanner, "scans_subsets", False) and len(first.source) > 0
        return strategy_for(n_allowed, self.count, policy, graph, cheap, subset,
                            has_exact=len(self.full) > 0)

    def search_allowed(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        policy: FilterPolicy | None = None,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """:meth:`search` that also says which strategy ran (``"scan"`` when unrestricted)."""
        policy = policy or FilterPolicy()
        if self.count == 0 or len(queries) == 0:
            return (*empty_top(len(queries), k), "scan")
        n_allowed = self.count if allowed is None else int(np.count_nonzero(allowed))
        strategy = self.strategy(n_allowed, policy)
        if n_allowed == 0:
            return (*empty_top(len(queries), k), strategy)
        if strategy == "exact":
            assert allowed is not None
            scores, rows = exact_allowed(self.full, queries, k, np.flatnonzero(allowed))
            return scores, rows, strategy
        counts = self.chain.candidates(k)
        self.build_first()
        scanner = self.tiers[0].scanner
        assert scanner is not None
        if strategy == "subset":
            assert allowed is not None
            scores, rows = scanner.search_subset(  # type: ignore[attr-defined]
                queries, counts[0], np.flatnonzero(allowed), self.tiers[0].source)
        elif strategy == "bitmap":
            scores, rows = scanner.search_masked(queries, counts[0], allowed)  # type: ignore[attr-defined]
        elif strategy == "scan":
            scores, rows = scanner.search(queries, min(counts[0], self.count))
        elif strategy == "graph":  # the bitmap is applied inside the graph traversal
            mask = None if n_allowed == self.count else allowed
            scores, rows = scanner.search(queries, counts[0], mask)  # type: ignore[call-arg]
        else:
            assert allowed is not None
            scores, rows = overfetch(scanner.search, queries, counts[0], allowed, n_allowed,
                                     policy)
        for tier, m in zip(self.tiers[1:], counts[1:], strict=True):
            scores, rows = _rescore(tier, queries, rows, m)
        if scores.shape[1] < k:
            pad = k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return scores[:, :k].astype(np.float32), rows[:, :k].astype(np.int64), strategy


#: Candidate codes gathered per block of queries when rescoring (keeps the working set small).
RESCORE_BLOCK_BYTES = 16 << 20
#: Rescore by one matrix product over the distinct candidate rows when there are at most this
#: many per candidate of a query: BLAS scores ~65x more pairs than gathering codes per query
#: scores in the same time (measured on 2 cores, 384 dims), so 32 keeps a 2x margin.
DENSE_RATIO = 32
#: ... and at least this many queries (a matrix product of few queries is memory-bound).
DENSE_MIN_QUERIES = 16


def _rescore(
    tier: TierRuntime, queries: np.ndarray, rows: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rescore candidate ``rows`` ``(nq, c)`` with ``tier``'s codes; keep the best ``m``.

    float32 vectors are scored in place (:func:`vector_scores`). Other codes are gathered per
    query, or, when the batch's candidates can only cover few distinct rows (a small
    collection, many queries), every distinct row is scored against the queries in one matrix
    product."""
    nq, c = rows.shape
    out = np.empty((nq, min(m, c)), np.float32), np.empty((nq, min(m, c)), np.int64)
    if tier.codec.codes_are_vectors:
        _keep_best(vector_scores(queries, rows, tier.source), rows, m, out, 0)
        return out
    dense = (tier.codec.scores_by_matrix_product and nq >= DENSE_MIN_QUERIES
             and len(tier.source) <= DENSE_RATIO * c)
    if dense:
        valid = rows >= 0
        unique, inverse = np.unique(rows[valid], return_inverse=True)
        codes = tier.source.take(unique)
        cols = np.zeros(rows.shape, np.int64)
        cols[valid] = inverse
        block = max(1, RESCORE_BLOCK_BYTES // max(4 * len(unique), 1))
    else:
        block = max(1, RESCORE_BLOCK_BYTES // max(c * tier.codec.bytes_per_vector, 1))
    for start in range(0, nq, block):
        part, q = rows[start : start + block], queries[start : start + block]
        if dense:
            scores = np.take_along_axis(tier.codec.score(q, codes), cols[start : start + block], 1)
        else:
            scores = tier.codec.score_candidates(q, tier.source.take(part))
        scores[part < 0] = -np.inf
        _keep_best(scores, part, m, out, start)
    return out


def _keep_best(
    scores: np.ndarray, rows: np.ndarray, m: int, out: tuple[np.ndarray, np.ndarray], start: int
) -> None:
    """Write the best ``m`` of ``rows`` by ``scores`` into ``out``'s rows from ``start``."""
    best, picked = top_m(scores, m)
    stop = start + len(rows)
    out[0][start:stop] = best[:, : out[0].shape[1]]
    found = np.take_along_axis(rows, np.maximum(picked, 0), 1)
    out[1][start:stop] = np.where(picked >= 0, found, -1)[:, : out[1].shape[1]]


def vector_scores(queries: np.ndarray, rows: np.ndarray, source: CodeSource) -> np.ndarray:
    """Inner products of ``queries`` ``(nq, d)`` with the float32 vectors of ``rows``
    ``(nq, c)`` held by ``source`` (``-inf`` where ``rows < 0``), read in place segment by
    segment."""
    if len(source.arrays) == 1:
        return inner_products_by_rows(queries, source.arrays[0], rows)
    segment = np.searchsorted(source.starts, rows, side="right") - 1
    local = rows - np.asarray(source.starts)[segment]
    out = np.full(rows.shape, -np.inf, np.float32)
    for s, array in enumerate(source.arrays):
        inside = segment == s
        if inside.any():  # rows of other segments are -1: scored -inf, skipped by FAISS
            np.maximum(out, inner_products_by_rows(queries, array, np.where(inside, local, -1)),
                       out=out)
    return out
