"""A multi-vector collection: each document's token vectors stored, its MUVERA FDE as the
collection's vector, MaxSim over the tokens re-ranking the chain's candidates.

::

    texts -> token vectors (unit length) ─┬─> FDE (documents: partition means, filled)
                                          │     └─> the collection's tier chain (binary, PQ...)
                                          └─> tokens.npy (float32, disk) + token codes

    query text -> tokens -> FDE (partition sums) -> chain top `candidates` -> MaxSim -> top k
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise
from typing import Any

import numpy as np

from tiervec.codecs import Codec, make_codec
from tiervec.encode.base import ProgressFn
from tiervec.encode.muvera import MultiVectorConfig, Muvera, unit_tokens
from tiervec.errors import InvalidMultiVector
from tiervec.search.query import Query
from tiervec.store.layout import CollectionFiles, Tokens
from tiervec.store.manifest import Manifest
from tiervec.store.tokens import TokenStore
from tiervec.store.writes import FIT_SAMPLE, load_token_codec


def encode_documents(
    encoder: Any, muvera: Muvera, texts: Sequence[str], progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents' FDEs ``(n, D)``, their unit token vectors stacked, and the offsets."""
    tokens, ptr = unit_tokens(encoder.token_vectors(list(texts), progress=progress))
    return muvera.documents(tokens, ptr), tokens, ptr


def encode_queries(encoder: Any, muvera: Muvera,
                   texts: Sequence[str]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Queries' FDEs and each query's unit token vectors."""
    tokens, ptr = unit_tokens(encoder.token_vectors(list(texts), query=True))
    sets = tuple(tokens[a:b] for a, b in pairwise(ptr))
    return muvera.queries(tokens, ptr), sets


def prepare(query: Query, encoder: Any, muvera: Muvera) -> Query:
    """``query`` with its token sets (encoded from its texts unless given) and their FDEs."""
    if query.tokens is not None:
        if query.vectors is None:
            stacked, ptr = unit_tokens(list(query.tokens))
            return replace(query, vectors=muvera.queries(stacked, ptr))
        return query
    if query.texts is None:
        raise InvalidMultiVector(
            "a multi-vector collection is searched with query texts (their token vectors are "
            "re-scored by MaxSim); pass texts, not vectors")
    vectors, sets = encode_queries(encoder, muvera, list(query.texts))
    return replace(query, vectors=vectors, tokens=sets)


def muvera_of(manifest: Manifest) -> Muvera:
    """The FDE maps of a multi-vector collection's manifest."""
    config, dim = manifest.multivector_config(), manifest.token_dim
    assert config is not None and dim is not None
    return Muvera(config.muvera, dim)


def token_store(files: CollectionFiles, manifest: Manifest) -> TokenStore:
    """The token vectors of ``manifest``'s segments (codes in RAM when MaxSim reads them)."""
    config, dim, entry = manifest.multivector_config(), manifest.token_dim, \
        manifest.token_codec
    assert config is not None and dim is not None
    codec = None if entry is None else (entry.key, load_token_codec(files, entry, dim))
    codes = config.rerank_from == "codes"
    return TokenStore(files, manifest.segments, codec, in_ram=codes, from_codes=codes)


def segment_tokens(tokens: np.ndarray, ptr: np.ndarray, codec: Codec | None) -> Tokens:
    """A new segment's token files (with the codec's codes)."""
    codes = None if codec is None else (f"tokens-{codec.name}", codec.encode(tokens))
    return Tokens(vectors=tokens, ptr=ptr, codes=codes)


def fit_token_codec(config: MultiVectorConfig, tokens: np.ndarray) -> Codec | None:
    """The token codec of ``config`` fitted on (a sample of) ``tokens``."""
    if config.token_codec is None:
        return None
    codec = make_codec(config.token_codec, tokens.shape[1])
    if codec.trainable and len(tokens):
        rows = np.arange(len(tokens))
        if len(rows) > FIT_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(rows, FIT_SAMPLE, replace=False))
        codec.fit(tokens[rows])
    return codec
