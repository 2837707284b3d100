"""Sharded collections on a local Ray cluster: routing, the merged top-k against one
collection, writes, and faults (a killed shard actor, a missing shard, a second writer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

import tiervec
from tiervec import Document
from tiervec.distribute import ShardedCollection, shard_of
from tiervec.distribute.merge import allocate
from tiervec.errors import (
    CollectionExists,
    CollectionLocked,
    CollectionNotFound,
    DuplicateIds,
    NotACollection,
    ShardUnavailable,
)

pytestmark = pytest.mark.ray

DIM, N = 48, 3000


@pytest.fixture(scope="module")
def ray_cluster():
    from tiervec.distribute.cluster import connect

    ray = connect(num_cpus=2)
    yield ray


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    docs = [Document(id=f"doc-{i}", text="", metadata={"group": i % 4, "year": 2000 + i % 25})
            for i in range(N)]
    queries = x[:60] + 0.3 * rng.standard_normal((60, DIM)).astype(np.float32)
    return docs, x, queries


def _pair(tmp: Path, data, tiers: str, shards: int = 3):
    docs, x, _ = data
    sharded = tiervec.create_sharded(tmp / "sharded", shards=shards, model=None, dim=DIM,
                                     tiers=tiers)
    sharded.add(docs, vectors=x)
    single = tiervec.create(tmp / "single", model=None, dim=DIM, tiers=tiers)
    single.add(docs, vectors=x)
    return sharded, single


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact,
                                                                         strict=True)]))


def test_routing_is_by_id_alone_and_balanced():
    ids = [f"x{i}" for i in range(20_000)]
    first, again = shard_of(ids, 4), shard_of(list(reversed(ids)), 4)[::-1]
    assert (first == again).all()
    counts = np.bincount(first, minlength=4)
    assert counts.min() > 0.9 * len(ids) / 4


def test_allocate_splits_in_proportion():
    assert allocate(10, [50, 30, 20]) == [5, 3, 2]
    assert sum(allocate(7, [1, 100])) == 7
    assert allocate(500, [3, 4]) == [3, 4]


def test_exact_chain_gives_the_single_collection_ids(tmp_path, data, ray_cluster):
    sharded, single = _pair(tmp_path, data, "float32")
    with sharded, single:
        _, _, queries = data
        assert len(sharded) == len(single) == N
        got, want = sharded.search_vectors(queries, 10), single.search_vectors(queries, 10)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
        assert got.shards.answered == sharded.shards and not got.shards.partial
        flt = 'group == 2 and year >= 2010'
        got, want = (c.search_vectors(queries, 10, filter=flt) for c in (sharded, single))
        np.testing.assert_array_equal(got.ids, want.ids)
        assert sharded.count(flt) == single.count(flt)
        assert sharded.explain(flt).matches == single.explain(flt).matches
        # every shard is an ordinary collection: the documents are split, none twice
        sizes = [len(tiervec.open(sharded.path / s, read_only=True)) for s in sharded.shards]
        assert sum(sizes) == N and min(sizes) > 0


def test_compressed_chain_keeps_recall(tmp_path, data, ray_cluster):
    docs, x, queries = data
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    exact_ids = np.array([[docs[i].id for i in row] for row in exact])
    sharded, single = _pair(tmp_path, data, "binary*4 -> float32@disk", shards=4)
    with sharded, single:
        r_sharded = _recall(sharded.search_vectors(queries, 10).ids, exact_ids)
        r_single = _recall(single.search_vectors(queries, 10).ids, exact_ids)
        assert r_sharded >= r_single - 0.01
        view = sharded.with_tiers("float32")  # evaluation's path: each shard's view
        assert _recall(view.search_vectors(queries, 10).ids, exact_ids) == 1.0
        stats = sharded.stats()
        assert stats.documents == N and stats.ram_bytes == single.stats().ram_bytes


def test_writes_route_by_id(tmp_path, data, ray_cluster):
    docs, x, _ = data
    with tiervec.create_sharded(tmp_path / "c", shards=2, model=None, dim=DIM,
                                tiers="float32") as col:
        col.add(docs[:100], vectors=x[:100])
        with pytest.raises(DuplicateIds, match="already in the collection"):
            col.add(docs[90:110], vectors=x[90:110])
        assert len(col) == 100  # nothing written by the refused add
        stats = col.upsert(docs[90:110], vectors=x[:20])
        assert (stats.added, stats.replaced) == (10, 10)
        assert col.ingest(docs[:110], x[:110]) == 0  # all held now: nothing twice
        assert col.ingest(docs[:130], x[:130]) == 20
        gone = col.delete(["doc-5", "doc-6", "nope"])
        assert gone.deleted == 2 and gone.missing == ["nope"]
        assert len(col) == 128
        got = col.get(["doc-95", "doc-5", "doc-7"])
        assert got[0].id == "doc-95" and got[1] is None and got[2].id == "doc-7"
        assert col.missing(["doc-5", "doc-7"]) == ["doc-5"]
        top = col.search_vectors(x[3], 2)
        assert set(top.ids[0]) == {"doc-3", "doc-93"}  # doc-93 upserted with doc-3's vector
        assert len(col.sample_ids(30, seed=1)) == 30


def test_a_killed_shard_actor_is_restarted_and_reopens_its_folder(tmp_path, data, ray_cluster):
    ray = ray_cluster
    sharded, single = _pair(tmp_path, data, "float32", shards=2)
    with sharded, single:
        _, _, queries = data
        want = single.search_vectors(queries, 10).ids
        before = ray.get(sharded.actor(0).ping.remote())
        ray.kill(sharded.actor(0), no_restart=False)  # Ray restarts it
        got = sharded.search_vectors(queries, 10)
        np.testing.assert_array_equal(got.ids, want)
        assert ray.get(sharded.actor(0).ping.remote()) != before  # a new process


def test_shard_actors_search_with_the_threads_given(tmp_path, data, ray_cluster):
    """Ray gives an actor reserving no CPU one OpenMP thread; a shard's call threads get the
    threads it was opened with (FAISS and BLAS)."""
    sharded, single = _pair(tmp_path, data, "float32", shards=2)
    sharded.close()
    single.close()
    with tiervec.open_sharded(tmp_path / "sharded", read_only=True, threads=2) as col:
        assert ray_cluster.get(col.actor(1).threads.remote()) == {"faiss": 2, "blas": 2}


def test_a_shard_that_stays_down_fails_the_search_unless_partial(tmp_path, data, ray_cluster):
    ray = ray_cluster
    sharded, single = _pair(tmp_path, data, "float32", shards=3)
    with single:
        _, _, queries = data
        down = sharded.shards[1]
        ray.kill(sharded.actor(1), no_restart=True)
        with pytest.raises(ShardUnavailable, match=down) as err:
            sharded.search_vectors(queries, 10)
        assert err.value.shards == (down,)
        sharded.partial = True
        got = sharded.search_vectors(queries, 10)
        assert got.shards.partial and set(got.shards.failed) == {down}
        assert got.shards.answered == tuple(s for s in sharded.shards if s != down)
        held = set(tiervec.open(sharded.path / down, read_only=True).sample_ids(N))
        assert not held & set(got.ids.ravel())
        sharded.close()


def test_missing_shard_and_second_writer_are_named(tmp_path, data, ray_cluster):
    docs, x, _ = data
    col = tiervec.create_sharded(tmp_path / "c", shards=2, model=None, dim=DIM)
    col.add(docs[:50], vectors=x[:50])
    shard = col.path / col.shards[1]
    with pytest.raises(CollectionLocked):  # the shard's actor is its writer
        tiervec.open(shard)
    col.close()
    with tiervec.open(shard):  # held here now: the shard's actor cannot be its writer
        with pytest.raises(CollectionLocked):
            ShardedCollection.open(col.path)
    with pytest.raises(NotACollection, match="open_sharded"):
        tiervec.open(col.path)
    with pytest.raises(CollectionExists):
        tiervec.create_sharded(col.path, shards=2, model=None, dim=DIM)
    shard.rename(shard.with_name("elsewhere"))
    with pytest.raises(CollectionNotFound, match=col.shards[1]):
        tiervec.open_sharded(col.path)
    manifest = json.loads((col.path / "sharded.json").read_text())
    assert manifest["routing"].startswith("blake2b")


def test_no_cluster_at_an_address_is_a_clear_error():
    import subprocess
    import sys

    code = ("from tiervec.distribute.cluster import connect\n"
            "try:\n    connect('127.0.0.1:9')\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout
    assert out.startswith("ClusterUnavailable") and "ray start --head" in out


def test_served_over_http_with_ray(tmp_path, data, ray_cluster):
    from live_server import LiveServer

    docs, x, queries = data
    root = tmp_path / "data"
    with tiervec.create_sharded(root / "big", shards=2, model=None, dim=DIM,
                                tiers="float32") as col:
        col.add(docs[:500], vectors=x[:500])
        want = col.search_vectors(queries[:5], 5)
    plain = LiveServer(root).start(timeout=120)  # sharded collections served only when asked
    try:
        import httpx

        assert "serve --ray" in httpx.get(f"{plain.url}/readyz").json()["failed"]["big"]
    finally:
        plain.stop()
    server = LiveServer(root, "--ray").start(timeout=180)
    try:
        with tiervec.Client(server.url) as client:
            remote = client.open("big")
            got = remote.search_vectors(queries[:5], 5)
            np.testing.assert_array_equal(got.ids, want.ids)
            remote.add([{"_id": "new", "text": ""}], vectors=x[600:601])
            assert remote.count() == 501
            assert remote.search_vectors(x[600], 1).ids[0, 0] == "new"
    finally:
        assert server.stop() == 0


def test_scroll_delete_by_filter_and_metadata_updates_across_shards(tmp_path, data,
                                                                    ray_cluster):
    docs, x, _ = data
    sharded, single = _pair(tmp_path, (docs[:300], x[:300], None), "float32")
    with sharded, single:
        for filt in (None, "group == 1"):
            pages, cursor = [], None
            while True:
                page = sharded.scroll(filt, limit=37, cursor=cursor)
                pages += [d.id for d in page.documents]
                if page.cursor is None:
                    break
                cursor = page.cursor
            everything = single.scroll(filt, limit=10_000).documents
            assert pages == [d.id for d in everything]
        assert sharded.delete_where("year < 2003").deleted == single.delete_where(
            "year < 2003").deleted > 0
        assert len(sharded) == len(single)
        stats = sharded.set_metadata({"doc-10": {"group": 9}, "doc-0": {"group": 9}})
        assert stats.replaced == 1 and stats.missing == ["doc-0"]  # doc-0: year 2000, deleted
        assert sharded.count("group == 9") == 1
        assert sharded.search_vectors(x[10], 1).ids[0][0] == "doc-10"


def test_a_view_sees_every_write_committed_before_it_was_made(tmp_path, data, ray_cluster):
    """Shard actors cached one view per chain, so a view made after a delete (or an add)
    still searched the documents as they were."""
    docs, x, _ = data
    with tiervec.create_sharded(tmp_path / "v", shards=2, model=None, dim=DIM,
                                tiers="binary*4 -> float32@disk") as col:
        col.add(docs[:200], vectors=x[:200])
        before = col.with_tiers("float32").search_vectors(x[7], 1)
        assert before.ids[0][0] == "doc-7"
        col.delete(["doc-7"])
        after = col.with_tiers("float32").search_vectors(x[7], 5)
        assert "doc-7" not in after.ids[0]
        assert col.with_tiers("float32").count() == 199
        col.add(docs[200:210], vectors=x[200:210])
        assert col.with_tiers("float32").search_vectors(x[205], 1).ids[0][0] == "doc-205"


def test_a_copied_folder_never_reaches_the_originals_shards(tmp_path, data, ray_cluster):
    """A copy (or a restore) has the original's id: its shards' actors were the original's,
    and a delete on the copy removed the document from the original's folder."""
    import shutil

    docs, x, _ = data
    a = tiervec.create_sharded(tmp_path / "a", shards=2, model=None, dim=DIM, tiers="float32")
    a.add(docs[:50], vectors=x[:50])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = tiervec.open_sharded(tmp_path / "b")
    try:
        b.delete(["doc-1"])
        assert b.get(["doc-1"])[0] is None and len(b) == 49
        assert a.get(["doc-1"])[0] is not None and len(a) == 50
    finally:
        b.close()
    assert a.search_vectors(x[1], 1).ids[0][0] == "doc-1"  # closing the copy left `a` alone
    a.close()
    with tiervec.open(tmp_path / "a" / a.shards[shard_of(["doc-1"], 2)[0]],
                      read_only=True) as shard:
        assert shard.get(["doc-1"])[0] is not None


