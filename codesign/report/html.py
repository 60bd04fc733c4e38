"""The self-contained HTML page: plotly's JavaScript and every figure's data inline.

The page needs no network. Each text a user typed is escaped here (tables,
headings) or in ``figures`` (inside figures). After plotly has drawn a Pareto
plot, the page writes the number of front markers it drew into the plot's
``data-front-points`` attribute, so a browser test can read it from the DOM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from codesign.report import facts
from codesign.report.figures import FRONT_META, hypervolume_box_text
from codesign.report.load import RunData, dashboard_target
from codesign.report.style import esc, num

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
SECTIONS = (("front", "Pareto front"), ("models", "Pareto models"),
            ("predicted", "Predicted vs measured"), ("history", "Search history"),
            ("setting", "Setting"))

# Runs after plotly has drawn a Pareto plot: count the markers it drew for the front.
COUNT_FRONT_JS = """
var gd = document.getElementById('{plot_id}');
var n = 0;
gd.querySelectorAll('g.trace.scatter').forEach(function (g) {
  var cd = g.__data__;
  if (cd && cd[0] && cd[0].trace && cd[0].trace.meta === '__META__') {
    n += g.querySelectorAll('g.points path.point').length;
  }
});
gd.setAttribute('data-front-points', String(n));
""".replace("__META__", FRONT_META)

DRAWN_JS = """
var body = document.body;
var drawn = Number(body.getAttribute('data-plots-drawn') || 0) + 1;
body.setAttribute('data-plots-drawn', String(drawn));
"""

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
header { background: #222; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #ccc; }
nav { padding: 8px 28px; background: #eee; position: sticky; top: 0; z-index: 10; }
nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; font-size: 14px; }
nav b { margin-right: 10px; font-size: 14px; display: inline-block; max-width: 40%;
        overflow: hidden; text-overflow: ellipsis; white-space: nowrap; vertical-align: bottom; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 28px 40px; }
section { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 8px 20px 16px;
          margin: 18px 0; }
h2 { font-size: 19px; border-bottom: 1px solid #eee; padding-bottom: 6px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; font-size: 13px; }
dl.kv dt { font-weight: 600; color: #555; }
dl.kv dd { margin: 0; word-break: break-word; }
pre { background: #f4f4f4; padding: 6px 10px; border-radius: 4px; overflow-x: auto;
      font-size: 12.5px; }
.card { border-top: 1px solid #eee; margin-top: 10px; }
.note { color: #666; font-size: 13px; }
.plot { width: 100%; }
"""


@dataclass
class RunView:
    """One run with its figures, ready to be laid out.

    Attributes:
        run: The run's records.
        figures: Plotly figures by role (``pareto``, ``layers``, ``prediction``,
            ``hypervolume``, ``stages``, ``timeline``); None where there is nothing.
        strips: The per-layer bar strip of each Pareto trial.
        pngs: PNG file names (relative to the page) by role.
    """

    run: RunData
    figures: dict[str, Any]
    strips: dict[int, Any] = field(default_factory=dict)
    pngs: dict[str, str] = field(default_factory=dict)


def render_page(views: Sequence[RunView], compare: Any | None, factor: float, unit: str,
                plotly_js: str) -> str:
    """The whole page as one string.

    Args:
        views: One view per run, in the order given.
        compare: The fronts-of-all-runs figure (several runs), else None.
        factor: Milliseconds to the report's latency unit.
        unit: The latency unit.
        plotly_js: plotly.js source, inlined once in the head.
    """
    multi = len(views) > 1
    title = ("codesign report: " + ", ".join(v.run.label for v in views))
    nav, body = [], []
    if multi and compare is not None:
        nav.append('<div><a href="#compare">Runs compared</a></div>')
        body.append(_compare_section([v.run for v in views], compare, factor, unit))
    for i, view in enumerate(views):
        prefix = f"r{i}"
        tag = f" — {view.run.label}" if multi else ""
        links = "".join(f'<a href="#{prefix}-{key}">{name}</a>' for key, name in SECTIONS)
        nav.append(f"<div><b>{esc(view.run.label)}</b> {links}</div>" if multi
                   else f"<div>{links}</div>")
        body.append(_run_sections(view, prefix, tag, factor, unit))
    runs = [v.run for v in views]
    subtitle = "; ".join(
        f"{r.label}: {len(r.points)} Pareto points of {len(r.complete)} trials on "
        f"{r.profile_name}, data {r.run_info.get('data', '?')}" for r in runs)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        f'<script type="text/javascript">{_safe_script(plotly_js)}</script>',
        "</head><body>",
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>",
        "<nav>" + "".join(nav) + "</nav>",
        "<main>", *body, "</main>",
        '<footer class="note" style="padding: 0 28px 20px">Written by codesign report; '
        "plots drawn with plotly (inline), PNG copies drawn with matplotlib beside this "
        "file.</footer>",
        "</body></html>",
    ])


