"""Scale-out on Ray toward a real cluster (the parts of ``bench/scaleout.py`` added with
replicas): every search mode on shards beside one collection, a replica killed under
searches, ingest of precomputed vectors at 1 and 2 shards beside one process, and the open
time and first write of a sharded collection."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

import tiervec
from _common import beir_collection, shared_data
from hybrid import labelled, quality
from tiervec import Document
from tiervec.distribute.cluster import ray_module
from tiervec.distribute.ingest import ingest
from tiervec.distribute.sharded import ShardedCollection
from tiervec.search import Query, SearchMode

K, BATCH = 10, 100
MODES = (SearchMode.DENSE, SearchMode.LEXICAL, SearchMode.HYBRID)


def _search(col, queries, mode: SearchMode, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Ids and scores of every query in batches of 100, and QPS."""
    ids, scores = [], []
    start = time.perf_counter()
    for i in range(0, len(queries.vectors), BATCH):
        found = col.run(Query(texts=tuple(queries.texts[i:i + BATCH]),
                              vectors=queries.vectors[i:i + BATCH], k=k, mode=mode))
        ids.append(found.ids)
        scores.append(found.scores)
    seconds = time.perf_counter() - start
    return np.concatenate(ids), np.concatenate(scores), len(queries.vectors) / seconds


def _same_ranks(ids: np.ndarray, scores: np.ndarray, want_ids: np.ndarray,
                want_scores: np.ndarray) -> tuple[float, float]:
    """The share of (query, rank) places with the one collection's id, and the largest score
    difference."""
    valid = np.isfinite(want_scores)
    gap = float(np.max(np.abs(np.where(valid, scores - want_scores, 0.0)), initial=0.0))
    return float(np.mean(ids == want_ids)), gap


def modes_rows(work: Path) -> list[list]:
    """SciFact (5,183 documents, MiniLM vectors, test queries): dense, lexical and hybrid
    search on one collection and on 2 and 4 shards (float32 chain: results must match)."""
    folder = shared_data() / "beir" / "scifact"
    cached = beir_collection(folder, "scifact")
    ids = cached.ids_at(np.arange(len(cached)))
    vectors = np.asarray(cached.vectors().take(np.arange(len(cached))))
    docs = cached.get(list(ids))
    test = labelled(cached, folder, "test")
    cached.close()
    shutil.rmtree(work, ignore_errors=True)
    one = tiervec.create(work / "one", model="all-MiniLM-L6-v2", tiers="float32", lexical=True)
    one.add(docs, vectors=vectors)
    rows, want = [], {}
    for mode in MODES:
        got_ids, got_scores, speed = _search(one, test, mode, K)
        want[mode] = (got_ids, got_scores)
        rows.append([mode.value, "one collection", quality(test, got_ids, got_scores)["ndcg@10"],
                     "-", "-", round(speed, 1)])
    one.close()
    for shards in (2, 4):
        col = tiervec.create_sharded(work / f"s{shards}", shards=shards,
                                     model="all-MiniLM-L6-v2", tiers="float32", lexical=True)
        col.add(docs, vectors=vectors)
        for mode in MODES:
            got_ids, got_scores, speed = _search(col, test, mode, K)
            same, gap = _same_ranks(got_ids, got_scores, *want[mode])
            rows.append([mode.value, f"{shards} shards",
                         quality(test, got_ids, got_scores)["ndcg@10"], round(same, 4),
                         f"{gap:.1e}", round(speed, 1)])
        col.close()
    return rows


def replica_rows(work: Path, n_searches: int = 500) -> list[list]:
    """2 shards x 2 actors: one actor of every shard killed (its restarts spent) after 150 of
    ``n_searches`` one-query searches."""
    folder = shared_data() / "beir" / "scifact"
    test_vectors = labelled(tiervec.open(work / "one", read_only=True), folder, "test").vectors
    col = ShardedCollection.open(work / "s2", replicas=2)
    want = col.search_vectors(test_vectors, K).ids  # before any kill
    errors = partial = same = 0
    times: list[float] = []
    ray = ray_module()
    for i in range(n_searches):
        if i == 150:
            ray.kill(col.actor(0), no_restart=True)  # shard 0's writer
            ray.kill(col._replicas[1][0], no_restart=True)  # shard 1's reader
        q = test_vectors[i % len(test_vectors)]
        start = time.perf_counter()
        try:
            found = col.search_vectors(q, K)
        except Exception:
            errors += 1
            continue
        times.append(time.perf_counter() - start)
        partial += int(bool(found.shards and found.shards.partial))
        same += int(list(found.ids[0]) == list(want[i % len(want)]))
    down = sorted(k for k, why in col.health().items() if why)
    revived = col.revive()
    col.close()
    before, after = np.array(times[:150]), np.array(times[150:])
    return [[n_searches, errors, partial, f"{same}/{n_searches}",
             round(1000 * float(np.median(before)), 2), round(1000 * float(np.median(after)), 2),
             ", ".join(down), ", ".join(revived)]]


def ingest_rows(work: Path, base: np.ndarray, n: int) -> list[list]:
    """``n`` precomputed 384-d vectors (from a Parquet file) into one process and into 1 and
    2 shards through Ray Data (the writes run in Ray Data's tasks, not the caller)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from speed import synthetic

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    x = np.concatenate(list(synthetic(base, n, 0.5, 3)))[:n]
    ids = [f"v{i}" for i in range(n)]
    pq.write_table(pa.table({"_id": ids, "text": [""] * n, "vector": list(x)}),
                   work / "vectors.parquet", row_group_size=16_384)
    rows = []
    plain = tiervec.create(work / "one", model=None, dim=x.shape[1])
    start = time.perf_counter()
    for i in range(0, n, 4096):
        plain.add([Document(id=d, text="") for d in ids[i:i + 4096]], vectors=x[i:i + 4096])
    plain.refit()
    seconds = time.perf_counter() - start
    plain.close()
    rows.append(["one process (add, 4,096 a commit)", "-", n, round(seconds, 1),
                 round(n / seconds)])
    for shards in (1, 2):
        col = tiervec.create_sharded(work / f"s{shards}", shards=shards, model=None,
                                     dim=x.shape[1])
        start = time.perf_counter()
        got = ingest(col, work / "vectors.parquet", vector_column="vector")
        seconds = time.perf_counter() - start
        assert got.added == n, got
        col.close()
        rows.append(["Ray Data -> shard writers", shards, n, round(seconds, 1),
                     round(n / seconds)])
    return rows


def open_rows(work: Path) -> list[list]:
    """Opening a 2-shard collection (new actors) and its first write of 20 texts: encoded in
    the caller (one model) against sent to the shards (each actor loads the model)."""
    rows = []
    texts = [Document(id=f"new-{i}", text=f"a new finding number {i} on vitamin D")
             for i in range(20)]
    for how in ("caller encodes (now)", "each shard encodes (before)"):
        ray = ray_module()
        start = time.perf_counter()
        col = ShardedCollection.open(work / "s2")
        opened = time.perf_counter() - start
        start = time.perf_counter()
        if how.startswith("caller"):
            col.upsert(texts)
        else:
            routed = col._routed([d.id for d in texts])
            ray.get([col.actor(s).upsert.remote([texts[i] for i in rows_], None)
                     for s, rows_ in enumerate(routed) if rows_])
        first = time.perf_counter() - start
        col.delete([d.id for d in texts])
        col.close()
        rows.append([how, round(opened, 2), round(first, 2)])
    return rows