def test_closing_a_second_handle_leaves_the_first_ones_shards_up(tmp_path, data, ray_cluster):
    """A second opener (another process on the cluster: `tiervec index --ray --address`
    beside a server) got the same actors and, closing, killed them under the first."""
    docs, x, _ = data
    first = tiervec.create_sharded(tmp_path / "s", shards=2, model=None, dim=DIM,
                                   tiers="float32")
    first.add(docs[:50], vectors=x[:50])
    second = tiervec.open_sharded(tmp_path / "s")
    assert len(second) == 50
    second.close()
    assert first.search_vectors(x[3], 1).ids[0][0] == "doc-3"  # still served
    first.add(docs[50:60], vectors=x[50:60])
    first.close()  # the last user: the actors go
    with tiervec.open(tmp_path / "s" / first.shards[0]) as shard:  # its writer lock released
        assert len(shard) > 0


def test_a_write_waits_for_a_slow_shard_that_a_search_would_not(tmp_path, data, ray_cluster):
    """On a busy machine an add failed with "did not answer in time": the search deadline
    applied to writes, leaving the caller not knowing whether the write landed."""
    docs, x, _ = data
    with tiervec.create_sharded(tmp_path / "w", shards=2, model=None, dim=DIM,
                                tiers="float32") as col:
        col.timeout = 1e-6  # every shard is "slow" against it
        assert col.add(docs[:300], vectors=x[:300]) == 300
        assert col.upsert(docs[:10], vectors=x[:10]).replaced == 10
        assert col.delete(["doc-1"]).deleted == 1
        with pytest.raises(ShardUnavailable, match="did not answer"):
            col.search_vectors(x[:2], 3)
        col.timeout = 30.0
        assert len(col) == 299


