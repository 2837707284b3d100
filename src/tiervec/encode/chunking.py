"""Long documents as chunks: token-aware spans, naive and late chunk embeddings.

A document's text is tokenised by the model's own tokenizer (word pieces with character
offsets); a chunk is ``tokens`` consecutive word pieces, the next one starting ``tokens -
overlap`` later (optionally ended at a sentence boundary). Each chunk keeps its exact character
span in the text.

- **naive** chunking embeds each chunk's text on its own (the model sees only the chunk);
- **late** chunking ("Late Chunking: Contextual Chunk Embeddings") runs the model once over the
  whole document, in overlapping windows of the model's size when it is longer (the outputs of
  overlapping tokens come from the window where they have the most context: "long late
  chunking"), then mean-pools each chunk's token outputs, so every chunk vector carries its
  document's context.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from tiervec.encode.base import TokenEncoder
from tiervec.errors import InvalidChunking

log = logging.getLogger(__name__)


class ChunkingMethod(enum.StrEnum):
    """How chunk vectors are made (see the module)."""

    NAIVE = "naive"
    LATE = "late"


class Aggregate(enum.StrEnum):
    """How a document's score comes from its chunks' scores among the retrieved chunks."""

    MAX = "max"    # its best chunk (the default; also gives the evidence)
    TOP3 = "top3"  # the mean of its best three retrieved chunks
    SUM = "sum"    # the sum of its retrieved chunks' scores (favours long documents)


@dataclass(frozen=True, kw_only=True)
class ChunkingConfig:
    """How a collection cuts documents into chunks; stored in its manifest.

    ``tokens``: word pieces per chunk (clamped to the model's window, with a warning);
    ``overlap``: word pieces shared by consecutive chunks (below ``tokens``); ``sentences``: end
    a chunk at the last sentence boundary in its second half when there is one; ``window``:
    late chunking's window (``None``: the model's ``max_length``; at most its position table).
    """

    method: ChunkingMethod = ChunkingMethod.LATE
    tokens: int = 128
    overlap: int = 16
    sentences: bool = False
    window: int | None = None
    aggregate: Aggregate = Aggregate.MAX

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", _enum(ChunkingMethod, self.method, "chunking"))
        object.__setattr__(self, "aggregate", _enum(Aggregate, self.aggregate, "aggregate"))
        if not isinstance(self.tokens, int) or self.tokens < 8:
            raise InvalidChunking(f"chunk size {self.tokens!r} is too small; give at least 8 "
                                 "tokens per chunk (--chunk-tokens)")
        if not isinstance(self.overlap, int) or self.overlap < 0:
            raise InvalidChunking(f"overlap {self.overlap!r} must be a whole number >= 0")
        if self.overlap >= self.tokens:
            raise InvalidChunking(
                f"overlap {self.overlap} must be smaller than the chunk size {self.tokens} "
                "(else no chunk moves on); lower --overlap or raise --chunk-tokens")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 16):
            raise InvalidChunking(f"window {self.window!r} must be at least 16 tokens")

    def clamped(self, limit: int) -> ChunkingConfig:
        """This config with ``tokens`` at most ``limit`` (the model's window less its special
        tokens), warning when it was above; ``overlap`` shrinks with it."""
        if self.tokens <= limit:
            return self
        log.warning("chunk size %d is above the model's window of %d word pieces (after its "
                    "special tokens); using chunks of %d", self.tokens, limit, limit)
        overlap = min(self.overlap, limit // 2)
        return ChunkingConfig(method=self.method, tokens=limit, overlap=overlap,
                              sentences=self.sentences, window=self.window,
                              aggregate=self.aggregate)

    def describe(self) -> str:
        extra = ", sentence ends" if self.sentences else ""
        return (f"{self.method.value} chunks of {self.tokens} tokens, overlap {self.overlap}"
                f"{extra}, {self.aggregate.value} over chunks")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method.value, "tokens": self.tokens, "overlap": self.overlap,
                "sentences": self.sentences, "window": self.window,
                "aggregate": self.aggregate.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkingConfig:
        names = ("method", "tokens", "overlap", "sentences", "window", "aggregate")
        return cls(**{k: data[k] for k in names if k in data})


def _enum(kind: type[enum.Enum], value: Any, what: str) -> Any:
    try:
        return kind(value.value if isinstance(value, enum.Enum) else value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)  # type: ignore[attr-defined]
        raise InvalidChunking(f"unknown {what} {value!r}; choose one of {choices}") from None


class Spans(NamedTuple):
    """A document's chunks: ``tokens`` ``(n, 2)`` word-piece ranges ``[lo, hi)`` and ``chars``
    ``(n, 2)`` character ranges of the text."""

    tokens: np.ndarray
    chars: np.ndarray


def chunk_spans(offsets: np.ndarray, text: str, config: ChunkingConfig) -> Spans:
    """The chunks of a text whose word pieces have character ``offsets`` ``(n, 2)``: every
    word piece in at least one chunk; a text without word pieces gives no chunk."""
    n = len(offsets)
    if n == 0:
        return Spans(np.empty((0, 2), np.int64), np.empty((0, 2), np.int64))
    ends = _sentence_ends(offsets, text) if config.sentences else None
    spans = []
    lo = 0
    while True:
        hi = min(lo + config.tokens, n)
        if ends is not None and hi < n:
            # the last sentence end in the chunk's second half (word piece index + 1)
            at = np.searchsorted(ends, hi, side="right") - 1
            if at >= 0 and ends[at] > lo + config.tokens // 2:
                hi = int(ends[at])
        spans.append((lo, hi))
        if hi >= n:
            break
        lo = max(hi - config.overlap, lo + 1)
    tokens = np.array(spans, dtype=np.int64)
    chars = np.stack([offsets[tokens[:, 0], 0], offsets[tokens[:, 1] - 1, 1]], axis=1)
    return Spans(tokens, chars.astype(np.int64))


def _sentence_ends(offsets: np.ndarray, text: str) -> np.ndarray:
    """Word-piece positions (index + 1) after which a sentence ends: a piece ending in ``.``,
    ``!`` or ``?`` followed by whitespace, or a piece followed by a blank line."""
    out = []
    for i, (_, end) in enumerate(offsets):
        last = text[end - 1] if end > 0 else ""
        after = text[end : end + 2]
        if (last in ".!?" and (not after or after[0].isspace())) or after.startswith("\n"):
            out.append(i + 1)
    return np.array(out, dtype=np.int64)


def pool_chunks(token_vectors: np.ndarray, spans: np.ndarray, normalize: bool) -> np.ndarray:
    """Mean of each chunk's token outputs ``(n_chunks, d)`` (late chunking), normalised
    like the model's own pooling when ``normalize``."""
    csum = np.concatenate([np.zeros((1, token_vectors.shape[1])),
                           np.cumsum(token_vectors, axis=0, dtype=np.float64)])
    means = (csum[spans[:, 1]] - csum[spans[:, 0]]) / (spans[:, 1] - spans[:, 0])[:, None]
    if normalize:
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return means.astype(np.float32)


