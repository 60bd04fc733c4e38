"""The report's PNG figures, drawn with matplotlib (no browser, works offline)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codesign.report import stats
from codesign.report.figures import accuracy_pairs, latency_pairs
from codesign.report.load import RunData
from codesign.report.style import (
    FRONT_COLOUR,
    PRECISION_COLOURS,
    REFERENCE_COLOUR,
    RUN_COLOURS,
    TRIAL_GREY,
    precision_colour,
)

DPI = 110


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _sizes(values: Sequence[float], biggest: float) -> list[float]:
    return [(3 + 9 * math.sqrt(max(v, 0) / biggest)) ** 2 if biggest else 30 for v in values]


def pareto_png(run: RunData, factor: float, unit: str, path: Path) -> Path:
    """Accuracy against latency: trials grey, the front red, references as stars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=DPI)
    trials = [t for t in run.complete if "latency_ms" in t.attrs and "val_accuracy" in t.attrs]
    biggest = max([t.attrs.get("size_bytes", 0) for t in trials]
                  + [p["size_bytes"] for p in run.points]
                  + [r["size_bytes"] for r in run.references], default=0)
    for label, keep, marker, face in (
        ("trials", lambda t: t.feasible and t.latency_measured, "o", TRIAL_GREY),
        ("trials, latency predicted", lambda t: t.feasible and not t.latency_measured, "o",
         "none"),
        ("trials over a budget", lambda t: not t.feasible, "x", TRIAL_GREY),
    ):
        chosen = [t for t in trials if keep(t)]
        if chosen:
            ax.scatter([t.attrs["latency_ms"]["median"] * factor for t in chosen],
                       [t.attrs["val_accuracy"] for t in chosen],
                       s=_sizes([t.attrs.get("size_bytes", 0) for t in chosen], biggest),
                       c=face if marker == "o" else TRIAL_GREY,
                       edgecolors="#888888" if marker == "o" else None, marker=marker,
                       linewidths=0.6, alpha=0.8, label=label, zorder=2)
    pts = run.points
    xs = [p["latency_ms"]["median"] * factor for p in pts]
    ys = [p["val_accuracy"] for p in pts]
    ax.step(xs, ys, where="post", color=FRONT_COLOUR, lw=1.2, zorder=3)
    ax.scatter(xs, ys, s=_sizes([p["size_bytes"] for p in pts], biggest), c=FRONT_COLOUR,
               edgecolors="white", linewidths=0.8, label=f"Pareto front ({len(pts)})", zorder=4)
    for p, x, y in zip(pts, xs, ys, strict=True):
        ax.annotate(str(p["trial"]), (x, y), textcoords="offset points", xytext=(5, -11),
                    fontsize=8, color=FRONT_COLOUR)
    for i, r in enumerate(run.references):
        x, y = r["latency_ms"]["median"] * factor, r["val_accuracy"]
        ax.scatter([x], [y], marker="*", s=200, c=REFERENCE_COLOUR, zorder=5)
        ax.annotate(stats.reference_name(r), (x, y), textcoords="offset points",
                    xytext=(6, 7) if i % 2 == 0 else (6, -13), fontsize=8)
    ax.set_xlabel(f"latency, median per inference ({unit}) on {run.profile_name}"
                  + (f" ({stats.stand_in(run)})" if stats.stand_in(run) else ""))
    ax.set_ylabel("validation accuracy (fraction)")
    ax.set_title(f"{run.label}: {len(pts)} Pareto points of {len(run.complete)} trials "
                 "(marker area ~ file size)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def layers_png(run: RunData, path: Path) -> Path | None:
    """Per front model (a row) and layer: channels kept (bar height) coloured by precision.

    One axes holds every row (a bar strip each), which keeps drawing fast for a
    long front.
    """
    if not run.points:
        return None
    plt = _plt()
    rows = [stats.layer_cells(p, run) for p in run.points]
    names = [c.name for c in rows[0]]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.26 * len(names) + 2.5), 0.55 * len(rows) + 2.2),
                           dpi=DPI)
    band = 0.85
    for r, cells in enumerate(rows):
        base = len(rows) - 1 - r  # the first (fastest) model on top
        heights = [band * (c.kept if c.kept is not None else 1.0) if c.channels else 0.0
                   for c in cells]
        ax.bar(range(len(cells)), heights, bottom=base, width=0.85,
               color=[precision_colour(c.precision) for c in cells])
        gaps = [i for i, c in enumerate(cells) if c.channels is None]
        ax.scatter(gaps, [base + 0.04] * len(gaps), marker="_", color="#999999", s=30)
        ax.axhspan(base, base + band, color="#f2f2f2", zorder=0, lw=0)
    ax.set_yticks([len(rows) - 1 - r + band / 2 for r in range(len(rows))])
    ax.set_yticklabels([f"trial {p['trial']}" for p in run.points], fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=70, fontsize=7, ha="right")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0, len(rows))
    ax.spines[["top", "right"]].set_visible(False)
    used = sorted({c.precision for r in rows for c in r if c.precision},
                  key=lambda p: list(PRECISION_COLOURS).index(p) if p in PRECISION_COLOURS
                  else 99)
    handles = [plt.Rectangle((0, 0), 1, 1, color=precision_colour(p)) for p in used]
    ax.legend(handles, used, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(used),
              fontsize=8, frameon=False)
    ax.set_title("channels kept per layer (bar height, full band = all) and precision "
                 "(colour); a dash: no such layer", fontsize=9, pad=22)
    fig.tight_layout()
    return _save(fig, path)