def _run_sections(view: RunView, prefix: str, tag: str, factor: float, unit: str) -> str:
    run, figs = view.run, view.figures
    out = [f'<section id="{prefix}-front"><h2>Pareto front{esc(tag)}</h2>']
    best = max(run.points, key=lambda p: p["val_accuracy"], default=None)
    fastest = run.points[0] if run.points else None
    if best and fastest:
        def said(p: dict[str, Any]) -> str:
            return (f"trial {p['trial']}, {num(p['val_accuracy'])} validation accuracy at "
                    f"{num(p['latency_ms']['median'] * factor, '.4g')} {unit}")

        ends = (f"Fastest: {said(fastest)}; most accurate: {said(best)}." if best is not fastest
                else f"One model is both fastest and most accurate: {said(best)}.")
        plural = "s" if len(run.points) != 1 else ""
        out.append(
            f"<p>{len(run.points)} Pareto point{plural} of {len(run.complete)} trials. "
            f"{esc(ends)} Grey: every trial as the search measured it (inherited weights); "
            "red: the front after fine-tuning; marker area grows with file size.</p>")
    out.append(figure_div(figs["pareto"], f"{prefix}-pareto", COUNT_FRONT_JS, role="pareto"))
    if figs.get("ram") is not None:
        out.append(figure_div(figs["ram"], f"{prefix}-ram", role="ram"))
    out.append(table_html(*facts.front_table(run, factor, unit)))
    out.append(_png_links(view, ("pareto", "ram")))
    out.append("</section>")

    out.append(f'<section id="{prefix}-models"><h2>Pareto models{esc(tag)}</h2>')
    if figs.get("layers") is not None:
        out.append(figure_div(figs["layers"], f"{prefix}-layers"))
        out.append(_png_links(view, ("layers",)))
    for p in run.points:
        out.append(f'<div class="card" id="{prefix}-trial-{p["trial"]}">'
                   f"<h3>Trial {p['trial']}</h3>")
        out.append(kv_html(facts.model_rows(run, p, factor, unit)))
        out.append(f"<pre><code>{esc(facts.export_command(run, p['trial']))}</code></pre>")
        if p["trial"] in view.strips:
            out.append(figure_div(view.strips[p["trial"]], f"{prefix}-strip-{p['trial']}"))
        out.append("</div>")
    for command in facts.reference_exports(run):
        out.append(f'<div class="card"><h3>A reference no trial dominates</h3>'
                   f"<pre><code>{esc(command)}</code></pre></div>")
    out.append("</section>")

    out.append(f'<section id="{prefix}-predicted"><h2>Predicted vs measured{esc(tag)}</h2>')
    fid = facts.fidelity_table(run, factor, unit)
    if figs.get("prediction") is None and fid is None:
        out.append('<p class="note">This run used no predictors: every latency was timed and '
                   "every accuracy measured (--latency measured, --accuracy measured, and no "
                   "latency model for the profile).</p>")
    else:
        if figs.get("prediction") is not None:
            out.append(figure_div(figs["prediction"], f"{prefix}-prediction"))
        if fid is not None:
            out.append(table_html(*fid))
        out.append(_png_links(view, ("prediction",)))
    out.append("</section>")

    out.append(f'<section id="{prefix}-history"><h2>Search history{esc(tag)}</h2>')
    out.append(figure_div(figs["hypervolume"], f"{prefix}-hypervolume"))
    out.append(f'<p class="note">{esc(hypervolume_box_text(run))}</p>')
    if figs.get("stages") is not None:
        out.append(figure_div(figs["stages"], f"{prefix}-stages"))
    stage = facts.stage_table(run)
    if stage is not None:
        out.append(table_html(*stage))
    if figs.get("timeline") is not None:
        out.append(figure_div(figs["timeline"], f"{prefix}-timeline"))
    out.append(_png_links(view, ("history",)))
    out.append("</section>")

    out.append(f'<section id="{prefix}-setting"><h2>Setting{esc(tag)}</h2>')
    out.append(kv_html(facts.setting_rows(run)))
    out.append('<p class="note">Browse every trial, its parameters and user attributes in '
               "optuna-dashboard (<code>pip install optuna-dashboard</code>): <code>"
               f"optuna-dashboard {esc(dashboard_target(run.root))}</code></p>")
    out.append("</section>")
    return "\n".join(out)


def _compare_section(runs: Sequence[RunData], fig: Any, factor: float, unit: str) -> str:
    headers, rows = facts.cross_table(runs, factor, unit)
    return "\n".join([
        '<section id="compare"><h2>Runs compared</h2>',
        figure_div(fig, "compare-fronts"),
        "<h3>What a model chosen for one device costs on another</h3>",
        '<p class="note">Latency median of the same candidate (resolution, depths, pruning, '
        "precisions) as each run measured it. Where a run did not time that candidate, the "
        "cell says so: nothing is estimated.</p>",
        table_html(headers, rows),
        "</section>",
    ])


def _png_links(view: RunView, roles: Sequence[str]) -> str:
    links = [f'<a href="{esc(view.pngs[r])}">{esc(view.pngs[r])}</a>' for r in roles
             if r in view.pngs]
    return f'<p class="note">PNG: {", ".join(links)}</p>' if links else ""


def figure_div(fig: Any, div_id: str, post_script: str | None = None, role: str = "") -> str:
    """A plotly figure as a ``div`` and the script that draws it (plotly.js not included)."""
    import plotly.io as pio

    scripts = [post_script, DRAWN_JS] if post_script else [DRAWN_JS]
    inner = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                        config=PLOT_CONFIG, post_script=scripts, default_height=None,
                        validate=False)
    return f'<div class="plot" data-role="{esc(role)}">{inner}</div>'


def table_html(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of text cells (escaped); numeric-looking cells align right."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{esc(c)}</td>' if _numeric(c) else f"<td>{esc(c)}</td>" for c in r
        ) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_html(rows: Sequence[tuple[str, str]]) -> str:
    """A definition list of (key, value) text pairs (escaped)."""
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>"
                                        for k, v in rows) + "</dl>"


def _numeric(text: str) -> bool:
    try:
        float(str(text).replace(" %", ""))
        return True
    except ValueError:
        return False


def _safe_script(js: str) -> str:
    """Script text that cannot end its ``<script>`` element early."""
    return js.replace("</script", "<\\/script")