def fit_chunking(config: ChunkingConfig, encoder: TokenEncoder) -> ChunkingConfig:
    """``config`` fitted to ``encoder``: chunks no longer than its window (less its special
    tokens), a late-chunking window no longer than its position table (each with a warning)."""
    config = config.clamped(encoder.max_length - 2)
    top = encoder.max_window
    if config.window is not None and config.window > top:
        log.warning("window %d is above the model's %d positions; using %d", config.window,
                    top, top)
        config = ChunkingConfig(**{**config.to_dict(), "window": top})
    return config


class Chunked(NamedTuple):
    """The chunks of a batch of texts, in document order: ``owner`` ``(n,)`` the index of each
    chunk's text, ``part`` its place in that text, ``chars`` ``(n, 2)`` its character span,
    ``vectors`` ``(n, d)``."""

    owner: np.ndarray
    part: np.ndarray
    chars: np.ndarray
    vectors: np.ndarray


def embed_chunks(
    encoder: TokenEncoder, texts: Sequence[str], config: ChunkingConfig,
    progress: Callable[[int], None] | None = None,
) -> Chunked:
    """Chunk ``texts`` and embed every chunk (``config.method``). A text without a word piece
    (empty, or only spaces) keeps one empty chunk ``(0, 0)``, embedded as the model embeds it,
    so the document is stored and found like any other. ``progress(n)``: ``n`` more texts
    done."""
    config = fit_chunking(config, encoder)
    offsets = encoder.token_offsets(texts)
    spans = [chunk_spans(o, t, config) for o, t in zip(offsets, texts, strict=True)]
    empty = [i for i, s in enumerate(spans) if not len(s.tokens)]
    counts = np.array([max(len(s.tokens), 1) for s in spans], dtype=np.int64)
    owner = np.repeat(np.arange(len(texts)), counts)
    part = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    chars = np.zeros((len(owner), 2), np.int64)
    starts = np.cumsum(counts) - counts
    for i, s in enumerate(spans):
        chars[starts[i] : starts[i] + len(s.chars)] = s.chars
    vectors = np.empty((len(owner), encoder.dim), np.float32)
    full = [i for i in range(len(texts)) if len(spans[i].tokens)]
    if config.method is ChunkingMethod.NAIVE:
        pieces = [texts[i][a:b] for i in full for a, b in spans[i].chars]
        where = np.concatenate([starts[i] + np.arange(len(spans[i].tokens)) for i in full]) \
            if full else np.empty(0, np.int64)
        done = [0, 0]  # chunks encoded, texts reported

        def report(n: int) -> None:  # chunks encoded -> texts done, in proportion
            done[0] += n
            texts_done = done[0] * len(full) // max(len(pieces), 1)
            if progress is not None and texts_done > done[1]:
                progress(texts_done - done[1])
                done[1] = texts_done

        vectors[where] = encoder.encode_documents(pieces, report if progress else None)
    else:
        window = config.window or encoder.max_length
        outputs = encoder.token_vectors([texts[i] for i in full], window, progress)
        for i, tokens in zip(full, outputs, strict=True):
            vectors[starts[i] : starts[i] + len(spans[i].tokens)] = pool_chunks(
                tokens, spans[i].tokens, encoder.normalize)
    if empty:
        vectors[starts[empty]] = encoder.encode_documents([texts[i] for i in empty])
        if progress is not None:
            progress(len(empty))
    return Chunked(owner=owner, part=part, chars=chars, vectors=vectors)


