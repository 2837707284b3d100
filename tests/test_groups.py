"""Group commit: concurrent adds and upserts become one commit, each answered once it is
durable; a bad write fails alone; writes of one id keep their order; a SIGKILL during
concurrent grouped writes loses no acknowledged write and leaves every other all or nothing."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiervec
from tiervec.errors import DuplicateIds, FieldTypeError
from tiervec.store.writes import WriteStats

DIM = 8


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def docs(ids: list[str], **meta: Any) -> list[dict]:
    return [{"id": i, "text": f"text of {i}", **meta} for i in ids]


@pytest.fixture
def col(tmp_path: Path):
    c = tiervec.create(tmp_path / "c", model=None, dim=DIM, tiers="float32",
                       fields={"year": "int"}, lexical=True)
    c.add(docs(["old"], year=2000), vectors=vec(0))
    yield c
    c.close()


def run_queued(col: tiervec.Collection, calls: list[tuple[str, list[dict], Any]]) -> list[Any]:
    """Start one thread per ``(method, docs, vectors)`` while the writer mutex is held (so
    each queues in order and waits), then let them go: one leader commits the queue."""
    out: list[Any] = [None] * len(calls)

    def call(i: int, method: str, batch: list[dict], vectors: Any) -> None:
        try:
            out[i] = getattr(col, method)(batch, vectors=vectors)
        except Exception as exc:
            out[i] = exc

    threads = []
    with col._writer.mutex:
        for i, (method, batch, vectors) in enumerate(calls):
            thread = threading.Thread(target=call, args=(i, method, batch, vectors))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 30
            while len(col._writer.queue._items) < i + 1:
                assert time.monotonic() < deadline
                time.sleep(0.001)
    for thread in threads:
        thread.join(30)
    return out


def test_queued_writes_commit_as_one_and_each_gets_its_answer(col) -> None:
    before = col._writer.queue.commits
    calls = [("add", docs([f"a{i}", f"b{i}"], year=2001 + i),
              np.stack([vec(10 + i), vec(20 + i)])) for i in range(6)]
    calls.append(("upsert", docs(["old", "new"], year=1999), np.stack([vec(1), vec(2)])))
    out = run_queued(col, calls)
    assert out[:6] == [2] * 6
    assert out[6] == WriteStats(added=1, replaced=1)
    assert col._writer.queue.commits == before + 1  # one segment, one manifest replace
    assert len(col) == 14 and col.stats().segments == 2
    assert col.get(["old"])[0].metadata == {"year": 1999}  # type: ignore[union-attr]
    assert col.search_vectors(vec(23), k=1).ids[0][0] == "b3"
    assert col.search("text of a4", k=1, mode="lexical").ids[0][0] == "a4"
    assert col.count("year == 2003") == 2


def test_a_bad_write_in_a_group_fails_alone(col) -> None:
    calls = [
        ("add", docs(["g1"], year=2001), vec(1)),
        ("add", docs(["old"]), vec(2)),                         # already stored
        ("add", docs(["g2"], year="not a year"), vec(3)),       # wrong type
        ("upsert", docs(["g3"], year=2003), vec(4)),
        ("add", docs(["g4"], Year=1), vec(5)),                  # a name differing in case
    ]
    out = run_queued(col, calls)
    assert out[0] == 1 and out[3] == WriteStats(added=1)
    assert isinstance(out[1], DuplicateIds)
    assert isinstance(out[2], FieldTypeError) and isinstance(out[4], FieldTypeError)
    assert sorted(d.id for d in col.get(["g1", "g2", "g3", "g4", "old"]) if d) == \
        ["g1", "g3", "old"]
    assert set(col.fields) == {"year"}


def test_writes_of_one_id_keep_their_order(col) -> None:
    calls = [("upsert", docs(["x"], year=y), vec(y)) for y in (2001, 2002, 2003)]
    calls.insert(1, ("upsert", docs(["other"], year=1), vec(9)))
    out = run_queued(col, calls)
    assert all(isinstance(o, WriteStats) for o in out)
    assert col.get(["x"])[0].metadata == {"year": 2003}  # type: ignore[union-attr]
    assert [o.replaced for o in out] == [0, 0, 1, 1]
    assert len(col) == 3 and col.count("year > 2000") == 1


def test_a_leader_whose_own_write_waits_commits_it_next(col) -> None:
    """The thread that takes the mutex may hold a write of an id an earlier queued write
    holds: it commits the group, then its own write, before it answers."""
    from tiervec.collection.groups import PendingWrite

    first = PendingWrite(docs=[tiervec.Document(id="x", text="one")], vectors=vec(1)[None],
                         replace=True)
    col._writer.queue.put(first)  # queued by a thread that has not reached the mutex yet
    stats = col.upsert(docs(["x"], year=2002), vectors=vec(2))  # this thread leads
    assert first.done and first.result() == WriteStats(added=1)
    assert stats == WriteStats(replaced=1)
    assert col.get(["x"])[0].metadata == {"year": 2002}  # type: ignore[union-attr]


def test_many_threads_write_at_once(col) -> None:
    """Free-running threads: every write is answered and there, searches see each."""
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for j in range(10):
                col.upsert(docs([f"t{t}-{j}"], year=2000 + j), vectors=vec(1000 * t + j))
                col.upsert(docs([f"shared-{j % 3}"], year=t), vectors=vec(10**6 + j))  # shared ids
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(col) == 124 and col._writer.queue.writes >= 240
    for t in (0, 7, 11):
        assert col.search_vectors(vec(1000 * t + 9), k=1).ids[0][0] == f"t{t}-9"


_CHILD = """
import threading
def main():
    path, seed = sys.argv[1], int(sys.argv[2])
    col = tiervec.open(path)
    lock = threading.Lock()  # one report line at a time
    def tell(message):
        with lock:
            say(message)
    tell({"phase": "ready"})
    def writer(t):
        rng = random.Random(seed * 100 + t)
        for j in range(10_000):
            ids = [f"t{t}-{j}-{k}" for k in range(rng.randint(1, 4))]
            tell({"phase": "intent", "w": f"{t}-{j}", "ids": ids})
            batch, vectors = doc_batch([(i, 1) for i in ids])
            col.add(batch, vectors=vectors)
            tell({"phase": "ack", "w": f"{t}-{j}"})
    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""


