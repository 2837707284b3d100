"""Lexical retrieval: text analysis (tokens, stop words, stems) and BM25 over per-segment postings.

::

    analyze     LexicalConfig (how texts become terms, BM25's k1 and b) and Analyzer
    postings    one segment's inverted index as five arrays (built, merged, saved, loaded)
    bm25        LexicalIndex: the segments of a snapshot scored with BM25 whose statistics
                (documents, average length, document frequencies) count live documents only;
                TermStats, those statistics summed over a sharded collection's shards
"""

from tiervec.lexical.analyze import Analyzer, LexicalConfig
from tiervec.lexical.bm25 import LexicalIndex, TermStats
from tiervec.lexical.postings import Postings

__all__ = ["Analyzer", "LexicalConfig", "LexicalIndex", "Postings", "TermStats"]
