"""Long documents: token-aware chunks, late chunking's windows, chunked collections (a row per
chunk, documents as results, evidence spans), their writes, and bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiervec
from tiervec.corpus import Document
from tiervec.encode import load_encoder
from tiervec.encode.chunking import ChunkingConfig, chunk_spans, embed_chunks, pool_chunks
from tiervec.encode.tokens import windows
from tiervec.errors import EmptyDocument, InvalidChunking

TOPICS = ["cats purr and sleep in the sun", "rockets burn fuel to reach orbit",
          "bread rises when yeast ferments sugar", "rivers carve valleys over ages",
          "violins have four strings and a bow", "glaciers move slowly down mountains"]


def long_doc(i: int, sentences: int = 40) -> Document:
    """A document whose sentences walk through the topics, topic ``i % 6`` in its middle."""
    parts = []
    for s in range(sentences):
        topic = TOPICS[i % 6] if sentences // 3 <= s < 2 * sentences // 3 else \
            TOPICS[(i + s) % 6]
        parts.append(f"Sentence {s} of document {i} says that {topic}.")
    return Document(id=f"d{i}", title=f"Document {i}", text=" ".join(parts),
                    metadata={"group": i % 3})


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


# -- spans and windows (no model) -------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 400), tokens=st.integers(8, 64), data=st.data())
def test_chunks_cover_every_word_piece_within_their_size(n, tokens, data):
    overlap = data.draw(st.integers(0, tokens - 1))
    sentences = data.draw(st.booleans())
    words = [f"w{i}." if i % 7 == 6 else f"w{i}" for i in range(n)]
    text = " ".join(words)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]]) if n else np.empty(0, int)
    offsets = np.stack([starts, starts + [len(w) for w in words]], axis=1) if n else \
        np.empty((0, 2), np.int64)
    spans = chunk_spans(offsets, text, ChunkingConfig(tokens=tokens, overlap=overlap,
                                                      sentences=sentences))
    if n == 0:
        assert len(spans.tokens) == 0
        return
    lo, hi = spans.tokens[:, 0], spans.tokens[:, 1]
    assert lo[0] == 0 and hi[-1] == n
    assert np.all(hi - lo <= tokens) and np.all(hi > lo)
    assert np.all(lo[1:] <= hi[:-1]) and np.all(lo[1:] > lo[:-1])  # no gap, always moving on
    if not sentences:
        assert np.all(hi[:-1] - lo[1:] == min(overlap, tokens - 1)) or len(lo) == 1
    for (a, b), (t0, t1) in zip(spans.chars, spans.tokens, strict=True):
        assert text[a:b] == " ".join(words[t0:t1])


def test_sentence_snapping_ends_chunks_at_a_full_stop():
    words = [f"w{i}." if i % 10 == 9 else f"w{i}" for i in range(100)]
    text = " ".join(words)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    offsets = np.stack([starts, starts + [len(w) for w in words]], axis=1)
    spans = chunk_spans(offsets, text, ChunkingConfig(tokens=32, overlap=0, sentences=True))
    assert all(text[b - 1] == "." for _, b in spans.chars[:-1])
    assert spans.tokens[0].tolist() == [0, 30]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 3000), capacity=st.integers(8, 600))
def test_late_chunking_windows_tile_the_text(n, capacity):
    found = windows(n, capacity)
    kept = np.concatenate([np.arange(lo, hi) for _, _, lo, hi in found])
    assert kept.tolist() == list(range(n))
    for start, stop, lo, hi in found:
        assert 0 <= start <= lo <= hi <= stop <= n and stop - start <= capacity


def test_pooling_is_the_mean_of_each_span():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(20, 6)).astype(np.float32)
    spans = np.array([[0, 5], [3, 20], [19, 20]])
    got = pool_chunks(tokens, spans, normalize=False)
    want = np.stack([tokens[a:b].mean(0) for a, b in spans])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    unit = pool_chunks(tokens, spans, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-5)


def test_options_out_of_range_say_what_to_change():
    with pytest.raises(InvalidChunking, match="overlap 32 must be smaller than the chunk size"):
        ChunkingConfig(tokens=32, overlap=32)
    with pytest.raises(InvalidChunking, match="unknown chunking"):
        ChunkingConfig(method="sliding")
    with pytest.raises(InvalidChunking, match="at least 8"):
        ChunkingConfig(tokens=2, overlap=0)


# -- the encoder's token outputs --------------------------------------------------------------
def test_token_outputs_equal_the_models_own(encoder):
    text = "Late chunking pools token outputs. Each chunk keeps its document's context!"
    mine = encoder.token_vectors([text])[0]
    theirs = encoder.model.encode([text], output_value="token_embeddings")[0].numpy()
    np.testing.assert_allclose(mine, theirs[1:-1], atol=1e-5)  # without [CLS] and [SEP]


def test_a_long_text_is_read_window_by_window(encoder):
    text = " ".join(f"word{i} follows." for i in range(300))  # ~1,500 word pieces
    n = len(encoder.token_offsets([text])[0])
    out = encoder.token_vectors([text], window=128)[0]
    assert out.shape == (n, encoder.dim) and np.isfinite(out).all()
    offsets = encoder.token_offsets([text])[0]
    (_, stop, lo, hi), *_ = windows(n, 126)  # 128 less [CLS] and [SEP]
    alone = encoder.token_vectors([text[: offsets[stop - 1, 1]]], window=128)[0]
    assert len(alone) == stop  # the first window's text, read alone: the same outputs
    np.testing.assert_allclose(out[lo:hi], alone[lo:hi], atol=1e-4)
    last = windows(n, 126)[-1]
    tail = encoder.token_vectors([text[offsets[last[0], 0]:]], window=128)[0]
    np.testing.assert_allclose(out[last[2]:], tail[last[2] - last[0]:], atol=1e-4)


def test_chunks_too_big_for_the_window_are_clamped_with_a_warning(encoder, caplog):
    with caplog.at_level(logging.WARNING):
        chunked = embed_chunks(encoder, [long_doc(0).embedding_text()],
                               ChunkingConfig(tokens=1000, overlap=10))
    assert "above the model's window of 254" in caplog.text
    sizes = chunked.chars[:, 1] - chunked.chars[:, 0]
    assert len(chunked.owner) >= 2 and sizes.max() > 0


@pytest.mark.parametrize("method", ["late", "naive"])
def test_empty_and_blank_texts_keep_one_empty_chunk(encoder, method):
    chunked = embed_chunks(encoder, ["", "   ", "one two three"],
                           ChunkingConfig(method=method, tokens=16, overlap=0))
    assert chunked.owner.tolist() == [0, 1, 2]
    assert chunked.chars.tolist()[:2] == [[0, 0], [0, 0]]
    assert np.isfinite(chunked.vectors).all()


# -- chunked collections ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [long_doc(i) for i in range(12)]


def make(tmp_path: Path, encoder, method: str = "late", tiers: str = "float32", **kw):
    config = ChunkingConfig(method=method, tokens=kw.pop("tokens", 48),
                            overlap=kw.pop("overlap", 8), **kw)
    return tiervec.create(tmp_path / f"c-{method}", encoder=encoder, tiers=tiers,
                          chunking=config)


@pytest.mark.parametrize("method", ["late", "naive"])
def test_a_chunked_search_equals_brute_force_max_over_chunks(tmp_path, encoder, docs, method):
    with make(tmp_path, encoder, method) as col:
        col.add(docs)
        assert len(col) == 12 and col.stats().rows > 12 and col.chunking.method.value == method
        queries = ["rockets reaching orbit", "yeast and bread", "violin strings"]
        found = col.search(queries, k=5)
        vectors = col.vectors().take(np.arange(col.stats().rows))
        ids = col.ids_at(np.arange(col.stats().rows))
        q = encoder.encode_queries(queries)
        for i in range(3):
            best: dict[str, float] = {}
            for doc_id, score in zip(ids, vectors @ q[i], strict=True):
                best[doc_id] = max(best.get(doc_id, -np.inf), float(score))
            want = sorted(best, key=lambda d: -best[d])[:5]
            assert found.ids[i].tolist() == want
            np.testing.assert_allclose(found.scores[i], [best[d] for d in want], rtol=1e-5)
        # evidence: each hit's best chunk, a span of its own text that scores its score
        texts = {d.id: d.text for d in docs}
        for i in range(3):
            for j, doc_id in enumerate(found.ids[i]):
                a, b = found.spans[i, j]
                assert 0 <= a < b <= len(texts[doc_id])
        top = found.ids[0, 0]  # documents 1 and 7 are about rockets in their middle
        assert top in ("d1", "d7") and "rockets" in texts[top][slice(*found.spans[0, 0])]


def test_documents_with_many_chunks_still_fill_k(tmp_path, encoder):
    many = [long_doc(i, sentences=60) for i in range(8)]
    with make(tmp_path, encoder, "naive", tokens=16, overlap=0) as col:
        col.add(many)
        assert col.stats().rows > 8 * 20
        found = col.search("cats sleeping in the sun", k=8)
        assert sorted(found.ids[0].tolist()) == sorted(d.id for d in many)


def test_filters_upserts_deletes_and_compaction_act_on_whole_documents(tmp_path, encoder, docs):
    with make(tmp_path, encoder) as col:
        col.add(docs)
        rows = col.stats().rows
        hit = col.search("rockets reaching orbit", k=12, filter="group == 1")
        assert set(hit.ids[0]) - {""} == {d.id for d in docs if d.metadata["group"] == 1}
        assert col.count("group == 1") == 4 and rows > 12  # documents, not chunks
        assert col.explain("group == 1").matches == 4
        stats = col.upsert([Document(id="d1", text="Only a short note about ferns now.",
                                     metadata={"group": 1})])
        assert (stats.added, stats.replaced) == (0, 1) and len(col) == 12
        assert col.get(["d1"])[0].text == "Only a short note about ferns now."
        found = col.search("rockets reaching orbit", k=12)
        assert found.ids[0].tolist().count("d1") == 1  # one document, not one per chunk
        assert col.delete(["d2", "nope"]).deleted == 1 and len(col) == 11
        before = col.search(["ferns", "bread rising"], k=5)
        col.compact()
        after = col.search(["ferns", "bread rising"], k=5)
        assert after.ids.tolist() == before.ids.tolist()
        np.testing.assert_array_equal(after.spans, before.spans)
        assert len(col) == 11 and col.stats().deleted == 0
    with tiervec.Collection.open(tmp_path / "c-late", read_only=True, encoder=encoder) as again:
        assert len(again) == 11
        assert again.search(["ferns", "bread rising"], k=5).ids.tolist() == after.ids.tolist()
        assert sorted(again.sample_ids(20)) == sorted(d.id for d in docs if d.id != "d2")


def test_lexical_search_of_a_chunked_collection_is_over_whole_documents(tmp_path, encoder, docs):
    with make(tmp_path, encoder) as chunked, tiervec.create(
            tmp_path / "plain", encoder=encoder, tiers="float32") as plain:
        chunked.add(docs)
        plain.add(docs)
        for query in ["rockets orbit", "violins bow strings"]:
            a = chunked.search(query, k=6, mode="lexical")
            b = plain.search(query, k=6, mode="lexical")
            assert a.ids.tolist() == b.ids.tolist()
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
        hybrid = chunked.search("rockets orbit", k=6, mode="hybrid")
        assert len(set(hybrid.ids[0])) == 6
        assert (hybrid.spans[0, :, 0] >= 0).all()  # every hit has its best chunk


def test_late_chunks_carry_their_documents_context(tmp_path, encoder):
    """A chunk that never names its topic is still found by it with late chunking only."""
    text = ("The Andromeda galaxy is the nearest large galaxy to the Milky Way. " * 3 +
            " ".join(f"It holds about {n} hundred billion stars and is moving closer every "
                     f"year, by {n} kilometres each second." for n in range(3, 9)))
    others = [Document(id=f"o{i}", text=f"A note on {t}, nothing else.") for i, t in
              enumerate(TOPICS)]
    ranks = {}
    for method in ("late", "naive"):
        with make(tmp_path, encoder, method, tokens=24, overlap=0) as col:
            col.add([Document(id="andromeda", text=text), *others])
            found = col.search("how many stars does the Andromeda galaxy have", k=3)
            ranks[method] = found.ids[0].tolist().index("andromeda")
            a, b = found.spans[0, ranks[method]]
            assert 0 <= a < b <= len(text)
    assert ranks["late"] == 0


def test_bad_input_on_chunked_collections(tmp_path, encoder):
    with pytest.raises(InvalidChunking, match="without a model cannot cut"):
        tiervec.create(tmp_path / "v", model=None, dim=8, chunking="late")
    with make(tmp_path, encoder) as col:
        with pytest.raises(InvalidChunking, match="pass the documents without vectors"):
            col.add([{"id": "a", "text": "x"}], vectors=np.ones((1, col.dim), np.float32))
        with pytest.raises(EmptyDocument, match="has no text"):
            col.add([{"id": "blank", "text": "   "}])
        # zero-width spaces: a text, but no word piece: stored as one empty chunk
        col.add([{"id": "nothing", "text": "\u200b\u200b"}, {"id": "real", "text": "cats purr"}])
        assert len(col) == 2 and col.stats().rows == 2
        found = col.search("cats", k=2)
        assert found.ids[0].tolist() == ["real", "nothing"]
        assert found.spans[0, 1].tolist() == [0, 0]


def test_long_texts_without_chunking_are_counted_and_warned_of(tmp_path, encoder, caplog):
    with tiervec.create(tmp_path / "p", encoder=encoder, tiers="float32") as col:
        with caplog.at_level(logging.WARNING):
            col.add([long_doc(0, sentences=80), Document(id="s", text="short")])
        assert col.truncated == 1
        assert "1 of 2 documents are longer than the model reads (256 word pieces)" in caplog.text
        assert "--chunking late" in caplog.text


# -- front ends -------------------------------------------------------------------------------
def test_the_cli_indexes_chunks_and_shows_the_best_one(tmp_path):
    from typer.testing import CliRunner

    from tiervec.cli import app

    corpus = tmp_path / "long.jsonl"
    with open(corpus, "w", encoding="utf-8") as fh:
        for i in range(6):
            doc = long_doc(i)
            fh.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    folder = tmp_path / "col"
    runner = CliRunner()
    bad = runner.invoke(app, ["index", str(corpus), "-c", str(folder), "--chunking", "late",
                              "--chunk-tokens", "32", "--overlap", "32"])
    assert bad.exit_code != 0 and "overlap 32 must be smaller" in " ".join(bad.output.split())
    assert not (folder / "manifest.json").exists()
    done = runner.invoke(app, ["index", str(corpus), "-c", str(folder), "--chunking", "late",
                               "--chunk-tokens", "48", "--overlap", "8", "--sentences"])
    assert done.exit_code == 0, done.output
    out = " ".join(done.stdout.split())
    assert "6 documents, " in out and " chunks (6 added" in out
    info = " ".join(runner.invoke(app, ["info", str(folder)]).stdout.split())
    assert "late chunks of 48 tokens, overlap 8, sentence ends, max over chunks" in info
    found = runner.invoke(app, ["search", str(folder), "violins with strings", "-k", "2",
                                "--json"])
    hits = json.loads(found.stdout)["results"]
    assert len(hits) == 2 and all("violins" in h["text"][slice(*h["span"])] for h in hits)
    again = runner.invoke(app, ["index", str(corpus), "-c", str(folder), "--chunking", "naive"])
    assert again.exit_code != 0 and "chunking is fixed" in " ".join(again.output.split())


def test_chunked_collections_over_http(tmp_path):
    from live_server import LiveServer

    with LiveServer(tmp_path / "data") as live, tiervec.Client(live.url) as client:
        col = client.create("long", chunking={"method": "late", "tokens": 48, "overlap": 8},
                            fields={"group": "int"})
        col.add([{"id": d.id, "title": d.title, "text": d.text, "group": d.metadata["group"]}
                 for d in (long_doc(i) for i in range(6))])
        found = col.search("violins with strings", k=3, filter="group >= 1")
        assert len(set(found.ids[0])) == 3 and (found.spans[0, :, 0] >= 0).all()
        with tiervec.open(live.data_dir / "long", read_only=True) as local:
            mine = local.search("violins with strings", k=3, filter="group >= 1")
        assert found.ids.tolist() == mine.ids.tolist()
        np.testing.assert_array_equal(found.spans, mine.spans)
        with pytest.raises(InvalidChunking, match="overlap 16 must be smaller"):
            client.create("bad", chunking={"method": "late", "tokens": 16, "overlap": 16})


@pytest.mark.parametrize("method", ["late", "naive"])
def test_progress_counts_every_text_once(encoder, method):
    seen: list[int] = []
    texts = [long_doc(i).text for i in range(5)] + ["\u200b", "short text"]
    embed_chunks(encoder, texts, ChunkingConfig(method=method, tokens=32, overlap=4),
                 progress=seen.append)
    assert sum(seen) == len(texts)


def test_the_chunk_aggregate_is_one_type():
    """One enum; the query's names and the HTTP API's choices are its values."""
    import typing

    from tiervec.encode.chunking import Aggregate
    from tiervec.search.query import AGGREGATES

    pytest.importorskip("fastapi")
    from tiervec.serve import models

    assert tuple(a.value for a in Aggregate) == AGGREGATES
    for model in (models.ChunkingIn, models.SearchIn):
        annotation = model.model_fields["aggregate"].annotation
        options = (annotation, *typing.get_args(annotation))
        literal = next(a for a in options if typing.get_origin(a) is typing.Literal)
        assert set(typing.get_args(literal)) == set(AGGREGATES)
