"""The interactive figures of the report (plotly figure objects, no I/O).

Every text a user typed (profile names, labels, data set names) is escaped
(``style.plot_text``) before it enters a figure: plotly renders a subset of
HTML in titles, legends and hover labels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from codesign.report import stats
from codesign.report.load import RunData, TrialRecord
from codesign.report.style import (
    FRONT_COLOUR,
    PRECISION_COLOURS,
    REFERENCE_COLOUR,
    RUN_COLOURS,
    TRIAL_GREY,
    kb,
    lat,
    num,
    plot_text,
    precision_colour,
)
from codesign.report.table import PRECISION_SHORT, precision_mix

FRONT_META = "front"  # the page counts the drawn points of traces with this meta
_LAYOUT = {"template": "plotly_white", "margin": {"l": 70, "r": 30, "t": 60, "b": 60},
           "font": {"size": 13}}


def run_unit(runs: Sequence[RunData]) -> tuple[float, str]:
    """The latency unit of every figure of these runs."""
    values = []
    for run in runs:
        values += [p["latency_ms"]["median"] for p in run.points]
        values += [r["latency_ms"]["median"] for r in run.references]
        values += [t.attrs["latency_ms"]["median"] for t in run.complete
                   if (t.attrs.get("latency_ms") or {}).get("median") is not None]
    return stats.latency_unit(values)


def _marker_sizes(sizes: Sequence[float], biggest: float) -> list[float]:
    return [7 + 17 * math.sqrt(max(s, 0) / biggest) if biggest else 9 for s in sizes]


def _describe(rec: dict[str, Any], factor: float, unit: str, title: str) -> str:
    """Hover text of a trial, point or reference (``rec`` holds its measurements)."""
    cand = rec.get("candidate") or {}
    latency = rec.get("latency_ms") or {}
    prune = list((cand.get("prune") or {}).values())
    lines = [f"<b>{plot_text(title)}</b>",
             f"val acc {num(rec.get('val_accuracy'))} (test {num(rec.get('test_accuracy'))})",
             f"latency {lat(latency.get('median'), factor, unit)} "
             f"(p90 {lat(latency.get('p90'), factor, unit)})",
             f"size {kb(rec.get('size_bytes'))} KB (gzip {kb(rec.get('size_gzip_bytes'))} KB)"]
    ram = rec.get("ram_bytes", (rec.get("ram") or {}).get("bytes"))
    if ram is not None:
        lines.append(f"RAM {kb(ram)} KB (tensor arena)")
    if cand:
        depths = "-".join(str(d) for d in cand.get("depths", []))
        lines.append(f"resolution {plot_text(cand.get('resolution'))}, depths {plot_text(depths)}")
        if prune:
            lines.append(f"channels pruned {num(100 * sum(prune) / len(prune), '.0f')} % "
                         "on average")
    if rec.get("layers"):
        lines.append(f"precisions {plot_text(precision_mix(rec['layers']))}")
    if latency.get("source") == "predicted":
        lines.append("latency predicted, not timed")
    return "<br>".join(lines)


def _trial_rec(t: TrialRecord) -> dict[str, Any]:
    return {k: t.attrs.get(k) for k in ("val_accuracy", "test_accuracy", "latency_ms",
                                         "size_bytes", "size_gzip_bytes", "candidate",
                                         "layers", "ram")}


def pareto_figure(run: RunData, factor: float, unit: str) -> go.Figure:
    """Accuracy against latency: every trial in grey, the front highlighted.

    Marker area grows with the model file's size. The front (``pareto.json``,
    after fine-tuning) is joined to where the search measured the same trial.
    The references (maximal network in float32 and int8) are stars.
    """
    fig = go.Figure()
    trials = [t for t in run.complete if "latency_ms" in t.attrs and "val_accuracy" in t.attrs]
    sizes = [t.attrs.get("size_bytes", 0) for t in trials]
    sizes += [p["size_bytes"] for p in run.points] + [r["size_bytes"] for r in run.references]
    biggest = max(sizes, default=0)
    groups = (
        ("trials", lambda t: t.feasible and t.latency_measured, "circle"),
        ("trials, latency predicted (not timed)", lambda t: t.feasible and not t.latency_measured,
         "circle-open"),
        ("trials over a budget", lambda t: not t.feasible, "x"),
    )
    for name, keep, symbol in groups:
        chosen = [t for t in trials if keep(t)]
        if not chosen:
            continue
        fig.add_trace(go.Scatter(
            x=[t.attrs["latency_ms"]["median"] * factor for t in chosen],
            y=[t.attrs["val_accuracy"] for t in chosen],
            mode="markers", name=name, meta="trials",
            marker={"color": TRIAL_GREY, "symbol": symbol, "opacity": 0.75,
                    "size": _marker_sizes([t.attrs.get("size_bytes", 0) for t in chosen],
                                          biggest),
                    "line": {"width": 0.5, "color": "#888888"}},
            text=[_describe(_trial_rec(t), factor, unit, f"trial {t.number}") for t in chosen],
            hovertemplate="%{text}<extra></extra>",
        ))
    by_number = {t.number: t for t in trials}
    seg_x: list[float | None] = []
    seg_y: list[float | None] = []
    for p in run.points:
        t = by_number.get(p["trial"])
        if t is not None:
            seg_x += [t.attrs["latency_ms"]["median"] * factor, p["latency_ms"]["median"] * factor,
                      None]
            seg_y += [t.attrs["val_accuracy"], p["val_accuracy"], None]
    if seg_x:
        fig.add_trace(go.Scatter(x=seg_x, y=seg_y, mode="lines", name="search → fine-tuned",
                                 line={"color": FRONT_COLOUR, "width": 1, "dash": "dot"},
                                 hoverinfo="skip", meta="segments"))
    points = run.points
    fig.add_trace(go.Scatter(
        x=[p["latency_ms"]["median"] * factor for p in points],
        y=[p["val_accuracy"] for p in points],
        mode="markers+lines", name=f"Pareto front ({len(points)})", meta=FRONT_META,
        line={"color": FRONT_COLOUR, "width": 1.5, "shape": "hv"},
        marker={"color": FRONT_COLOUR, "size": _marker_sizes([p["size_bytes"] for p in points],
                                                             biggest),
                "line": {"width": 1, "color": "white"}},
        text=[_describe(p, factor, unit, f"trial {p['trial']} (front)") for p in points],
        hovertemplate="%{text}<extra></extra>",
    ))
    refs = run.references
    if refs:
        fig.add_trace(go.Scatter(
            x=[r["latency_ms"]["median"] * factor for r in refs],
            y=[r["val_accuracy"] for r in refs],
            mode="markers+text", name="references (maximal network)", meta="references",
            marker={"symbol": "star", "size": 16, "color": REFERENCE_COLOUR},
            text=[plot_text(stats.reference_name(r)) for r in refs],
            textposition=["top center" if i % 2 == 0 else "bottom center"
                          for i in range(len(refs))],
            hovertext=[_describe(r, factor, unit, stats.reference_name(r)) for r in refs],
            hovertemplate="%{hovertext}<extra></extra>",
        ))
    fig.update_layout(
        **_LAYOUT, height=520,
        title=f"Accuracy against measured latency on {plot_text(run.profile_name)}",
        xaxis_title=f"latency, median per inference ({unit}"
                    + (f", {stats.stand_in(run)})" if stats.stand_in(run) else ")"),
        yaxis_title="validation accuracy (fraction)",
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


def layers_heatmap(run: RunData) -> go.Figure:
    """Channels kept per layer (colour) and precision (text) of every front model."""
    rows = [stats.layer_cells(p, run) for p in run.points]
    names = [c.name for c in rows[0]] if rows else []
    z = [[c.kept if c.kept is not None else (None if c.channels is None else 1.0) for c in r]
         for r in rows]
    text = [[PRECISION_SHORT.get(c.precision or "", c.precision or "—") for c in r]
            for r in rows]
    hover = [[_layer_hover(c) for c in r] for r in rows]
    labels = [f"trial {p['trial']}" for p in run.points]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=labels, text=text, texttemplate="%{text}", customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", zmin=0, zmax=1,
        colorscale=[[0, "#f7fbff"], [1, "#2171b5"]],
        colorbar={"title": {"text": "channels kept"}, "tickformat": ".0%"},
        xgap=1, ygap=1,
    ))
    fig.update_layout(**{**_LAYOUT, "margin": {"l": 80, "r": 30, "t": 60, "b": 120}},
                      height=max(300, 190 + 34 * len(rows)),
                      title="Per layer: channels kept (colour) and precision (text); "
                            "— the model has no such layer",
                      yaxis={"autorange": "reversed"},
                      xaxis={"tickangle": -60, "automargin": True})
    return fig


def _layer_hover(c: stats.LayerCell) -> str:
    if c.channels is None:
        return f"{plot_text(c.name)}: not in this model (shallower stage)"
    of = f" of {c.max_channels}" if c.max_channels else ""
    return (f"{plot_text(c.name)} ({plot_text(c.kind)})<br>{c.channels}{of} channels<br>"
            f"{plot_text(c.precision)}")


def layer_strip(run: RunData, point: dict[str, Any]) -> go.Figure:
    """One model's layers as bars: height the channels kept, colour the precision."""
    cells = stats.layer_cells(point, run)
    fig = go.Figure()
    shown = [c for c in cells if c.channels is not None]
    for precision in [*PRECISION_COLOURS, *sorted({c.precision for c in shown
                                                    if c.precision not in PRECISION_COLOURS})]:
        mine = [c for c in shown if c.precision == precision]
        if not mine:
            continue
        fig.add_trace(go.Bar(
            x=[c.name for c in mine], y=[c.kept if c.kept is not None else 1.0 for c in mine],
            name=plot_text(precision), marker_color=precision_colour(precision),
            customdata=[_layer_hover(c) for c in mine],
            hovertemplate="%{customdata}<extra></extra>",
        ))
    absent = [c for c in cells if c.channels is None]
    if absent:
        fig.add_trace(go.Scatter(
            x=[c.name for c in absent], y=[0.02] * len(absent), mode="markers",
            name="absent layer", marker={"symbol": "line-ew-open", "color": "#999999",
                                         "size": 10},
            customdata=[_layer_hover(c) for c in absent],
            hovertemplate="%{customdata}<extra></extra>",
        ))
    fig.update_layout(**{**_LAYOUT, "margin": {"l": 60, "r": 20, "t": 30, "b": 90}},
                      height=300, barmode="overlay", bargap=0.15,
                      yaxis={"title": "channels kept", "tickformat": ".0%", "range": [0, 1.05]},
                      xaxis={"categoryorder": "array", "categoryarray": [c.name for c in cells],
                             "tickangle": -60, "tickfont": {"size": 10}},
                      legend={"orientation": "h", "y": 1.12})
    return fig


