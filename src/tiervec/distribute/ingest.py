"""Distributed ingest: Ray Data reads a corpus, an actor pool encodes it, the shards write it.

::

    read (JSONL lines / Parquet rows, many files)  ->  parse (tiervec's record rules)
      ->  drop ids the shards hold (a rerun resumes)  ->  encode (an actor pool, each actor
      holding the model; CPU or GPU)  ->  write tasks send each shard's actor its documents
      (the caller only counts what they did: no vector passes through it)

Ray runs tasks at least once (it retries them and restarts dead actors), so the writes are
idempotent by document id (:meth:`~tiervec.distribute.shard.Shard.ingest` adds only ids its
shard lacks, each batch one committed segment): a killed encoder or shard leaves no duplicate
and loses no document, and rerunning the same ingest adds only what is missing. Chunked and
multi-vector collections skip the pool: each shard encodes its own documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiervec.corpus import Document, corpus_file, document_from_record
from tiervec.distribute import cluster
from tiervec.distribute.sharded import ShardedCollection
from tiervec.encode.base import truncated_count
from tiervec.errors import CorpusNotFound, EmptyDocument, MalformedCorpus, TiervecError

#: Documents per encoding call and per write (one committed segment per shard and write).
ENCODE_BATCH = 256
WRITE_BATCH = 4096
#: The CPU share of the light stages (reading, parsing), so that they run beside encoders.
LIGHT = {"num_cpus": 0.1}
_JSONL = (".jsonl", ".jsonl.gz", ".ndjson", ".json.gz")


@dataclass
class IngestStats:
    """What an ingest did: documents read, added, already held (skipped), empty (ids)."""

    read: int = 0
    added: int = 0
    skipped: int = 0
    empty: list[str] = field(default_factory=list)
    refitted: bool = False
    #: documents longer than the model reads (only their start embedded)
    truncated: int = 0


def corpus_files(corpus: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files of a corpus: one file, a BEIR folder, a folder of ``.jsonl``/``.parquet``
    files, or a list of files (one format)."""
    if isinstance(corpus, str | Path):
        path = Path(corpus).expanduser()
        if path.is_dir() and not any((path / n).is_file() for n in ("corpus.jsonl",
                                                                    "corpus.jsonl.gz")):
            files = sorted(p for p in path.iterdir()
                           if p.name.lower().endswith((*_JSONL, ".parquet")))
            if not files:
                raise CorpusNotFound(f"folder {str(path)!r} holds no .jsonl or .parquet files")
            return _one_format(files)
        return [corpus_file(path)]
    files = [corpus_file(p) for p in corpus]
    if not files:
        raise CorpusNotFound("no corpus files given")
    return _one_format(files)


def _one_format(files: list[Path]) -> list[Path]:
    kinds = {f.name.lower().endswith(".parquet") for f in files}
    if len(kinds) > 1:
        raise MalformedCorpus("the corpus mixes .jsonl and .parquet files; ingest each kind "
                              "separately")
    return files


def read_dataset(files: list[Path], blocks: int | None = None,
                 vector_column: str | None = None) -> Any:
    """The corpus as a Ray Dataset of ``record`` (one JSON object per row); a Parquet
    corpus's ``vector_column`` travels beside it as ``given`` (float32 rows, not JSON)."""
    ray = cluster.ray_module()
    paths = [str(f.resolve()) for f in files]
    if files[0].name.lower().endswith(".parquet"):
        return ray.data.read_parquet(paths, override_num_blocks=blocks, **LIGHT).map_batches(
            _rows_to_records, batch_format="pyarrow",
            fn_kwargs={"vector_column": vector_column}, **LIGHT)
    unknown = [f for f in files if not f.name.lower().endswith(_JSONL)]
    if unknown:
        raise MalformedCorpus(f"{unknown[0].name}: distributed ingest reads .jsonl(.gz) and "
                              ".parquet files; convert it, or index without --ray")
    return ray.data.read_text(paths, override_num_blocks=blocks, **LIGHT).map_batches(
        _lines_to_records, batch_format="numpy", **LIGHT)


