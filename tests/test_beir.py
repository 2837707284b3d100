"""BEIR folders: queries and relevance judgements of a split, and the errors on bad folders."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from tiervec.corpus import Document
from tiervec.errors import CorpusNotFound, MalformedCorpus
from tiervec.eval import BeirDataset, load_beir

CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "Cats purr."},
    {"_id": "d2", "title": "", "text": "Dogs bark."},
    {"_id": "d3", "title": "Birds", "text": "Birds sing."},
]
QUERIES = [
    {"_id": "q1", "text": "what purrs"},
    {"_id": "q2", "text": "what barks"},
    {"_id": "q3", "text": "never judged"},
]
QRELS = "q1\td1\t1\nq2\td2\t2\nq2\td3\t0\n"
HEADER = "query-id\tcorpus-id\tscore\n"


def write_jsonl(path: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def make_beir(
    folder: Path,
    *,
    gz: bool = False,
    qrels: dict[str, str] | None = None,
    queries: list[dict] | None = None,
) -> Path:
    """A tiny BEIR folder: corpus, queries and ``qrels/<split>.tsv`` for each split given."""
    suffix = ".jsonl.gz" if gz else ".jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / f"corpus{suffix}", CORPUS)
    write_jsonl(folder / f"queries{suffix}", QUERIES if queries is None else queries)
    (folder / "qrels").mkdir(exist_ok=True)
    for split, text in (qrels if qrels is not None else {"test": HEADER + QRELS}).items():
        (folder / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("header", [True, False])
def test_load_beir_returns_judged_queries_and_qrels(tmp_path, gz, header):
    folder = make_beir(tmp_path / "tiny", gz=gz, qrels={"test": (HEADER if header else "") + QRELS})
    data = load_beir(folder)
    assert isinstance(data, BeirDataset)
    assert data.name == "tiny" and data.split == "test" and data.path == folder
    assert data.queries == {"q1": "what purrs", "q2": "what barks"}  # q3 has no judgement
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}


def test_load_beir_accepts_a_string_path_and_other_splits(tmp_path):
    folder = make_beir(tmp_path / "tiny", qrels={"test": QRELS, "dev": "q3\td3\t1\n"})
    data = load_beir(str(folder), split="dev")
    assert data.split == "dev"
    assert data.queries == {"q3": "never judged"}
    assert data.qrels == {"q3": {"d3": 1}}


def test_corpus_of_a_dataset(tmp_path):
    data = load_beir(make_beir(tmp_path / "tiny", gz=True))
    docs = list(data.corpus())
    assert [d.id for d in docs] == ["d1", "d2", "d3"]
    assert docs[0] == Document(id="d1", text="Cats purr.", title="Cats")


def test_qrels_relevance_may_be_a_float(tmp_path):
    folder = make_beir(tmp_path / "tiny", qrels={"test": "q1 d1 1.0\n\nq2\td2\t2\n"})
    assert load_beir(folder).qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}


def test_judged_queries_without_text_are_skipped_with_a_warning(tmp_path, caplog):
    folder = make_beir(tmp_path / "tiny", qrels={"test": QRELS + "q404\td1\t1\n"})
    with caplog.at_level(logging.WARNING, logger="tiervec.eval.beir"):
        data = load_beir(folder)
    assert "q404" not in data.queries and "q404" not in data.qrels
    assert "1 judged queries have no text" in caplog.text


def test_no_judged_query_has_text(tmp_path):
    folder = make_beir(tmp_path / "tiny", qrels={"test": "x1\td1\t1\n"})
    with pytest.raises(MalformedCorpus, match="same dataset"):
        load_beir(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(CorpusNotFound, match="does not exist") as info:
        load_beir(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError)


def test_missing_corpus(tmp_path):
    folder = make_beir(tmp_path / "tiny")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(CorpusNotFound, match=r"corpus\.jsonl"):
        load_beir(folder)


def test_missing_queries(tmp_path):
    folder = make_beir(tmp_path / "tiny")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(CorpusNotFound, match=r"queries\.jsonl"):
        load_beir(folder)


def test_missing_split_lists_available_splits(tmp_path):
    folder = make_beir(tmp_path / "tiny", qrels={"test": QRELS, "train": QRELS})
    with pytest.raises(CorpusNotFound, match=r"dev\.tsv") as info:
        load_beir(folder, split="dev")
    assert "['test', 'train']" in str(info.value)


def test_missing_qrels_folder(tmp_path):
    folder = make_beir(tmp_path / "tiny", qrels={})
    (folder / "qrels").rmdir()
    with pytest.raises(CorpusNotFound, match="available splits: none"):
        load_beir(folder)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("q1\td1\n", 1),  # two fields
        (HEADER + "q1\td1\t1\nq2 d2\n", 3),
        (HEADER + "q1\td1\tyes\n", 2),  # not a number (only line 1 may be a header)
    ],
)
def test_malformed_qrels_line(tmp_path, text, line):
    folder = make_beir(tmp_path / "tiny", qrels={"test": text})
    with pytest.raises(MalformedCorpus, match=f"test.tsv line {line}"):
        load_beir(folder)


def test_query_without_text_field(tmp_path):
    folder = make_beir(tmp_path / "tiny", queries=[{"_id": "q1"}])
    with pytest.raises(MalformedCorpus, match=r"queries\.jsonl line 1"):
        load_beir(folder)


def test_real_scifact(shared_data):
    folder = shared_data / "beir" / "scifact"
    if not folder.is_dir():
        pytest.skip(f"SciFact is not in the shared data folder ({folder})")
    data = load_beir(folder)
    assert data.name == "scifact"
    assert len(data.queries) == 300
    assert len(data.qrels) == 300
    assert sum(len(docs) for docs in data.qrels.values()) == 339
    assert all(text.strip() for text in data.queries.values())
