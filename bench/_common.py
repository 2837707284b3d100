"""Shared helpers of the benchmarks: data location, cached collections, tables, JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import tiervec
from tiervec.ingest import index_corpus

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("TIERVEC_BENCH_CACHE", ROOT / "bench" / ".cache"))
RESULTS = ROOT / "bench" / "results"
console = Console(width=None if Console().is_terminal else 180)


def shared_data() -> Path:
    """The shared benchmark data folder (``TIERVEC_SHARED_DATA`` or ``../shared/data``)."""
    path = Path(os.environ.get("TIERVEC_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        sys.exit(f"benchmark data not found at {path}; set TIERVEC_SHARED_DATA")
    return path


def beir_collection(dataset_dir: Path, name: str) -> tiervec.Collection:
    """The dataset's corpus encoded with the default model, cached in ``bench/.cache``."""
    folder = CACHE / name
    col = tiervec.open(folder) if (folder / "manifest.json").exists() else tiervec.create(folder)
    stats = index_corpus(col, dataset_dir)  # skips what is already there
    if stats.added:
        console.print(f"encoded {stats.added:,} {name} documents into {folder} (cached)")
    return col


def scifact_queries() -> tuple[list[str], np.ndarray]:
    """All 1,109 SciFact query texts and their MiniLM vectors (encoded once, cached)."""
    from tiervec.corpus import iter_jsonl

    folder = shared_data() / "beir" / "scifact"
    texts = [r["text"] for _, r in iter_jsonl(folder / "queries.jsonl.gz")]
    path = CACHE / "scifact-all-queries.npy"
    if not path.exists():
        scifact = beir_collection(folder, "scifact")
        np.save(path, scifact.encoder.encode_queries(texts))
        scifact.close()
    return texts, np.load(path)


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """``(result, best seconds)`` of ``repeat`` runs of ``fn``."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def recall_at(rows: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top-``k`` found in the top-``k`` of ``rows``."""
    hits = [len(set(a[:k]) & set(b[:k])) for a, b in zip(rows, exact, strict=True)]
    return float(np.mean(hits) / k)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    console.print(table)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table in Markdown (for the README)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def qps(value: float) -> str:
    """Queries per second for a table: one decimal below 100."""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"wrote {path.relative_to(ROOT)}")
    return path


def indexed_once(path: Path, create: Callable[[], tiervec.Collection], corpus: Path,
                 what: str, open_: Callable[[], tiervec.Collection] | None = None,
                 ) -> tuple[tiervec.Collection, dict[str, Any]]:
    """The collection cached at ``path`` and how long indexing ``corpus`` into it took
    (encoding included; kept beside it in ``bench-index.json``); built by ``create`` when
    missing or unfinished."""
    import shutil

    timing = path / "bench-index.json"
    if (path / "manifest.json").exists() and timing.exists():
        col = open_() if open_ is not None else tiervec.open(path)
        return col, json.loads(timing.read_text())
    if path.exists():
        shutil.rmtree(path)
    col = create()
    console.print(f"indexing {what} ...")
    start = time.perf_counter()
    stats = index_corpus(col, corpus)
    seconds = time.perf_counter() - start
    index = {"index_seconds": round(seconds, 1), "docs_per_s": round(stats.added / seconds, 1)}
    timing.write_text(json.dumps(index))
    return col, index