def test_a_shard_whose_restarts_ran_out_is_reported_and_revived(tmp_path, data, ray_cluster):
    ray = ray_cluster
    sharded, single = _pair(tmp_path, data, "float32", shards=2)
    with sharded, single:
        _, _, queries = data
        assert sharded.health() == {s: None for s in sharded.shards}
        ray.kill(sharded.actor(1), no_restart=True)  # as when its restarts have run out
        health = sharded.health()
        assert health[sharded.shards[0]] is None and health[sharded.shards[1]]
        with pytest.raises(ShardUnavailable):
            sharded.search_vectors(queries, 10)
        assert sharded.revive() == [sharded.shards[1]]
        assert sharded.health() == {s: None for s in sharded.shards}
        np.testing.assert_array_equal(sharded.search_vectors(queries, 10).ids,
                                      single.search_vectors(queries, 10).ids)
        assert sharded.revive() == []


def test_readyz_names_a_dead_shard_after_reviving_it(tmp_path, data, ray_cluster):
    """The server said ready while a shard's restarts had run out, and never reopened it."""
    from fastapi.testclient import TestClient

    from tiervec.serve import ServerConfig, create_app

    docs, x, queries = data
    root = tmp_path / "data"
    with tiervec.create_sharded(root / "big", shards=2, model=None, dim=DIM,
                                tiers="float32") as col:
        col.add(docs[:100], vectors=x[:100])
        want = col.search_vectors(queries[:3], 5).ids
    with TestClient(create_app(root, ServerConfig(ray_address=""))) as api:
        ready = api.get("/readyz").json()
        assert ready["ready"] and ready["shards_down"] == 0
        served = api.app.state.registry.get("big").collection  # type: ignore[attr-defined]
        ray_cluster.kill(served.actor(1), no_restart=True)  # its restarts ran out
        ready = api.get("/readyz")
        assert ready.status_code == 200 and ready.json()["shards_down"] == 0  # revived
        got = api.post("/v1/collections/big/search",
                       json={"vectors": queries[:3].tolist(), "k": 5}).json()["results"]
        assert [[h["id"] for h in hits] for hits in got] == want.tolist()