def prediction_figure(run: RunData, factor: float, unit: str) -> go.Figure | None:
    """Predicted against measured latency and accuracy (None when nothing was predicted)."""
    from plotly.subplots import make_subplots

    lat_pairs = latency_pairs(run)
    acc_pairs = accuracy_pairs(run)
    if not lat_pairs and not acc_pairs:
        return None
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        f"latency ({unit}), {len(lat_pairs)} trials timed",
        f"validation accuracy, {len(acc_pairs)} trials"))
    front = {p["trial"] for p in run.points}
    for col, pairs, scale in ((1, lat_pairs, factor), (2, acc_pairs, 1.0)):
        if not pairs:
            continue
        xs = [p * scale for _, p, _ in pairs]
        ys = [m * scale for _, _, m in pairs]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", showlegend=col == 1, name="trial",
            marker={"color": [FRONT_COLOUR if n in front else "#4c72b0" for n, _, _ in pairs],
                    "size": 8, "opacity": 0.8},
            text=[f"trial {n}{' (front)' if n in front else ''}" for n, _, _ in pairs],
            hovertemplate="%{text}<br>predicted %{x:.4g}<br>measured %{y:.4g}<extra></extra>",
        ), row=1, col=col)
        lo, hi = min(xs + ys), max(xs + ys)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = "
                                 "measured", showlegend=col == 1,
                                 line={"color": "#555555", "dash": "dash", "width": 1},
                                 hoverinfo="skip"), row=1, col=col)
        fig.update_xaxes(title_text="predicted", row=1, col=col)
        fig.update_yaxes(title_text="measured", row=1, col=col)
    fig.update_layout(**_LAYOUT, height=430, legend={"orientation": "h", "y": -0.2},
                      title="Predicted against measured (red: Pareto trials)")
    return fig


