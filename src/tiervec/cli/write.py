"""The ``tiervec`` commands that change a collection: add, delete, compact, index-field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tiervec.cli._app import StrictOpt, _progress, _run, app, console, err_console, warn_empty
from tiervec.errors import CorpusNotFound

CollectionArg = Annotated[Path, typer.Argument(help="Collection folder.", show_default=False)]

#: How many unknown ids a message lists.
SHOWN_IDS = 10


@app.command()
def add(
    collection: CollectionArg,
    corpus: Annotated[Path, typer.Argument(help="BEIR folder, .jsonl(.gz), .csv or .parquet.")],
    upsert: Annotated[bool, typer.Option(
        "--upsert", help="Replace the documents whose id the collection already holds (text, "
        "vector and metadata) instead of stopping with an error.")] = False,
    strict: StrictOpt = False,
) -> None:
    """Add the documents of a corpus to a collection, encoded with the collection's model.

    Fields other than id, title and text become metadata to filter on.
    The whole corpus is checked first (records, repeated ids, ids already there):
    nothing is written when it has a problem.
    Documents with neither title nor text are skipped with one warning (--strict: an error).

    Example: tiervec add my-collection new-docs.jsonl --upsert
    """

    def go() -> None:
        import tiervec
        from tiervec.corpus import corpus_file, count_records
        from tiervec.ingest import add_corpus

        corpus_file(corpus)  # a missing corpus fails before the collection is locked
        with tiervec.open(collection) as col:
            _ = col.encoder  # load the model before the progress bar starts timing
            with _progress("Adding", count_records(corpus)) as advance:
                stats = add_corpus(col, corpus, upsert=upsert, progress=advance, strict=strict)
            warn_empty(corpus, stats.empty)
            console.print(f"[green]{escape(str(collection))}[/]: {len(col):,} documents "
                          f"({stats.added:,} added, {stats.replaced:,} replaced)")

    _run(go)


@app.command()
def delete(
    collection: CollectionArg,
    ids: Annotated[list[str] | None, typer.Argument(
        help="Ids of the documents to delete.", metavar="ID", show_default=False)] = None,
    ids_file: Annotated[Path | None, typer.Option(
        "--ids-file", help="A file of ids to delete, one per line ('-': standard input).",
        show_default=False)] = None,
    where: Annotated[str | None, typer.Option(
        "--filter", help="Delete every document this filter matches, e.g. 'year < 2000'.",
        show_default=False)] = None,
    compact_after: Annotated[bool, typer.Option(
        "--compact", help="Compact afterwards, reclaiming the space now (see `tiervec "
        "compact`).")] = False,
) -> None:
    """Delete documents by id, or those a filter matches. Unknown ids are reported, not an
    error.

    Deleted documents disappear from searches at once;
    `tiervec compact` (or --compact) reclaims their space.

    Example: tiervec delete my-collection doc-17 doc-42 --compact
    (or: tiervec delete my-collection --filter 'year < 2000')
    """
    if (ids is None and ids_file is None) == (where is None):
        raise typer.BadParameter("give the ids to delete (or --ids-file FILE), or --filter",
                                 param_hint="ID...")

    def go() -> None:
        import tiervec

        wanted = list(ids or []) + (_read_ids(ids_file) if ids_file is not None else [])
        with tiervec.open(collection) as col:
            stats = col.delete(wanted) if where is None else col.delete_where(where)
            console.print(f"[green]{escape(str(collection))}[/]: deleted "
                          f"{_documents(stats.deleted)}, {len(col):,} left")
            if stats.missing:
                n = len(stats.missing)
                shown = ", ".join(repr(i) for i in stats.missing[:SHOWN_IDS])
                more = f" and {n - SHOWN_IDS:,} more" if n > SHOWN_IDS else ""
                err_console.print(f"[yellow]Not found:[/] {n:,} id{'s' * (n != 1)}: "
                                  f"{escape(shown)}{more}", highlight=False)
            if compact_after:
                _compact(col, collection)

    _run(go)


@app.command("set-metadata")
def set_metadata(
    collection: CollectionArg,
    updates: Annotated[Path, typer.Argument(
        help="A .jsonl file ('-': standard input) of {\"id\": ..., field: value, ...} lines.",
        show_default=False)],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace each document's metadata instead of merging into it.")
    ] = False,
) -> None:
    """Change documents' metadata without encoding them again (their stored vectors are kept).

    Each line names a document and its new fields; a null value removes a field.
    Unknown ids are reported, not an error.

    Example: tiervec set-metadata my-collection changes.jsonl (lines such as
    {"id": "doc-17", "year": 2021}; '-' reads them from standard input)
    """

    def go() -> None:
        import json
        import sys

        import tiervec
        from tiervec.errors import MalformedCorpus

        lines = (sys.stdin if str(updates) == "-" else updates.open(encoding="utf-8"))
        changes: dict[str, dict[str, Any]] = {}
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                changes[str(record.pop("id"))] = record
            except (ValueError, KeyError, AttributeError):
                raise MalformedCorpus(f"{updates} line {n}: expected a JSON object with an "
                                      "'id' and the fields to set") from None
        with tiervec.open(collection) as col:
            stats = col.set_metadata(changes, replace=replace)
        console.print(f"[green]{escape(str(collection))}[/]: metadata of "
                      f"{_documents(stats.replaced)} changed")
        if stats.missing:
            err_console.print(f"[yellow]Not found:[/] {len(stats.missing):,} ids: "
                              f"{escape(', '.join(map(repr, stats.missing[:SHOWN_IDS])))}",
                              highlight=False)

    _run(go)


def _read_ids(path: Path) -> list[str]:
    """The non-blank lines of ``path`` (``-``: standard input), stripped."""
    if str(path) == "-":
        lines = typer.get_text_stream("stdin").read().splitlines()
    elif path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        raise CorpusNotFound(f"ids file {str(path)!r} does not exist; give a file with one id "
                             "per line, or '-' to read them from standard input")
    return [line.strip() for line in lines if line.strip()]


@app.command()
def compact(collection: CollectionArg) -> None:
    """Reclaim the space of deleted and replaced documents, merging the segments into one.

    Searches give the same results before and after.

    Example: tiervec compact my-collection
    """

    def go() -> None:
        import tiervec

        with tiervec.open(collection) as col:
            _compact(col, collection)

    _run(go)


def _compact(col: Any, folder: Path) -> None:
    before = _folder_bytes(folder)
    with console.status("Compacting"):
        stats = col.compact()
    after = _folder_bytes(folder)
    console.print(f"[green]{escape(str(folder))}[/]: compacted, reclaiming "
                  f"{_documents(stats.deleted)} (deleted or replaced), {len(col):,} left; "
                  f"folder {_size(before)} -> {_size(after)}")


def _documents(n: int) -> str:
    return f"{n:,} document{'s' * (n != 1)}"


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _size(n: float) -> str:
    """``n`` bytes in B, KiB, MiB or GiB."""
    unit = "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            break
        n /= 1024
    return f"{n:,.0f} B" if unit == "B" else f"{n:,.1f} {unit}"


@app.command("index-field")
def index_field(
    collection: CollectionArg,
    fields: Annotated[list[str], typer.Argument(
        help="Metadata fields to index (`tiervec info` lists them).", metavar="FIELD",
        show_default=False)],
) -> None:
    """Index metadata fields in SQLite, so that filters on them run faster.

    Worth it for fields whose filters select few documents (dates, rare values).

    Example: tiervec index-field my-collection year lang
    """

    def go() -> None:
        import tiervec

        with tiervec.open(collection) as col:
            for name in fields:
                col.create_index(name)
            known = col.fields
            done = ", ".join(f"{name} ({known[name].type.value})" for name in fields)
            console.print(f"[green]{escape(str(collection))}[/]: indexed {escape(done)}")

    _run(go)



@app.command()
def lexical(
    collection: CollectionArg,
    stemmer: Annotated[str, typer.Option(
        help="Snowball stemmer (english, porter, german, french...) or 'none'.")] = "english",
    stopwords: Annotated[str, typer.Option(
        help="Stop words to drop: 'english' (Lucene's 33) or 'none'.")] = "english",
    k1: Annotated[float, typer.Option(help="BM25 term-frequency saturation.")] = 1.5,
    b: Annotated[float, typer.Option(help="BM25 length normalisation, in [0, 1].")] = 0.75,
) -> None:
    """Build (or rebuild with other settings) the BM25 index for lexical and hybrid search.

    It covers every document's title and text; later adds, upserts, deletes and compactions
    keep it exact in the same commit. Collections made by `tiervec index` have one already.

    Example: tiervec lexical my-collection --stemmer porter
    """

    def go() -> None:
        import time

        import tiervec
        from tiervec.lexical import LexicalConfig

        config = LexicalConfig(stemmer=None if stemmer == "none" else stemmer,
                               stopwords=None if stopwords == "none" else stopwords, k1=k1, b=b)
        with tiervec.open(collection) as col:
            start = time.perf_counter()
            with console.status(f"Indexing the texts of {len(col):,} documents"):
                col.create_lexical_index(config)
            console.print(f"[green]{escape(str(collection))}[/]: lexical index of "
                          f"{_documents(len(col))} built in {time.perf_counter() - start:.1f} s; "
                          "search it with --mode lexical or --hybrid")

    _run(go)


@app.command()
def export(
    collection: CollectionArg,
    out: Annotated[Path, typer.Argument(help="The Parquet file to write.")],
) -> None:
    """Write every document, its metadata and its full-precision vector to a Parquet file
    (id, title, text, metadata as JSON, vector), to leave, back up, or move to another
    collection with `tiervec import`. Chunked and multi-vector collections export no vectors.

    Example: tiervec export my-collection my-collection.parquet
    """

    def go() -> None:
        import tiervec

        with tiervec.open(collection, read_only=True) as col, \
                _progress("Exporting", len(col)) as advance:
            n = col.export_parquet(out, progress=advance)
        console.print(f"[green]{escape(str(out))}[/]: {n:,} documents")

    _run(go)


@app.command("import")
def import_(
    parquet: Annotated[Path, typer.Argument(help="A Parquet file from `tiervec export` (or "
                                            "with id and text; title, metadata, vector).")],
    collection: CollectionArg,
) -> None:
    """Upsert the documents of a Parquet file into a collection: vectors given are stored as
    they are, documents without one are encoded by the collection's model.

    Example: tiervec import my-collection.parquet other-collection
    """

    def go() -> None:
        import tiervec

        if not parquet.is_file():
            raise CorpusNotFound(f"{str(parquet)!r} is not a file")
        with tiervec.open(collection) as col, _progress("Importing", None) as advance:
            stats = col.import_parquet(parquet, progress=advance)
        console.print(f"[green]{escape(str(collection))}[/]: {stats.added:,} added, "
                      f"{stats.replaced:,} replaced")

    _run(go)
