"""BM25 over the segments of a snapshot, with statistics of the live documents only.

Scores are Lucene's BM25: for each query term ``t`` (counted as often as the query repeats it)
in document ``d``::

    idf(t) * tf / (tf + k1 * (1 - b + b * len(d) / avg_len))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

``N``, ``avg_len`` and ``df`` count the documents the snapshot holds (its live mask), so after
any sequence of writes the scores are those of an index built afresh over the live documents.
``N`` and ``avg_len`` are computed once per live mask; ``df`` per query from the postings it
reads anyway. Documents that match no query term are not results.

A sharded collection scores each shard with the statistics of all of them
(:class:`TermStats`, summed over the shards for the query's terms), so its BM25 scores equal
one collection's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tiervec.lexical.analyze import Analyzer, LexicalConfig
from tiervec.lexical.postings import Postings

#: Below this many documents (or when the postings read are many), scores are summed in a dense
#: array rather than by sorting the postings' positions.
_DENSE = 1 << 20
#: Word pieces per BM25 term (what the analyzer keeps of a text: no stop words, no
#: punctuation), to turn the term counts BM25 keeps into what a model reads; measured 1.5 to
#: 2.1 on SciFact, NFCorpus, QMSum and the LIMIT-style set with all-MiniLM-L6-v2's tokenizer.
TOKENS_PER_TERM = 2.0


@dataclass(frozen=True)
class TermStats:
    """BM25's statistics over some documents: how many are live, their total length, and the
    document frequency of some terms (by hash; a term not listed occurs in none). Those of
    several shards add up to the whole collection's."""

    documents: int = 0
    length: float = 0.0
    df: Mapping[int, int] = field(default_factory=dict)
    #: The documents' read shares summed (see :meth:`LexicalIndex.read_share`), where asked.
    read: float = 0.0

    def __add__(self, other: TermStats) -> TermStats:
        df = dict(self.df)
        for term, n in other.df.items():
            df[term] = df.get(term, 0) + n
        return TermStats(self.documents + other.documents, self.length + other.length, df,
                         self.read + other.read)

    @property
    def read_share(self) -> float:
        """The mean read share of the documents (1 when none were counted)."""
        return self.read / self.documents if self.documents and self.read else 1.0

    def frequencies(self, hashes: np.ndarray) -> np.ndarray:
        """The document frequencies of ``hashes`` (float64)."""
        return np.array([self.df.get(int(h), 0) for h in hashes], dtype=np.float64)