def test_partial_results_over_http_name_the_dead_shard(tmp_path, data, ray_cluster):
    """A request (or the server's --partial) may ask for the shards that are up; the response
    and stats name the shard that is down."""
    from fastapi.testclient import TestClient

    from tiervec.serve import ServerConfig, create_app

    docs, x, queries = data
    root = tmp_path / "data"
    with tiervec.create_sharded(root / "big", shards=2, model=None, dim=DIM,
                                tiers="float32") as col:
        col.add(docs[:200], vectors=x[:200])
        held = set(col.scroll(limit=200).documents[i].id for i in range(200))
    with TestClient(create_app(root, ServerConfig(ray_address=""))) as api:
        served = api.app.state.registry.get("big").collection  # type: ignore[attr-defined]
        assert api.get("/v1/collections/big/stats").json()["shards"] == {
            s: None for s in served.shards}
        dead = served.shards[1]
        ray_cluster.kill(served.actor(1), no_restart=True)
        body = {"vectors": queries[:3].tolist(), "k": 5}
        refused = api.post("/v1/collections/big/search", json=body)
        assert refused.status_code == 503 and dead in refused.json()["error"]["message"]
        answer = api.post("/v1/collections/big/search", json={**body, "partial": True}).json()
        assert answer["shards"]["answered"] == [served.shards[0]]
        assert list(answer["shards"]["failed"]) == [dead]
        found = {h["id"] for hits in answer["results"] for h in hits}
        assert found and found <= held and not shard_of(sorted(found), 2).any()
        stats = api.get("/v1/collections/big/stats").json()
        assert stats["shards"][served.shards[0]] is None and stats["shards"][dead]
        assert 0 < stats["documents"] < 200


