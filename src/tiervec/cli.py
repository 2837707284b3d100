"""The ``tiervec`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import logging
import os
import re
import time
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
from rich.table import Table

from tiervec.errors import CollectionMismatch, TiervecError

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
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model: a packaged model name (all-MiniLM-L6-v2) or a local "
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


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    if verbose:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("tiervec").setLevel(logging.INFO)  # not every library's INFO


def _open_or_create(folder: Path, model: str | None, tiers: str | None) -> tuple[Any, bool]:
    """The collection in ``folder`` (checked against ``model``/``tiers``), or a new one."""
    import tiervec
    from tiervec.encode import DEFAULT_MODEL
    from tiervec.encode.models import same_model
    from tiervec.search import DEFAULT_CHAIN, Chain

    chain = Chain.parse(tiers) if tiers is not None else None
    if not (folder / "manifest.json").exists():
        col = tiervec.create(folder, model=model or DEFAULT_MODEL, tiers=chain or DEFAULT_CHAIN)
        return col, True
    col = tiervec.open(folder)
    problem = None
    if model is not None and not same_model(col.model or "", model):
        problem = (f"{str(folder)!r} holds a collection built with model {col.model!r}, not "
                   f"{model!r}; use another --collection folder, or drop --model")
    elif chain is not None and str(chain) != str(col.chain):
        problem = (f"{str(folder)!r} searches with tiers {str(col.chain)!r}, not {str(chain)!r}; "
                   "use another folder, or drop --tiers")
    if problem:
        col.close()
        raise CollectionMismatch(problem)
    return col, False


def _index(col: Any, corpus: Path) -> tuple[int, int]:
    """Add the documents of ``corpus`` that ``col`` lacks, with a progress bar."""
    from tiervec.corpus import count_records
    from tiervec.ingest import index_corpus

    with _progress("Indexing", count_records(corpus)) as advance:
        stats = index_corpus(col, corpus, progress=advance)
    return stats.added, stats.skipped


@app.command()
def index(
    corpus: Annotated[Path, typer.Argument(help="BEIR folder, .jsonl(.gz), .csv or .parquet.")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder.")],
    model: ModelOpt = None,
    tiers: TiersOpt = None,
) -> None:
    """Encode a corpus into a collection (documents already in it are skipped)."""

    def go() -> None:
        from tiervec.corpus import corpus_file

        corpus_file(corpus)  # a missing corpus fails before a collection is created
        col, _ = _open_or_create(collection, model, tiers)
        with col:
            added, skipped = _index(col, corpus)
            console.print(
                f"[green]{collection}[/]: {len(col):,} documents ({added:,} added, "
                f"{skipped:,} already there); tiers [bold]{col.chain}[/], "
                f"{col.chain.ram_bytes_per_vector(col.dim)} RAM bytes/vector"
            )

    _run(go)


@app.command()
def search(
    collection: Annotated[Path, typer.Argument(help="Collection folder.")],
    query: Annotated[str, typer.Argument(help="Query text.")],
    k: Annotated[int, typer.Option("-k", help="Number of results.", min=1)] = 10,
    filter_: Annotated[str | None, typer.Option(
        "--filter", "-f", help="Only documents whose metadata match, e.g. 'year >= 2020 and "
        "lang in [\"en\", \"fr\"]' (`tiervec info` lists the fields).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search a collection with a text query and print the top results.

    A filter keeps the documents whose metadata match: == != < <= > >=,
    in [...], not in [...], contains, exists, joined by and, or, not and ( ).
    tiervec --verbose search ... logs how many documents match and the strategy.

    Example: tiervec search my-col "solar panels" -k 5 --filter 'year >= 2020'
    """

    def go() -> None:
        import tiervec

        with tiervec.open(collection, read_only=True) as col:
            if filter_ is not None and log.isEnabledFor(logging.INFO):
                plan = col.explain(filter_)
                log.info("filter %r matches %d documents (%.1f%%); strategy: %s", filter_,
                         plan.matches, 100 * plan.share, plan.strategy)
            result = col.search(query, k=k, filter=filter_)
            ids = [i for i in result.ids[0] if i != ""]
            docs = col.get(ids)
        hits = [
            {"rank": r + 1, "id": i, "score": float(s), "title": d.title if d else "",
             "text": d.text if d else ""}
            for r, (i, s, d) in enumerate(zip(ids, result.scores[0], docs, strict=False))
        ]
        if as_json:
            console.print_json(json.dumps({"query": query, "filter": filter_, "results": hits}))
            return
        title = query if filter_ is None else f"{query}  (filter: {filter_})"
        table = Table(title=escape(title), title_justify="left")
        for name, kw in (("#", {"justify": "right"}), ("id", {}), ("score", {"justify": "right"}),
                         ("document", {"overflow": "fold", "ratio": 1})):
            table.add_column(name, **kw)  # type: ignore[arg-type]
        for hit in hits:
            title = f"[bold]{escape(hit['title'])}[/] " if hit["title"] else ""
            snippet = title + escape(_clip(hit["text"], 160))
            table.add_row(str(hit["rank"]), escape(hit["id"]), f"{hit['score']:.4f}", snippet)
        console.print(table)

    _run(go)