class LexicalIndex:
    """The postings of every segment of a snapshot, in position order, searched with BM25."""

    def __init__(self, config: LexicalConfig, segments: Sequence[Postings] = ()) -> None:
        self.config = config
        self.analyzer = Analyzer(config)
        self.segments: list[Postings] = []
        self.starts: list[int] = []
        self.count = 0
        self._stats: tuple[object, int, float] | None = None
        self._read: tuple[object, int, float] | None = None
        for postings in segments:
            self.append(postings)

    def append(self, postings: Postings) -> None:
        """Add the next segment (positions ``count ..``)."""
        self.segments.append(postings)
        self.starts.append(self.count)
        self.count += postings.n_docs
        self._stats = self._read = None

    def live_stats(self, alive: np.ndarray | None) -> tuple[int, float]:
        """``(N, total length)`` of the live documents (cached for the same mask)."""
        cached = self._stats
        if cached is not None and cached[0] is alive:  # appending a segment clears it
            return cached[1], cached[2]
        n, total = 0, 0.0
        for postings, start in zip(self.segments, self.starts, strict=True):
            lengths = np.asarray(postings.lengths)
            if alive is None:
                n, total = n + len(lengths), total + float(lengths.sum(dtype=np.float64))
            else:
                live = alive[start : start + len(lengths)]
                n += int(np.count_nonzero(live))
                total += float(lengths.sum(where=live, dtype=np.float64))
        self._stats = (alive, n, total)
        return n, total

    def read_share(self, window: int | None, alive: np.ndarray | None) -> float:
        """The sum over the ``alive`` documents of the share of each a model with a
        ``window`` of word pieces reads: ``min(1, window / (TOKENS_PER_TERM * terms))``, from
        the document lengths BM25 keeps (``0`` where ``window`` is unknown)."""
        if window is None:
            return 0.0
        cached = self._read
        if cached is not None and cached[0] is alive and cached[1] == window:
            return cached[2]
        total = 0.0
        for postings, start in zip(self.segments, self.starts, strict=True):
            lengths = np.maximum(np.asarray(postings.lengths, dtype=np.float64), 1.0)
            shares = np.minimum(1.0, window / (TOKENS_PER_TERM * lengths))
            live = None if alive is None else alive[start : start + len(lengths)]
            total += float(shares.sum() if live is None else shares.sum(where=live))
        self._read = (alive, window, total)
        return total

    def term_stats(self, texts: Sequence[str], alive: np.ndarray | None,
                   window: int | None = None) -> TermStats:
        """The statistics of the ``alive`` documents for the terms of ``texts`` (with their
        read share for a model of ``window`` word pieces, where given)."""
        n_live, total = self.live_stats(alive)
        read = self.read_share(window, alive)
        terms = [h for text in texts for h in self.analyzer.hashes(text)]
        if not terms:
            return TermStats(n_live, total, read=read)
        hashes = np.unique(np.array(terms, dtype=np.uint64))
        positions, _, _, term = self._postings(hashes)
        if alive is not None and len(positions):
            term = term[alive[positions]]
        df = np.bincount(term, minlength=len(hashes))
        return TermStats(n_live, total, {int(h): int(n) for h, n in zip(hashes, df, strict=True)
                                         if n}, read)

    def search(
        self, texts: Sequence[str], m: int, allowed: np.ndarray | None = None,
        alive: np.ndarray | None = None, stats: TermStats | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` positions per text among the ``allowed`` ones (a boolean mask; ``None``:
        all), scored with the statistics of the ``alive`` documents (or ``stats``, a whole
        sharded collection's): ``(scores, positions)``, each ``(len(texts), m)``, float32 /
        int64, ``-inf`` / ``-1`` padding lists shorter than ``m`` (only documents matching a
        term are listed; equal scores by position, also at the cut)."""
        scores = np.full((len(texts), m), -np.inf, dtype=np.float32)
        rows = np.full((len(texts), m), -1, dtype=np.int64)
        n_live, total = self.live_stats(alive) if stats is None else (stats.documents,
                                                                        stats.length)
        if not n_live or m == 0:
            return scores, rows
        avg_len = total / n_live
        for i, text in enumerate(texts):
            found, weights = _top(*self.score(text, allowed, alive, n_live, avg_len, stats), m)
            scores[i, : len(found)], rows[i, : len(found)] = weights, found
        return scores, rows

    def score(
        self, text: str, allowed: np.ndarray | None, alive: np.ndarray | None, n_live: int,
        avg_len: float, stats: TermStats | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The positions matching ``text`` among ``allowed`` and their BM25 scores (document
        frequencies from ``stats`` when given, else counted here)."""
        terms = self.analyzer.hashes(text)
        if not terms:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        hashes, query_tf = np.unique(np.array(terms, dtype=np.uint64), return_counts=True)
        positions, tf, lengths, term = self._postings(hashes)
        if alive is not None and len(positions):
            live = alive[positions]
            positions, tf, lengths, term = positions[live], tf[live], lengths[live], term[live]
        df = np.bincount(term, minlength=len(hashes)).astype(np.float64) if stats is None \
            else stats.frequencies(hashes)
        idf = np.log1p((n_live - df + 0.5) / (df + 0.5)) * query_tf
        k1, b = self.config.k1, self.config.b
        weights = idf[term] * tf / (tf + k1 * (1.0 - b + b * lengths / avg_len))
        if allowed is not None and len(positions):
            keep = allowed[positions]
            positions, weights = positions[keep], weights[keep]
        if self.count <= _DENSE or len(positions) * 4 >= self.count:
            dense = np.bincount(positions, weights=weights, minlength=self.count)
            found = np.flatnonzero(dense)
            return found, dense[found]
        found, inverse = np.unique(positions, return_inverse=True)
        return found, np.bincount(inverse, weights=weights, minlength=len(found))

    def _postings(
        self, hashes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every posting of the query terms ``hashes``: positions, tf, document lengths (all
        float64 but positions) and the index of the query term."""
        positions, tfs, lengths, terms = [], [], [], []
        for postings, start in zip(self.segments, self.starts, strict=True):
            found, at = postings.lookup(hashes)
            which = np.flatnonzero(found)
            if not len(which):
                continue
            lo, hi = postings.ptr[at[which]], postings.ptr[at[which] + 1]
            sizes = hi - lo
            # the postings of every query term at once: ranges lo..hi concatenated
            index = np.arange(int(sizes.sum())) + np.repeat(lo - np.cumsum(sizes) + sizes, sizes)
            docs = postings.docs[index]
            positions.append(docs + np.int64(start))
            tfs.append(postings.tf[index])
            lengths.append(postings.lengths[docs])
            terms.append(np.repeat(which, sizes))
        if not positions:
            empty = np.empty(0, np.float64)
            return np.empty(0, np.int64), empty, empty, np.empty(0, np.int64)

        def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return (parts[0] if len(parts) == 1 else np.concatenate(parts)).astype(dtype)

        return (joined(positions, np.int64), joined(tfs, np.float64),
                joined(lengths, np.float64), joined(terms, np.int64))


def _top(found: np.ndarray, weights: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``m`` of ``found`` (ascending positions) by ``weights``, best first, equal
    weights by position, also where the cut falls among equal weights (the lowest positions
    stay): a list that does not depend on how the scores were laid out."""
    if len(found) > m:
        kth = np.partition(weights, len(weights) - m)[len(weights) - m]
        above = np.flatnonzero(weights > kth)
        tied = np.flatnonzero(weights == kth)[: m - len(above)]
        keep = np.concatenate([above, tied])
        found, weights = found[keep], weights[keep]
    order = np.lexsort((found, -weights))
    return found[order], weights[order]
