"""The ``tiervec`` commands that change a collection: add, delete, compact, index-field.

They are registered on :data:`tiervec.cli.app` when :mod:`tiervec.cli` is imported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tiervec.cli import _progress, _run, app, console, err_console
from tiervec.errors import CorpusNotFound, DuplicateIds

CollectionArg = Annotated[Path, typer.Argument(help="Collection folder.", show_default=False)]

#: How many unknown or duplicate ids a message lists.
SHOWN_IDS = 10


@app.command()
def add(
    collection: CollectionArg,
    corpus: Annotated[Path, typer.Argument(help="BEIR folder, .jsonl(.gz), .csv or .parquet.")],
    upsert: Annotated[bool, typer.Option(
        "--upsert", help="Replace the documents whose id the collection already holds (text, "
        "vector and metadata) instead of stopping with an error.")] = False,
) -> None:
    """Add the documents of a corpus to a collection, encoded with the collection's model.

    Fields other than id, title and text become metadata to filter on.
    The whole corpus is checked first (records, repeated ids, ids already there):
    nothing is written when it has a problem.

    Example: tiervec add my-collection new-docs.jsonl --upsert
    """

    def go() -> None:
        import tiervec
        from tiervec.corpus import corpus_file

        corpus_file(corpus)  # a missing corpus fails before the collection is locked
        with tiervec.open(collection) as col:
            ids = _corpus_ids(corpus)
            if not upsert:
                _refuse_existing(col, ids, corpus)
            _ = col.encoder  # load the model before the progress bar starts timing
            with _progress("Adding", len(ids)) as advance:
                added, replaced = _write(col, corpus, upsert, advance)
            console.print(f"[green]{escape(str(collection))}[/]: {len(col):,} documents "
                          f"({added:,} added, {replaced:,} replaced)")

    _run(go)


def _corpus_ids(corpus: Path) -> list[str]:
    """The ids of ``corpus``, in order, after reading every record; repeated ids are an error."""
    from tiervec.corpus import read_corpus

    ids = [doc.id for doc in read_corpus(corpus)]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise DuplicateIds(
            f"{len(repeated):,} ids appear more than once in {corpus.name} (e.g. "
            f"{repeated[:SHOWN_IDS]}); give every document a unique id"
        )
    return ids


def _refuse_existing(col: Any, ids: list[str], corpus: Path) -> None:
    missing = set(col.missing(ids))
    existing = [i for i in ids if i not in missing]
    if existing:
        raise DuplicateIds(
            f"{len(existing):,} of the {len(ids):,} documents in {corpus.name} have ids the "
            f"collection already holds (e.g. {existing[:SHOWN_IDS]}); add --upsert to replace "
            "them, or use `tiervec index` to add only the new ones"
        )


def _write(col: Any, corpus: Path, upsert: bool, advance: Callable[[int], None]) -> tuple[int, int]:
    """Add (every id is new) or upsert the documents of ``corpus``: ``(added, replaced)``."""
    from tiervec.corpus import read_corpus
    from tiervec.ingest import CHUNK, index_corpus

    if not upsert:
        return index_corpus(col, corpus, progress=advance).added, 0
    added = replaced = 0
    docs = read_corpus(corpus)
    while chunk := list(islice(docs, CHUNK)):  # one committed segment per chunk, as in index
        stats = col.upsert(chunk, progress=advance)
        added, replaced = added + stats.added, replaced + stats.replaced
    if col.fit_is_stale:
        col.refit()
    return added, replaced


@app.command()
def delete(
    collection: CollectionArg,
    ids: Annotated[list[str] | None, typer.Argument(
        help="Ids of the documents to delete.", metavar="ID", show_default=False)] = None,
    ids_file: Annotated[Path | None, typer.Option(
        "--ids-file", help="A file of ids to delete, one per line ('-': standard input).",
        show_default=False)] = None,
    compact_after: Annotated[bool, typer.Option(
        "--compact", help="Compact afterwards, reclaiming the space now (see `tiervec "
        "compact`).")] = False,
) -> None:
    """Delete documents by id. Unknown ids are reported, not an error.

    Deleted documents disappear from searches at once;
    `tiervec compact` (or --compact) reclaims their space.

    Example: tiervec delete my-collection doc-17 doc-42 --compact
    """
    if ids is None and ids_file is None:
        raise typer.BadParameter("give the ids to delete, or --ids-file FILE",
                                 param_hint="ID...")

    def go() -> None:
        import tiervec

        wanted = list(ids or []) + (_read_ids(ids_file) if ids_file is not None else [])
        with tiervec.open(collection) as col:
            stats = col.delete(wanted)
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