def _clip(text: str, width: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _default_eval_collection(dataset_dir: Path, model: str | None) -> Path:
    from tiervec.encode import DEFAULT_MODEL

    root = Path(os.environ.get("TIERVEC_CACHE_DIR", Path.home() / ".cache" / "tiervec"))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", (model or DEFAULT_MODEL)).strip("-")
    return root / f"{dataset_dir.resolve().name}-{slug}"


@app.command("eval")
def eval_(
    dataset: Annotated[Path, typer.Argument(help="BEIR dataset folder.")],
    collection: Annotated[
        Path | None,
        typer.Option("--collection", "-c", help="Collection of the dataset's corpus; indexed "
                     "first if missing. Default: a cached one under ~/.cache/tiervec."),
    ] = None,
    tiers: Annotated[
        list[str] | None,
        typer.Option("--tiers", help="A chain to evaluate (repeat the option for several). "
                     "Default: a standard set from float32 to binary."),
    ] = None,
    model: ModelOpt = None,
    split: Annotated[str, typer.Option("--split", help="qrels split.")] = "test",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the rows as JSON.")] = None,
) -> None:
    """Evaluate tier chains on a BEIR dataset: memory, quality and speed, one row per chain.

    The corpus is encoded once (into the collection) and every chain reuses those vectors.
    """

    def go() -> None:
        from tiervec.eval import DEFAULT_EVAL_CHAINS, evaluate, load_beir
        from tiervec.search import Chain

        data = load_beir(dataset, split=split)
        chains = [Chain.parse(t) for t in (tiers or DEFAULT_EVAL_CHAINS)]
        folder = collection or _default_eval_collection(dataset, model)
        col, _ = _open_or_create(folder, model, None)
        with col:
            _index(col, data.path)
            table = _eval_table(data, len(col), col.model)
            rows: list[Any] = []

            def on_row(row: Any) -> None:
                rows.append(row)
                _add_eval_row(table, row, rows[0])

            with console.status(f"Evaluating {len(chains)} chains"):
                evaluate(col, data, chains, on_row=on_row)
        console.print(table)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
            console.print(f"wrote {json_out}")

    _run(go)


def _eval_table(data: Any, n_docs: int, model: str | None) -> Table:
    table = Table(
        title=f"{data.name} ({data.split}: {len(data.queries)} queries, {n_docs:,} docs, "
        f"model {model}, k=10)",
        title_justify="left",
    )
    for name in ("tiers", "RAM B/vec", "disk B/vec", "reads/q", "nDCG@10", "% of first",
                 "Recall@100", "MRR@10", "R@10 vs exact", "QPS"):
        table.add_column(name, justify="left" if name == "tiers" else "right")
    return table


def _add_eval_row(table: Table, row: Any, first: Any) -> None:
    share = 100 * row.ndcg_at_10 / first.ndcg_at_10 if first.ndcg_at_10 else float("nan")
    table.add_row(
        row.tiers, str(row.ram_bytes_per_vector), str(row.disk_bytes_per_vector),
        str(row.disk_reads_per_query), f"{row.ndcg_at_10:.4f}", f"{share:.1f}",
        f"{row.recall_at_100:.4f}", f"{row.mrr_at_10:.4f}", f"{row.recall_at_10_vs_exact:.3f}",
        f"{row.qps:,.0f}",
    )


@app.command()
def plan(
    collection: Annotated[Path, typer.Argument(help="Collection folder (indexed from --dataset "
                                               "first if it does not exist).")],
    dataset: Annotated[Path | None, typer.Option(
        "--dataset", "-d", help="BEIR folder whose qrels judge quality (nDCG@10). Without "
        "labels, quality is agreement with exact float32 search (recall@10).")] = None,
    split: Annotated[str, typer.Option(help="qrels split to plan on.")] = "train",
    verify_split: Annotated[str | None, typer.Option(
        help="qrels split to verify on (default 'test'; the plan split's other half if the "
        "same or missing).")] = "test",
    queries: Annotated[Path | None, typer.Option(
        "--queries", help="Unlabelled queries, one per line (instead of pseudo-queries).")] = None,
    n_queries: Annotated[int, typer.Option(help="Pseudo-queries to sample (titles).")] = 600,
    ram_budget: Annotated[str | None, typer.Option(
        help="RAM for the compressed tiers, e.g. 4GiB (for --for-vectors vectors).")] = None,
    for_vectors: Annotated[str | None, typer.Option(
        help="Vectors the budget must hold, e.g. 50M (default: the collection's size).")] = None,
    min_quality: Annotated[float, typer.Option(
        help="Fraction of float32 quality to keep.")] = 0.99,
    max_latency_ms: Annotated[float | None, typer.Option(help="Per-query latency target.")] = None,
    max_reads: Annotated[int, typer.Option(help="Full-precision reads per query allowed.")] = 100,
    learned: Annotated[bool, typer.Option(
        help="Also try learned binarization (trains with torch; minutes).")] = False,
    tiers: Annotated[list[str] | None, typer.Option(
        "--tiers", help="Only try these chains (repeat the option).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for plan.json and plan.png.")] = Path(
        "tiervec-plan"),
    apply: Annotated[bool, typer.Option(
        help="Rewrite the collection's tiers to the recommendation (no re-encoding).")] = False,
    model: ModelOpt = None,
) -> None:
    """Measure the quality/memory/speed frontier on your data and recommend the cheapest setting.

    Plans on one set of queries and verifies the recommendation on held-out ones.
    """

    def go() -> None:
        from tiervec.plan import PlanConfig, make_plan, parse_count, parse_size
        from tiervec.plan.plot import plot_plan

        config = PlanConfig(
            min_quality=min_quality, max_latency_ms=max_latency_ms, max_reads=max_reads,
            learned=learned, chains=tuple(tiers) if tiers else None,
            ram_budget=parse_size(ram_budget) if ram_budget else None,
            for_vectors=parse_count(for_vectors) if for_vectors else None,
        )
        if dataset is not None and not (collection / "manifest.json").exists():
            col, _ = _open_or_create(collection, model, None)
            with col:
                _index(col, dataset)
        import tiervec

        with tiervec.open(collection, read_only=not apply) as col:
            plan_q, verify_q = _plan_queries(col, dataset, split, verify_split, queries,
                                             n_queries)
            table = _plan_table(plan_q.name, len(col))
            with console.status("Measuring settings") as status:
                def on_setting(s: Any) -> None:
                    status.update(f"Measuring settings: {s.tiers}")
                    table.add_row(s.tiers, str(s.ram_bytes_per_vector),
                                  str(s.disk_reads_per_query), f"{100 * s.quality:.2f}",
                                  f"{100 * s.quality_se:.2f}", f"{s.recall_at_k_vs_exact:.3f}",
                                  f"{s.qps:,.0f}")

                result = make_plan(col, plan_q, verify_q, config, on_setting)
            for row, s in zip(table.rows, result.settings, strict=True):
                row.style = "bold green" if s == result.recommended else (
                    "cyan" if s.pareto else None)
            console.print(table)
            _report_plan(result)
            out.mkdir(parents=True, exist_ok=True)
            (out / "plan.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
            png = plot_plan(result, out / "plan.png")
            console.print(f"wrote {out / 'plan.json'} and {png}")
            if apply and result.recommended is not None:
                col.set_tiers(result.recommended.tiers)
                console.print(f"applied: {collection} now searches with {col.chain}")
            elif apply:
                raise typer.Exit(1)

    _run(go)


def _plan_queries(col: Any, dataset: Path | None, split: str, verify_split: str | None,
                  queries: Path | None, n_queries: int) -> tuple[Any, Any]:
    from tiervec.eval import load_beir
    from tiervec.plan import labelled_queries, pseudo_queries, text_queries

    if dataset is not None:
        plan_q = labelled_queries(col, load_beir(dataset, split=split))
        if verify_split and verify_split != split and \
                (dataset / "qrels" / f"{verify_split}.tsv").is_file():
            return plan_q, labelled_queries(col, load_beir(dataset, split=verify_split))
        return plan_q.split()
    if queries is not None:
        from tiervec.errors import CorpusNotFound

        if not queries.is_file():
            raise CorpusNotFound(f"queries file {str(queries)!r} does not exist")
        lines = queries.read_text(encoding="utf-8").splitlines()
        return text_queries(col, lines, queries.name).split()
    return pseudo_queries(col, n_queries).split()


def _plan_table(name: str, n_docs: int) -> Table:
    table = Table(title=f"plan on {name} ({n_docs:,} docs, k=10); green = recommended, "
                  "cyan = Pareto-optimal", title_justify="left")
    for col_name in ("tiers", "RAM B/vec", "reads/q", "% of float32", "±", "R@10 vs exact",
                     "QPS"):
        table.add_column(col_name, justify="left" if col_name == "tiers" else "right")
    return table


def _report_plan(result: Any) -> None:
    budget = result.budget_bytes_per_vector
    if budget is not None:
        console.print(f"RAM budget: {budget:,.1f} bytes/vector for {result.n_vectors:,} vectors")
    if result.recommended is None:
        err_console.print(f"[bold red]No recommendation:[/] {escape(result.reason)}")
        return
    console.print(f"[bold green]Recommended:[/] {escape(result.recommended.tiers)}")
    console.print(escape(result.reason))
    if result.verified is not None:
        v = result.verified
        console.print(
            f"Verified on {escape(str(result.verify_queries))}: {100 * v.quality:.2f}% of "
            f"float32 (predicted {100 * result.recommended.quality:.2f}%), recall@10 vs exact "
            f"{v.recall_at_k_vs_exact:.3f}"
        )


@app.command()
def info(collection: Annotated[Path, typer.Argument(help="Collection folder.")]) -> None:
    """Show what a collection holds, what its tiers cost, and the metadata fields to filter on.

    Example: tiervec info my-collection
    """

    def go() -> None:
        import tiervec

        with tiervec.open(collection, read_only=True) as col:
            chain, dim, n, fields = col.chain, col.dim, len(col), col.fields
            unreclaimed = len(col.vectors()) - n  # deleted or replaced, not compacted yet
            table = Table(title=str(collection), title_justify="left", show_header=False)
            ram, disk = chain.ram_bytes_per_vector(dim), chain.disk_bytes_per_vector(dim)
            for key, value in (
                ("documents", f"{n:,}"), ("model", str(col.model)), ("dimension", str(dim)),
                ("tiers", str(chain)),
                ("RAM", f"{ram} B/vector = {ram * n / 2**20:,.1f} MiB "
                        f"({4 * dim / max(ram, 1):.0f}x smaller than float32)"),
                ("disk tiers", f"{disk} B/vector = {disk * n / 2**20:,.1f} MiB"),
                ("disk reads", f"{chain.disk_reads_per_query(10, n)} vectors per query at k=10"),
                ("not compacted", f"{unreclaimed:,} deleted or replaced documents" + (
                    " (`tiervec compact` reclaims their space)" if unreclaimed else "")),
                ("metadata fields", str(len(fields))),
            ):
                table.add_row(key, escape(value))
            console.print(table)
            if fields:
                ftable = Table(title="metadata fields", title_justify="left")
                for name in ("field", "type", "indexed"):
                    ftable.add_column(name)
                for f in sorted(fields.values(), key=lambda f: f.name):
                    ftable.add_row(escape(f.name), f.type.value, "yes" if f.indexed else "no")
                console.print(ftable)

    _run(go)


# The write commands (add, delete, compact, index-field) live in their own module.
from tiervec import cli_write as _cli_write  # noqa: E402, F401


def main() -> None:
    """Entry point of the ``tiervec`` script."""
    app()
