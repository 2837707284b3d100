"""The 10M benchmark's data: seeded vectors written to disk in chunks, real queries, their
exact top 100 by a blocked scan (see ``bench/scale.py``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from _common import CACHE, beir_collection, console, scifact_queries, shared_data
from speed import synthetic

CHUNK = 100_000
TOP = 100


# -- generate --------------------------------------------------------------------------------
def generate(folder: Path, n: int, seed: int) -> None:
    """``vectors.npy`` (n x 384 float32), the queries and their exact top 100."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vectors.npy"
    done = folder / "vectors.done"
    scifact = beir_collection(shared_data() / "beir" / "scifact", "scifact")
    base = np.concatenate([np.asarray(a) for a in scifact.vectors().arrays])
    scifact.close()
    if not done.exists():
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                        shape=(n, base.shape[1]))
        start = time.perf_counter()
        at = 0
        for x in synthetic(base, n, 1.0, seed, chunk=CHUNK):
            out[at : at + len(x)] = x
            at += len(x)
            if at % 1_000_000 == 0:
                out.flush()
                console.print(f"  generated {at:,} vectors")
        out.flush()
        del out
        done.write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))
    every = scifact_queries()[1]
    np.save(folder / "queries-scifact-seen.npy", every[1000:])  # a sample of "earlier" queries
    queries = {"scifact": every[:1000], "nfcorpus": nfcorpus_queries()}
    for name, q in queries.items():
        np.save(folder / f"queries-{name}.npy", q)
        target = folder / f"exact-{name}.npy"
        if not target.exists():
            start = time.perf_counter()
            rows = exact_scan(path, q, TOP)
            np.save(target, rows)
            seconds = time.perf_counter() - start
            (folder / f"exact-{name}.json").write_text(json.dumps({"seconds": seconds}))
            console.print(f"exact top {TOP} of {len(q)} {name} queries in {seconds:.0f} s")


def nfcorpus_queries() -> np.ndarray:
    """NFCorpus's test queries, encoded with MiniLM (cached)."""
    cached = CACHE / "nfcorpus-test-queries.npy"
    if not cached.exists():
        from tiervec.eval.beir import load_beir

        data = load_beir(shared_data() / "beir" / "nfcorpus-pp", split="test")
        col = beir_collection(shared_data() / "beir" / "scifact", "scifact")
        np.save(cached, col.encoder.encode_queries(list(data.queries.values())))
        col.close()
    return np.load(cached)


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a float32 .npy read into RAM (no memory map: RSS stays flat)."""
    shape, offset = npy_layout(path)
    out = np.empty((stop - start, shape[1]), np.float32)
    with open(path, "rb") as f:
        f.seek(offset + start * shape[1] * 4)
        f.readinto(memoryview(out).cast("B"))
    return out


def npy_layout(path: Path) -> tuple[tuple[int, ...], int]:
    """A .npy file's shape and where its data starts."""
    mapped = np.load(path, mmap_mode="r")
    layout = mapped.shape, int(mapped.offset)
    del mapped
    return layout


def npy_rows(path: Path) -> int:
    return npy_layout(path)[0][0]


def exact_scan(path: Path, queries: np.ndarray, k: int, block: int = 500_000) -> np.ndarray:
    """Exact top ``k`` rows over the whole file, a block at a time (FAISS flat per block)."""
    import faiss

    n = npy_rows(path)
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_r = np.full((len(queries), k), -1, np.int64)
    for lo in range(0, n, block):
        x = read_rows(path, lo, min(n, lo + block))
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        s, r = index.search(queries, k)
        both_s = np.concatenate([best_s, s], axis=1)
        both_r = np.concatenate([best_r, r + lo], axis=1)
        order = np.argsort(-both_s, axis=1)[:, :k]
        best_s = np.take_along_axis(both_s, order, 1)
        best_r = np.take_along_axis(both_r, order, 1)
    return best_r
