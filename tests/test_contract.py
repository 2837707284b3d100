"""One collection contract for every front end: the same behaviour suite runs against a local
collection, a sharded one (local Ray) and a served one (tiervec.Client against a real server
process), with the same documents, and every answer is compared; the shared methods' names
and parameters are compared too."""

from __future__ import annotations

import gzip
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

import tiervec
from tiervec import Document
from tiervec.errors import EncoderRequired
from tiervec.search import Chain, Query, SearchOptions

DIM, N = 24, 300
SHARED = ["add", "upsert", "delete", "delete_where", "set_metadata", "get", "missing",
          "scroll", "search", "search_vectors", "run", "count", "explain", "stats",
          "sample_ids", "with_tiers", "encode_queries", "last_plan", "compact"]
#: the protocol every front end implements (tiervec.search.Searchable), by parameter names
PROTOCOL = ["run", "search", "search_vectors", "encode_queries", "get", "missing",
            "sample_ids", "count", "explain", "with_tiers", "stats"]


@pytest.fixture(scope="module")
def data(shared_data: Path):
    with gzip.open(shared_data / "beir" / "scifact" / "corpus.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for _, line in zip(range(N), fh, strict=False)]
    docs = [Document(id=r["_id"], title=r.get("title", ""), text=r["text"],
                     metadata={"year": 2000 + i % 20, "kind": ["a", "b", "c"][i % 3]})
            for i, r in enumerate(rows)]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return docs, x, rng.standard_normal((5, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from live_server import LiveServer

    with LiveServer(tmp_path_factory.mktemp("served") / "data", "--ray") as live:
        yield live


def _open(kind: str, tmp: Path, server) -> tuple[object, object]:
    """A new empty collection of ``kind`` and what to close after."""
    options = {"model": None, "dim": DIM, "lexical": True, "tiers": "float32"}
    if kind == "local":
        col = tiervec.create(tmp / "local", **options)
        return col, col
    if kind == "sharded":
        pytest.importorskip("ray")
        col = tiervec.create_sharded(tmp / "sharded", shards=2, **options)
        return col, col
    client = tiervec.Client(server.url)
    return client.create(f"c{abs(hash(str(tmp))) % 10**8}", **options), client


def _behaviour(col, data) -> dict:
    """Every call of the contract, its answers in plain values."""
    docs, x, q = data
    out: dict = {}
    out["add"] = col.add(docs[:250], vectors=x[:250])
    stats = col.upsert(docs[240:N], vectors=x[240:N])
    out["upsert"] = (stats.added, stats.replaced)
    gone = col.delete([docs[0].id, docs[1].id, "no-such-id"])
    out["delete"] = (gone.deleted, list(gone.missing))
    out["set_metadata"] = col.set_metadata({docs[2].id: {"year": 1990}}).replaced
    out["delete_where"] = col.delete_where({"kind": "c", "year": 2019}).deleted
    out["len"] = len(col)
    out["count"] = col.count({"year": {"$gte": 2010}})
    out["explain"] = col.explain({"kind": "a"}).matches
    out["get"] = [None if d is None else (d.id, d.text[:30], d.metadata)
                  for d in col.get([docs[2].id, docs[0].id, docs[5].id])]
    out["missing"] = col.missing([docs[0].id, docs[3].id, "zz"])
    page = col.scroll({"kind": "b"}, limit=7)
    out["scroll"] = [d.id for d in page.documents]
    found = col.search_vectors(q, 5, filter="year >= 2005")
    out["search_vectors"] = (found.ids.tolist(), np.round(found.scores, 5).tolist())
    lexical = col.run(Query(texts=("cancer cells", "vitamin"), k=5, mode="lexical"))
    out["lexical"] = (lexical.ids.tolist(), np.round(lexical.scores, 4).tolist())
    hybrid = col.run(Query(texts=("cancer cells", "vitamin"), vectors=q[:2], k=5,
                           mode="hybrid", options=SearchOptions(fusion={"method": "rrf"})))
    out["hybrid"] = (hybrid.ids.tolist(), np.round(hybrid.scores, 5).tolist())
    view = col.with_tiers("int8*4 -> float32@disk")
    assert isinstance(view.chain, Chain) and str(view.chain) == "int8*4 -> float32@disk"
    out["with_tiers"] = view.search_vectors(q, 5).ids.tolist()
    stats = col.stats()
    out["stats"] = (stats.documents, stats.dim, stats.chain, stats.ram_bytes_per_vector)
    out["stats_of_chain"] = col.stats(Chain.parse("binary")).ram_bytes_per_vector
    sample = col.sample_ids(10, seed=3)
    assert len(sample) == 10 and not col.missing(sample)
    out["chain"] = str(col.chain)
    out["fields"] = sorted(col.fields)
    with pytest.raises(EncoderRequired):
        col.encode_queries(["no model here"])
    out["last_plan"] = col.last_plan()
    return out


@pytest.fixture(scope="module")
def answers(data, tmp_path_factory, server) -> dict:
    out = {}
    for kind in ("local", "sharded", "served"):
        col, closer = _open(kind, tmp_path_factory.mktemp(kind), server)
        try:
            out[kind] = _behaviour(col, data)
        finally:
            closer.close()  # type: ignore[attr-defined]
    return out


@pytest.mark.ray
@pytest.mark.parametrize("kind", ["sharded", "served"])
def test_every_front_end_answers_as_the_local_collection(answers, kind):
    want, got = answers["local"], answers[kind]
    assert got.keys() == want.keys()
    for name in want:
        if name in ("search_vectors", "lexical", "hybrid"):
            _same_ranking(got[name], want[name], name)
        else:
            assert got[name] == want[name], name


def _same_ranking(got: tuple, want: tuple, name: str) -> None:
    """Equal scores; equal ids but where a score is tied (the order of equal scores is
    storage order on one collection, id order on shards)."""
    assert got[1] == want[1], name
    for g_ids, w_ids, scores in zip(got[0], want[0], want[1], strict=True):
        for c, (g, w) in enumerate(zip(g_ids, w_ids, strict=True)):
            tied = scores.count(scores[c]) > 1 or c == len(scores) - 1
            assert g == w or tied, (name, c, g, w)


def test_the_front_ends_share_one_signature():
    from tiervec.client import AsyncRemoteCollection, RemoteCollection
    from tiervec.distribute.sharded import ShardedCollection

    def params(cls: type, name: str) -> list[str]:
        return [p for p in inspect.signature(getattr(cls, name)).parameters
                if p not in ("self", "progress", "batch_size")]

    for name in SHARED:
        want = params(tiervec.Collection, name)
        for cls in (ShardedCollection, RemoteCollection, AsyncRemoteCollection):
            assert params(cls, name) == want, (cls.__name__, name)
    from tiervec.search import Searchable

    for name in PROTOCOL:  # the protocol declares what every implementation takes
        declared = params(Searchable, name)
        assert params(tiervec.Collection, name)[:len(declared)] == declared, name


@pytest.mark.ray  # the module's server serves sharded collections too
def test_eval_measures_a_served_collection_as_a_local_one(tmp_path, server, shared_data):
    """`tiervec eval DATASET --collection http://HOST:PORT/NAME`: the same rows as on the
    collection's folder (queries encoded by the server, other chains made there)."""
    from typer.testing import CliRunner

    from tiervec.cli import app

    folder = tmp_path / "mini"
    (folder / "qrels").mkdir(parents=True)
    with gzip.open(shared_data / "beir" / "scifact" / "corpus.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for _, line in zip(range(60), fh, strict=False)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    queries = [{"_id": f"q{i}", "text": r["title"]} for i, r in enumerate(rows[:12])]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{r['_id']}\t1\n"
                                                 for i, r in enumerate(rows[:12])))
    with tiervec.Client(server.url) as client:
        served = client.create("mini", lexical=False)
        served.add([{"id": r["_id"], "title": r["title"], "text": r["text"]} for r in rows])
    args = ["eval", str(folder), "--tiers", "float32", "--tiers", "binary*4 -> float32@disk",
            "--no-hybrid"]
    remote = CliRunner().invoke(app, [*args, "--collection", f"{server.url}/mini",
                                      "--json", str(tmp_path / "remote.json")])
    assert remote.exit_code == 0, remote.output
    from tiervec.eval import evaluate, load_beir

    with tiervec.open(server.data_dir / "mini", read_only=True) as col:  # the server writes
        want = [r.to_dict() for r in evaluate(
            col, load_beir(folder), [Chain.parse("float32"),
                                     Chain.parse("binary*4 -> float32@disk")], lexical=False)]
    got = json.loads((tmp_path / "remote.json").read_text())
    assert [r["tiers"] for r in got] == [r["tiers"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert g["ndcg@10"] == pytest.approx(w["ndcg@10"], abs=1e-5), g["tiers"]
        assert g["ram_bytes_per_vector"] == w["ram_bytes_per_vector"]
