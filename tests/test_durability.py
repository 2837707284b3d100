"""Durability under real crashes and real concurrency: no mocks, real processes and SIGKILL.

- A child process writes (add, upsert, delete, compact) and acknowledges each write on stdout;
  the test kills it with SIGKILL at a seeded moment, reopens the folder and checks that every
  acknowledged write is there, and that the one write in flight is there entirely or not at all.
- One writer per collection: a second writer gets ``CollectionLocked``; readers are not blocked;
  the lock goes away with the writer, even a killed one.
- Readers (threads sharing one object, and a read-only process) search while a writer writes
  and compacts, and never see a torn state.
- A read-only folder can be searched but not opened for writing.

Every document version has a deterministic unit vector and text (:func:`doc_vector`,
:func:`doc_record`); child programs get the very same functions (their source is pasted into
the child's script), so the parent can recompute what any version should look like. With unit
vectors, a search for a document's vector ranks that document first with score 1: any other
unit vector scores less, exactly, and in a binary first tier its own sign code scores highest.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiervec
from tiervec.errors import CollectionLocked, ReadOnlyLocation

DIM = 16
CHAINS = ("float32@disk", "binary*4 -> float32@disk")
KILL_SEEDS = range(30)
#: Child programs run single-threaded, like the tests (the machine may be shared).
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
TIMEOUT = 60.0

State = dict[str, int]  # live document id -> its version


# -- the documents every process agrees on -----------------------------------------------------
def doc_vector(doc_id: str, version: int) -> np.ndarray:
    """The unit ``(DIM,)`` float32 vector of version ``version`` of document ``doc_id``."""
    digest = hashlib.sha256(f"{doc_id}@{version}".encode()).digest()
    v = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def doc_record(doc_id: str, version: int) -> dict:
    """The document of version ``version`` of ``doc_id``: its text and metadata name both."""
    return {"_id": doc_id, "text": f"{doc_id} version {version}", "version": version}


def doc_batch(pairs: Sequence[Sequence[Any]]) -> tuple[list[dict], np.ndarray]:
    """Documents and ``(n, DIM)`` vectors for ``[(id, version), ...]``."""
    docs = [doc_record(i, v) for i, v in pairs]
    vectors = np.stack([doc_vector(i, v) for i, v in pairs]) if pairs else np.empty((0, DIM))
    return docs, vectors.astype(np.float32)


def say(message: dict) -> None:
    """A child's report to the parent: one JSON line on stdout, flushed before going on."""
    print(json.dumps(message), flush=True)


_PRELUDE = f"""
import hashlib, json, os, random, sys, time, traceback
from collections.abc import Sequence
from typing import Any
import numpy as np
import tiervec
from tiervec.errors import CollectionLocked
DIM = {DIM}
"""


def child_script(body: str) -> str:
    """A program for ``python -c``: imports, this module's shared helpers, then ``body``."""
    helpers = [inspect.getsource(f) for f in (doc_vector, doc_record, doc_batch, say)]
    return "\n\n".join([_PRELUDE, *helpers, inspect.cleandoc(body), "main()\n"])


def spawn(body: str, *args: object, stdin: bool = False, stderr: Path) -> subprocess.Popen:
    """Start ``body`` (see :func:`child_script`) in a new Python process with ``args``;
    its stderr goes to the file ``stderr``."""
    with stderr.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-c", child_script(body), *map(str, args)],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=err, text=True, env=CHILD_ENV,
        )


