"""The ``tiervec`` commands that measure: eval (chains on a BEIR dataset) and plan."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tiervec.cli._app import (
    ModelOpt,
    _run,
    app,
    console,
    describe_recall,
    err_console,
    index_with_progress,
)
from tiervec.cli.distribute import is_url, open_searchable


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
        typer.Option("--collection", "-c", help="Collection of the dataset's corpus, evaluated "
                     "as it is (created and indexed first if it does not exist), or a served "
                     "one: http://HOST:PORT/NAME (key from TIERVEC_API_KEY). Default: a "
                     "cached one under ~/.cache/tiervec."),
    ] = None,
    tiers: Annotated[
        list[str] | None,
        typer.Option("--tiers", help="A chain to evaluate (repeat the option for several). "
                     "Default: a standard set from float32 to binary."),
    ] = None,
    model: ModelOpt = None,
    split: Annotated[str, typer.Option("--split", help="qrels split.")] = "test",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the rows as JSON.")] = None,
    per_query: Annotated[Path | None, typer.Option(
        "--per-query", help="Write each query's figures of every row as CSV (search, query, "
        "nDCG@10, MRR@10, R@1, R@2, R@5, R@100).", show_default=False)] = None,
    hybrid: Annotated[bool, typer.Option(
        "--hybrid/--no-hybrid", help="Also rows for BM25 and hybrid search (RRF, min-max, DBSF "
        "and the collection's tuned fusion) when the collection has a lexical index.")] = True,
) -> None:
    """Evaluate tier chains on a BEIR dataset: memory, quality and speed, one row per chain.

    The corpus is encoded once (into the collection) and every chain reuses those vectors.
    Deleted and replaced documents are never scored. Lexical and hybrid rows search through
    the collection's own chain.
    """

    def go() -> None:
        from tiervec.eval import DEFAULT_EVAL_CHAINS, DEFAULT_EVAL_FUSIONS, evaluate, load_beir
        from tiervec.ingest import IndexOptions, open_or_create
        from tiervec.search import Chain

        data = load_beir(dataset, split=split)
        chains = [Chain.parse(t) for t in (tiers or DEFAULT_EVAL_CHAINS)]
        if collection is not None and is_url(collection):  # a served collection
            col, created = open_searchable(collection), False
        else:
            folder = collection or _default_eval_collection(dataset, model)
            col, created = open_or_create(folder, IndexOptions(model=model))
        with col as col:
            if created or collection is None:  # the user's own collection is left as it is
                index_with_progress(col, data.path)
            table = _eval_table(data, len(col), col.model)
            rows: list[Any] = []

            def on_row(row: Any) -> None:
                rows.append(row)
                _add_eval_row(table, row, rows[0])

            lexical = hybrid and col.has_lexical
            fusions = list(DEFAULT_EVAL_FUSIONS) if lexical else []
            if lexical and col.fusion_tuned and col.fusion not in fusions:
                fusions.append(col.fusion)
            with console.status(f"Evaluating {len(chains)} chains"
                                f"{' and hybrid search' if lexical else ''}"):
                evaluate(col, data, chains, on_row=on_row, lexical=lexical, fusions=fusions)
        console.print(table)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
            console.print(f"wrote {json_out}")
        if per_query is not None:
            _write_per_query(per_query, rows)
            console.print(f"wrote {per_query} ({len(rows)} searches x {len(data.queries)} "
                          "queries)")

    _run(go)


def _write_per_query(path: Path, rows: list[Any]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        metrics = list(next(iter(rows[0].per_query.values()), {})) if rows else []
        writer.writerow(["search", "query", *metrics])
        for row in rows:
            for query, values in row.per_query.items():
                writer.writerow([row.tiers, query, *(values[m] for m in metrics)])


def _eval_table(data: Any, n_docs: int, model: str | None) -> Table:
    table = Table(
        title=f"{data.name} ({data.split}: {len(data.queries)} queries, {n_docs:,} docs, "
        f"model {model}, k=10)",
        title_justify="left",
    )
    for name in ("tiers", "RAM B/vec", "disk B/vec", "reads/q", "nDCG@10", "% of first",
                 "R@1", "R@2", "R@5", "R@100", "MRR@10", "R@10 vs exact", "QPS"):
        table.add_column(name, justify="left" if name == "tiers" else "right")
    return table


def _add_eval_row(table: Table, row: Any, first: Any) -> None:
    share = 100 * row.ndcg_at_10 / first.ndcg_at_10 if first.ndcg_at_10 else float("nan")
    table.add_row(
        row.tiers, str(row.ram_bytes_per_vector), str(row.disk_bytes_per_vector),
        str(row.disk_reads_per_query), f"{row.ndcg_at_10:.4f}", f"{share:.1f}",
        f"{row.recall_at_1:.3f}", f"{row.recall_at_2:.3f}", f"{row.recall_at_5:.3f}",
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
            from tiervec.ingest import IndexOptions, open_or_create

            col, _ = open_or_create(collection, IndexOptions(model=model))
            with col:
                index_with_progress(col, dataset)

        with open_searchable(collection, read_only=not apply) as col:
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
            _keep_plan(col, result.to_dict())
            png = plot_plan(result, out / "plan.png")
            console.print(f"wrote {out / 'plan.json'} and {png}")
            if apply and result.recommended is not None:
                col.set_tiers(result.recommended.tiers)
                console.print(f"applied: {collection} now searches with {col.chain}")
            elif apply:
                raise typer.Exit(1)

    _run(go)


def _keep_plan(col: Any, plan: dict[str, Any]) -> None:
    """Save the plan with the collection, where the server's page shows it."""
    try:
        col.save_plan(plan)
    except OSError as exc:
        logging.getLogger(__name__).warning(
            "could not keep the plan in the collection (%s); it is in --out", exc)


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
def recall(
    collection: Annotated[Path, typer.Argument(help="Collection folder.")],
    target: Annotated[float | None, typer.Option(
        "--target", help="A new recall@10 target to keep, in (0, 1].",
        show_default=False)] = None,
    off: Annotated[bool, typer.Option(
        "--off", help="Keep no target: searches use the chain's oversampling as written.")
    ] = False,
    queries: Annotated[int, typer.Option(
        "--queries", help="Queries to measure with.", min=10, max=10_000)] = 200,
) -> None:
    """Measure the collection's recall against exact search now, and keep the cheapest
    oversampling (and ANN effort) that meets its target.

    A collection measures itself as it grows (once it holds 1,000 vectors, again each time it
    has grown by half or been compacted); this runs the same measurement in the foreground and
    shows every setting it tried. The queries are those the collection was searched with once
    it has seen 100 (a sample kept in queries.npy), else query-like vectors made from its data;
    the setting kept clears the target with a margin for the queries still to come.

    Example: tiervec recall my-collection --target 0.98
    """

    def go() -> None:
        import tiervec

        with tiervec.open(collection) as col:
            if off:
                col.set_recall_target(None)
                console.print(f"{collection}: no recall target kept")
                return
            if target is not None:
                col.set_recall_target(target)
                col.wait_for_recall()
            with console.status("Measuring recall against exact search"):
                measure = col.measure_recall(queries=queries)
            if measure is None:
                console.print(f"{collection}: nothing to measure (empty collection)")
                return
            table = Table(title=f"{collection}: recall@{measure.k} vs exact, {measure.queries}"
                          f" {measure.source} queries, {measure.rows:,} vectors; green = kept",
                          title_justify="left")
            for name in ("oversample", "effort", "recall", "work/query"):
                table.add_column(name, justify="right")
            for p in measure.points:
                kept = (p.oversample, p.effort) == (measure.oversample or 1, measure.effort or 1)
                table.add_row(str(p.oversample), str(p.effort), f"{p.recall:.3f}",
                              f"{p.cost:,.0f}", style="green" if kept else None)
            console.print(table)
            console.print(describe_recall(col.stats().recall))

    _run(go)
