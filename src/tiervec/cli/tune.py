"""``tiervec tune``: the hybrid fusion and the relevance cut-off, chosen on labelled queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tiervec.cli._app import _run, app, console

#: Grid settings the trial table shows.
SHOWN_TRIALS = 8


@app.command()
def tune(
    dataset: Annotated[Path, typer.Argument(help="BEIR folder whose qrels judge quality.")],
    collection: Annotated[Path, typer.Option(
        "--collection", "-c", help="Collection of the dataset's corpus, with a lexical "
        "index.")],
    split: Annotated[str, typer.Option(help="qrels split to tune on.")] = "train",
    verify_split: Annotated[str | None, typer.Option(
        help="qrels split to verify on (default 'test'; the tuning split's other half if the "
        "same or missing).")] = "test",
    out: Annotated[Path, typer.Option(help="Folder for tune.json and cutoff.png.")] = Path(
        "tiervec-tune"),
    apply: Annotated[bool, typer.Option(
        help="Store the tuned fusion as the collection's hybrid default, and the fitted "
        "calibrations (for search --min-relevance).")] = False,
) -> None:
    """Tune hybrid search and fit the relevance cut-off on labelled queries.

    Tries a grid of fusions (RRF, min-max and distribution-based score fusion; weights;
    candidate depths) on one split and verifies the best on held-out queries, beside dense and
    lexical search. Then fits, per mode, the calibration behind --min-relevance and reports on
    the held-out queries the precision, recall and F1 of its cut-off against a global
    raw-score threshold and a fixed top-k (a table, and a plot in --out).

    Example: tiervec tune ../shared/data/beir/scifact -c scifact.tv --apply
    """

    def go() -> None:
        import tiervec
        from tiervec.cli.measure import _plan_queries
        from tiervec.errors import LexicalIndexMissing
        from tiervec.plan.tune import cutoff_report, fit_calibrations, tune_fusion
        from tiervec.search import SearchMode

        with tiervec.open(collection, read_only=not apply) as col:
            if not col.has_lexical:
                raise LexicalIndexMissing(
                    f"{collection} has no lexical index to fuse with; build one with "
                    f"`tiervec lexical {collection}`")
            tune_q, verify_q = _plan_queries(col, dataset, split, verify_split, None, 0)
            with console.status("Trying fusions") as status:
                result = tune_fusion(col, tune_q, verify_q, on_trial=lambda t: status.update(
                    f"Trying fusions: {t.fusion.describe()}"))
            console.print(_trials_table(result))
            console.print(_verified_table(result))
            chosen = result.chosen
            if result.lost_to_default:
                console.print(
                    f"[yellow]the best fusion of the grid ({result.best.describe()}) scored "
                    f"below the default ({result.verified['hybrid tuned']:.4f} < "
                    f"{result.verified['hybrid default']:.4f}) on {escape(verify_q.name)}: the "
                    "default is kept[/]")
            modes = {SearchMode.DENSE: None, SearchMode.LEXICAL: None,
                     SearchMode.HYBRID: chosen}
            with console.status("Fitting relevance calibrations"):
                models = fit_calibrations(col, tune_q, modes)
                curves: dict[str, list[Any]] = {
                    m.value: cutoff_report(col, verify_q, models[m.value], m, f)
                    for m, f in modes.items() if m.value in models}
            console.print(_cutoff_table(curves, verify_q.name))
            out.mkdir(parents=True, exist_ok=True)
            report = {"fusion": result.to_dict(),
                      "calibration": {m: models[m].to_dict() for m in models},
                      "cutoff": {m: [c.to_dict() for c in cs] for m, cs in curves.items()}}
            (out / "tune.json").write_text(json.dumps(report, indent=2) + "\n")
            held_out = out / "held-out-queries.txt"  # to score the verification cleanly
            held_out.write_text("".join(f"{q}\n" for q in verify_q.ids), encoding="utf-8")
            written = [str(out / "tune.json"), f"{held_out} (the {len(verify_q)} held-out "
                       f"query ids: {escape(verify_q.name)})"]
            try:
                from tiervec.plan.plot import plot_cutoff

                written.append(str(plot_cutoff(curves, out / "cutoff.png",
                                               f"relevance cut-off on {verify_q.name}")))
            except ImportError:
                pass  # matplotlib is optional: the JSON has the curves
            console.print(f"wrote {', '.join(written)}")
            if apply:
                col.set_search_defaults(fusion=chosen, calibrations=models)
                console.print(f"applied: hybrid searches of {collection} fuse with "
                              f"{chosen.describe()}"
                              f"{' (the default)' if result.lost_to_default else ''}; "
                              "--min-relevance works for dense, lexical and hybrid search")

    _run(go)


def _trials_table(result: Any) -> Table:
    table = Table(title=f"fusions tried on {escape(result.tune_queries)} "
                  f"({len(result.trials)}; best {SHOWN_TRIALS} shown)", title_justify="left")
    for name in ("fusion", "nDCG@10"):
        table.add_column(name, justify="left" if name == "fusion" else "right")
    for i, trial in enumerate(result.trials[:SHOWN_TRIALS]):
        table.add_row(trial.fusion.describe(), f"{trial.quality:.4f}",
                      style="bold green" if i == 0 else None)
    return table


def _verified_table(result: Any) -> Table:
    table = Table(title=f"verified on {escape(result.verify_queries)}", title_justify="left")
    for name in ("search", "nDCG@10"):
        table.add_column(name, justify="left" if name == "search" else "right")
    for name, value in result.verified.items():
        label = f"{name} ({result.best.describe()})" if name == "hybrid tuned" else name
        table.add_row(label, f"{value:.4f}")
    return table


def _cutoff_table(curves: dict[str, list[Any]], name: str) -> Table:
    from tiervec.plan.tune import RECALL_LEVELS

    table = Table(title=f"relevance cut-off on {escape(name)}: precision of the returned sets "
                  "at each recall (as a share of the recall the top lists reach)",
                  title_justify="left")
    for column in ("mode", "cut-off", "best F1", "max recall",
                   *(f"P@{r:g}" for r in RECALL_LEVELS)):
        table.add_column(column, justify="left" if column in ("mode", "cut-off") else "right")
    for mode, mode_curves in curves.items():
        for curve in mode_curves:
            table.add_row(mode, curve.name, f"{curve.best_f1()[0]:.3f}",
                          f"{curve.max_recall:.3f}",
                          *(f"{curve.precision_at(r):.3f}" for r in curve.levels()),
                          style="bold" if curve.name == "calibrated" else None)
    return table
