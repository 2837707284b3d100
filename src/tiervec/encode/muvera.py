"""MUVERA fixed-dimensional encodings (FDEs): a set of token vectors as one vector whose inner
product approximates the sets' Chamfer (MaxSim) similarity.

For each of ``reps`` repetitions, ``k_sim`` random hyperplanes (SimHash) split the space into
``2**k_sim`` partitions; each token is projected to ``dim_proj`` dimensions by a random ±1
matrix, and the projections are **summed** per partition for a query and **averaged** for a
document. A document's empty partition takes the projection of its token nearest to it in
Hamming distance (``fill_empty``), so that a query token landing there still meets the
document's closest token. The blocks are concatenated (``reps * 2**k_sim * dim_proj``
dimensions) and optionally projected to ``final_dim`` by a random ±1 matrix. Everything is
numpy over all the tokens of a batch at once; the random matrices come from ``seed``, so one
config always makes the same encodings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tiervec.errors import InvalidMultiVector

#: The largest FDE (before a final projection) a collection may store per document.
MAX_FDE_DIM = 65_536


@dataclass(frozen=True, kw_only=True)
class MuveraConfig:
    """How token sets become FDEs (see the module); stored in a collection's manifest."""

    k_sim: int = 4
    dim_proj: int = 16
    reps: int = 20
    fill_empty: bool = True
    final_dim: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low, high in (("k_sim", 1, 12), ("dim_proj", 1, 4096), ("reps", 1, 1000)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise InvalidMultiVector(f"MUVERA {name} must be a whole number in [{low}, "
                                         f"{high}], got {value!r}")
        if self.raw_dim > MAX_FDE_DIM:
            raise InvalidMultiVector(
                f"an FDE of {self.reps} x 2^{self.k_sim} x {self.dim_proj} = {self.raw_dim:,} "
                f"dimensions is above {MAX_FDE_DIM:,}; lower reps, k_sim or dim_proj")
        if self.final_dim is not None and (not isinstance(self.final_dim, int)
                                           or not 1 <= self.final_dim <= MAX_FDE_DIM):
            raise InvalidMultiVector(f"MUVERA final_dim must be a whole number in [1, "
                                     f"{MAX_FDE_DIM:,}], got {self.final_dim!r}")

    @property
    def raw_dim(self) -> int:
        """Dimensions before the final projection."""
        return self.reps * (2 ** self.k_sim) * self.dim_proj

    @property
    def dim(self) -> int:
        """Dimensions of an FDE."""
        return self.final_dim or self.raw_dim

    def describe(self) -> str:
        final = f" -> {self.final_dim}" if self.final_dim else ""
        return (f"MUVERA {self.reps} reps x 2^{self.k_sim} partitions x {self.dim_proj} dims"
                f" = {self.raw_dim}{final}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MuveraConfig:
        names = ("k_sim", "dim_proj", "reps", "fill_empty", "final_dim", "seed")
        return cls(**{k: data[k] for k in names if k in data})


#: Token codecs a multi-vector collection may keep a compressed copy of its tokens in.
TOKEN_CODECS = ("int8", "binary")


@dataclass(frozen=True, kw_only=True)
class MultiVectorConfig:
    """A multi-vector collection: every document's token vectors stored (full precision on
    disk; a ``token_codec`` copy too), its FDE as the collection's vector (so the tier chain
    compresses and searches FDEs), and exact MaxSim re-ranking the chain's top ``candidates``
    (from the float32 tokens on disk, or from the token codes held in RAM when ``rerank_from``
    is ``"codes"``)."""

    muvera: MuveraConfig = field(default_factory=MuveraConfig)
    token_codec: str | None = "int8"
    candidates: int = 100
    rerank_from: str = "float32"

    def __post_init__(self) -> None:
        if isinstance(self.muvera, dict):
            object.__setattr__(self, "muvera", MuveraConfig.from_dict(self.muvera))
        if self.token_codec is not None and self.token_codec not in TOKEN_CODECS:
            raise InvalidMultiVector(f"unknown token codec {self.token_codec!r}; choose one of "
                                     f"{', '.join(TOKEN_CODECS)}, or none")
        if not isinstance(self.candidates, int) or not 1 <= self.candidates <= 100_000:
            raise InvalidMultiVector(f"candidates must be a whole number in [1, 100000], got "
                                     f"{self.candidates!r}")
        if self.rerank_from not in ("float32", "codes"):
            raise InvalidMultiVector(f"rerank_from must be 'float32' or 'codes', got "
                                     f"{self.rerank_from!r}")
        if self.rerank_from == "codes" and self.token_codec is None:
            raise InvalidMultiVector("re-ranking from token codes needs a token codec "
                                     "(token_codec='int8' or 'binary')")

    def describe(self) -> str:
        codes = f", {self.token_codec} token copy" if self.token_codec else ""
        return (f"{self.muvera.describe()}; MaxSim over the top {self.candidates} from "
                f"{self.rerank_from} tokens{codes}")

    def to_dict(self) -> dict[str, Any]:
        return {"muvera": self.muvera.to_dict(), "token_codec": self.token_codec,
                "candidates": self.candidates, "rerank_from": self.rerank_from}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultiVectorConfig:
        names = ("muvera", "token_codec", "candidates", "rerank_from")
        return cls(**{k: data[k] for k in names if k in data})


def unit_tokens(tokens: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Token sets stacked ``(n_tokens, d)``, each token of unit length, and their offsets."""
    sizes = np.array([len(t) for t in tokens], dtype=np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    width = tokens[0].shape[1] if tokens else 0
    stacked = np.concatenate(tokens).astype(np.float32) if tokens and ptr[-1] else \
        np.empty((0, width), np.float32)
    stacked /= np.maximum(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-12)
    return stacked, ptr


class Muvera:
    """The FDE maps of one :class:`MuveraConfig` over ``dim``-dimensional tokens."""

    def __init__(self, config: MuveraConfig, dim: int) -> None:
        self.config = config
        self.token_dim = dim
        rng = np.random.default_rng(config.seed)
        self.hyperplanes = rng.standard_normal((config.reps, dim, config.k_sim)).astype(
            np.float32)
        self.projections = (rng.integers(0, 2, (config.reps, dim, config.dim_proj)) * 2 - 1
                            ).astype(np.float32) / np.sqrt(config.dim_proj, dtype=np.float32)
        self.final = None
        if config.final_dim is not None:
            self.final = (rng.integers(0, 2, (config.raw_dim, config.final_dim)) * 2 - 1
                          ).astype(np.float32) / np.sqrt(config.final_dim, dtype=np.float32)
        self._powers = (1 << np.arange(config.k_sim)).astype(np.int64)
        self._maps = np.concatenate([np.concatenate([self.hyperplanes[r], self.projections[r]],
                                                    axis=1) for r in range(config.reps)], axis=1)

    @property
    def dim(self) -> int:
        return self.config.dim

    def documents(self, tokens: np.ndarray, ptr: np.ndarray) -> np.ndarray:
        """FDEs ``(n, dim)`` of ``n`` documents whose tokens are ``tokens[ptr[i]:ptr[i+1]]``."""
        return self._encode(tokens, ptr, document=True)

    def queries(self, tokens: np.ndarray, ptr: np.ndarray) -> np.ndarray:
        """FDEs ``(n, dim)`` of ``n`` queries (partition sums, no filling)."""
        return self._encode(tokens, ptr, document=False)

    def _encode(self, tokens: np.ndarray, ptr: np.ndarray, document: bool,
                block: int = 1 << 16) -> np.ndarray:
        config = self.config
        ptr = np.asarray(ptr, dtype=np.int64)
        n, parts, width, reps = len(ptr) - 1, 2 ** config.k_sim, config.dim_proj, config.reps
        owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
        sums = np.zeros((reps, n * parts, width), np.float32)
        counts = np.zeros((reps, n * parts), np.int64)
        buckets = np.empty((reps, len(owner)), np.uint16)
        step = config.k_sim + width
        for lo in range(0, len(owner), block):  # every repetition's maps in one product
            z = np.asarray(tokens[lo : lo + block], np.float32) @ self._maps
            keys = owner[lo : lo + block] * parts
            for r in range(reps):
                bits = z[:, r * step : r * step + config.k_sim] > 0
                bucket = (bits * self._powers).sum(axis=1)
                buckets[r, lo : lo + block] = bucket
                key = keys + bucket
                sums[r] += _sum_by_key(key, z[:, r * step + config.k_sim : (r + 1) * step],
                                       n * parts)
                counts[r] += np.bincount(key, minlength=n * parts)
        out = np.zeros((n, reps, parts, width), np.float32)
        for r in range(reps):
            block_sums = sums[r]
            if document:
                block_sums /= np.maximum(counts[r], 1)[:, None]
                if config.fill_empty:
                    self._fill(block_sums, counts[r], buckets[r].astype(np.int64), tokens, r,
                               ptr, parts)
            out[:, r] = block_sums.reshape(n, parts, width)
        fde = out.reshape(n, config.raw_dim)
        return fde if self.final is None else fde @ self.final

    def _fill(self, sums: np.ndarray, counts: np.ndarray, bucket: np.ndarray,
              tokens: np.ndarray, rep: int, ptr: np.ndarray, parts: int) -> None:
        """Each non-empty document's empty partitions take its token nearest in Hamming
        distance to the partition (ties: the first such token)."""
        present = np.diff(ptr) > 0
        if not present.any():
            return
        starts = ptr[:-1][present]
        local = np.arange(len(bucket), dtype=np.int64)
        empty_by_doc = counts.reshape(-1, parts) == 0
        for b in range(parts):
            docs = np.flatnonzero(empty_by_doc[:, b] & present)
            if not len(docs):
                continue
            distance = np.bitwise_count(np.bitwise_xor(bucket, b).astype(np.uint64)) \
                .astype(np.int64)
            best = np.minimum.reduceat((distance << 40) | local, starts)
            chosen = np.zeros(len(present), np.int64)
            chosen[present] = best & ((1 << 40) - 1)
            picked = np.asarray(tokens[np.sort(chosen[docs])], np.float32)
            order = np.argsort(np.argsort(chosen[docs], kind="stable"), kind="stable")
            sums[docs * parts + b] = picked[order] @ self.projections[rep]


def _sum_by_key(key: np.ndarray, values: np.ndarray, n_keys: int) -> np.ndarray:
    """``out[k] = values[key == k].sum(0)`` for ``k < n_keys``: the rows sorted by key (stable)
    and each run summed in order."""
    out = np.zeros((n_keys, values.shape[1]), np.float32)
    if not len(key):
        return out
    order = np.argsort(key, kind="stable")
    keys = key[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    out[keys[starts]] = np.add.reduceat(np.asarray(values, np.float32)[order], starts, axis=0)
    return out
