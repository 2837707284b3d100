"""Pictures: the frontier (quality against RAM bytes per vector, Pareto front highlighted) and
the relevance cut-off (precision against recall)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiervec._extras import require
from tiervec.plan.planner import Plan
from tiervec.plan.tune import CutoffCurve


def plot_plan(plan: Plan, path: str | Path, title: str = "") -> Path:
    """Write a PNG of ``plan``'s settings (log-scale RAM bytes/vector vs quality) to ``path``."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # files only; never a window
    plt = require("matplotlib.pyplot")
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    try:
        rest = [s for s in plan.settings if not s.pareto]
        front = sorted((s for s in plan.settings if s.pareto), key=lambda s: s.ram_bytes_per_vector)
        ax.scatter([s.ram_bytes_per_vector for s in rest], [100 * s.quality for s in rest],
                   s=18, color="0.65", label="measured settings")
        ax.plot([s.ram_bytes_per_vector for s in front], [100 * s.quality for s in front],
                "-o", color="tab:blue", ms=5, label="Pareto frontier")
        for s in front:
            ax.annotate(s.tiers.replace(" -> float32@disk", " → disk"),
                        (s.ram_bytes_per_vector, 100 * s.quality), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")
        ax.axhline(100 * plan.config.min_quality, color="tab:red", ls="--", lw=1,
                   label=f"min quality {plan.config.min_quality:.1%}")
        if plan.budget_bytes_per_vector is not None:
            ax.axvline(plan.budget_bytes_per_vector, color="tab:orange", ls=":", lw=1,
                       label=f"RAM budget {plan.budget_bytes_per_vector:.1f} B/vector")
        if plan.recommended is not None:
            r = plan.recommended
            ax.scatter([r.ram_bytes_per_vector], [100 * r.quality], s=160, facecolors="none",
                       edgecolors="tab:green", linewidths=2, label=f"recommended: {r.tiers}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("RAM bytes per vector (log scale)")
        metric = "nDCG@10" if plan.settings and plan.settings[0].ndcg_at_k is not None \
            else "recall@10 vs exact"
        ax.set_ylabel(f"% of float32 quality ({metric})")
        low = min(100 * s.quality for s in plan.settings) if plan.settings else 90
        ax.set_ylim(max(low - 1, 50), 100.8)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(title or f"tiervec plan: {plan.plan_queries}", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_cutoff(curves_by_mode: dict[str, list[CutoffCurve]], path: str | Path,
                title: str = "") -> Path:
    """Write a PNG of precision against recall of each cut-off (calibrated, raw score, top-k),
    one panel per search mode."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot")
    fig, axes = plt.subplots(1, len(curves_by_mode), figsize=(4.6 * len(curves_by_mode), 4.4),
                             dpi=120, squeeze=False)
    styles = {"calibrated": ("tab:green", "-"), "raw score": ("tab:red", "--"),
              "top-k": ("0.5", ":")}
    try:
        for ax, (mode, curves) in zip(axes[0], curves_by_mode.items(), strict=True):
            for curve in curves:
                color, line = styles.get(curve.name, ("tab:blue", "-"))
                order = sorted(zip(curve.recall, curve.precision, strict=True))
                ax.plot([r for r, _ in order], [p for _, p in order], line, color=color,
                        label=f"{curve.name} (best F1 {curve.best_f1()[0]:.3f})")
            ax.set_xlabel("recall of the returned sets")
            ax.set_ylabel("precision")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.grid(True, alpha=0.3)
            ax.set_title(mode, fontsize=10)
            ax.legend(fontsize=7, loc="upper right")
        fig.suptitle(title or "relevance cut-off: precision vs recall", fontsize=10)
        return _save(fig, path)
    finally:
        plt.close(fig)


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    return out
