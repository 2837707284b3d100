"""A chunked collection changes model in place: its chunks stay as they were cut (their
character spans), the new model embeds them again, naive or late as the collection chunks."""

from __future__ import annotations

import numpy as np
import pytest

import tiervec
from tiervec.corpus import Document
from tiervec.encode import load_encoder
from tiervec.encode.chunking import ChunkingConfig, embed_chunks, embed_spans
from tiervec.errors import InvalidUpgrade

CURRENT = "all-MiniLM-L6-v2"
DOCS = 120


@pytest.fixture(scope="module")
def current_encoder():
    return load_encoder(CURRENT)


@pytest.fixture(scope="module")
def scifact_docs(scifact_head):
    return scifact_head(DOCS)


@pytest.mark.parametrize("method", ["late", "naive"])
def test_stored_spans_embedded_again_give_each_chunks_own_vector(current_encoder, scifact_docs,
                                                                 method):
    texts = [d.embedding_text() for d in scifact_docs[:6]] + ["", "   "]  # no word piece
    config = ChunkingConfig(method=method, tokens=32, overlap=8)
    chunked = embed_chunks(current_encoder, texts, config)
    spans = [chunked.chars[chunked.owner == i] for i in range(len(texts))]
    again = embed_spans(current_encoder, texts, spans, config)
    np.testing.assert_allclose(again, chunked.vectors, atol=1e-4)


def chunk_tables(folder, col) -> np.ndarray:
    return np.concatenate([np.load(folder / "segments" / s.name / "chunks.npy")
                           for s in col._manifest.segments])


def test_a_chunked_collection_upgrades_maps_writes_and_backfills(tmp_path, scifact_docs,
                                                                 small_model):
    folder = tmp_path / "chunked"
    config = ChunkingConfig(method="late", tokens=32, overlap=8)
    with tiervec.create(folder, model=CURRENT, chunking=config, recall_target=None) as col:
        for lo in range(0, DOCS, 40):
            col.add(scifact_docs[lo:lo + 40])
        rows = col.stats().rows
        tables = chunk_tables(folder, col)
        status = col.upgrade(str(small_model), sample=60, direction="to-current")
        assert status.state == "mapped" and status.map["sample"] > 60  # chunks of 60 documents
        assert col.dim == 384 and len(col.search("vitamin D deficiency", k=5).ids[0]) == 5
        extra = [Document(id="zebra", title="Zebrafish",
                          text="Zebrafish regenerate heart tissue after injury. " * 20)]
        col.add(extra)  # cut by the new model's word pieces, stored mapped, its own kept
        assert len(list((folder / "upgrade").glob("native-*"))) == 1
        status = col.backfill(max_segments=1)  # the switch, then one segment re-embedded
        assert status.state == "backfilling" and col.dim == 48
        assert status.pending_segments == 2  # the new model's segment was not pending
        assert col.backfill().state == "none" and col.model == str(small_model)
        assert len(col) == DOCS + 1
        np.testing.assert_array_equal(chunk_tables(folder, col)[:rows], tables)  # same chunks
        # every stored chunk vector is the new model's embedding of the chunk as it was cut
        small = load_encoder(str(small_model))
        texts = [d.embedding_text() for d in scifact_docs] + [extra[0].embedding_text()]
        table = chunk_tables(folder, col)
        heads = np.flatnonzero(table[:, 0] == 0)
        spans = []
        for i, (lo, hi) in enumerate(zip(heads, np.r_[heads[1:], len(table)], strict=True)):
            doc = (scifact_docs + extra)[i]
            part = table[lo:hi, 1:3].astype(np.int64) + doc.text_start()
            part[0, 0] = 0
            spans.append(part)
        want = embed_spans(small, texts, spans, config)
        stored = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
        np.testing.assert_allclose(stored, want, atol=1e-4)
        assert col.search("zebrafish heart", k=3).ids.shape == (1, 3)
    with tiervec.open(folder) as col:
        assert col.chunking is not None and col.stats().upgrade is None


def test_a_chunked_collection_needs_a_model_with_word_pieces(tmp_path):
    with tiervec.create(tmp_path / "c", chunking="naive") as col:
        with pytest.raises(InvalidUpgrade, match="word pieces"):
            col.upgrade("paraphrase-MiniLM-L3-v2")
    with tiervec.create(tmp_path / "m", multivector=True) as col:
        with pytest.raises(InvalidUpgrade, match="multi-vector"):
            col.upgrade("paraphrase-MiniLM-L3-v2")
