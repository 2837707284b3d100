"""One segment's inverted index: five arrays, written with the segment and never changed.

::

    terms    uint64 (n_terms,)      the terms' 64-bit hashes, sorted (no strings in memory)
    ptr      int64  (n_terms + 1,)  term i's postings are docs[ptr[i]:ptr[i + 1]]
    docs     int32  (n_postings,)   positions of documents inside the segment, ascending per term
    tf       uint32 (n_postings,)   how often the term occurs in that document
    lengths  uint32 (n_docs,)       each document's number of terms (BM25's length)

Deletions never touch these arrays: a deleted document stays in its segment's postings until a
compaction merges the segments (:func:`merge`), and the scorer leaves it out of every statistic
through the snapshot's live mask. A term is its BLAKE2b-64 hash; two distinct terms of one
collection collide with probability ~n_terms^2 / 2^65 (about 3e-8 for a million terms).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ARRAYS = ("terms", "ptr", "docs", "tf", "lengths")


def term_hashes(terms: Sequence[str]) -> np.ndarray:
    """The uint64 hash of each term (stable across processes and versions)."""
    digest = hashlib.blake2b
    return np.frombuffer(b"".join(digest(t.encode("utf-8", "surrogatepass"), digest_size=8)
                                  .digest() for t in terms), dtype="<u8").copy()


@dataclass(frozen=True)
class Postings:
    """The inverted index of one segment's documents (see the module docstring)."""

    terms: np.ndarray
    ptr: np.ndarray
    docs: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray

    @property
    def n_docs(self) -> int:
        return len(self.lengths)

    @classmethod
    def build(cls, term_lists: Sequence[Sequence[str]]) -> Postings:
        """The postings of documents given as their terms (in document order)."""
        vocab = list(dict.fromkeys(t for terms in term_lists for t in terms))
        hash_of = dict(zip(vocab, term_hashes(vocab).tolist(), strict=True))
        return cls.from_hashes([[hash_of[t] for t in terms] for terms in term_lists])

    @classmethod
    def from_hashes(cls, hash_lists: Sequence[Sequence[int]]) -> Postings:
        """The postings of documents given as their terms' hashes (:meth:`Analyzer.hashes`)."""
        lengths = np.fromiter((len(h) for h in hash_lists), dtype=np.uint32,
                              count=len(hash_lists))
        flat = np.fromiter((h for hashes in hash_lists for h in hashes), dtype=np.uint64,
                           count=int(lengths.sum()))
        docs = np.repeat(np.arange(len(hash_lists), dtype=np.int64), lengths)
        return cls.from_pairs(flat, docs, None, lengths)

    @classmethod
    def from_pairs(cls, hashes: np.ndarray, docs: np.ndarray, tf: np.ndarray | None,
                   lengths: np.ndarray) -> Postings:
        """Postings from ``(term hash, document)`` pairs in any order, each pair counting
        ``tf`` (default 1) occurrences; pairs may repeat."""
        n = max(len(lengths), 1)
        uniq, inverse = np.unique(hashes, return_inverse=True)
        key = inverse.astype(np.int64) * n + docs
        if tf is None:
            keys, counts = np.unique(key, return_counts=True)
        else:
            keys, first = np.unique(key, return_inverse=True)
            counts = np.bincount(first, weights=tf, minlength=len(keys))
        term_of = keys // n
        ptr = np.searchsorted(term_of, np.arange(len(uniq) + 1)).astype(np.int64)
        return cls(terms=uniq.astype(np.uint64), ptr=ptr, docs=(keys % n).astype(np.int32),
                   tf=counts.astype(np.uint32), lengths=np.asarray(lengths, dtype=np.uint32))

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each hash: whether the segment holds the term, and its index in ``terms``."""
        at = np.searchsorted(self.terms, hashes)
        inside = at < len(self.terms)
        found = inside.copy()
        found[inside] = self.terms[at[inside]] == hashes[inside]
        return found, at


def file_names(key: str) -> dict[str, str]:
    """Array name -> the file name a segment keeps it in, for postings saved under ``key``."""
    return {name: f"{key}.{name}.npy" for name in ARRAYS}


def merge(parts: Sequence[tuple[Postings, np.ndarray]]) -> Postings:
    """One segment's postings from ``(postings, kept)`` pairs: the documents at the sorted
    positions ``kept`` of each, in order (a compaction's new numbering)."""
    hashes, docs, tfs, lengths = [], [], [], []
    offset = 0
    for postings, kept in parts:
        renumber = np.full(postings.n_docs, -1, dtype=np.int64)
        renumber[kept] = offset + np.arange(len(kept))
        per_term = np.diff(postings.ptr)
        new = renumber[np.asarray(postings.docs)]
        keep = new >= 0
        hashes.append(np.repeat(np.asarray(postings.terms), per_term)[keep])
        docs.append(new[keep])
        tfs.append(np.asarray(postings.tf)[keep])
        lengths.append(np.asarray(postings.lengths)[kept])
        offset += len(kept)

    def joined(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(arrays).astype(dtype) if arrays else np.empty(0, dtype)

    return Postings.from_pairs(joined(hashes, np.uint64), joined(docs, np.int64),
                               joined(tfs, np.float64), joined(lengths, np.uint32))
