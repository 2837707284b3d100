"""Corpus readers: jsonl(.gz), csv, parquet, BEIR folders; documents; errors that name the line."""

from __future__ import annotations

import csv
import gzip
import json
import logging
from pathlib import Path

import pytest

from tiervec.corpus import Document, count_records, document_from_record, read_corpus
from tiervec.errors import CorpusError, CorpusNotFound, EmptyDocument, MalformedCorpus

RECORDS = [
    {"_id": "d1", "title": "Cats", "text": "Cats purr.", "year": 2020},
    {"_id": "d2", "text": "Dogs bark."},
    {"id": "d3", "title": "Birds", "text": "Birds sing.", "metadata": {"lang": "en"}},
]
EXPECTED = [
    Document(id="d1", text="Cats purr.", title="Cats", metadata={"year": 2020}),
    Document(id="d2", text="Dogs bark."),
    Document(id="d3", text="Birds sing.", title="Birds", metadata={"lang": "en"}),
]


def write_jsonl(path: Path, records: list, blank_lines: bool = False) -> Path:
    lines = [json.dumps(r) for r in records]
    text = ("\n\n" if blank_lines else "\n").join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz", "corpus.ndjson"])
def test_read_jsonl(tmp_path, name):
    path = write_jsonl(tmp_path / name, RECORDS, blank_lines=True)
    assert list(read_corpus(path)) == EXPECTED
    assert list(read_corpus(str(path))) == EXPECTED


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_read_beir_folder(tmp_path, name):
    write_jsonl(tmp_path / name, RECORDS)
    assert list(read_corpus(tmp_path)) == EXPECTED


def test_beir_folder_prefers_plain_jsonl(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", RECORDS[:1])
    write_jsonl(tmp_path / "corpus.jsonl.gz", RECORDS)
    assert [d.id for d in read_corpus(tmp_path)] == ["d1"]


def test_read_csv(tmp_path):
    rows = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr.", "year": "2020"},
        {"_id": "d2", "title": "", "text": "Dogs bark, loudly.\nTwice.", "year": ""},
    ]
    path = write_csv(tmp_path / "corpus.csv", rows, ["_id", "title", "text", "year"])
    docs = list(read_corpus(path))
    # csv values are strings; extra columns become metadata.
    assert docs == [
        Document(id="d1", text="Cats purr.", title="Cats", metadata={"year": "2020"}),
        Document(id="d2", text="Dogs bark, loudly.\nTwice.", title="", metadata={"year": ""}),
    ]


def test_read_csv_with_id_column(tmp_path):
    path = write_csv(tmp_path / "c.csv", [{"id": "7", "text": "seven"}], ["id", "text"])
    assert list(read_corpus(path)) == [Document(id="7", text="seven")]


def test_read_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({
        "_id": ["d1", "d2"],
        "title": ["Cats", None],
        "text": ["Cats purr.", "Dogs bark."],
        "score": [1.5, 2.5],
    })
    path = tmp_path / "corpus.parquet"
    pq.write_table(table, path)
    assert list(read_corpus(path)) == [
        Document(id="d1", text="Cats purr.", title="Cats", metadata={"score": 1.5}),
        Document(id="d2", text="Dogs bark.", title="", metadata={"score": 2.5}),
    ]
    assert count_records(path) == 2


def test_parquet_integer_ids_become_strings(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"id": [0, 12], "text": ["zero", "twelve"]}), path)
    assert [d.id for d in read_corpus(path)] == ["0", "12"]


def test_parquet_without_text_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"_id": ["d1"], "body": ["x"]}), path)
    with pytest.raises(MalformedCorpus, match="'text' column"):
        list(read_corpus(path))


# -- documents ------------------------------------------------------------------------------------


def test_embedding_text_joins_title_and_text():
    assert Document(id="1", text="Cats purr.", title="Cats").embedding_text() == "Cats Cats purr."
    assert Document(id="1", text="Cats purr.").embedding_text() == "Cats purr."
    assert Document(id="1", text="", title="Only a title").embedding_text() == "Only a title"


def test_metadata_merges_nested_object_and_extra_fields():
    doc = document_from_record(
        {"_id": 5, "text": "t", "a": 1, "metadata": {"b": 2, "a": 0}}, "here"
    )
    assert doc.id == "5"
    assert dict(doc.metadata) == {"a": 1, "b": 2}  # top-level fields win over nested ones


def test_non_object_nested_metadata_is_kept_as_a_field():
    doc = document_from_record({"_id": "x", "text": "t", "metadata": "raw"}, "here")
    assert dict(doc.metadata) == {"metadata": "raw"}
    doc = document_from_record({"_id": "x", "text": "t", "metadata": ""}, "here")
    assert dict(doc.metadata) == {}


def test_id_prefers_underscore_id_and_falls_back_to_id():
    assert document_from_record({"_id": "a", "id": "b", "text": "t"}, "r").id == "a"
    assert document_from_record({"_id": "", "id": "b", "text": "t"}, "r").id == "b"


