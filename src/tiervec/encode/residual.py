"""A small residual network between two models' spaces: what a linear map misses, learned.

``y ≈ linear(x) + relu(x @ w1 + b1) @ w2 + b2``: the linear part is a fitted map (Procrustes,
see :mod:`tiervec.encode.bridge`), the one-hidden-layer network is trained on what it leaves
(the residual), with Adam, weight decay and early stopping on a tenth of the fitting texts kept
aside, in numpy (no deep-learning framework needed: the core install maps vectors too). The
second layer starts at zero, so training begins from the linear map and keeps it where the
network finds nothing to add.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Hidden units: fewer than the texts a default sample fits on, so that it does not learn them
#: by heart.
HIDDEN = 256
EPOCHS = 200
BATCH = 128
#: Epochs without a better validation error before training stops.
PATIENCE = 12
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-2
VALIDATION = 0.1


@dataclass(frozen=True)
class Residual:
    """The learned correction: ``relu(x @ w1 + b1) @ w2 + b2``."""

    w1: np.ndarray  # (source_dim, hidden)
    b1: np.ndarray  # (hidden,)
    w2: np.ndarray  # (hidden, target_dim)
    b2: np.ndarray  # (target_dim,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}


def fit_residual(x: np.ndarray, residual: np.ndarray, seed: int = 0,
                 hidden: int = HIDDEN) -> Residual:
    """The network taking rows of ``x`` to rows of ``residual`` (the target minus the linear
    map's output), trained on nine tenths and stopped where the last tenth's error is least.
    Inputs and outputs are standardised while training (unit vectors have small entries) and
    the scales folded into the weights after."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float32)
    r = np.asarray(residual, np.float32)
    mean, spread = x.mean(0), np.float32(max(float(x.std()), 1e-6))
    r_spread = np.float32(max(float(r.std()), 1e-6))
    z, t = (x - mean) / spread, r / r_spread
    order = rng.permutation(len(x))
    cut = max(len(x) - max(int(len(x) * VALIDATION), 1), 1)
    train, val = order[:cut], order[cut:]
    params = [rng.normal(0, np.sqrt(2.0 / x.shape[1]), (x.shape[1], hidden)).astype(np.float32),
              np.zeros(hidden, np.float32),
              np.zeros((hidden, r.shape[1]), np.float32),
              np.zeros(r.shape[1], np.float32)]
    adam = _Adam(params)
    best = (_error(params, z[val], t[val]), [p.copy() for p in params])
    waited = 0
    for _ in range(EPOCHS):
        rows = train[rng.permutation(len(train))]
        for lo in range(0, len(rows), BATCH):
            batch = rows[lo:lo + BATCH]
            adam.step(_gradients(params, z[batch], t[batch]))
        error = _error(params, z[val], t[val])
        if error < best[0] - 1e-9:
            best, waited = (error, [p.copy() for p in params]), 0
        else:
            waited += 1
            if waited >= PATIENCE:
                break
    w1, b1, w2, b2 = best[1]
    w1 = w1 / spread
    return Residual(w1, b1 - mean @ w1, w2 * r_spread, b2 * r_spread)


class _Adam:
    """Adam with decoupled weight decay (AdamW), updating ``params`` in place."""

    def __init__(self, params: list[np.ndarray]) -> None:
        self.params = params
        self.moments = [np.zeros_like(p) for p in params]
        self.squares = [np.zeros_like(p) for p in params]
        self.steps = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.steps += 1
        fix1, fix2 = 1 - 0.9 ** self.steps, 1 - 0.999 ** self.steps
        for p, g, m, v in zip(self.params, grads, self.moments, self.squares, strict=True):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p *= 1 - LEARNING_RATE * WEIGHT_DECAY
            p -= LEARNING_RATE * (m / fix1) / (np.sqrt(v / fix2) + 1e-8)


def _error(params: list[np.ndarray], x: np.ndarray, r: np.ndarray) -> float:
    w1, b1, w2, b2 = params
    return float(np.mean((np.maximum(x @ w1 + b1, 0.0) @ w2 + b2 - r) ** 2))


def _gradients(params: list[np.ndarray], x: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    """Gradients of the mean squared error (per output value) of one batch."""
    w1, b1, w2, b2 = params
    pre = x @ w1 + b1
    act = np.maximum(pre, 0.0)
    out = act @ w2 + b2
    d_out = (2.0 / out.size) * (out - r)
    d_act = (d_out @ w2.T) * (pre > 0)
    return [x.T @ d_act, d_act.sum(0), act.T @ d_out, d_out.sum(0)]