def history_png(run: RunData, hv: tuple[list[int], list[float]], path: Path) -> Path:
    """Hypervolume over trials beside the time per stage of each trial."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=DPI)
    numbers, values = hv
    left.plot(numbers, [v * 100 for v in values], color=FRONT_COLOUR, marker="o", ms=3)
    left.set_xlabel("trial")
    left.set_ylabel("dominated fraction of the box (%)")
    left.set_title("hypervolume over trials", fontsize=10)
    left.grid(alpha=0.3)
    seconds = stats.stage_seconds(run.trials)
    done = [t.number for t in run.complete if isinstance(t.attrs.get("times"), dict)]
    bottom = [0.0] * len(done)
    for i, (stage, vals) in enumerate(seconds.items()):
        right.bar(done, vals, bottom=bottom, label=stage, color=RUN_COLOURS[i % len(RUN_COLOURS)])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    right.set_xlabel("trial")
    right.set_ylabel("seconds")
    right.set_title("time per stage of each trial", fontsize=10)
    if seconds:
        right.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def prediction_png(run: RunData, factor: float, unit: str, path: Path) -> Path | None:
    """Predicted against measured latency and accuracy, where the run predicted them."""
    lat, acc = latency_pairs(run), accuracy_pairs(run)
    if not lat and not acc:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3), dpi=DPI)
    front = {p["trial"] for p in run.points}
    for ax, pairs, scale, title in ((axes[0], lat, factor, f"latency ({unit})"),
                                    (axes[1], acc, 1.0, "validation accuracy")):
        ax.set_title(f"{title}: {len(pairs)} trials", fontsize=10)
        if not pairs:
            ax.text(0.5, 0.5, "not predicted in this run", ha="center", transform=ax.transAxes)
            continue
        xs = [p * scale for _, p, _ in pairs]
        ys = [m * scale for _, _, m in pairs]
        ax.scatter(xs, ys, c=[FRONT_COLOUR if n in front else "#4c72b0" for n, _, _ in pairs],
                   s=22, alpha=0.8)
        lo, hi = min(xs + ys), max(xs + ys)
        ax.plot([lo, hi], [lo, hi], "--", color="#555555", lw=1)
        ax.set_xlabel("predicted")
        ax.set_ylabel("measured")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{run.label}: predicted against measured (red: Pareto trials; dashed: equal)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def fronts_png(runs: Sequence[RunData], factor: float, unit: str, path: Path) -> Path:
    """The fronts of several runs on one plot (each on its own profile)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=DPI)
    for i, run in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        xs = [p["latency_ms"]["median"] * factor for p in run.points]
        ys = [p["val_accuracy"] for p in run.points]
        ax.step(xs, ys, where="post", color=colour, lw=1.2)
        ax.scatter(xs, ys, color=colour, s=28, label=f"{run.label} ({run.profile_name})")
        for r in run.references:
            ax.scatter([r["latency_ms"]["median"] * factor], [r["val_accuracy"]], marker="*",
                       s=150, color=colour, edgecolors=REFERENCE_COLOUR, linewidths=0.6)
    ax.set_xlabel(f"latency, median per inference ({unit}), each on its own profile")
    ax.set_ylabel("validation accuracy (fraction)")
    ax.set_title("fronts of the runs (stars: references)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
