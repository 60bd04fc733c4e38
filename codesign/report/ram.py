"""The RAM figure: validation accuracy against the tensor arena, interactive and PNG.

Every trial whose measurement holds an arena (measured by TFLM on a TFLM
profile, estimated from the file elsewhere) is a grey dot, the published
front red, the references stars; a ``--max-ram-kb`` budget is a dashed line.
Runs of codesign before RAM was recorded have no such figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from codesign.report.load import RunData
from codesign.report.stats import ram_label
from codesign.report.style import FRONT_COLOUR, REFERENCE_COLOUR, TRIAL_GREY, plot_text

KB = 1024


@dataclass(frozen=True)
class RamPoints:
    """What the figure draws, in KB and accuracy fractions.

    Attributes:
        trials: ``(KB, accuracy, trial number, within budget)`` of every COMPLETE trial.
        front: ``(KB, accuracy, trial number)`` of the published points.
        references: ``(KB, accuracy, name)`` of the references.
        budget_kb: The run's ``--max-ram-kb`` (None: no budget).
        label: Where the figures come from (``TFLM arena`` or ``estimated arena``).
    """

    trials: list[tuple[float, float, int, bool]]
    front: list[tuple[float, float, int]]
    references: list[tuple[float, float, str]]
    budget_kb: float | None
    label: str


def ram_points(run: RunData) -> RamPoints | None:
    """The figure's data, or None when the run recorded no RAM."""
    trials = []
    for t in run.complete:
        ram = (t.attrs.get("ram") or {}).get("bytes")
        if ram is not None and "val_accuracy" in t.attrs:
            trials.append((ram / KB, float(t.attrs["val_accuracy"]), t.number, t.feasible))
    front = [(p["ram_bytes"] / KB, p["val_accuracy"], p["trial"]) for p in run.points
             if p.get("ram_bytes") is not None]
    refs = [(r["ram_bytes"] / KB, r["val_accuracy"], str(r.get("name", "reference")))
            for r in run.references if r.get("ram_bytes") is not None]
    if not (trials or front):
        return None
    budgets = (run.config.get("identity") or {}).get("budgets") or {}
    budget = budgets.get("max_ram_kb")
    return RamPoints(trials, front, refs, None if budget is None else float(budget),
                     ram_label(run))


def ram_figure(run: RunData) -> go.Figure | None:
    """Accuracy against RAM (KB): trials, front, references, the budget (None: no RAM)."""
    data = ram_points(run)
    if data is None:
        return None
    fig = go.Figure()
    for name, keep, symbol in (("trials", True, "circle"), ("trials over a budget", False, "x")):
        chosen = [t for t in data.trials if t[3] is keep]
        if chosen:
            fig.add_trace(go.Scatter(
                x=[t[0] for t in chosen], y=[t[1] for t in chosen], mode="markers", name=name,
                marker={"color": TRIAL_GREY, "symbol": symbol, "size": 8, "opacity": 0.75},
                text=[f"trial {t[2]}: {t[0]:.1f} KB, val acc {t[1]:.3f}" for t in chosen],
                hovertemplate="%{text}<extra></extra>", meta="ram-trials"))
    front = sorted(data.front)
    fig.add_trace(go.Scatter(
        x=[p[0] for p in front], y=[p[1] for p in front], mode="markers",
        name=f"Pareto front ({len(front)})", marker={"color": FRONT_COLOUR, "size": 11},
        text=[f"trial {p[2]} (front): {p[0]:.1f} KB, val acc {p[1]:.3f}" for p in front],
        hovertemplate="%{text}<extra></extra>", meta="ram-front"))
    if data.references:
        fig.add_trace(go.Scatter(
            x=[r[0] for r in data.references], y=[r[1] for r in data.references],
            mode="markers+text", name="references (maximal network)",
            marker={"symbol": "star", "size": 16, "color": REFERENCE_COLOUR},
            text=[plot_text(r[2]) for r in data.references], textposition="top center"))
    if data.budget_kb is not None:
        fig.add_vline(x=data.budget_kb, line={"dash": "dash", "color": "#555555"},
                      annotation_text=f"--max-ram-kb {data.budget_kb:g}")
    fig.update_layout(
        template="plotly_white", margin={"l": 70, "r": 30, "t": 60, "b": 60},
        font={"size": 13}, height=460,
        title=f"Accuracy against RAM ({data.label}) on {plot_text(run.profile_name)}",
        xaxis_title=f"RAM: tensor arena, KB ({data.label})",
        yaxis_title="validation accuracy (fraction)", legend={"orientation": "h", "y": -0.2})
    return fig


def ram_png(run: RunData, path: Path) -> Path | None:
    """The same figure as a PNG (None, and no file, when the run recorded no RAM)."""
    data = ram_points(run)
    if data is None:
        return None
    from codesign.report.png import DPI, _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=DPI)
    for label, keep, marker in (("trials", True, "o"), ("trials over a budget", False, "x")):
        chosen = [t for t in data.trials if t[3] is keep]
        if chosen:
            ax.scatter([t[0] for t in chosen], [t[1] for t in chosen], c=TRIAL_GREY,
                       marker=marker, s=30, alpha=0.8, label=label, zorder=2)
    front = sorted(data.front)
    ax.scatter([p[0] for p in front], [p[1] for p in front], c=FRONT_COLOUR, s=60,
               edgecolors="white", label=f"Pareto front ({len(front)})", zorder=4)
    for x, y, number in front:
        ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(5, -11),
                    fontsize=8, color=FRONT_COLOUR)
    for x, y, name in data.references:
        ax.scatter([x], [y], marker="*", s=200, c=REFERENCE_COLOUR, zorder=5)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 7), fontsize=8)
    if data.budget_kb is not None:
        ax.axvline(data.budget_kb, color="#555555", ls="--", lw=1,
                   label=f"--max-ram-kb {data.budget_kb:g}")
    ax.set_xlabel(f"RAM: tensor arena, KB ({data.label})")
    ax.set_ylabel("validation accuracy (fraction)")
    ax.set_title(f"{run.label}: accuracy against RAM on {run.profile_name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)

