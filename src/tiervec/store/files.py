"""Crash-safe file writes: write a temporary file, fsync it, rename it into place."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fsync_file(path)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``; a reader sees the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_npy(path: Path, array: np.ndarray, sync: bool = True) -> None:
    """Write ``array`` to ``path`` (an ``.npy`` file) and fsync it (``sync=False``: a file
    of a temporary folder, which :func:`publish_dir` fsyncs with the others)."""
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        if sync:
            os.fsync(fh.fileno())


def fsync_file(path: Path) -> None:
    """Flush a file (e.g. one written through a memory map) or a folder to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_npy(path: Path, mmap: bool) -> np.ndarray:
    """Load an ``.npy`` file, memory-mapped read-only when ``mmap``."""
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def publish_dir(tmp: Path, final: Path) -> None:
    """Rename a fully written folder ``tmp`` to ``final`` durably: its files are fsynced
    together (flushes issued at once share the file system's journal commits: a segment's
    seven files cost about two flushes, not seven), then the folder, then the rename."""
    files = [p for p in tmp.iterdir() if p.is_file()]
    with ThreadPoolExecutor(max(1, min(8, len(files)))) as pool:
        list(pool.map(fsync_file, files))
    fsync_dir(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def remove_tree(path: Path) -> None:
    """Remove a folder if it exists."""
    shutil.rmtree(path, ignore_errors=True)