class Reports:
    """Collects a child's JSON lines from a background thread (a full pipe never blocks it).

    A line cut short by the kill (no newline) is ignored: the child prints an intent before it
    acts, so a lost intent line means the write never started.
    """

    def __init__(self, proc: subprocess.Popen) -> None:
        self.items: list[dict] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            if line.endswith("\n"):
                with self._cond:
                    self.items.append(json.loads(line))
                    self._cond.notify_all()
        stream.close()
        with self._cond:
            self.items.append({"phase": "eof"})
            self._cond.notify_all()

    def wait_for(self, phase: str) -> dict:
        """The first report of ``phase`` (waits for it; fails on EOF or timeout)."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while True:
                found = [m for m in self.items if m.get("phase") == phase]
                if found:
                    return found[0]
                if self.items and self.items[-1]["phase"] == "eof":
                    raise AssertionError(f"the child ended before reporting {phase!r}")
                if not self._cond.wait(timeout=deadline - time.monotonic()):
                    raise AssertionError(f"no {phase!r} report from the child in {TIMEOUT} s")

    def join(self) -> list[dict]:
        self._thread.join(timeout=TIMEOUT)
        return self.items


def finish(proc: subprocess.Popen, stderr: Path, *, killed: bool) -> None:
    """Kill (SIGKILL) or wait for ``proc``; fail with its stderr if it ended otherwise."""
    if killed:
        proc.send_signal(signal.SIGKILL)
    rc = proc.wait(timeout=TIMEOUT)
    if proc.stdin:
        proc.stdin.close()
    expected = -signal.SIGKILL if killed else 0
    assert rc == expected, f"child exited with {rc}, expected {expected}:\n{stderr.read_text()}"


# -- state: what the collection should hold --------------------------------------------------
def apply(state: State, op: Mapping[str, Any]) -> State:
    """``state`` after the write ``op`` (a child's intent report)."""
    new = dict(state)
    if op["op"] in ("add", "upsert"):
        new.update({i: v for i, v in op["docs"]})
    elif op["op"] == "delete":
        for i in op["ids"]:
            new.pop(i, None)
    return new


def observed_state(col: tiervec.Collection, known: Sequence[str]) -> State:
    """What ``col`` holds among the ``known`` ids; checks texts, and ``len(col)`` against it
    (a document outside ``known`` would make the count disagree)."""
    state = {}
    for doc_id, doc in zip(known, col.get(list(known)), strict=True):
        if doc is not None:
            version = doc.metadata["version"]
            assert doc.id == doc_id and doc.text == doc_record(doc_id, version)["text"], doc
            state[doc_id] = version
    assert len(col) == len(state), f"len(col) = {len(col)}, but {len(state)} ids are live"
    return state


def check_search(col: tiervec.Collection, state: State) -> None:
    """Each live document's vector finds it first (score 1) in its latest version; searches
    with a large ``k`` return only live documents, each at most once, and no padding.

    ``k`` is the whole collection for an exact chain. For a binary first tier it stays at an
    eighth: FAISS's fast-scan kernel drops the worst-scoring codes when asked for (nearly) all
    of them, which would show up as ``""`` padding (a search bug unrelated to durability).
    """
    if not state:
        res = col.search_vectors(doc_vector("anything", 0), k=3)
        assert (res.ids == "").all(), res.ids
        return
    exact = str(col.chain) == "float32@disk"
    k = len(state) if exact else max(1, len(state) // 8)
    ids = sorted(state)
    res = col.search_vectors(np.stack([doc_vector(i, state[i]) for i in ids]), k=k)
    assert list(res.ids[:, 0]) == ids, "a document's own vector does not rank it first"
    np.testing.assert_allclose(res.scores[:, 0], 1.0, atol=1e-4)
    for row in res.ids:
        assert len(set(row)) == k and set(row) <= set(ids), sorted(row)


def check_no_stray_segments(folder: Path) -> None:
    """After a writer open, the segment folders are exactly those the manifest lists."""
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {s["name"] for s in manifest["segments"]}
    assert {p.name for p in (folder / "segments").iterdir()} == listed


def put(col: tiervec.Collection, pairs: Sequence[Sequence[Any]], *, upsert: bool = False) -> Any:
    """``col.add`` (or ``col.upsert``) the versions ``[(id, version), ...]``."""
    docs, vectors = doc_batch(pairs)
    return (col.upsert if upsert else col.add)(docs, vectors=vectors)


def make_collection(folder: Path, chain: str, pairs: Sequence[Sequence[Any]]) -> None:
    with tiervec.create(folder, model=None, dim=DIM, tiers=chain) as col:
        if pairs:
            put(col, pairs)


# -- 1. kill -9 in the middle of writing ---------------------------------------------------------
WRITER = """
def main():
    folder, seed, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    versions = {k: int(v) for k, v in json.loads(sys.argv[4]).items()}  # incl. deleted ids
    live, dead, fresh = set(versions), [], 0
    rng = random.Random(seed)
    col = tiervec.open(folder)

    def new_ids(n):
        nonlocal fresh
        fresh += n
        return [f"{prefix}{j}" for j in range(fresh - n, fresh)]

    say({"phase": "ready"})
    deadline = time.monotonic() + 60  # in case the parent is gone
    while time.monotonic() < deadline:
        r = rng.random()
        if r < 0.4 or len(live) < 6:
            op = {"op": "add", "docs": [[i, 0] for i in new_ids(rng.randint(1, 8))]}
        elif r < 0.7:
            ids = rng.sample(sorted(live), rng.randint(1, 5))
            if dead and rng.random() < 0.3:
                ids.append(dead.pop(rng.randrange(len(dead))))
            elif rng.random() < 0.2:
                ids += new_ids(1)
            op = {"op": "upsert", "docs": [[i, versions.get(i, -1) + 1] for i in ids]}
        elif r < 0.93:
            ids = rng.sample(sorted(live), rng.randint(1, 4))
            unknown = [f"{prefix}unknown"] if rng.random() < 0.2 else []
            op = {"op": "delete", "ids": ids + unknown}
        else:
            op = {"op": "compact"}
        say({"phase": "begin", **op})
        if op["op"] == "compact":
            col.compact()
        elif op["op"] == "delete":
            stats = col.delete(op["ids"])
            if stats.deleted != len(ids) or stats.missing != unknown:
                sys.exit(f"delete {op}: {stats}")
            live.difference_update(ids)
            dead += ids
        else:
            old = sum(i in live for i, _ in op["docs"])
            docs, vectors = doc_batch(op["docs"])
            if op["op"] == "add":
                col.add(docs, vectors=vectors)
            else:
                stats = col.upsert(docs, vectors=vectors)
                if (stats.added, stats.replaced) != (len(docs) - old, old):
                    sys.exit(f"upsert {op}: {stats} with {old} ids live before")
            versions.update({i: v for i, v in op["docs"]})
            live.update(i for i, _ in op["docs"])
        say({"phase": "done", **op})
    sys.exit("the parent never killed this writer")
"""


def kill_writer(
    folder: Path, state: State, *, seed: int, prefix: str, first_write: bool, delay: float,
    log: Path,
) -> tuple[list[dict], dict | None]:
    """Run :data:`WRITER` on ``folder`` and SIGKILL it during its first write
    (``first_write``) or ``delay`` seconds after it is ready. Returns the acknowledged writes
    and the one in flight (announced, not acknowledged; ``None`` if there was none)."""
    proc = spawn(WRITER, folder, seed, prefix, json.dumps(state), stderr=log)
    reports = Reports(proc)
    try:
        reports.wait_for("ready")
        if first_write:
            reports.wait_for("begin")
        time.sleep(delay)
    finally:
        finish(proc, log, killed=True)
    acked, pending = [], None
    for message in reports.join():
        if message["phase"] == "begin":
            pending = message
        elif message["phase"] == "done":
            acked.append(pending)
            pending = None
    return acked, pending


def ids_of(op: Mapping[str, Any]) -> list[str]:
    """The ids a write names."""
    return op["ids"] if "ids" in op else [d[0] for d in op.get("docs", [])]


def check_recovery(folder: Path, state: State, acked: list[dict], pending: dict | None) -> State:
    """Reopen a crashed collection and check it holds ``state`` after every ``acked`` write,
    and after ``pending`` entirely or not at all. A reader opened before the writer's
    clean-up sees the same. Returns the state found."""
    for op in acked:
        state = apply(state, op)
    outcomes = [state] if pending is None else [state, apply(state, pending)]
    known = sorted({i for op in [*acked, pending] if op for i in ids_of(op)} | set(outcomes[0]))
    with tiervec.open(folder, read_only=True) as reader:  # before any clean-up
        seen_by_reader = observed_state(reader, known)
    col = tiervec.open(folder)
    try:
        found = observed_state(col, known)
        if found not in outcomes:
            diff = {i: (found.get(i), state.get(i)) for i in known if found.get(i) != state.get(i)}
            raise AssertionError(
                f"after the crash the collection is neither before nor after the write in "
                f"flight {pending}; (found, expected before it) where they differ: {diff}")
        assert seen_by_reader == found
        check_search(col, found)
        check_no_stray_segments(folder)
    finally:
        col.close()
    return found


@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_kill_during_writes_loses_no_acknowledged_write(tmp_path, seed):
    """Seeds vary the chain (``seed % 2``), whether the collection starts empty (``seed % 3 ==
    0``: the first write then also fits and saves the codecs), when the kill comes (``seed % 5
    == 0``: during the first write; else up to 1.5 s in) and how many crashes (``seed % 4 ==
    3``: two, the second on the recovered collection)."""
    rng = random.Random(seed)
    folder = tmp_path / "col"
    state = {} if seed % 3 == 0 else {f"i{j}": 0 for j in range(20)}
    make_collection(folder, CHAINS[seed % 2], list(state.items()))
    for crash in range(2 if seed % 4 == 3 else 1):
        first_write = seed % 5 == 0 and crash == 0
        delay = rng.uniform(0, 0.005) if first_write else rng.uniform(0.02, 1.5)
        acked, pending = kill_writer(
            folder, state, seed=seed * 10 + crash, prefix=f"c{crash}-", first_write=first_write,
            delay=delay, log=tmp_path / f"writer{crash}.log")
        state = check_recovery(folder, state, acked, pending)

    # the recovered collection takes writes and searches as usual, and keeps them
    col = tiervec.open(folder)
    new = [(f"after{j}", 0) for j in range(6)]
    assert put(col, new) == 6
    state.update(new)
    if len(state) > 6:
        old = sorted(state)[0]
        state[old] += 1
        assert put(col, [(old, state[old])], upsert=True).replaced == 1
        gone = sorted(state)[-1]
        assert col.delete([gone]).deleted == 1
        del state[gone]
    check_search(col, state)
    col.close()
    with tiervec.open(folder, read_only=True) as reader:
        assert observed_state(reader, sorted(state)) == state
        check_search(reader, state)


# -- 2. one writer at a time, across processes -------------------------------------------------
HOLDER = """
def main():
    folder = sys.argv[1]
    col = tiervec.open(folder)
    say({"phase": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "add":
            docs, vectors = doc_batch(command["docs"])
            col.add(docs, vectors=vectors)
            say({"phase": "added"})
        elif command["op"] == "open_again":  # a second writer in the same process
            try:
                tiervec.open(folder)
            except CollectionLocked as exc:
                say({"phase": "refused", "message": str(exc)})
            else:
                say({"phase": "refused", "message": None})
        elif command["op"] == "exit":
            col.close()
            return
"""


def send(proc: subprocess.Popen, **command: Any) -> None:
    proc.stdin.write(json.dumps(command) + "\n")
    proc.stdin.flush()


@pytest.mark.parametrize("ending", ["close", "kill"])
def test_a_second_writer_is_refused_while_readers_go_on(tmp_path, ending):
    folder = tmp_path / "col"
    first = [(f"d{j}", 0) for j in range(10)]
    make_collection(folder, CHAINS[1], first)
    log = tmp_path / "holder.log"
    holder = spawn(HOLDER, folder, stdin=True, stderr=log)
    reports = Reports(holder)
    try:
        pid = reports.wait_for("ready")["pid"]

        # another process cannot write: told which process holds the lock and what to do
        with pytest.raises(CollectionLocked) as refused:
            tiervec.open(folder)
        message = str(refused.value)
        assert f"pid {pid}" in message and "close" in message and "read_only=True" in message
        assert isinstance(refused.value, ValueError)
        # nor can a second writable open in the writer's own process
        send(holder, op="open_again")
        assert "read_only=True" in (reports.wait_for("refused")["message"] or "not refused")

        # readers are not blocked, and follow the writer's commits
        with tiervec.open(folder, read_only=True) as reader:
            check_search(reader, dict(first))
            more = [(f"e{j}", 0) for j in range(5)]
            send(holder, op="add", docs=more)
            reports.wait_for("added")
            check_search(reader, dict(first + more))
            assert len(reader) == 15
    finally:
        if ending == "close":
            send(holder, op="exit")
        finish(holder, log, killed=ending == "kill")

    # the lock went with the writer, closed or killed
    with tiervec.open(folder) as col:
        assert len(col) == 15
        put(col, [("f0", 0)])
        with pytest.raises(CollectionLocked):
            tiervec.open(folder)
    with tiervec.open(folder) as col:
        check_search(col, dict([*first, *more, ("f0", 0)]))


# -- 3. readers while writing ---------------------------------------------------------------------
ANCHORS = [(f"a{j}", 0) for j in range(12)]  # never written to again: always findable
K = 10


def writes_to_run(
    rng: random.Random, n_ops: int, compact_every: int
) -> tuple[list[tuple[str, int]], list[tuple[str, list]], dict[str, int]]:
    """Initial ``w*`` documents, a seeded list of writes ``(op, pairs_or_ids)`` on them
    (anchors untouched) and the final ``id -> version``. At least 20 ``w*`` documents stay,
    so searches for ``K`` always fill up."""
    live: dict[str, int] = {f"w{j}": 0 for j in range(30)}
    fresh = 30
    ops: list[tuple[str, list]] = []
    for step in range(1, n_ops + 1):
        r = rng.random()
        if step % compact_every == 0:
            ops.append(("compact", []))
        elif r < 0.4 or len(live) < 24:
            pairs = [(f"w{fresh + j}", 0) for j in range(rng.randint(1, 6))]
            fresh += len(pairs)
            live.update(pairs)
            ops.append(("add", pairs))
        elif r < 0.7:
            pairs = [(i, live[i] + 1) for i in rng.sample(sorted(live), rng.randint(1, 4))]
            live.update(pairs)
            ops.append(("upsert", pairs))
        else:
            ids = rng.sample(sorted(live), rng.randint(1, 3))
            for i in ids:
                del live[i]
            ops.append(("delete", ids))
    return [(f"w{j}", 0) for j in range(30)], ops, live


def run_write(col: tiervec.Collection, op: str, arg: list) -> None:
    if op == "compact":
        col.compact()
    elif op == "delete":
        assert col.delete(arg).deleted == len(arg)
    else:
        put(col, arg, upsert=op == "upsert")


def check_hits(ids: np.ndarray, scores: np.ndarray, anchors: Sequence[str], known: set) -> None:
    """One search for the anchors' vectors: each finds its anchor first; ``K`` distinct known
    ids per query, no padding (the collection always holds more than ``K`` documents)."""
    assert list(ids[:, 0]) == list(anchors), ids[:, 0]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)
    for row in ids:
        assert "" not in row and len(set(row)) == K and set(row) <= known, row


def test_threads_search_while_another_thread_writes(tmp_path):
    initial, ops, final = writes_to_run(random.Random(0), n_ops=60, compact_every=12)
    col = tiervec.create(tmp_path / "col", model=None, dim=DIM, tiers=CHAINS[1])
    put(col, ANCHORS + initial)
    anchors = [i for i, _ in ANCHORS]
    queries = np.stack([doc_vector(i, 0) for i in anchors])
    known = {i for i, _ in ANCHORS + initial}  # every id a reader may see (grows first)
    done = threading.Event()
    failures: list[BaseException] = []
    searches = [0, 0, 0]

    def reader(n: int) -> None:
        try:
            while not done.is_set():
                res = col.search_vectors(queries, K)
                check_hits(res.ids, res.scores, anchors, known)
                searches[n] += 1
        except BaseException as exc:
            failures.append(exc)
            done.set()

    def writer() -> None:
        try:
            for op, arg in ops:
                if op in ("add", "upsert"):
                    known.update(i for i, _ in arg)
                run_write(col, op, arg)
                if done.is_set():
                    break
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread hangs"
    if failures:
        raise failures[0]
    assert min(searches) > 0, searches
    expected = {**dict(ANCHORS), **final}
    assert observed_state(col, sorted(known)) == expected
    check_search(col, expected)
    col.close()


READER = """
def main():
    folder, stop, anchors = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    k = int(sys.argv[4])
    col = tiervec.open(folder, read_only=True)
    queries = np.stack([doc_vector(i, 0) for i in anchors])
    searches, lengths, problems = 0, set(), []
    say({"phase": "ready"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(problems) < 5:
        last = os.path.exists(stop)  # one more search after the writer is done
        try:
            res = col.search_vectors(queries, k)
            lengths.add(len(col))
            searches += 1
            ids = res.ids
            if list(ids[:, 0]) != anchors or not np.allclose(res.scores[:, 0], 1, atol=1e-4):
                problems.append(f"anchors not first: {ids[:, 0]} {res.scores[:, 0]}")
            for row in ids:
                if "" in row or len(set(row)) != k:
                    problems.append(f"padding or duplicates: {row}")
        except Exception:
            problems.append(traceback.format_exc())
        if last:
            break
    say({"phase": "summary", "searches": searches, "lengths": sorted(lengths),
         "final": len(col), "problems": problems})
"""


def test_a_reader_process_never_sees_a_torn_state(tmp_path):
    """A read-only process searches in a loop while this process writes and compacts. Every
    count it sees is one this writer committed, anchors are always found first, results are
    never padded nor duplicated, and it ends on the last commit."""
    initial, ops, final = writes_to_run(random.Random(1), n_ops=90, compact_every=3)
    folder = tmp_path / "col"
    col = tiervec.create(folder, model=None, dim=DIM, tiers=CHAINS[1])
    put(col, ANCHORS + initial)
    committed = {len(col)}
    stop, log = tmp_path / "stop", tmp_path / "reader.log"
    anchors = [i for i, _ in ANCHORS]
    proc = spawn(READER, folder, stop, json.dumps(anchors), K, stderr=log)
    reports = Reports(proc)
    try:
        reports.wait_for("ready")
        for op, arg in ops:
            run_write(col, op, arg)
            committed.add(len(col))
    finally:
        stop.touch()  # the reader ends after one more search
        col.close()
    summary = reports.wait_for("summary")
    finish(proc, log, killed=False)
    assert not summary["problems"], "\n".join(summary["problems"])
    assert summary["searches"] > 1
    assert set(summary["lengths"]) <= committed, (summary["lengths"], sorted(committed))
    assert summary["final"] == len(ANCHORS) + len(final)


def test_a_reader_get_after_a_compaction_finds_live_documents(tmp_path):
    """A reader's get() moves to the newest snapshot first (a compaction purged the old
    snapshot's rows), like its searches do."""
    folder = tmp_path / "col"
    writer = tiervec.create(folder, model=None, dim=DIM, tiers=CHAINS[0])
    put(writer, [("a", 0), ("b", 0), ("c", 0)])
    reader = tiervec.open(folder, read_only=True)
    hits = reader.search_vectors(doc_vector("a", 0), k=2).ids[0]
    (gone,) = {"a", "b", "c"} - set(hits)  # delete the one the reader did not find
    writer.delete([gone])
    writer.compact()
    try:
        assert None not in reader.get(hits), f"get({list(hits)}) after a compaction"
    finally:
        reader.close()
        writer.close()


# -- 4. a folder that cannot be written --------------------------------------------------------
def read_only_folder_outcome(folder: str) -> dict:
    """Make a collection in ``folder``, chmod it 0o555, and report what opening it does:
    the writable open's error, and a read-only open's search. Restores the mode after."""
    path = folder + "/col"
    with tiervec.create(path, model=None, dim=DIM, tiers="float32@disk") as col:
        docs, vectors = doc_batch([("x", 0), ("y", 0)])
        col.add(docs, vectors=vectors)
    os.chmod(path, 0o555)
    try:
        try:
            tiervec.open(path).close()
            error = {"error": None, "message": None}
        except Exception as exc:
            error = {"error": type(exc).__name__, "message": str(exc)}
        with tiervec.open(path, read_only=True) as col:
            hits = col.search_vectors(doc_vector("y", 0), k=2).ids[0].tolist()
            texts = [d.text for d in col.get(["x"]) if d is not None]
    finally:
        os.chmod(path, 0o755)
    return {**error, "hits": hits, "texts": texts, "listing": sorted(os.listdir(path))}


def check_read_only_outcome(outcome: dict) -> None:
    assert outcome["error"] == ReadOnlyLocation.__name__, outcome
    assert "read_only=True" in outcome["message"], outcome["message"]
    assert outcome["hits"] == ["y", "x"] and outcome["texts"] == ["x version 0"], outcome
    assert outcome["listing"] == ["codecs", "docs.sqlite", "manifest.json", "segments",
                                  "writer.lock"], outcome  # a failed open leaves nothing


@pytest.mark.skipif(os.geteuid() == 0, reason=(
    "root ignores file modes, so a 0o555 folder is still writable for it; the test below "
    "runs the same check as the unprivileged 'nobody' user"))
def test_a_read_only_folder_can_be_searched_but_not_written(tmp_path):
    check_read_only_outcome(read_only_folder_outcome(str(tmp_path)))


AS_NOBODY = """
def main():
    folder, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # run once as root in a scratch folder so that every module is imported before dropping
    # privileges (the interpreter's own files may be unreadable to the user dropped to)
    import mmap, tempfile
    with tempfile.TemporaryDirectory() as scratch:
        read_only_folder_outcome(scratch)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    say({"phase": "outcome", **read_only_folder_outcome(folder)})
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_a_read_only_folder_as_an_unprivileged_user(tmp_path):
    """As root, the folder's owner drops to the ``nobody`` user in a child process."""
    pwd = pytest.importorskip("pwd")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to run as")
    folder = tempfile.mkdtemp(prefix="tiervec-ro-")  # tmp_path's parents are private to root
    try:
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        body = inspect.getsource(read_only_folder_outcome) + AS_NOBODY
        log = tmp_path / "nobody.log"
        proc = spawn(body, folder, nobody.pw_uid, nobody.pw_gid, stderr=log)
        reports = Reports(proc)
        finish(proc, log, killed=False)
        check_read_only_outcome(reports.wait_for("outcome"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("kind", ["plain", "chunked", "multivector"])
def test_a_segment_holds_exactly_the_files_its_descriptor_names(tmp_path, kind):
    """store.layout.segment_files describes a segment's files once (what compaction copies and
    the clean-up keeps): a written segment, and a compacted one, hold exactly those."""
    from tiervec.store.layout import CollectionFiles, segment_files
    from tiervec.store.manifest import Manifest

    n = 300 if kind == "plain" else 12
    docs = [tiervec.Document(id=f"d{i}", text=f"sentence {i} about topic {i % 3}. " * 20)
            for i in range(n)]
    if kind == "plain":  # a codec with codes of its own (pq), and BM25's postings
        x = np.random.default_rng(1).standard_normal((n, 16)).astype(np.float32)
        col = tiervec.create(tmp_path / "c", model=None, dim=16, lexical=True,
                             tiers="pq4*4 -> float32@disk")
        col.add(docs, vectors=x)
    else:
        option = {"chunking": "late"} if kind == "chunked" else {"multivector": True}
        col = tiervec.create(tmp_path / "c", lexical=True, **option)
        col.add(docs)
    with col:
        col.delete(["d0"])
        for _ in range(2):  # as written, then as a compaction wrote it
            manifest = Manifest.read(tmp_path / "c")
            want = {f.name for f in segment_files(manifest)}
            for segment in manifest.segments:
                folder = CollectionFiles(tmp_path / "c").segment_dir(segment)
                assert {p.name for p in folder.iterdir()} == want, kind
            col.compact()
