"""Locks: one writer process per collection (a file lock), many readers per object (RW lock)."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tiervec.errors import CollectionLocked, ReadOnlyLocation

LOCK = "writer.lock"


class WriterLock:
    """An exclusive ``flock`` on ``<collection>/writer.lock`` held while a writer is open.

    The kernel releases it when the process dies, so a crashed writer never leaves the
    collection locked. A second writer (another process, or another writable object in the same
    process) gets :class:`~tiervec.errors.CollectionLocked` instead of waiting.
    """

    def __init__(self, folder: Path) -> None:
        path = folder / LOCK
        try:
            if not os.access(folder, os.W_OK):  # the lock file itself may still be writable
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise ReadOnlyLocation(
                    f"cannot write to the collection folder {str(folder)!r} ({exc.strerror}); "
                    "open it with read_only=True to search it, or copy it to a writable place"
                ) from None
            raise
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise CollectionLocked(
                f"collection {str(folder)!r} is open for writing by another writer (pid "
                f"{holder}); close that one first, or open this one with read_only=True"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class RWLock:
    """Many readers or one writer, for the in-memory state one collection object shares
    between threads. Writers wait for readers to finish; new readers wait for a waiting writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