@pytest.mark.parametrize("seed", range(6))
def test_a_kill_during_grouped_writes_loses_no_acknowledged_write(tmp_path: Path,
                                                                 seed: int) -> None:
    from test_durability import DIM as CHILD_DIM
    from test_durability import Reports, finish, spawn

    path = tmp_path / "c"
    tiervec.create(path, model=None, dim=CHILD_DIM, tiers="binary*4 -> float32@disk").close()
    proc = spawn(_CHILD, path, seed, stderr=tmp_path / "child.err")
    reports = Reports(proc)
    reports.wait_for("ready")
    time.sleep(random.Random(seed).uniform(0.3, 1.5))
    finish(proc, tmp_path / "child.err", killed=True)
    items = reports.join()
    intents = {m["w"]: m["ids"] for m in items if m["phase"] == "intent"}
    acked = {m["w"] for m in items if m["phase"] == "ack"}
    assert len(acked) > 8, "too few writes acknowledged to test anything"
    with tiervec.open(path) as col:
        for w, ids in intents.items():
            found = [d is not None for d in col.get(ids)]
            if w in acked:
                assert all(found), f"acknowledged write {w} lost"
            else:
                assert all(found) or not any(found), f"write {w} half there: {found}"
        present = sum(len(ids) for w, ids in intents.items() if col.get(ids)[0] is not None)
        assert len(col) == present  # nothing but what was asked for
