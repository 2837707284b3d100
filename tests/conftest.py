"""Small shared fixtures: a seeded generator, clustered unit vectors, the shared data folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so every test is reproducible."""
    return np.random.default_rng(0)


def make_unit_vectors(n: int, d: int, seed: int = 0, clusters: int = 8) -> np.ndarray:
    """``(n, d)`` float32 rows of unit L2 norm, drawn around ``clusters`` random centres.

    Clustered data gives meaningful nearest neighbours (unlike isotropic noise, where every
    inner product is close to 0), while the per-row noise keeps exact ties unlikely. The centres
    depend only on ``d`` and ``clusters``, so vectors drawn with another ``seed`` (queries) come
    from the same clusters as the corpus.
    """
    centres = np.random.default_rng([d, clusters]).standard_normal((clusters, d))
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, clusters, size=n)
    x = centres[labels] + 0.5 * gen.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture
def unit_vectors() -> Callable[..., np.ndarray]:
    """``unit_vectors(n, d, seed=0)``: clustered, L2-normalised float32 ``(n, d)`` vectors."""
    return make_unit_vectors


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: ``$TIERVEC_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("TIERVEC_SHARED_DATA")
    folder = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(
            f"shared data folder {str(folder)!r} is absent; set TIERVEC_SHARED_DATA to the "
            "folder that holds beir/scifact"
        )
    return folder
