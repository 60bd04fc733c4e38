"""``codesign report``: load runs, draw the figures, write the page, PNGs and summary."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codesign.errors import CodesignError
from codesign.report import figures, png
from codesign.report.html import RunView, render_page
from codesign.report.load import RunData, load_run, open_study
from codesign.report.ram import ram_figure, ram_png
from codesign.report.summary import render_summary


@dataclass(frozen=True)
class Report:
    """What a report wrote.

    Attributes:
        out: The report directory.
        index: The HTML page.
        summary: The Markdown summary.
        pngs: The PNG figures.
        front_points: Pareto points per run, in the order given.
        seconds: Time taken.
    """

    out: Path
    index: Path
    summary: Path
    pngs: list[Path]
    front_points: list[int]
    seconds: float


def default_out(runs: Sequence[Path]) -> Path:
    """Where the report goes unless ``--out`` says: the first run's ``report/``."""
    return Path(runs[0]) / "report"


def write_report(runs: Sequence[Path], out: Path | None = None,
                 labels: Sequence[str] | None = None) -> Report:
    """Write the report of one or several runs.

    Args:
        runs: Run directories of ``codesign search``.
        out: The report directory (default: ``RUN/report`` of the first run).
        labels: A name per run (default: the directories' names).

    Returns:
        What was written and how long it took.

    Raises:
        CodesignError: On a missing or unreadable run, a ``pareto.json`` of
            another schema version, or labels that do not match the runs.
    """
    started = time.perf_counter()
    if not runs:
        raise CodesignError("name at least one run directory")
    if labels and len(labels) != len(runs):
        raise CodesignError(f"{len(labels)} --label for {len(runs)} runs; give one per run or "
                            "none")
    loaded = [load_run(Path(r), labels[i] if labels else None) for i, r in enumerate(runs)]
    _unique_labels(loaded)
    out = Path(out) if out is not None else default_out(runs)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CodesignError(f"cannot write the report to {out} ({exc.strerror}); pass another "
                            "--out") from None
    factor, unit = figures.run_unit(loaded)
    multi = len(loaded) > 1
    views = [_view(run, i, multi, out, factor, unit) for i, run in enumerate(loaded)]
    compare_fig, compare_png = None, None
    if multi:
        compare_fig = figures.fronts_figure(loaded, factor, unit)
        compare_png = png.fronts_png(loaded, factor, unit, out / "fronts.png").name
    import plotly.offline

    page = render_page(views, compare_fig, factor, unit, plotly.offline.get_plotlyjs())
    index = _write_text(out / "index.html", page)
    summary = _write_text(out / "summary.md", render_summary(views, factor, unit, compare_png))
    pngs = [out / name for v in views for name in v.pngs.values()]
    if compare_png:
        pngs.append(out / compare_png)
    return Report(out=out, index=index, summary=summary, pngs=pngs,
                  front_points=[len(r.points) for r in loaded],
                  seconds=time.perf_counter() - started)


def _view(run: RunData, index: int, multi: bool, out: Path, factor: float, unit: str
          ) -> RunView:
    """Every figure of one run, interactive and PNG."""
    study = run.extras.get("study") or open_study(run.root)
    prefix = f"run{index + 1}-" if multi else ""
    hv_fig, hv_x, hv_y = figures.hypervolume_figure(run, study)
    figs = {
        "pareto": figures.pareto_figure(run, factor, unit),
        "ram": ram_figure(run),
        "layers": figures.layers_heatmap(run) if run.points else None,
        "prediction": figures.prediction_figure(run, factor, unit),
        "hypervolume": hv_fig,
        "stages": figures.stages_figure(run),
        "timeline": figures.timeline_figure(study),
    }
    strips = {p["trial"]: figures.layer_strip(run, p) for p in run.points}
    pngs = {"pareto": png.pareto_png(run, factor, unit, out / f"{prefix}pareto.png"),
            "ram": ram_png(run, out / f"{prefix}ram.png"),
            "layers": png.layers_png(run, out / f"{prefix}layers.png"),
            "history": png.history_png(run, (hv_x, hv_y), out / f"{prefix}history.png"),
            "prediction": png.prediction_png(run, factor, unit, out / f"{prefix}predicted.png")}
    names = {k: p.name for k, p in pngs.items() if p is not None}
    return RunView(run=run, figures=figs, strips=strips, pngs=names)


def _unique_labels(runs: Sequence[RunData]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        base = run.label
        if base in seen:
            seen[base] += 1
            run.label = f"{base} ({seen[base]})"
        else:
            seen[base] = 1


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
