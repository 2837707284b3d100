"""``tiervec.Client`` against a real server process: the local Collection's methods and result
types, the same error classes, and the durability of acknowledged writes across a kill -9."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

import tiervec
from live_server import LiveServer, free_port
from tiervec import errors

DIM = 12


def vec_docs(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"v{i}", "text": "", "metadata": {"group": i % 4}}
            for i in range(start, start + n)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("served") / "data"
    with LiveServer(data) as live:
        yield live


def test_client_mirrors_the_local_collection(server: LiveServer, unit_vectors) -> None:
    x = unit_vectors(300, DIM)
    with tiervec.Client(server.url) as client:
        col = client.create("mirror", model=None, dim=DIM, tiers="int8*4 -> float32@disk",
                            fields={"group": "int"})
        assert col.add(vec_docs(300), vectors=x, batch_size=128) == 300
        assert len(col) == 300 and col.dim == DIM and col.model is None
        assert col.upsert(vec_docs(2), vectors=x[:2]).replaced == 2
        assert col.delete(["v5", "zz"]).missing == ["zz"]
        q = unit_vectors(4, DIM, seed=2)
        remote = col.search_vectors(q, k=8, filter="group != 1")
        assert [d["name"] for d in client.list()] == ["mirror"]
        got = col.get(["v0", "zz"])
        assert got[0] is not None and got[0].metadata == {"group": 0} and got[1] is None
        assert col.count("group == 2") == 75
        assert col.explain({"group": 2}).matches == 75
        stats = col.stats()
        assert stats.documents == 299 and stats.deleted == 3 and stats.chain == str(col.chain)
        assert col.last_plan() is None
    with tiervec.open(server.data_dir / "mirror", read_only=True) as local:
        want = local.search_vectors(q, k=8, filter="group != 1")
        assert local.stats().to_dict() == stats.to_dict()
    assert remote.ids.tolist() == want.ids.tolist()
    np.testing.assert_allclose(remote.scores, want.scores, rtol=1e-6)
    assert remote.ids.dtype == want.ids.dtype and remote.scores.dtype == want.scores.dtype


def test_client_raises_the_servers_error_classes(server: LiveServer, unit_vectors) -> None:
    with tiervec.Client(server.url) as client:
        col = client.create("errs", model=None, dim=DIM)
        col.add(vec_docs(3), vectors=unit_vectors(3, DIM))
        with pytest.raises(errors.DimensionMismatch):
            col.search_vectors(np.ones((1, DIM + 1)))
        with pytest.raises(errors.DuplicateIds):
            col.add(vec_docs(1), vectors=unit_vectors(1, DIM))
        with pytest.raises(errors.FilterSyntaxError) as caught:
            col.search_vectors(np.ones(DIM), filter="group >")
        assert caught.value.position == 7 and "^" in str(caught.value)
        with pytest.raises(errors.UnknownField):
            col.count("nope == 1")
        with pytest.raises(errors.EncoderRequired):
            col.search("a text")
        with pytest.raises(errors.InvalidUpgrade, match="has no model"):
            col.upgrade("minilm")
        with pytest.raises(errors.UpgradeInProgress, match="no upgrade under way"):
            col.upgrade()
        assert col.upgrade_state() == {"running": False, "error": None, "upgrade": None,
                                       "model": None}
        with pytest.raises(errors.CollectionNotFound):
            client.open("absent")
        with pytest.raises(errors.CollectionExists):
            client.create("errs", model=None, dim=DIM)
        client.delete("errs")
        with pytest.raises(errors.CollectionNotFound):
            col.count()
    with pytest.raises(errors.ServerUnavailable, match="tiervec serve"):
        tiervec.Client(f"http://127.0.0.1:{free_port()}").list()


def test_text_collection_over_http_equals_the_library(server: LiveServer) -> None:
    texts = ["solar panels convert sunlight into electricity",
             "wind turbines generate power from moving air",
             "a recipe for sourdough bread with a crisp crust",
             "the stock market fell sharply on monday",
             "photovoltaic cells and renewable energy storage"]
    with tiervec.Client(server.url) as client:
        col = client.create("texts", fields={"kind": "str"})
        col.add([{"id": f"t{i}", "text": t, "kind": "energy" if i in (0, 1, 4) else "other"}
                 for i, t in enumerate(texts)])
        remote = col.search(["sun power", "bread"], k=3)
        filtered = col.search("sun power", k=3, filter='kind == "other"')
    with tiervec.open(server.data_dir / "texts", read_only=True) as local:
        assert remote.ids.tolist() == local.search(["sun power", "bread"], k=3).ids.tolist()
        assert filtered.ids.tolist() == local.search("sun power", k=3,
                                                     filter='kind == "other"').ids.tolist()
    assert remote.ids[0, 0] in ("t0", "t4") and remote.ids[1, 0] == "t2"


def test_api_key_over_http(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "data", "--api-key", "k1", "--read-key", "k2") as live:
        with pytest.raises(errors.Unauthorized):
            tiervec.Client(live.url).list()
        with tiervec.Client(live.url, api_key="k1") as rw:
            rw.create("c", model=None, dim=4)
        with tiervec.Client(live.url, api_key="k2") as ro:
            assert ro.open("c").count() == 0
            with pytest.raises(errors.Forbidden):
                ro.open("c").add([{"id": "a"}], vectors=np.ones((1, 4)))


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path, unit_vectors) -> None:
    """Writers upsert batches while the server is killed with SIGKILL: after a restart every
    acknowledged document is there with its acknowledged vector (or, where the batch in
    flight when the server died was committed before it could answer, that batch's whole),
    and the collection opens."""
    data = tmp_path / "data"
    live = LiveServer(data).start()
    with tiervec.Client(live.url) as client:
        client.create("durable", model=None, dim=DIM, tiers="binary*4 -> float32@disk")
    acked: dict[str, np.ndarray] = {}
    in_flight: dict[int, tuple[list[str], np.ndarray]] = {}
    stop = threading.Event()

    def writer(w: int) -> None:
        with tiervec.Client(live.url, timeout=10) as client:
            col = client.open("durable")
            for b in range(10_000):
                if stop.is_set():
                    return
                ids = [f"w{w}-{(b * 7 + j) % 300}" for j in range(20)]  # upserts repeat ids
                x = unit_vectors(20, DIM, seed=w * 100_000 + b)
                in_flight[w] = (ids, x)
                try:
                    col.upsert([{"id": i} for i in ids], vectors=x)
                except errors.ServerError:
                    return  # the server is gone: this batch was never acknowledged
                acked.update(zip(ids, x, strict=True))
                del in_flight[w]

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    while len(acked) < 400 and all(t.is_alive() for t in threads):
        threading.Event().wait(0.05)
    live.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 400
    with LiveServer(data, port=live.port) as again, tiervec.Client(again.url) as client:
        col = client.open("durable")
        ids = sorted(acked)
        got = col.get(ids)
        lost = [i for i, d in zip(ids, got, strict=True) if d is None]
        assert not lost, lost[:5]
        committed = set()  # the ids of in-flight batches that made it, whole
        for batch, x in in_flight.values():
            top = col.search_vectors(x, k=1, oversample=50)
            stored = [i == j and s > 0.9999 for i, j, s in
                      zip(top.ids[:, 0], batch, top.scores[:, 0], strict=True)]
            assert all(stored) or not any(stored), f"a batch is half there: {stored}"
            committed |= set(batch) if all(stored) else set()
        checked = [i for i in ids if i not in committed][:50]
        top = col.search_vectors(np.stack([acked[i] for i in checked]), k=1, oversample=50)
        assert top.ids[:, 0].tolist() == checked
        assert col.count() >= len(acked)


def test_sigterm_finishes_in_flight_writes_and_saves_the_graph(tmp_path: Path,
                                                               unit_vectors) -> None:
    data = tmp_path / "data"
    dim = 256  # a 27 MB request: still in flight when SIGTERM comes
    x = unit_vectors(20_000, dim, seed=1)
    with LiveServer(data) as live:
        with tiervec.Client(live.url) as client:
            col = client.create("graph", model=None, dim=dim,
                                tiers="int8@hnsw*4 -> float32@disk")
            col.add(vec_docs(500), vectors=x[:500])
            col.search_vectors(x[:1], k=1)  # the graph is built, and grows with the next add
            outcome: dict[str, object] = {}

            def big_write() -> None:
                try:
                    outcome["added"] = col.add(vec_docs(19_500, start=500), vectors=x[500:],
                                               batch_size=19_500)
                except errors.TiervecError as exc:
                    outcome["error"] = exc

            t = threading.Thread(target=big_write)
            t.start()
            threading.Event().wait(0.3)
            assert live.stop() == 0  # SIGTERM: the write in flight is answered first
            t.join(30)
    manifest = json.loads((data / "graph" / "manifest.json").read_text())
    live_rows = sum(s["rows"] for s in manifest["segments"])
    assert live_rows in (500, 20_000)  # the write committed whole or not at all
    if "added" in outcome:
        assert outcome["added"] == 19_500 and live_rows == 20_000
    assert manifest["graph"] is not None and manifest["graph"]["rows"] == live_rows
    with tiervec.open(data / "graph") as col:
        assert len(col) == live_rows


def test_lexical_and_hybrid_over_http_equal_the_library(server: LiveServer) -> None:
    texts = ["solar panels convert sunlight into electricity",
             "wind turbines generate power from moving air",
             "a recipe for sourdough bread with a crisp crust",
             "photovoltaic cells and renewable energy storage"]
    queries = ["solar electricity", "bread crust recipe"]
    with tiervec.Client(server.url) as client:
        col = client.create("hybrid")
        col.add([{"id": f"t{i}", "text": t} for i, t in enumerate(texts)])
        assert client.open("hybrid").has_lexical
        lexical = col.search(queries, k=3, mode="lexical")
        hybrid = col.search(queries, k=3, mode="hybrid", fusion={"method": "minmax"})
        with pytest.raises(errors.CalibrationMissing, match="tiervec tune"):
            col.search(queries, mode="hybrid", min_relevance=0.5)
    with tiervec.open(server.data_dir / "hybrid", read_only=True) as local:
        assert lexical.ids.tolist() == local.search(queries, k=3, mode="lexical").ids.tolist()
        want = local.search(queries, k=3, mode="hybrid", fusion={"method": "minmax"})
        assert hybrid.ids.tolist() == want.ids.tolist()
    assert lexical.ids[0, 0] == "t0" and lexical.ids[0, 1] == ""  # only matching documents


def test_the_async_client_has_the_same_methods_and_answers(server: LiveServer,
                                                            unit_vectors) -> None:
    """tiervec.AsyncClient, concurrent searches gathered; the same results and errors as the
    blocking client."""
    import asyncio
    import inspect

    x = unit_vectors(200, DIM, seed=4)
    q = unit_vectors(6, DIM, seed=5)

    async def go() -> tuple:
        async with tiervec.AsyncClient(server.url) as client:
            col = await client.create("async", model=None, dim=DIM, fields={"group": "int"})
            assert await col.add(vec_docs(200), vectors=x, batch_size=64) == 200
            assert (await col.upsert(vec_docs(1), vectors=x[:1])).replaced == 1
            assert (await col.delete(["v3", "nope"])).missing == ["nope"]
            found = await asyncio.gather(*[col.search_vectors(q[i], k=5, filter="group < 3")
                                           for i in range(len(q))])
            with pytest.raises(errors.FilterSyntaxError):
                await col.search_vectors(q[0], k=5, filter="group <")
            with pytest.raises(errors.CollectionNotFound):
                await client.open("no-such")
            assert await col.count() == 199 and (await col.stats()).documents == 199
            assert await col.last_plan() is None and await client.ready()
            return found, [d["name"] for d in await client.list()]

    found, names = asyncio.run(go())
    assert "async" in names
    with tiervec.Client(server.url) as client:
        col = client.open("async")
        want = col.search_vectors(q, k=5, filter="group < 3")
    assert [f.ids[0].tolist() for f in found] == want.ids.tolist()
    blocking = {n for n, _ in inspect.getmembers(tiervec.client.RemoteCollection)
                if not n.startswith("_")}
    awaited = {n for n, _ in inspect.getmembers(tiervec.client.AsyncRemoteCollection)
               if not n.startswith("_")}
    assert blocking == awaited
