"""Documents by cursor and by filter, and metadata updates without encoding: in the library,
over HTTP, from the client and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import tiervec
from tiervec.errors import CollectionError, FieldTypeError, FilterError, InvalidRequest
from tiervec.serve import create_app

DIM = 8


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def col(tmp_path: Path):
    c = tiervec.create(tmp_path / "data" / "c", model=None, dim=DIM, tiers="float32",
                       fields={"year": "int", "tags": "list[str]"}, indexes=["year"])
    c.add([{"id": f"d{i:03d}", "text": f"text {i}", "year": 2000 + i % 10,
            "tags": ["even" if i % 2 == 0 else "odd"], "lang": "en"} for i in range(120)],
          vectors=unit(120))
    yield c
    c.close()


def every_page(source, filt=None, limit: int = 17) -> list[str]:
    ids, cursor = [], None
    while True:
        page = source.scroll(filt, limit=limit, cursor=cursor)
        ids += [d.id for d in page.documents]
        assert len(page.documents) <= limit
        if page.cursor is None:
            return ids
        cursor = page.cursor


def test_scroll_walks_every_match_once_in_id_order(col) -> None:
    everything = every_page(col)
    assert everything == [f"d{i:03d}" for i in range(120)]
    stored = {d.id: d.metadata for d in col.get(everything) if d is not None}
    for filt, keep in (("year == 2003", lambda m: m["year"] == 2003),
                       ("tags contains 'odd' and year > 2005",
                        lambda m: "odd" in m["tags"] and m["year"] > 2005),
                       ({"lang": "en", "year": {"$in": [2001, 2002]}},
                        lambda m: m["year"] in (2001, 2002)),
                       ("", lambda m: True)):
        assert every_page(col, filt) == [i for i in everything if keep(stored[i])]
    first = col.scroll(limit=5)
    assert [d.id for d in first.documents] == ["d000", "d001", "d002", "d003", "d004"]
    assert first.documents[1].metadata == {"year": 2001, "tags": ["odd"], "lang": "en"}
    assert first.cursor == "d004"


def test_a_cursor_survives_writes_and_compaction_between_pages(col) -> None:
    page = col.scroll(limit=50)
    col.delete(["d010", "d060"])  # one seen, one not yet
    col.upsert([{"id": "d055", "text": "new", "year": 1}, {"id": "d000a", "text": "x"}],
               vectors=unit(2, 1))
    col.compact()
    cursor, rest = page.cursor, []
    while cursor is not None:
        nxt = col.scroll(limit=30, cursor=cursor)
        rest += [d.id for d in nxt.documents]
        cursor = nxt.cursor
    assert rest[0] == "d050" and "d060" not in rest and "d055" in rest
    assert len(set(rest)) == len(rest) == 120 - 50 - 1


def test_scroll_refuses_bad_pages(col) -> None:
    for limit in (0, -1, 10_001, 2.5, True):
        with pytest.raises(InvalidRequest, match="limit"):
            col.scroll(limit=limit)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="cursor"):
        col.scroll(cursor=5)  # type: ignore[arg-type]
    assert col.scroll("year > 3000").documents == []


def test_delete_where_removes_every_match_in_one_commit(col) -> None:
    epoch = col._manifest.epoch
    assert col.delete_where("year < 2003 and tags contains 'even'").deleted == 24
    assert col._manifest.epoch == epoch + 1 and len(col) == 96
    assert col.count("year < 2003 and tags contains 'even'") == 0
    assert col.delete_where({"year": 1900}).deleted == 0
    for empty in (None, "", "  ", {}):
        with pytest.raises(FilterError, match="needs a filter"):
            col.delete_where(empty)
    assert len(col) == 96


def test_metadata_updates_keep_the_stored_vector(col) -> None:
    x = unit(120)
    stats = col.set_metadata({"d001": {"year": 1999, "extra": "yes"}, "d002": {"lang": None},
                              "gone": {"year": 1}})
    assert stats.replaced == 2 and stats.missing == ["gone"]
    one, two = col.get(["d001", "d002"])
    assert one.metadata == {"year": 1999, "tags": ["odd"], "lang": "en", "extra": "yes"}
    assert two.metadata == {"year": 2002, "tags": ["even"]} and two.text == "text 2"
    top = col.search_vectors(x[1], k=1)
    assert top.ids[0][0] == "d001" and top.scores[0][0] == pytest.approx(1.0, abs=1e-6)
    assert col.count("year == 1999") == 1 and col.count("extra == 'yes'") == 1
    col.set_metadata({"d001": {"year": 2020}}, replace=True)
    assert col.get(["d001"])[0].metadata == {"year": 2020}
    with pytest.raises(FieldTypeError):
        col.set_metadata({"d003": {"year": "soon"}})
    assert col.get(["d003"])[0].metadata["year"] == 2003
    with pytest.raises(InvalidRequest):
        col.set_metadata({"d003": 5})  # type: ignore[dict-item]


def test_metadata_updates_are_refused_where_documents_have_many_vectors(tmp_path) -> None:
    from tiervec.encode.muvera import MultiVectorConfig

    pytest.importorskip("sentence_transformers")
    mv = tiervec.create(tmp_path / "mv", multivector=MultiVectorConfig(), tiers="float32")
    with pytest.raises(CollectionError, match="upsert"):
        mv.set_metadata({"a": {"x": 1}})


def test_over_http(col, tmp_path: Path) -> None:
    col.close()
    with TestClient(create_app(tmp_path / "data")) as api:
        base = "/v1/collections/c/documents"
        page = api.post(f"{base}/scroll", json={"filter": "year == 2004", "limit": 5}).json()
        assert [d["id"] for d in page["documents"]] == ["d004", "d014", "d024", "d034", "d044"]
        again = api.post(f"{base}/scroll", json={"filter": "year == 2004", "limit": 10,
                                                 "cursor": page["cursor"]}).json()
        assert [d["id"] for d in again["documents"]] == [f"d{i:02d}4" for i in range(5, 12)]
        assert again["cursor"] is None
        assert api.post(f"{base}/scroll", json={"limit": 0}).status_code == 422
        gone = api.post(f"{base}/delete", json={"filter": {"year": 2009}}).json()
        assert gone == {"deleted": 12, "missing": []}
        both = api.post(f"{base}/delete", json={"filter": "year == 1", "ids": ["d001"]})
        assert both.status_code == 422
        patched = api.patch(base, json={"documents": [{"id": "d001", "metadata": {"year": 7}},
                                                      {"id": "nope", "metadata": {}}]})
        assert patched.json() == {"replaced": 1, "missing": ["nope"]}
        assert api.get(f"{base}/d001").json()["metadata"]["year"] == 7
        assert api.post("/v1/collections/c/count", json={}).json() == {"count": 108}


def test_from_the_client_and_the_cli(col, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from live_server import LiveServer
    from tiervec.cli import app

    folder = col.path
    col.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["docs", str(folder), "--filter", "year == 2001", "-n", "3"])
    assert listed.exit_code == 0, listed.output
    lines = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert [d["id"] for d in lines] == ["d001", "d011", "d021"]
    assert "--cursor 'd021'" in listed.output
    deleted = runner.invoke(app, ["delete", str(folder), "--filter", "year == 2001"])
    assert deleted.exit_code == 0 and "deleted 12 documents" in deleted.output
    changes = tmp_path / "changes.jsonl"
    changes.write_text('{"id": "d002", "year": 1990}\n{"id": "zzz", "year": 1}\n')
    updated = runner.invoke(app, ["set-metadata", str(folder), str(changes)])
    assert updated.exit_code == 0 and "1 document" in updated.output, updated.output
    with LiveServer(folder.parent) as live, tiervec.Client(live.url) as client:
        remote = client.open("c")
        assert remote.get(["d002"])[0].metadata["year"] == 1990  # type: ignore[union-attr]
        assert [d.id for d in remote.scroll("year == 2003", limit=2).documents] == \
            ["d003", "d013"]
        assert remote.delete_where("year == 2003").deleted == 12
        assert remote.set_metadata({"d004": {"year": 1}}, replace=True).replaced == 1
        assert remote.get(["d004"])[0].metadata == {"year": 1}  # type: ignore[union-attr]
        lex = client.create("lex", model=None, dim=4, lexical=True, tiers="float32")
        assert lex.has_lexical
        assert client.create("plain", model=None, dim=4, lexical=False).has_lexical is False
