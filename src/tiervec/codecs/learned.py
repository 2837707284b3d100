"""Learned binarization (``lbin<b>``): residual sign codes picked by a small network trained to
keep the float inner-product ranking.

After Tencent's BEBR "embedding-to-embedding" recurrent binarization, trained with a Distill-VQ
style ranking objective. Codes and decoder are those of per-dimension residual binarization:
``b`` levels of sign bits, level-major, ``b * ceil(d / 8)`` bytes, little bit order as
:func:`tiervec.codecs.binary.pack_signs`, and::

    x' = sum_l a_l * s_l,   a_l in R^d (learned scales),   s_l in {-1, +1}^d,   score = <q, x'>

so the exhaustive scan runs on FAISS's fast-scan kernel (:mod:`tiervec.codecs._fastscan`). What is
learned is which signs to store: level ``l`` reads the residual ``r_{l-1}`` (``r_0 = x``)::

    h_l = r_{l-1} + n_l * MLP_l(r_{l-1} / n_l),   s_l = sign(h_l),   r_l = r_{l-1} - a_l * s_l

``MLP_l`` is Linear(d, hidden) -> ReLU -> Linear(hidden, d) with its last layer starting at zero;
``n_l`` is the training-free least-squares scale ``mean |r_{l-1}|`` per dimension (fixed: it puts
the network's input and output on a unit scale), and ``a_l = n_l * g_l`` with a learned gain
``g_l`` starting at 1. Before training the codec is therefore exactly training-free
per-dimension residual binarization, and training only moves away from it.

Training (torch on CPU, seeded; a fixed number of Adam steps, so the time does not grow with the
sample): in each batch ``X`` of corpus vectors, the first ``queries`` rows plus a little noise are
pseudo-queries ``Q`` (no labels) ranking the whole batch, self-pairs masked::

    loss = KL(softmax(Q X^T / tau) || softmax(Q X'^T / tau)) + mse * mean ||X - X'||^2

The sign's gradient is that of ``tanh(h_l / n_l)`` (straight-through) and flows through every
level, as in BEBR's recurrent binarization. ``encode`` is numpy with the learned weights, so
searching a saved collection never needs torch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tiervec._extras import require
from tiervec.codecs.residual import SignLevelsCodec
from tiervec.errors import InvalidTierSpec, InvalidVectors

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LearnedBinaryConfig:
    """Training settings of :class:`LearnedBinaryCodec` (saved in the manifest)."""

    hidden: int = 256  #: width of each level's MLP
    tau: float = 0.05  #: softmax temperature of the ranking loss
    mse: float = 0.1  #: weight of the reconstruction term
    noise: float = 0.1  #: norm of the Gaussian noise added to pseudo-queries (unit vectors)
    batch: int = 1024  #: documents per step
    queries: int = 256  #: of which pseudo-queries (ranking the other documents of the batch)
    steps: int = 600  #: Adam steps (cosine learning-rate decay)
    lr: float = 1e-3  #: learning rate of the MLPs
    scale_lr: float = 1e-2  #: learning rate of the scales, relative to their start
    max_sample: int = 100_000  #: vectors used for training at most (a seeded subsample)
    seed: int = 0


class LearnedBinaryCodec(SignLevelsCodec):
    """``bits`` levels of residual sign bits chosen by a trained encoder, float query x codes."""

    family = "lbin"
    kind = "learned binary"

    def __init__(self, dim: int, bits: int, config: LearnedBinaryConfig | None = None) -> None:
        super().__init__(dim, bits)
        self.config = config or LearnedBinaryConfig()
        self.scales = np.zeros((bits, dim), np.float32)
        self.norms = np.ones((bits, dim), np.float32)
        self.weights: list[dict[str, np.ndarray]] = []

    # -- training ---------------------------------------------------------------------------
    def fit(self, sample: np.ndarray) -> LearnedBinaryCodec:
        """Train the encoder and scales on corpus vectors ``sample`` ``(n, d)``."""
        x = self._check(sample)
        need = max(self.dim, 256)
        if len(x) < need:
            raise InvalidVectors(
                f"the {self.name} codec learns from the corpus and needs at least {need} vectors "
                f"of dimension {self.dim}, got {len(x)}; add more documents before fitting, or "
                f"use the training-free 'bin{self.bits}' codec"
            )
        cfg = self.config
        if len(x) > cfg.max_sample:
            keep = np.random.default_rng(cfg.seed).choice(len(x), cfg.max_sample, replace=False)
            x = x[np.sort(keep)]
        self.norms = residual_scales(x, self.bits)
        self.weights, self.scales = _train(x, self.norms, cfg)
        self.fitted = True
        return self

    # -- coding -----------------------------------------------------------------------------
    def _logits(self, level: int, r: np.ndarray) -> np.ndarray:
        """``h_l = r + n_l * MLP_l(r / n_l)`` in float32 numpy (``r`` unchanged without weights)."""
        if not self.weights:
            return r
        w, n = self.weights[level], self.norms[level]
        hidden = np.maximum((r / n) @ w["w1"] + w["b1"], np.float32(0))
        return r + n * (hidden @ w["w2"] + w["b2"])

    # -- persistence --------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"bits": self.bits, **asdict(self.config)}

    def state(self) -> dict[str, np.ndarray]:
        arrays = {"scales": self.scales, "norms": self.norms}
        for level, w in enumerate(self.weights):
            arrays.update({f"{k}_{level}": v for k, v in w.items()})
        return arrays

    def load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if int(params.get("bits", self.bits)) != self.bits:
            raise InvalidTierSpec(
                f"the saved codec state is lbin{params['bits']} ({params['bits']} bits per "
                f"dimension), not {self.name}: load it into LearnedBinaryCodec(dim, "
                f"{params['bits']})"
            )
        fields = LearnedBinaryConfig.__dataclass_fields__
        self.config = LearnedBinaryConfig(**{k: v for k, v in params.items() if k in fields})
        self.scales = np.asarray(arrays["scales"], np.float32)
        self.norms = np.asarray(arrays["norms"], np.float32)
        self.weights = [
            {k: np.asarray(arrays[f"{k}_{level}"], np.float32) for k in ("w1", "b1", "w2", "b2")}
            for level in range(self.bits)
            if f"w1_{level}" in arrays
        ]
        self.fitted = True


def residual_scales(x: np.ndarray, bits: int) -> np.ndarray:
    """Training-free per-dimension scales ``(bits, d)``: ``a_l = mean |r_{l-1}|`` over ``x``."""
    r = np.array(x, np.float32)
    scales = np.empty((bits, x.shape[1]), np.float32)
    for level in range(bits):
        scales[level] = np.maximum(np.abs(r).mean(axis=0), np.float32(1e-8))
        r -= scales[level] * np.where(r > 0, np.float32(1), np.float32(-1))
    return scales


def _train(
    x: np.ndarray, norms: np.ndarray, cfg: LearnedBinaryConfig
) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Train the level MLPs and the scales on ``x``: numpy ``(weights per level, scales)``."""
    torch = require("torch")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    (n, d), bits = x.shape, len(norms)
    data, norm = torch.from_numpy(x), torch.from_numpy(norms)
    p = {
        "w1": (torch.randn(bits, d, cfg.hidden, generator=gen) * math.sqrt(2 / d)).requires_grad_(),
        "b1": torch.zeros(bits, cfg.hidden, requires_grad=True),
        "w2": torch.zeros(bits, cfg.hidden, d, requires_grad=True),
        "b2": torch.zeros(bits, d, requires_grad=True),
    }
    gain = torch.ones(bits, d, requires_grad=True)  # scales = norms * gain: a relative step size
    opt = torch.optim.Adam(
        [{"params": list(p.values())}, {"params": [gain], "lr": cfg.scale_lr}], lr=cfg.lr
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    batch = min(cfg.batch, n)
    nq = min(cfg.queries, batch)
    mask = torch.eye(nq, batch, dtype=torch.bool)  # a pseudo-query is not its own neighbour
    per_epoch = max(n // batch, 1)
    started, losses = time.perf_counter(), []
    for step in range(cfg.steps):
        if step % per_epoch == 0:
            order = torch.randperm(n, generator=gen)
        xb = data[order[(step % per_epoch) * batch :][:batch]]
        xq = xb[:nq] + torch.randn((nq, d), generator=gen) * (cfg.noise / math.sqrt(d))
        r, xr = xb, torch.zeros_like(xb)
        for level in range(bits):  # gradients flow through every level (recurrent, as BEBR)
            z = torch.relu((r / norm[level]) @ p["w1"][level] + p["b1"][level])
            h = r + norm[level] * (z @ p["w2"][level] + p["b2"][level])
            soft = torch.tanh(h / norm[level])
            signs = soft + (torch.where(h > 0, 1.0, -1.0) - soft).detach()  # straight-through
            xr = xr + norm[level] * gain[level] * signs
            r = xb - xr
        with torch.no_grad():
            teacher = (xq @ xb.T / cfg.tau).masked_fill(mask, -1e4).log_softmax(1)
        student = (xq @ xr.T / cfg.tau).masked_fill(mask, -1e4).log_softmax(1)
        kl = (teacher.exp() * (teacher - student)).sum(1).mean()
        loss = kl + cfg.mse * (r * r).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % per_epoch == 0 or step + 1 == cfg.steps:
            logger.debug("lbin%d epoch %d: loss %.5f", bits, step // per_epoch, np.mean(losses))
            losses = []
    logger.info(
        "lbin%d trained on %d vectors: %d steps in %.1fs, last loss %.5f (kl %.5f)",
        bits, n, cfg.steps, time.perf_counter() - started, loss.item(), kl.item(),
    )
    out = {k: v.detach().numpy() for k, v in p.items()}
    weights = [{k: out[k][level] for k in out} for level in range(bits)]
    return weights, norms * gain.detach().numpy()
