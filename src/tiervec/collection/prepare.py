"""A query made ready for the search path, the same for one collection and a sharded one:
checked against the lexical index, a multi-vector collection's token sets and FDEs made,
other queries' texts encoded where the mode reads vectors, vectors checked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tiervec._validate import as_vectors
from tiervec.collection import multivector as mv
from tiervec.encode.muvera import Muvera
from tiervec.errors import LexicalIndexMissing, TokenVectorsMissing
from tiervec.search import Query, SearchMode


def prepare_query(query: Query, *, where: str, dim: int, lexical: bool, multivector: bool,
                  encoder: Callable[[], Any], muvera: Callable[[], Muvera],
                  encode_queries: Callable[[Sequence[str]], np.ndarray]) -> Query:
    """``query`` ready to search the collection at ``where`` (``dim``-d vectors; ``lexical``:
    it keeps a BM25 index; ``multivector``: token vectors). The encoder and the FDE maps are
    asked for only when needed."""
    if query.mode.needs_texts and not lexical:
        raise LexicalIndexMissing(
            f"collection {where!r} has no lexical index, so it cannot run a "
            f"{query.mode.value} search; build one with `tiervec lexical {where}` (or "
            "create_lexical_index()), or search in dense mode")
    if multivector and query.mode.needs_vectors:
        return mv.prepare(query, encoder() if query.tokens is None else None, muvera())
    if query.mode is SearchMode.MULTIVECTOR:
        raise TokenVectorsMissing(
            f"collection {where!r} was built without token vectors, so it cannot run a "
            "multi-vector search; index its corpus into a multi-vector collection "
            "(`tiervec index CORPUS --collection NEW --multivector`, or "
            "create(multivector=True)), or search in dense mode")
    vectors = query.vectors
    if vectors is None:
        if not query.mode.needs_vectors:
            return query
        vectors = encode_queries(list(query.texts or ()))
    return query.with_vectors(as_vectors(vectors, dim, what="query vectors"))
