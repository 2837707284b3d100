"""Distributed ingest on a local Ray cluster: the real model in an actor pool, exactly once
when a shard's actor and an encoding actor are killed mid-ingest, resumable, precomputed
vectors."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

import tiervec
from tiervec.distribute.ingest import ingest

pytestmark = pytest.mark.ray

SCIFACT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "beir" / "scifact"
N = 160


@pytest.fixture(scope="module")
def ray_cluster():
    from tiervec.distribute.cluster import connect

    return connect(num_cpus=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if not (SCIFACT / "corpus.jsonl.gz").is_file():
        pytest.skip("BEIR SciFact is not in ../shared/data")
    out = tmp_path_factory.mktemp("corpus") / "scifact-head.jsonl"
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(N)]
    lines.insert(5, json.dumps({"_id": "blank", "title": "", "text": "  "}) + "\n")
    out.write_text("".join(lines), encoding="utf-8")
    return out


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["_id"] for line in path.read_text().splitlines()]


def _shard_ids(col) -> list[str]:
    out = []
    for shard in col.shards:
        with tiervec.open(col.path / shard, read_only=True) as one:
            out += one.sample_ids(10 * N)
    return out


def _kill_encoder_process() -> bool:
    """SIGKILL one of Ray Data's encoding actors (found by its process title)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "MapWorker(MapBatches(Encode))" in title:
            os.kill(int(pid), signal.SIGKILL)
            return True
    return False


def test_killed_actors_lose_nothing_and_duplicate_nothing(tmp_path, corpus, ray_cluster):
    ray = ray_cluster
    col = tiervec.create_sharded(tmp_path / "c", shards=2)
    killed: dict[str, bool] = {}

    def chaos() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed.get("encoder"):
            if _kill_encoder_process():
                killed["encoder"] = True
            time.sleep(0.5)
        while time.monotonic() < deadline and col.count() == 0:
            time.sleep(0.2)
        ray.kill(col.actor(0), no_restart=False)  # a shard's writer dies mid-ingest
        killed["shard"] = True

    thread = threading.Thread(target=chaos)
    thread.start()
    stats = ingest(col, corpus, encoders=1, encode_batch=16, write_batch=16)
    thread.join()
    assert killed == {"encoder": True, "shard": True}
    want = [i for i in _ids(corpus) if i != "blank"]
    assert stats.empty == ["blank"]
    with col:
        assert len(col) == len(want)
        stored = _shard_ids(col)
        assert sorted(stored) == sorted(want)  # each document once, none lost
        found = col.search(["vitamin D deficiency"], k=3)
        assert found.ids[0, 0] != ""


def test_rerun_resumes_and_vectors_can_be_precomputed(tmp_path, corpus, ray_cluster):
    half = tmp_path / "half.jsonl"
    lines = corpus.read_text().splitlines(keepends=True)
    half.write_text("".join(lines[: len(lines) // 2]))
    col = tiervec.create_sharded(tmp_path / "c", shards=3)
    with col:
        first = ingest(col, half, encoders=2)
        again = ingest(col, corpus, encoders=1)
        assert again.skipped == first.added and again.added == len(lines) - 1 - first.added
        assert sorted(_shard_ids(col)) == sorted(i for i in _ids(corpus) if i != "blank")
        # the same texts with their vectors given: nothing is encoded again
        ids = [i for i in _ids(corpus) if i != "blank"][:40]
        vectors = col.encode_queries(["x"] * 1)  # the model, for the dimension
        rng = np.random.default_rng(0)
        given = rng.standard_normal((len(ids), vectors.shape[1])).astype(np.float32)
        pq = pytest.importorskip("pyarrow.parquet")
        import pyarrow as pa

        table = pa.table({"_id": ids, "text": [""] * len(ids), "vector": given.tolist()})
        pq.write_table(table, tmp_path / "vectors.parquet")
    plain = tiervec.create_sharded(tmp_path / "v", shards=2, model=None, dim=given.shape[1],
                                   tiers="float32")
    with plain:
        stats = ingest(plain, tmp_path / "vectors.parquet", vector_column="vector")
        assert stats.added == len(ids)
        unit = given / np.linalg.norm(given, axis=1, keepdims=True)
        top = plain.search_vectors(unit[:5], 1)
        assert list(top.ids[:, 0]) == ids[:5]


def _cli(*args: object, timeout: int = 300) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("tiervec")
    if not script.exists():
        pytest.skip(f"no tiervec script beside {sys.executable}")
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_index_on_ray_is_quiet_and_warns_of_long_documents(tmp_path, corpus):
    """Ray Data's bars and logs (165 lines) only with --verbose; the truncation warning the
    single-process index prints, printed here too."""
    head = tmp_path / "head.jsonl"
    head.write_text("".join(corpus.read_text().splitlines(keepends=True)[:40]))
    done = _cli("index", head, "--collection", tmp_path / "c", "--ray", "--shards", "2")
    assert done.returncode == 0, done.stderr
    said = (done.stdout + done.stderr).strip().splitlines()
    assert len(said) < 12, "\n".join(said)
    assert "longer than the model reads" in done.stderr and "39 added" in done.stdout
    assert "Dataset" not in done.stdout + done.stderr


def test_index_on_ray_refuses_before_ray_starts(tmp_path, corpus):
    """A wrong shard count, or --ray on an ordinary collection: refused at once (with no
    cluster at --address, a later refusal would say the cluster cannot be reached)."""
    nowhere = ["--address", "127.0.0.1:9"]
    plain = tiervec.create(tmp_path / "plain", model=None, dim=4)
    plain.close()
    done = _cli("index", corpus, "--collection", tmp_path / "plain", "--ray", *nowhere)
    assert done.returncode != 0 and "single (unsharded) collection" in done.stderr
    done = _cli("index", corpus, "--collection", tmp_path / "new", "--ray", "--shards", "5000",
                *nowhere)
    assert done.returncode != 0 and "--shards must be between" in done.stderr
    assert not (tmp_path / "new").exists()


def test_parquet_vectors_travel_as_arrays_and_bad_rows_are_named():
    import pyarrow as pa

    from tiervec.distribute.ingest import _rows_to_records, parse_records
    from tiervec.errors import MalformedCorpus

    table = pa.table({"_id": ["a", "b"], "text": ["x", "y"],
                      "vector": [[1.0, 2.0], [3.0, 4.0]]})
    batch = _rows_to_records(table, "vector")
    assert batch["given"].dtype == np.float32 and batch["given"].shape == (2, 2)
    parsed = parse_records(batch, "vector")
    np.testing.assert_array_equal(parsed["vector"], [[1, 2], [3, 4]])
    missing = pa.table({"_id": ["a", "b"], "text": ["x", "y"], "vector": [[1.0, 2.0], None]})
    with pytest.raises(MalformedCorpus, match="'b' has no 'vector' vector"):
        parse_records(_rows_to_records(missing, "vector"), "vector")
    ragged = pa.table({"_id": ["a", "b"], "text": ["x", "y"], "vector": [[1.0, 2.0], [3.0]]})
    with pytest.raises(MalformedCorpus, match=r"'b'.*not 2-dimensional"):
        parse_records(_rows_to_records(ragged, "vector"), "vector")