def test_title_without_text_is_allowed():
    doc = document_from_record({"_id": "a", "title": "T", "text": ""}, "r")
    assert doc.embedding_text() == "T"


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"text": "no id"}, "no id"),
        ({"_id": "", "text": "empty id"}, "no id"),
        ({"_id": "a"}, "has no text"),
        ({"_id": "a", "text": "  ", "title": ""}, "has no text"),
        ({"_id": "a", "text": None, "title": ""}, "has no text"),
        (["not", "an", "object"], "expected an object"),
    ],
)
def test_invalid_records(record, match):
    with pytest.raises(MalformedCorpus, match=match) as info:
        document_from_record(record, "corpus.jsonl line 7")
    assert "corpus.jsonl line 7" in str(info.value)


# -- errors ---------------------------------------------------------------------------------------


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "ok"}\n\n{"_id": "b", "text": \n', encoding="utf-8")
    docs = read_corpus(path)
    assert next(docs).id == "a"  # records before the bad line are read
    with pytest.raises(MalformedCorpus, match=r"corpus\.jsonl line 3: invalid JSON"):
        next(docs)


@pytest.mark.parametrize(
    ("record", "match", "strict"),
    [({"text": "no id"}, "line 2: the document has no id", False),
     ({"_id": "x"}, "line 2: .*no text", True)],
)
def test_records_without_id_or_text_name_the_line(tmp_path, record, match, strict):
    path = write_jsonl(tmp_path / "corpus.jsonl", [RECORDS[0], record])
    with pytest.raises(MalformedCorpus, match=match):
        list(read_corpus(path, strict=strict))


def test_a_title_without_text_is_a_document():
    doc = document_from_record({"_id": "a", "text": None, "title": "T"}, "corpus.jsonl line 1")
    assert (doc.title, doc.text, doc.embedding_text()) == ("T", "", "T")


def test_empty_documents_are_skipped_with_one_warning(tmp_path, caplog):
    records = [RECORDS[0], {"_id": "e1", "text": ""}, {"_id": "e2", "title": " ", "text": " "},
               *[{"_id": f"e{i}", "text": ""} for i in range(3, 9)], RECORDS[1]]
    path = write_jsonl(tmp_path / "corpus.jsonl", records)
    with caplog.at_level(logging.WARNING, logger="tiervec"):
        docs = list(read_corpus(path))
    assert [d.id for d in docs] == [RECORDS[0]["_id"], RECORDS[1]["_id"]]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "skipped 8 documents with neither title nor text" in message
    assert "'e1', 'e2', 'e3', 'e4', 'e5' and 3 more" in message and "--strict" in message
    seen: list[str] = []
    assert len(list(read_corpus(path, on_empty=seen.extend))) == 2
    assert seen == [f"e{i}" for i in range(1, 9)]


def test_strict_reading_stops_at_the_first_empty_document(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [RECORDS[0], {"_id": "471", "text": ""}])
    with pytest.raises(EmptyDocument, match="line 2: document '471' has no text"):
        list(read_corpus(path, strict=True))


def test_csv_error_names_the_file_line(tmp_path):
    path = write_csv(tmp_path / "c.csv", [{"_id": "a", "text": "x"}, {"_id": "", "text": "y"}],
                     ["_id", "text"])
    with pytest.raises(MalformedCorpus, match=r"c\.csv line 3"):  # line 1 is the header
        list(read_corpus(path))


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(MalformedCorpus, match="cannot be read"):
        list(read_corpus(path))


def test_upper_case_gzip_extension(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl.gz", RECORDS).rename(tmp_path / "CORPUS.JSONL.GZ")
    assert list(read_corpus(path)) == EXPECTED


def test_count_records_of_corrupt_gzip_raises_malformed_corpus(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(MalformedCorpus):
        count_records(path)


def test_missing_path(tmp_path):
    with pytest.raises(CorpusNotFound, match="does not exist") as info:
        read_corpus(tmp_path / "nope.jsonl")
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, CorpusError) and isinstance(info.value, ValueError)


def test_folder_without_corpus(tmp_path):
    with pytest.raises(CorpusNotFound, match=r"no corpus\.jsonl"):
        read_corpus(tmp_path)


def test_csv_without_text_column(tmp_path):
    path = write_csv(tmp_path / "c.csv", [{"_id": "a", "body": "x"}], ["_id", "body"])
    with pytest.raises(MalformedCorpus, match="'text' column") as info:
        list(read_corpus(path))
    assert "['_id', 'body']" in str(info.value)


def test_csv_without_id_column(tmp_path):
    path = write_csv(tmp_path / "c.csv", [{"text": "x"}], ["text"])
    with pytest.raises(MalformedCorpus, match="'_id'"):
        list(read_corpus(path))


def test_unsupported_format(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(MalformedCorpus, match="unsupported corpus format"):
        read_corpus(path)


# -- count_records --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_count_records_of_jsonl_skips_blank_lines(tmp_path, name):
    path = write_jsonl(tmp_path / name, RECORDS, blank_lines=True)
    assert count_records(path) == 3


def test_count_records_of_a_beir_folder(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl.gz", RECORDS[:2])
    assert count_records(tmp_path) == 2


def test_count_records_of_csv_is_unknown(tmp_path):
    path = write_csv(tmp_path / "c.csv", [{"_id": "a", "text": "x"}], ["_id", "text"])
    assert count_records(path) is None


def test_count_records_of_missing_path(tmp_path):
    with pytest.raises(CorpusNotFound):
        count_records(tmp_path / "missing.jsonl")
