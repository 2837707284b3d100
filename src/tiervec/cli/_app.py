"""What every ``tiervec`` command shares: the app, consoles, error handling, progress bars."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tiervec.errors import TiervecError

app = typer.Typer(
    name="tiervec",
    help="Embedding retrieval with compressed vectors in RAM and full precision on disk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide tables even when the output is piped (rich would assume 80 columns).
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)
T = TypeVar("T")
log = logging.getLogger(__name__)

TiersOpt = Annotated[
    str | None,
    typer.Option(
        "--tiers",
        help="Tier chain, e.g. 'binary*4 -> float32@disk' (codec[@ram|@disk][*oversample], "
        "joined by '->'). Default for new collections: binary*4 -> float32@disk.",
    ),
]
RecallOpt = Annotated[float | None, typer.Option(
    "--recall-target", help="Recall@10 against exact search to keep as the collection grows "
    "(a fraction in (0, 1]; default 0.95): the cheapest oversampling (and ANN effort) that "
    "meets it is measured on the collection's own vectors.", show_default=False)]


def describe_upgrade(upgrade: dict[str, Any] | None) -> str:
    """The upgrade line of ``tiervec info``."""
    if not upgrade:
        return "none"
    quality = upgrade.get("map") or {}
    head = f"{upgrade['current']} -> {upgrade['target']}: {upgrade['state']}"
    if upgrade["state"] == "mapped":
        head += " (new queries and documents mapped into the stored space)"
    else:
        head += (f", {upgrade['backfilled']:.0%} backfilled ({upgrade['pending_segments']} "
                 "segments left; `tiervec upgrade --resume` goes on)")
    if quality:
        kept = (quality["kind"], quality["direction"])
        scores = {(c["kind"], c["direction"]): c["agreement"]
                  for c in quality.get("candidates", [])}
        head += (f"; map {kept[0]} {kept[1]} on {quality['sample']:,} texts: held-out "
                 f"agreement with the new model {scores.get(kept, float('nan')):.2f} (current "
                 f"model alone {quality['current_alone']:.2f})")
        better = max(scores, key=scores.__getitem__, default=kept)
        if scores.get(better, 0) > scores.get(kept, 0):
            head += (f"; {better[0]} {better[1]} agreed more ({scores[better]:.2f}; agreement "
                     "is not relevance: docs/models.md compares both)")
    return head


def describe_recall(recall: dict[str, Any] | None) -> str:
    """The recall line of ``tiervec info``: target, measured recall, setting, when."""
    if recall is None:
        return "no target kept (the chain's oversampling as written)"
    head = f"target recall@{recall['k']} >= {recall['target']:g}"
    if recall.get("recall") is None:
        return head + ": not measured yet (measured once the collection holds 1,000 vectors," \
            " or by `tiervec recall`)"
    setting = ", ".join(f"{key} {recall[key]}" for key in ("oversample", "effort")
                        if recall.get(key) is not None) or "nothing to tune"
    met = "met" if recall["met"] else "NOT met: the chain cannot reach it; pick another"
    return (f"{head}: estimated {recall['recall']:.3f} with {setting} ({met}); measured with "
            f"{recall['queries']} {recall['source']} queries on {recall['rows']:,} vectors in "
            f"{recall['seconds']:.1f} s, {recall['measured_at']}")


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model: a packaged model name (`tiervec models` lists them) or a local "
        "sentence-transformers folder. Default: all-MiniLM-L6-v2 for new collections.",
    ),
]


def _run(fn: Callable[[], T]) -> T:
    """Run ``fn``; a TiervecError becomes 'Error: ...' on stderr and exit status 1."""
    try:
        return fn()
    except TiervecError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields ``advance(n)``, which also shows documents/second."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    start = time.perf_counter()
    with bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(n: int) -> None:
            done = bar.tasks[task].completed + n
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:,.1f} docs/s")

        yield advance


StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Stop at the first document with neither title nor text, instead of skipping "
        "such documents with one warning.",
    ),
]


class _WarningsToConsole(logging.Handler):
    """tiervec's warnings (and, with --verbose, its info) on stderr, once each."""

    def emit(self, record: logging.LogRecord) -> None:
        label = "[red]Failed:[/]" if record.levelno >= logging.ERROR else \
            "[yellow]Warning:[/]" if record.levelno >= logging.WARNING else "[dim]info:[/]"
        err_console.print(f"{label} {escape(record.getMessage())}", highlight=False)
        if record.exc_info:  # a bug (a server's 500): its traceback, to report it
            err_console.print(escape("".join(traceback.format_exception(*record.exc_info))),
                              highlight=False)


def _version(value: bool) -> None:
    if value:
        from tiervec import __version__

        console.print(f"tiervec {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    logger = logging.getLogger("tiervec")
    if not any(isinstance(h, _WarningsToConsole) for h in logger.handlers):
        logger.addHandler(_WarningsToConsole())
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def index_with_progress(col: Any, corpus: Path, strict: bool = False) -> Any:
    """Add the documents of ``corpus`` that ``col`` lacks, with a progress bar; the stats."""
    from tiervec.corpus import count_records
    from tiervec.ingest import index_corpus

    with _progress("Indexing", count_records(corpus)) as advance:
        stats = index_corpus(col, corpus, progress=advance, strict=strict)
    warn_empty(corpus, stats.empty)
    return stats


def warn_truncated(count: int, reads: Any = None) -> None:
    """The one warning about documents longer than the model reads (``reads`` word pieces,
    where known), if any."""
    if count:
        pieces = f" ({reads} word pieces)" if reads else ""
        err_console.print(
            f"[yellow]{count:,} documents are longer than the model reads{pieces}[/]: only "
            "their start is embedded (their whole text is stored and BM25-indexed). Index "
            "them with --chunking late into a new collection to embed all of it.",
            highlight=False)


def warn_empty(corpus: Path, ids: list[str]) -> None:
    """The one warning about skipped empty documents, if any."""
    from tiervec.corpus import corpus_file, empty_warning

    if ids:
        message = empty_warning(corpus_file(corpus).name, ids)
        err_console.print(f"[yellow]Warning:[/] {escape(message)}", highlight=False)

