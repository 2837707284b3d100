"""Group commit: writes that arrive while a commit is in flight go into the next one.

Each add or upsert (documents checked and encoded by its own thread) is queued as a
:class:`PendingWrite`; whichever thread takes the writer mutex next commits every queued write
as one segment (one set of fsyncs, one manifest replace) and answers each of them. A write
whose ids are already taken by an earlier one in the group waits for the next group, so writes
of one id keep their order; a write that is bad on its own (ids already stored for an add, a
metadata value of the wrong type) fails alone, and the others of its group commit.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiervec.corpus import Document
from tiervec.errors import DuplicateIds, FieldTypeError
from tiervec.filters import Field
from tiervec.store.fields import typed_columns
from tiervec.store.writes import WriteStats


@dataclass(eq=False)
class PendingWrite:
    """One caller's add (``replace=False``) or upsert, waiting to be committed."""

    docs: list[Document]
    vectors: np.ndarray
    replace: bool
    truncated: int = 0
    #: while an upgrade maps: the new model's own vectors (``vectors`` are them mapped)
    native: np.ndarray | None = None
    #: the stored space the collection encoded ``vectors`` for (its manifest's model entry);
    #: ``None`` for vectors the caller gave
    space: dict[str, Any] | None = None
    done: bool = False
    stats: WriteStats | None = None
    error: BaseException | None = None

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.docs]

    def finish(self, stats: WriteStats | None = None,
               error: BaseException | None = None) -> None:
        self.stats, self.error, self.done = stats, error, True

    def result(self) -> WriteStats:
        """The write's stats, or its error raised (in the caller's thread)."""
        if self.error is not None:
            raise self.error
        assert self.stats is not None, "result() of a write not committed yet"
        return self.stats


@dataclass
class WriteQueue:
    """The writes waiting for the next commit, in arrival order."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _items: list[PendingWrite] = field(default_factory=list)
    #: commits made and writes they held (what grouping achieved)
    commits: int = 0
    writes: int = 0

    def put(self, write: PendingWrite) -> None:
        with self._lock:
            self._items.append(write)

    def take(self) -> list[PendingWrite]:
        with self._lock:
            items, self._items = self._items, []
        return items

    def put_back(self, writes: Sequence[PendingWrite]) -> None:
        """Writes left for the next group, ahead of those that came since."""
        with self._lock:
            self._items[:0] = writes


def already_stored(found: Sequence[str]) -> DuplicateIds:
    """The error of an add whose ids ``found`` the collection holds."""
    return DuplicateIds(
        f"{len(found)} ids are already in the collection (e.g. {list(found[:5])}); skip them "
        "(see Collection.missing), replace them with upsert(), or give the documents new ids")


def admit(group: Sequence[PendingWrite], existing: Mapping[str, list[int]],
          fields: Mapping[str, Field]) -> list[PendingWrite]:
    """The writes of ``group`` that commit together, in order. The others are finished with
    their own error, or left undone for the next group (an id an earlier write holds)."""
    accepted: list[PendingWrite] = []
    taken: set[str] = set()
    fields = dict(fields)
    for write in group:
        ids = write.ids
        if not taken.isdisjoint(ids):
            taken.update(ids)  # later writes of these ids wait too: their order is kept
            continue
        found = [i for i in ids if i in existing]
        if found and not write.replace:
            write.finish(error=already_stored(found))
            continue
        try:
            fields, _ = typed_columns(fields, write.docs)
        except FieldTypeError as exc:
            write.finish(error=exc)
            continue
        taken.update(ids)
        accepted.append(write)
    return accepted


def answer(accepted: Sequence[PendingWrite], existing: Mapping[str, list[int]]) -> None:
    """Finish each committed write with what it did."""
    for write in accepted:
        replaced = sum(1 for i in write.ids if i in existing)
        write.finish(WriteStats(added=len(write.docs) - replaced, replaced=replaced,
                                truncated=write.truncated))