def latency_pairs(run: RunData) -> list[tuple[int, float, float]]:
    """``(trial, predicted ms, measured ms)`` of trials that were both predicted and timed."""
    out = []
    for t in run.complete:
        pred = t.attrs.get("latency_predicted_ms")
        latency = t.attrs.get("latency_ms") or {}
        if pred is not None and t.latency_measured and latency.get("median") is not None:
            out.append((t.number, float(pred), float(latency["median"])))
    return out


def accuracy_pairs(run: RunData) -> list[tuple[int, float, float]]:
    """``(trial, predicted, measured validation accuracy)`` of trials with a prediction."""
    return [(t.number, float(t.attrs["accuracy_predicted"]), float(t.attrs["val_accuracy"]))
            for t in run.complete
            if t.attrs.get("accuracy_predicted") is not None and "val_accuracy" in t.attrs]


def hypervolume_figure(run: RunData, study: Any) -> tuple[go.Figure, list[int], list[float]]:
    """Hypervolume of the feasible front after each trial (Optuna's plot), as a fraction.

    Returns:
        The figure, trial numbers and the dominated fraction of the box after each.
    """
    import optuna

    ref, box = stats.hypervolume_box(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fig = optuna.visualization.plot_hypervolume_history(study, ref)
    xs = list(fig.data[0].x) if fig.data else []
    ys = [v / box for v in fig.data[0].y] if fig.data else []
    if fig.data:
        fig.data[0].y = ys
        fig.data[0].name = "hypervolume"
        fig.data[0].line.color = FRONT_COLOUR
    fig.update_layout(**_LAYOUT, height=380,
                      title="Hypervolume of the feasible front over trials (Optuna)",
                      xaxis_title="trial", yaxis_title="dominated fraction of the box",
                      yaxis={"tickformat": ".1%"})
    return fig, [int(x) for x in xs], ys


def hypervolume_box_text(run: RunData) -> str:
    """The box the hypervolume is a fraction of, in words."""
    ref, _ = stats.hypervolume_box(run)
    parts = []
    for name, r, d in zip(run.metric_names, ref, run.directions, strict=False):
        parts.append(f"{name} from 0 to {'1' if d == 'maximize' else num(r, '.4g')}")
    return ("The box spans " + ", ".join(parts) + " (each minimized objective up to 1.1 "
            "times its worst trial; latency in ms, size, ram and flash in KB). Infeasible trials "
            "do not count.")


def stages_figure(run: RunData) -> go.Figure | None:
    """Seconds per stage of every COMPLETE trial, stacked."""
    seconds = stats.stage_seconds(run.trials)
    numbers = [t.number for t in run.complete if isinstance(t.attrs.get("times"), dict)]
    if not seconds or not numbers:
        return None
    fig = go.Figure()
    for i, (stage, values) in enumerate(seconds.items()):
        fig.add_trace(go.Bar(x=numbers, y=values, name=plot_text(stage),
                             marker_color=RUN_COLOURS[i % len(RUN_COLOURS)],
                             hovertemplate=f"trial %{{x}}: {plot_text(stage)} %{{y:.3f}} s"
                                           "<extra></extra>"))
    fig.update_layout(**_LAYOUT, height=380, barmode="stack",
                      title="Time per stage of each trial (user attribute times)",
                      xaxis_title="trial", yaxis_title="seconds",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def timeline_figure(study: Any) -> go.Figure | None:
    """Optuna's timeline of the trials (start, end and state of each)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            fig = optuna.visualization.plot_timeline(study)
        except ValueError:
            return None
    fig.update_layout(**_LAYOUT, height=360, title="Trials over time (Optuna timeline)")
    return fig


def fronts_figure(runs: Sequence[RunData], factor: float, unit: str) -> go.Figure:
    """The fronts of several runs on one plot, each on its own profile's latency."""
    fig = go.Figure()
    for i, run in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        pts = run.points
        fig.add_trace(go.Scatter(
            x=[p["latency_ms"]["median"] * factor for p in pts],
            y=[p["val_accuracy"] for p in pts], mode="markers+lines",
            name=f"{plot_text(run.label)} ({plot_text(run.profile_name)})", meta=f"front-{i}",
            line={"color": colour, "shape": "hv", "width": 1.5},
            marker={"color": colour, "size": 9},
            text=[_describe(p, factor, unit, f"{run.label}: trial {p['trial']}") for p in pts],
            hovertemplate="%{text}<extra></extra>",
        ))
        refs = run.references
        if refs:
            fig.add_trace(go.Scatter(
                x=[r["latency_ms"]["median"] * factor for r in refs],
                y=[r["val_accuracy"] for r in refs], mode="markers", showlegend=False,
                marker={"symbol": "star", "size": 13, "color": colour,
                        "line": {"width": 1, "color": REFERENCE_COLOUR}},
                text=[_describe(r, factor, unit, f"{run.label}: {r.get('name')}")
                      for r in refs],
                hovertemplate="%{text}<extra></extra>",
            ))
    fig.update_layout(**_LAYOUT, height=520,
                      title="Fronts of the runs, each timed on its own profile "
                            "(stars: references)",
                      xaxis_title=f"latency, median per inference ({unit}"
                    + (f", {stats.stand_in(run)})" if stats.stand_in(run) else ")"),
                      yaxis_title="validation accuracy (fraction)",
                      legend={"orientation": "h", "y": -0.18})
    return fig
