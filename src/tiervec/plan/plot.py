"""The frontier as a picture: quality against RAM bytes per vector, Pareto front highlighted."""

from __future__ import annotations

from pathlib import Path

from tiervec._extras import require
from tiervec.plan.planner import Plan


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
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(out)
        return out
    finally:
        plt.close(fig)