def embed_spans(encoder: TokenEncoder, texts: Sequence[str], spans: Sequence[np.ndarray],
                config: ChunkingConfig) -> np.ndarray:
    """Embed chunks cut already (by another model's word pieces: a model upgrade re-embeds a
    chunked collection's stored chunks): ``spans[i]`` ``(n_i, 2)`` character ranges of
    ``texts[i]``, embedded as ``config.method`` does (naive: each span's text alone; late: the
    text's token outputs mean-pooled over this model's word pieces within each span). A span
    holding none of this model's word pieces is embedded as its text alone. Vectors in the
    order of the spans, text after text."""
    config = fit_chunking(config, encoder)
    counts = np.array([len(s) for s in spans], dtype=np.int64)
    starts = np.cumsum(counts) - counts
    vectors = np.empty((int(counts.sum()), encoder.dim), np.float32)
    alone = np.ones(len(vectors), dtype=bool)  # spans embedded as their own text
    if config.method is ChunkingMethod.LATE:
        full = [i for i in range(len(texts)) if counts[i]]
        offsets = encoder.token_offsets([texts[i] for i in full])
        outputs = encoder.token_vectors([texts[i] for i in full],
                                        config.window or encoder.max_length)
        for i, tokens, outs in zip(full, offsets, outputs, strict=True):
            chars = np.asarray(spans[i], dtype=np.int64)
            lo = np.searchsorted(tokens[:, 1], chars[:, 0], side="right")
            hi = np.searchsorted(tokens[:, 0], chars[:, 1], side="left")
            ok = hi > lo
            if ok.any():
                at = starts[i] + np.flatnonzero(ok)
                vectors[at] = pool_chunks(outs, np.stack([lo[ok], hi[ok]], axis=1),
                                          encoder.normalize)
                alone[at] = False
    where = np.flatnonzero(alone)
    if len(where):
        owner = np.repeat(np.arange(len(texts)), counts)[where]
        part = where - starts[owner]
        vectors[where] = encoder.encode_documents(
            [texts[o][int(spans[o][p][0]):int(spans[o][p][1])]
             for o, p in zip(owner.tolist(), part.tolist(), strict=True)])
    return vectors