def test_a_killed_replica_costs_no_error_and_no_partial_result(tmp_path, data, ray_cluster):
    """Two actors per shard; one of every shard killed in the middle of 500 searches."""
    docs, x, queries = data
    with tiervec.create_sharded(tmp_path / "c", shards=2, model=None, dim=DIM,
                                tiers="float32", replicas=2) as col:
        col.add(docs[:1000], vectors=x[:1000])
        assert sorted(col.health()) == ["shard-000", "shard-000#1", "shard-001",
                                        "shard-001#1"]
        want = col.search_vectors(queries[:4], 10).ids
        for turn in range(2):  # each replica sees the writer's commits
            col.upsert([Document(id=f"new-{turn}", text="")], vectors=queries[turn])
            for _ in range(2):
                assert col.search_vectors(queries[turn], 1).ids[0, 0] == f"new-{turn}"
        col.delete(["new-0", "new-1"])
        for i in range(500):
            if i == 150:  # a reader of shard 0, the writer of shard 1: restarts ran out
                ray_cluster.kill(col._replicas[0][0], no_restart=True)
                ray_cluster.kill(col.actor(1), no_restart=True)
            found = col.search_vectors(queries[:4], 10)
            assert found.shards is not None and not found.shards.partial
            np.testing.assert_array_equal(found.ids, want)
        down = {k for k, why in col.health().items() if why}
        assert down == {"shard-000#1", "shard-001"}
        assert len(col) == 1000 and col.count({"group": 1}) == 250
        assert sorted(col.revive()) == sorted(down)
        col.add([Document(id="after", text="")], vectors=x[1000:1001])
        assert col.search_vectors(x[1000], 1).ids[0, 0] == "after"


def test_replicas_are_refused_outside_their_range(tmp_path, data, ray_cluster):
    from tiervec.errors import InvalidRequest

    with tiervec.create_sharded(tmp_path / "c", shards=2, model=None, dim=DIM) as col:
        col.add(data[0][:10], vectors=data[1][:10])
    for bad in (0, 9, True, 1.5):
        with pytest.raises(InvalidRequest, match="replicas"):
            ShardedCollection.open(tmp_path / "c", replicas=bad)


def test_every_call_made_of_a_shard_actor_is_a_shard_method():
    """The sharded collection calls its actors by attribute (`actor.count.remote(...)`), no
    method named by a string inside the actor: every such name is a method of Shard."""
    import re

    from tiervec.distribute.shard import Shard

    folder = Path(tiervec.__file__).parent / "distribute"
    called = set()
    for path in folder.glob("*.py"):
        called |= set(re.findall(r"\.([a-z_]+)\.(?:options\([^)]*\)\.)?remote\(",
                                 path.read_text()))
        called |= set(re.findall(r'self\._write\("([a-z_]+)"', path.read_text()))
    assert called and {"count", "stats", "set_search_defaults"} <= called
    assert not [name for name in called if not callable(getattr(Shard, name, None))]


def test_every_create_option_reaches_the_shards(tmp_path, data, ray_cluster):
    """The shards are created from one CollectionSettings: the recall target (which the
    sharded create used to drop, so `tiervec index --ray --recall-target` failed) included."""
    from tiervec.store.manifest import Manifest

    docs, x, _ = data
    with tiervec.create_sharded(tmp_path / "c", shards=2, model=None, dim=DIM,
                                tiers="int8*4 -> float32@disk", recall_target=0.9,
                                fields={"group": "int"}, indexes=["group"]) as col:
        col.add(docs[:50], vectors=x[:50])
        for shard in col.shards:
            manifest = Manifest.read(tmp_path / "c" / shard)
            assert manifest.chain == "int8*4 -> float32@disk"
            assert manifest.search["recall_target"]["target"] == 0.9
        assert col.stats().recall["target"] == 0.9
