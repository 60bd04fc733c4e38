"""The Markdown summary of a report (for a pull request or a paper)."""

from __future__ import annotations

from collections.abc import Sequence

from codesign.report import facts
from codesign.report.html import RunView
from codesign.report.load import RunData
from codesign.report.style import md, num


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of text cells (escaped)."""
    lines = ["| " + " | ".join(md(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_summary(views: Sequence[RunView], factor: float, unit: str,
                   compare_png: str | None) -> str:
    """The summary of every run (and their comparison) as Markdown text."""
    runs = [v.run for v in views]
    out = ["# codesign report: " + ", ".join(md(r.label) for r in runs), ""]
    if len(runs) > 1:
        out += ["## Runs compared", ""]
        if compare_png:
            out += [f"![fronts of the runs]({compare_png})", ""]
        out += ["Latency median of the same candidate as each run measured it; "
                "\"not measured\" where a run did not time it (nothing is estimated).", "",
                md_table(*facts.cross_table(runs, factor, unit)), ""]
    for view in views:
        out += _run_summary(view, factor, unit, len(runs) > 1)
    out.append("Interactive figures: `index.html` beside this file.")
    return "\n".join(out) + "\n"


def _run_summary(view: RunView, factor: float, unit: str, multi: bool) -> list[str]:
    run: RunData = view.run
    head = "##"
    title = f" ({md(run.label)})" if multi else ""
    out = [f"{head} Pareto front{title}", ""]
    out.append(f"{len(run.points)} Pareto points of {len(run.complete)} trials on "
               f"{md(run.profile_name)}; accuracies are fractions, latency is the median of "
               f"the timed runs in {unit}.")
    out.append("")
    if run.run_info.get("validation_note"):
        out += [md(run.run_info["validation_note"]), ""]
    if "pareto" in view.pngs:
        out += [f"![Pareto front]({view.pngs['pareto']})", ""]
    if "ram" in view.pngs:
        out += [f"![accuracy against RAM]({view.pngs['ram']})", ""]
    out += [md_table(*facts.front_table(run, factor, unit)), ""]
    out += [f"{head} Export{title}", "", "```sh"]
    out += [facts.export_command(run, p["trial"]) for p in run.points]
    out += facts.reference_exports(run)
    out += ["```", ""]
    if "layers" in view.pngs:
        out += [f"![channels and precision per layer]({view.pngs['layers']})", ""]
    fid = facts.fidelity_table(run, factor, unit)
    out += [f"{head} Predicted vs measured{title}", ""]
    if fid is not None:
        out += [md_table(*fid), ""]
        if "prediction" in view.pngs:
            out += [f"![predicted vs measured]({view.pngs['prediction']})", ""]
    else:
        out += ["No predictors: every latency was timed and every accuracy measured.", ""]
    out += [f"{head} Search history{title}", ""]
    if "history" in view.pngs:
        out += [f"![hypervolume and stage times]({view.pngs['history']})", ""]
    stage = facts.stage_table(run)
    if stage is not None:
        out += [md_table(*stage), ""]
    out += [f"{head} Setting{title}", "", md_table(["setting", "value"], [
        [k, v] for k, v in facts.setting_rows(run) if k != "command"]), ""]
    out += ["Reproduce (settings the run recorded; the others at their defaults):", "", "```sh",
            facts.search_command(run), "```", ""]
    best = max((p["val_accuracy"] for p in run.points), default=None)
    if best is not None:
        out += [f"Best validation accuracy on the front: {num(best)}.", ""]
    return out
