"""A collection's documents, vectors and metadata to and from Parquet, so leaving is as easy
as coming.

One row per document: ``id``, ``title``, ``text``, ``metadata`` (JSON text: every type a
field can hold survives, numbers past 64 bits included) and ``vector`` (a fixed-size list of
float32, the stored full-precision vector). A chunked or multi-vector collection's documents
carry no ``vector``: their vectors are per chunk or per token, made again by the model on
import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tiervec._extras import require
from tiervec.collection.reading import SnapshotReader
from tiervec.corpus import Document
from tiervec.errors import MalformedCorpus
from tiervec.store.writes import WriteStats

#: Documents per Parquet row group and per write on import.
BATCH = 10_000
VECTOR = "vector"


def export_parquet(reader: SnapshotReader, path: str | Path, *, batch: int = BATCH,
                   progress: Callable[[int], None] | None = None) -> int:
    """Write every live document a collection's ``reader`` sees (with its vector unless
    chunked or multi-vector) to the Parquet file ``path``; the documents written."""
    pa = require("pyarrow")
    pq = require("pyarrow.parquet")
    with_vectors = reader.chunking is None and reader.multivector is None
    schema = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string()),
                        ("metadata", pa.string()),
                        *([(VECTOR, pa.list_(pa.float32(), reader.dim))]
                          if with_vectors else [])])
    written = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for docs, vectors in _batches(reader, batch, with_vectors):
            columns: dict[str, Any] = {
                "id": [d.id for d in docs], "title": [d.title for d in docs],
                "text": [d.text for d in docs],
                "metadata": [json.dumps(dict(d.metadata)) for d in docs]}
            if vectors is not None:
                flat = pa.array(np.ascontiguousarray(vectors, np.float32).ravel())
                columns[VECTOR] = pa.FixedSizeListArray.from_arrays(flat, reader.dim)
            writer.write_table(pa.table(columns, schema=schema))
            written += len(docs)
            if progress is not None:
                progress(len(docs))
    return written


def _batches(reader: SnapshotReader, batch: int, with_vectors: bool,
             ) -> Iterator[tuple[list[Document], np.ndarray | None]]:
    """The live documents in storage order, ``batch`` at a time, with their vectors."""
    reader.refresh()
    snap = reader.snap
    positions = snap.live_positions()
    store = reader.vectors() if with_vectors else None
    for start in range(0, len(positions), batch):
        at = positions[start:start + batch]
        ids = [str(i) for i in snap.ids(reader.docs, at)]
        found = reader.docs.get(ids)
        keep = [i for i, d in enumerate(found) if d is not None]  # purged meanwhile
        docs = [found[i] for i in keep]
        yield docs, None if store is None else np.asarray(store.take(at[keep]))


def import_parquet(collection: Any, path: str | Path, *, batch: int = BATCH,
                   progress: Callable[[int], None] | None = None) -> WriteStats:
    """Upsert the documents of a Parquet file written by :func:`export_parquet` (or any with
    ``id`` and ``text``; ``title``, ``metadata`` as JSON text or a struct, and ``vector``
    optional): vectors given are stored as they are, documents without one are encoded."""
    pq = require("pyarrow.parquet")
    source = pq.ParquetFile(str(path))
    names = set(source.schema_arrow.names)
    if "id" not in names or "text" not in names:
        raise MalformedCorpus(f"{str(path)!r} has no 'id' and 'text' columns (it has "
                              f"{sorted(names)}); export one with Collection.export_parquet")
    total = WriteStats()
    for table in source.iter_batches(batch_size=batch):
        rows = table.to_pydict()
        docs = [Document(id=str(i), text=t or "", title=(rows.get("title") or [""] * len(
                    rows["id"]))[n] or "", metadata=_metadata(rows, n, str(i)))
                for n, (i, t) in enumerate(zip(rows["id"], rows["text"], strict=True))]
        vectors = None
        if VECTOR in rows and collection.chunking is None and collection.multivector is None:
            vectors = np.asarray(rows[VECTOR], dtype=np.float32)
        stats = collection.upsert(docs, vectors=vectors)
        total = WriteStats(added=total.added + stats.added,
                           replaced=total.replaced + stats.replaced,
                           truncated=total.truncated + stats.truncated)
        if progress is not None:
            progress(len(docs))
    return total


def _metadata(rows: dict[str, list[Any]], n: int, doc_id: str) -> dict[str, Any]:
    value = rows.get("metadata", [None] * (n + 1))[n]
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise MalformedCorpus(f"document {doc_id!r}: its metadata is not JSON "
                                  f"({exc.msg})") from None
    if not isinstance(value, dict):
        raise MalformedCorpus(f"document {doc_id!r}: its metadata is not an object")
    return value