def _lines_to_records(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    lines = [str(x) for x in batch["text"] if str(x).strip()]
    return {"record": np.array(lines, dtype=object)}


def _rows_to_records(table: Any, vector_column: str | None = None) -> dict[str, np.ndarray]:
    given = None
    if vector_column is not None and vector_column in table.column_names:
        # the vectors stay one float32 array: through JSON (or as an object per row) they
        # cost several times the rest of an ingest
        given = _vector_rows(table.column(vector_column))
        table = table.drop_columns([vector_column])
    rows = table.to_pylist()
    out = {"record": np.array([json.dumps(r, default=_plain) for r in rows], dtype=object)}
    if given is not None:
        out["given"] = given
    return out


def _vector_rows(column: Any) -> np.ndarray:
    """A Parquet list column as ``(n, d)`` float32 (an object array of rows, ``None`` where
    missing, when some rows are missing or their lengths differ)."""
    import pyarrow.compute as pc

    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if column.null_count == 0 and len(column) and (lengths == lengths[0]).all():
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=np.float32).reshape(len(column), int(lengths[0]))
    rows = [None if v is None else np.asarray(v, dtype=np.float32) for v in column.to_pylist()]
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)


def parse_records(batch: dict[str, np.ndarray], vector_column: str | None = None,
                  ) -> dict[str, np.ndarray]:
    """Records to documents by tiervec's rules (ids, titles, metadata); an empty document
    keeps its id with ``empty`` set (reported, not written)."""
    ids, titles, texts, metas, empty, vectors = [], [], [], [], [], []
    for number, line in enumerate(batch["record"], start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedCorpus(f"a corpus record is not valid JSON ({exc.msg}): "
                                  f"{str(line)[:80]!r}") from None
        vector = None
        if "given" in batch:
            vector = batch["given"][number - 1]
        elif vector_column:
            vector = record.pop(vector_column, None)
        try:
            doc = document_from_record(record, f"record {number} of a batch",
                                       allow_empty=vector is not None)
            blank = False
        except EmptyDocument as exc:
            doc, blank = Document(id=exc.doc_id, text=""), True
        if vector_column and vector is None and not blank:
            raise MalformedCorpus(f"document {doc.id!r} has no {vector_column!r} vector")
        ids.append(doc.id)
        titles.append(doc.title)
        texts.append(doc.text)
        metas.append(json.dumps(dict(doc.metadata), default=str))
        empty.append(blank)
        vectors.append(vector)
    out = {"id": np.array(ids, dtype=object), "title": np.array(titles, dtype=object),
           "text": np.array(texts, dtype=object), "metadata": np.array(metas, dtype=object),
           "empty": np.array(empty, dtype=bool)}
    if vector_column:
        dim = next((len(v) for v in vectors if v is not None), 0)
        odd = next((i for i, v in zip(ids, vectors, strict=True)
                    if v is not None and len(v) != dim), None)
        if odd is not None:
            raise MalformedCorpus(f"document {odd!r}'s {vector_column!r} vector is not "
                                  f"{dim}-dimensional like the others before it")
        out["vector"] = np.array([v if v is not None else [0.0] * dim for v in vectors],
                                 dtype=np.float32).reshape(len(ids), dim)
    return out


def mark_stored(batch: dict[str, np.ndarray], collection: ShardedCollection,
                ) -> dict[str, np.ndarray]:
    """``stored``: which rows' ids a shard already holds (skipped, not encoded again)."""
    ids = [str(i) for i in batch["id"]]
    missing = set(collection.missing(ids))
    return {**batch, "stored": np.array([i not in missing for i in ids], dtype=bool)}


class Encode:
    """An encoding actor: holds the collection's model, adds a ``vector`` column."""

    def __init__(self, config: dict[str, Any], threads: int | None = None) -> None:
        from tiervec.encode import EncoderConfig, load_encoder

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.encoder = load_encoder(EncoderConfig.from_dict(config))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [Document(id="", text=str(t), title=str(h)).embedding_text()
                 for t, h in zip(batch["text"], batch["title"], strict=True)]
        live = ~(batch["empty"] | batch["stored"])
        vectors = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        # the batch's count of texts the model reads the start of, on its first row (so the
        # column sums right however Ray Data re-batches it)
        truncated = np.zeros(len(texts), dtype=np.int64)
        if live.any():
            todo = [t for t, ok in zip(texts, live, strict=True) if ok]
            vectors[live] = self.encoder.encode_documents(todo)
            truncated[0] = truncated_count(self.encoder, todo)
        return {**batch, "vector": vectors, "truncated": truncated}


def ingest(
    collection: ShardedCollection,
    corpus: str | Path | Sequence[str | Path],
    *,
    encoders: int = 1,
    gpus: float = 0,
    vector_column: str | None = None,
    encode_batch: int = ENCODE_BATCH,
    write_batch: int = WRITE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> IngestStats:
    """Add every document of ``corpus`` that ``collection`` lacks, through Ray Data.

    ``encoders`` actors encode (each holding the model; ``gpus`` per actor, 0 for CPU);
    ``vector_column`` names a column of precomputed vectors instead (no model runs).
    ``progress(n)`` advances by every document read (written, skipped or empty).
    """
    ray = cluster.ray_module()
    ds = read_dataset(corpus_files(corpus), blocks=max(8, 4 * encoders),
                      vector_column=vector_column)
    ds = ds.map_batches(parse_records, batch_format="numpy",
                        fn_kwargs={"vector_column": vector_column}, **LIGHT)
    ds = ds.map_batches(mark_stored, batch_format="numpy",
                        fn_kwargs={"collection": collection}, batch_size=write_batch, **LIGHT)
    own_encoding = collection.chunking is not None or collection.multivector is not None
    if vector_column is None and not own_encoding:
        config = collection.encoder_config
        if config is None:
            raise MalformedCorpus("a collection without a model needs precomputed vectors: "
                                  "pass --vectors-column")
        ds = ds.map_batches(
            Encode, batch_format="numpy", batch_size=encode_batch,
            fn_constructor_kwargs={"config": config.to_dict(),
                                   "threads": None if gpus else _threads(ray, encoders)},
            compute=ray.data.ActorPoolStrategy(size=encoders),
            num_cpus=_encoder_cpus(ray, encoders, gpus), num_gpus=gpus or None)
    # the writes run in Ray Data's tasks, each sending its documents and vectors to the shards'
    # actors straight from the object store: only one small count per batch reaches here
    ds = ds.map_batches(write_batch_to_shards, batch_format="numpy", batch_size=write_batch,
                        fn_kwargs={"collection": collection}, **LIGHT)
    stats = IngestStats()
    try:
        for done in ds.iter_rows():
            stats.read += int(done["read"])
            stats.added += int(done["added"])
            stats.skipped += int(done["skipped"])
            stats.empty += json.loads(done["empty"])
            stats.truncated += int(done["truncated"])
            if progress is not None:
                progress(int(done["read"]))
    except Exception as exc:
        raise _cause(exc) from None
    stats.refitted = collection.finish()
    return stats


def _encoder_cpus(ray: Any, encoders: int, gpus: float) -> float:
    """An encoding actor's CPU share: one core, less when the cluster has too few cores for
    every encoder and the light stages beside them."""
    if gpus:
        return 0.5
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(0.1, min(1.0, (cpus - 0.5) / encoders))


def _threads(ray: Any, encoders: int) -> int:
    """Torch threads per CPU encoding actor: the cluster's cores shared among the encoders
    (one node's view; on a cluster, its nodes' cores)."""
    nodes = max(1, len([n for n in ray.nodes() if n.get("Alive")]))
    cpus = float(ray.cluster_resources().get("CPU", 1)) / nodes
    return max(1, int(cpus * nodes // encoders) if encoders > nodes else int(cpus))


def write_batch_to_shards(batch: dict[str, np.ndarray], collection: ShardedCollection,
                          ) -> dict[str, np.ndarray]:
    """Write a batch's new documents to the shards that hold their ids (in a Ray Data task);
    one row saying what it did."""
    empty, stored = batch["empty"], batch["stored"]
    todo = ~(empty | stored)
    docs = [Document(id=str(i), text=str(t), title=str(h), metadata=json.loads(m))
            for i, t, h, m, ok in zip(batch["id"], batch["text"], batch["title"],
                                      batch["metadata"], todo, strict=True) if ok]
    vectors = batch["vector"][todo] if "vector" in batch else None
    added = collection.ingest(docs, vectors) if docs else 0
    truncated = int(batch["truncated"].sum()) if "truncated" in batch else 0
    return {"read": np.array([len(empty)]), "added": np.array([added]),
            "truncated": np.array([truncated]),
            "skipped": np.array([int(stored.sum())]),
            "empty": np.array([json.dumps([str(i) for i in batch["id"][empty]])],
                              dtype=object)}


def _cause(exc: BaseException) -> BaseException:
    """The tiervec error behind a failed Ray Data stage (else ``exc``)."""
    seen: BaseException | None = exc
    while seen is not None:
        found = cluster.unwrap(seen)
        if isinstance(found, TiervecError):
            return found
        seen = seen.__cause__ or seen.__context__
    return exc
