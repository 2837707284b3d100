"""Documents, and readers for the corpus formats users bring.

Supported: a BEIR folder (``corpus.jsonl`` or ``corpus.jsonl.gz``), a ``.jsonl``/``.jsonl.gz`` of
``{"_id", "title", "text", ...}`` records, a ``.csv`` and a ``.parquet`` with the same columns.
Fields other than id/title/text become metadata (a ``metadata`` object is merged in).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiervec._extras import require
from tiervec.errors import CorpusNotFound, EmptyDocument, MalformedCorpus

log = logging.getLogger(__name__)

_ID_KEYS = ("_id", "id")
#: How many skipped ids a warning names.
SHOWN_IDS = 5


@dataclass(frozen=True, slots=True)
class Document:
    """A document: a user id, its text, an optional title and metadata."""

    id: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def embedding_text(self) -> str:
        """The text the encoder sees: ``title + " " + text`` (BEIR's convention)."""
        return embedding_text(self.title, self.text)

    def text_start(self) -> int:
        """Where :attr:`text` begins in :meth:`embedding_text` (a chunk's span is shifted by
        it into the text)."""
        return text_start(self.title, self.text)


def embedding_text(title: str, text: str) -> str:
    """What the encoder reads of a document: ``title + " " + text`` (BEIR's convention)."""
    return f"{title} {text}".strip() if title else text


def text_start(title: str, text: str) -> int:
    """Where ``text`` begins in :func:`embedding_text` of ``title`` and ``text``."""
    if not title:
        return 0
    full = f"{title} {text}"
    return len(title) + 1 - (len(full) - len(full.lstrip()))


def document_from_record(record: Mapping[str, Any], where: str,
                         allow_empty: bool = False) -> Document:
    """A :class:`Document` from a mapping with ``_id`` (or ``id``), ``text`` and optional fields.

    ``where`` names the record in error messages (e.g. ``"corpus.jsonl line 7"``);
    ``allow_empty`` accepts a record with neither title nor text (its vector is given).
    """
    if allow_empty and type(record) is dict and len(record) == 1:  # an id for given vectors
        ((key, value),) = record.items()
        if key in _ID_KEYS and isinstance(value, str) and value:
            return Document(id=value, text="")
    if not isinstance(record, Mapping):
        raise MalformedCorpus(f"{where}: expected an object with '_id' and 'text', got {record!r}")
    doc_id = next((record[k] for k in _ID_KEYS if record.get(k) not in (None, "")), None)
    if doc_id is None:
        raise MalformedCorpus(
            f"{where}: the document has no id; give every record an '_id' (or 'id') field"
        )
    title = record.get("title") or ""
    text = record.get("text")
    text = "" if text is None else text
    if not allow_empty and not str(text).strip() and not str(title).strip():
        raise EmptyDocument(
            f"{where}: document {doc_id!r} has no text; give it a non-empty 'text' (or 'title')",
            str(doc_id),
        )
    metadata = {k: v for k, v in record.items() if k not in ("_id", "id", "title", "text")}
    nested = metadata.pop("metadata", None)
    if isinstance(nested, Mapping):
        metadata = {**nested, **metadata}
    elif nested not in (None, ""):
        metadata["metadata"] = nested
    return Document(id=str(doc_id), text=str(text), title=str(title), metadata=metadata)


def read_corpus(
    path: str | Path, *, strict: bool = False,
    on_empty: Callable[[list[str]], None] | None = None,
) -> Iterator[Document]:
    """Documents of a BEIR folder, ``.jsonl(.gz)``, ``.csv`` or ``.parquet`` file, in file order.

    Records with neither title nor text (real test collections have a few) are skipped; once
    the file is read, their ids go to ``on_empty`` or, without it, into one logged warning.
    ``strict`` makes the first one an :class:`~tiervec.errors.EmptyDocument` error instead.
    """
    file = corpus_file(path)
    name = file.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        records = _read_jsonl(file)
    elif name.endswith((".csv", ".csv.gz")):
        records = _read_csv(file)
    elif name.endswith(".parquet"):
        records = _read_parquet(file)
    else:
        raise MalformedCorpus(
            f"{file}: unsupported corpus format; use a BEIR folder, .jsonl(.gz), .csv or "
            ".parquet"
        )
    return _documents(file, records, strict, on_empty)


def _documents(
    file: Path, records: Iterator[tuple[Mapping[str, Any], str]], strict: bool,
    on_empty: Callable[[list[str]], None] | None,
) -> Iterator[Document]:
    empty: list[str] = []
    for record, where in records:
        try:
            yield document_from_record(record, where)
        except EmptyDocument as exc:
            if strict:
                raise
            empty.append(exc.doc_id)
    if not empty:
        return
    if on_empty is not None:
        on_empty(empty)
    else:
        log.warning("%s", empty_warning(file.name, empty))


def empty_warning(source: str, ids: list[str]) -> str:
    """The one warning about documents skipped for having neither title nor text."""
    shown = ", ".join(repr(i) for i in ids[:SHOWN_IDS])
    more = f" and {len(ids) - SHOWN_IDS:,} more" if len(ids) > SHOWN_IDS else ""
    return (f"{source}: skipped {len(ids):,} document{'s' * (len(ids) != 1)} with neither title "
            f"nor text ({shown}{more}); give them a text, or pass --strict (strict=True) to "
            "stop at the first one")


def count_records(path: str | Path) -> int | None:
    """Number of documents in a corpus, counted cheaply (``None`` where that is not possible)."""
    file = corpus_file(path)
    name = file.name.lower()
    if name.endswith(".parquet"):
        return int(require("pyarrow.parquet").ParquetFile(file).metadata.num_rows)
    if ".jsonl" in name or ".ndjson" in name or name.endswith(".json.gz"):
        try:
            with open_text(file) as fh:
                return sum(1 for line in fh if line.strip())
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise MalformedCorpus(f"{file.name}: cannot be read ({exc})") from None
    return None


def corpus_file(path: str | Path) -> Path:
    """The corpus file for ``path``; a BEIR folder resolves to its ``corpus.jsonl(.gz)``."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in ("corpus.jsonl", "corpus.jsonl.gz"):
            if (path / candidate).is_file():
                return path / candidate
        raise CorpusNotFound(
            f"folder {str(path)!r} has no corpus.jsonl or corpus.jsonl.gz; point to a BEIR "
            "dataset folder or to a .jsonl/.csv/.parquet corpus file"
        )
    if not path.exists():
        raise CorpusNotFound(
            f"corpus {str(path)!r} does not exist; check the path (a BEIR folder or a "
            ".jsonl/.jsonl.gz/.csv/.parquet file)"
        )
    return path


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping ``.gz``."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line_number, value)`` for every non-blank line; malformed JSON names its line."""
    with open_text(path) as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MalformedCorpus(
                        f"{path.name} line {number}: invalid JSON ({exc.msg} at column "
                        f"{exc.colno}); fix or remove that line"
                    ) from None
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise MalformedCorpus(f"{path.name}: cannot be read ({exc})") from None


def _read_jsonl(path: Path) -> Iterator[tuple[Any, str]]:
    for number, record in iter_jsonl(path):
        yield record, f"{path.name} line {number}"


def _read_csv(path: Path) -> Iterator[tuple[Any, str]]:
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        _check_columns(path, reader.fieldnames or [])
        for number, row in enumerate(reader, start=2):
            yield row, f"{path.name} line {number}"


def _read_parquet(path: Path) -> Iterator[tuple[Any, str]]:
    pq = require("pyarrow.parquet")
    table = pq.read_table(path)
    _check_columns(path, table.column_names)
    for number, row in enumerate(table.to_pylist(), start=1):
        yield row, f"{path.name} row {number}"


def _check_columns(path: Path, columns: Iterable[str]) -> None:
    columns = list(columns)
    if not any(k in columns for k in _ID_KEYS) or "text" not in columns:
        raise MalformedCorpus(
            f"{path.name}: needs an '_id' (or 'id') column and a 'text' column, "
            f"found {columns}"
        )
