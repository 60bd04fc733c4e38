"""The report's tables as plain text cells, shared by the page and the Markdown summary.

Cells are unescaped text; the writers escape them for HTML or Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codesign.report import stats
from codesign.report.figures import accuracy_pairs, latency_pairs
from codesign.report.load import RunData
from codesign.report.style import kb, lat, num, pct, shell_command
from codesign.report.table import precision_mix

Table = tuple[list[str], list[list[str]]]


def setting_rows(run: RunData) -> list[tuple[str, str]]:
    """What a reader needs to reproduce the run: data, profile, space, sampler, versions."""
    info = run.run_info
    ident = run.config.get("identity", {})
    prof = {**ident.get("profile", {}), **run.study_attrs.get("profile", {}),
            **info.get("profile", {})}
    data_info = run.study_attrs.get("data_info", {})
    space = ident.get("space", {})
    rows = [("run directory", str(run.root)), ("data", str(info.get("data", "?")))]
    if data_info:
        labels = data_info.get("labels", [])
        rows.append(("split seed, labels", f"{data_info.get('seed', '?')}, {len(labels)} labels "
                     f"({', '.join(map(str, labels[:12]))}{', ...' if len(labels) > 12 else ''})"))
    if data_info.get("validation"):
        note = info.get("validation_note")
        rows.append(("validation split", str(data_info["validation"]) + (
            f" ({note})" if note else "")))
    model = info.get("model")
    if isinstance(model, dict):
        frozen = "; ".join(f"{g['group']}: {', '.join(g['by'])}" for g in model.get("frozen", []))
        rows.append(("trained model", f"{model.get('path')} ({model.get('format')}); "
                     f"{model.get('input', {}).get('formula')}; frozen groups: {frozen or 'none'}"))
    runner = prof.get("runner", {}) if isinstance(prof.get("runner"), dict) else {}
    rows += [
        ("profile", f"{prof.get('name', '?')}: {prof.get('runtime', '?')} "
                    f"{prof.get('runtime_version', '?')}, resolver {prof.get('resolver', '?')}, "
                    f"{prof.get('threads', '?')} thread(s)"),
        ("device", f"{runner.get('device', 'local')}"
                   + (f" ({prof['description']})" if prof.get("description") else "")),
        ("timing", f"{prof.get('warmup_runs', '?')} warm-up and {prof.get('runs', '?')} timed "
                   "runs per model, median reported"),
    ]
    if space:
        stages = ", ".join(f"{s.get('channels')}ch x{s.get('min_depth')}-{s.get('max_depth')}"
                           for s in space.get("stages", []))
        rows.append(("search space", f"{space.get('name', info.get('space', '?'))}: "
                     f"resolutions {space.get('resolutions')}, stages {stages}, prune ratios "
                     f"{space.get('prune_ratios')}, precisions "
                     f"{', '.join(prof.get('precisions', space.get('precisions', [])))}"))
    else:
        rows.append(("search space", str(info.get("space", "?"))))
    objectives = ident.get("objectives") or run.metric_names
    budgets = ident.get("budgets") or {}
    failed = sum(t.state == "FAIL" for t in run.trials)
    rows += [
        ("sampler", f"{info.get('sampler', ident.get('sampler', '?'))}, seed {info.get('seed')}"),
        ("objectives", ", ".join(f"{o} ({d})" for o, d in
                                 zip(objectives, run.directions, strict=False))),
        ("budgets", ", ".join(f"{k} {v:g}" for k, v in budgets.items()) or "none"),
        ("trials", f"{len(run.complete)} complete, {failed} failed, {len(run.trials)} in the "
                   f"study ({run.config.get('trials', '?')} asked)"),
        ("supernet", f"{info.get('epochs', ident.get('epochs', '?'))} epochs"
                     + (f", trained in {run.supernet['train_seconds']:.0f} s"
                        if run.supernet and run.supernet.get("train_seconds") else "")),
        ("fine-tuning of the front", f"{info.get('finetune_epochs', '?')} epochs"),
        ("latency, accuracy", f"{info.get('latency') or 'measured'}, "
                              f"{info.get('accuracy') or 'measured'}"),
    ]
    model = info.get("latency_model")
    if model:
        flag = "" if model.get("meets_target") else ", below the 95 % target"
        rows.append(("latency model", f"{pct(model.get('within_10pct'))} within ±10 % "
                     f"({model.get('source')}, n={model.get('n')}){flag}"))
    timing = info.get("timing")
    if timing:
        rows.append(("timing", f"{timing.get('retimed')} of {timing.get('timed')} timed "
                     f"candidates re-timed in part ({timing.get('rounds_retimed')} windows, "
                     f"{timing.get('runs_retimed')} runs) while the machine was disturbed; "
                     f"{timing.get('disturbed')} stayed disturbed after re-timing"))
    if run.noise_floor:
        rows.append(("noise floor", f"latency median varies by {pct(run.noise_floor.get('cv'))} "
                     f"over {run.noise_floor.get('repeats')} repeats of "
                     f"{run.noise_floor.get('reference')}"))
    if run.quality:
        rows.append(("supernet quality", f"Kendall tau {num(run.quality.get('kendall_tau'), '.2f')}"
                     f" inherited vs fine-tuned over {run.quality.get('samples')} sub-networks "
                     f"(noise ceiling {num(run.quality.get('noise_ceiling_tau'), '.2f')})"))
    versions = info.get("package_versions") or {}
    rows.append(("package versions", ", ".join(f"{k} {v or 'absent'}"
                                                for k, v in versions.items()) or "not recorded"))
    rows.append(("command", search_command(run)))
    return rows


def search_command(run: RunData) -> str:
    """The ``codesign search`` command of the run's recorded settings (others default)."""
    info = run.run_info
    ident = run.config.get("identity", {})
    prof = run.study_attrs.get("profile", {})
    profile = info.get("profile", {}).get("name", "xnnpack-1t")
    path = prof.get("path")
    if path and Path(path).parent.name != "hw_profiles":
        profile = path
    args: list[Any] = ["codesign", "search", "--data", info.get("data", "digits"),
                       "--out", run.root, "--trials", run.config.get("trials", info.get("trials")),
                       "--seed", info.get("seed", 0), "--profile", profile,
                       *_source_args(info), "--sampler", info.get("sampler", "nsga2")]
    if ident.get("objectives"):
        args += ["--objectives", ",".join(ident["objectives"])]
    if "model" not in info and "hypermodel" not in info:
        args += ["--epochs", info.get("epochs", 40)]
    if "model" not in info:
        args += ["--finetune-epochs", info.get("finetune_epochs", 3)]
    if info.get("latency"):
        args += ["--latency", info["latency"]]
    if info.get("accuracy"):
        args += ["--accuracy", info["accuracy"]]
    for key, value in (ident.get("budgets") or {}).items():
        args += [f"--{key.replace('_', '-')}", f"{value:g}"]
    return shell_command(*args)


def _source_args(info: dict[str, Any]) -> list[Any]:
    """What names the run's model source: a trained model, a HyperModel or a space preset."""
    model = info.get("model")
    if isinstance(model, dict):
        args: list[Any] = ["--model", model.get("path")]
        if info.get("val_data"):
            args += ["--val-data", info["val_data"]]
        for key, value in (info.get("compress") or {}).items():
            flag = f"--{key.replace('_', '-')}"
            if isinstance(value, bool):
                args += [flag] if value else []
            elif key != "prune_ratios" and value is not None:
                args += [flag, f"{value:g}" if isinstance(value, float) else value]
        return args
    hyper = info.get("hypermodel")
    if isinstance(hyper, dict):
        return ["--hypermodel", hyper.get("spec")]
    return ["--space", info.get("space", "default")]


def export_command(run: RunData, trial: int) -> str:
    """The command that exports one Pareto model."""
    return shell_command("codesign", "export", run.root, "--trial", trial, "--out",
                         f"trial-{trial}.tflite")


def reference_exports(run: RunData) -> list[str]:
    """The commands that export the references no trial dominates."""
    return [shell_command("codesign", "export", run.root, "--reference", r["name"], "--out",
                          f"{r['name']}.tflite") for r in run.references if r.get("offered")]


def front_table(run: RunData, factor: float, unit: str) -> Table:
    """One row per Pareto point, then the references."""
    latency_unit = f"{unit}, {stats.stand_in(run)}" if stats.stand_in(run) else unit
    headers = ["model", "val acc", "test acc", f"latency ({latency_unit})", f"p90 ({unit})",
               f"RAM KB ({stats.ram_label(run)})", "flash KB", "gzip KB", "resolution", "depths",
               "precisions"]
    rows = []
    for rec, name in [(p, f"trial {p['trial']}") for p in run.points] + [
            (r, stats.reference_name(r)) for r in run.references]:
        latency = rec["latency_ms"]
        cand = rec.get("candidate", {})
        rows.append([name, num(rec.get("val_accuracy")), num(rec.get("test_accuracy")),
                     lat(latency.get("median"), factor, unit).split()[0],
                     lat(latency.get("p90"), factor, unit).split()[0],
                     kb(rec.get("ram_bytes")).replace("n/a", "not recorded"),
                     kb(rec.get("flash_bytes", rec.get("size_bytes"))),
                     kb(rec.get("size_gzip_bytes")), str(cand.get("resolution", "")),
                     "-".join(str(d) for d in cand.get("depths", [])),
                     precision_mix(rec.get("layers", []))])
    return headers, rows


def ram_text(rec: dict[str, Any]) -> str:
    """A point's RAM: the arena, its parts and where the figure comes from."""
    ram = rec.get("ram") or {}
    if rec.get("ram_bytes") is None:
        return "not recorded (a run of codesign before RAM was recorded)"
    how = ("measured by TFLM's recording allocator" if ram.get("source") == "tflm"
           else "estimated from the file")
    return (f"{kb(rec['ram_bytes'])} KB tensor arena ({how}): {kb(ram.get('head_bytes'))} KB "
            f"activations (head), {kb(ram.get('tail_bytes'))} KB persistent (tail)")


def model_rows(run: RunData, point: dict[str, Any], factor: float, unit: str
               ) -> list[tuple[str, str]]:
    """The details of one Pareto model."""
    latency = point["latency_ms"]
    search = point.get("search") or {}
    tune = point.get("finetune") or {}
    rows = [
        ("validation accuracy", f"{num(point.get('val_accuracy'))} (search, inherited weights: "
                                f"{num(search.get('val_accuracy'))})"),
        ("test accuracy", num(point.get("test_accuracy"))),
        ("latency", f"median {lat(latency.get('median'), factor, unit)}, p90 "
                    f"{lat(latency.get('p90'), factor, unit)}, std "
                    f"{lat(latency.get('std'), factor, unit)}"
                    + (f" on {latency['device']}" if latency.get("device") else "")
                    + (f" ({latency['runtime']})" if latency.get("runtime") else "")
                    + (f"; {latency['stand_in']}" if latency.get("stand_in") else "")),
    ]
    if latency.get("predicted") is not None:
        rows.append(("latency predicted", lat(latency["predicted"], factor, unit)))
    rows += [
        ("size", f"{kb(point.get('size_bytes'))} KB ({kb(point.get('size_gzip_bytes'))} KB "
                 "gzipped)"),
        ("RAM", ram_text(point)),
        ("flash", f"{kb(point.get('flash_bytes', point.get('size_bytes')))} KB (the .tflite)"),
        ("fine-tuning", f"{tune.get('method', 'none')}, {tune.get('epochs', 0)} epochs"
                        if "error" not in tune else str(tune["error"])),
        ("model file", str(Path(run.root) / point.get("model", ""))),
    ]
    return rows


def fidelity_table(run: RunData, factor: float, unit: str) -> Table | None:
    """How well the run's predictions matched its measurements (None: nothing predicted)."""
    lat_pairs, acc_pairs = latency_pairs(run), accuracy_pairs(run)
    untimed = sum(1 for t in run.complete if not t.latency_measured)
    headers = ["prediction", "pairs", "MAPE", "within ±10 %", "RMSE", "Kendall tau"]
    rows = []
    if lat_pairs:
        f = stats.fidelity([p for _, p, _ in lat_pairs], [m for _, _, m in lat_pairs])
        rows.append([f"latency (this run's trials; {untimed} kept the prediction untimed)",
                     str(f["n"]), pct(f["mape"]), pct(f["within_10pct"]),
                     lat(f["rmse"], factor, unit), num(f["kendall_tau"], ".2f")])
    if acc_pairs:
        f = stats.fidelity([p for _, p, _ in acc_pairs], [m for _, _, m in acc_pairs])
        rows.append(["validation accuracy (this run's trials)", str(f["n"]), pct(f["mape"]),
                     pct(f["within_10pct"]), num(f["rmse"], ".4f"),
                     num(f["kendall_tau"], ".2f")])
    meta = run.fidelity or {}
    chosen = meta.get("chosen")
    for name, parts in (meta.get("fidelity") or {}).items():
        for part, fig in parts.items():
            pred = fig.get("predictor", {})
            tag = "kept" if name == chosen else "not kept"
            rows.append([f"accuracy predictor {name} ({tag}), held-out {part}", str(fig.get("n")),
                         "", "", num(pred.get("rmse"), ".4f"),
                         num(pred.get("kendall_tau"), ".2f")])
            for base, label in (("mean", "predicting the mean"),
                                ("second_evaluation", "evaluating again")):
                b = fig.get(base) or {}
                if name == chosen and b:
                    rows.append([f"  baseline: {label}, {part}", str(fig.get("n")), "", "",
                                 num(b.get("rmse"), ".4f"), num(b.get("kendall_tau"), ".2f")])
    return (headers, rows) if rows else None


def stage_table(run: RunData) -> Table | None:
    """Seconds per stage over the COMPLETE trials (sum, mean, share)."""
    seconds = stats.stage_seconds(run.trials)
    if not seconds:
        return None
    total = sum(sum(v) for v in seconds.values()) or 1.0
    rows = [[stage, f"{sum(v):.1f}", f"{sum(v) / max(1, len(v)):.3f}", pct(sum(v) / total)]
            for stage, v in seconds.items()]
    rows.append(["all stages", f"{total:.1f}", f"{total / max(1, len(run.complete)):.3f}",
                 "100.0 %"])
    return ["stage", "seconds, sum", "seconds per trial", "share"], rows


def cross_table(runs: Sequence[RunData], factor: float, unit: str) -> Table:
    """Each run's chosen models against every run's device: measured latency or not."""
    headers = ["chosen by", "model", "val acc"] + [
        f"{r.label} ({r.profile_name}), {unit}" for r in runs]
    rows = []
    for row in stats.cross_device(runs):
        cells = []
        for i, cell in enumerate(row.cells):
            if cell.latency_ms is None:
                cells.append("not measured")
            else:
                text = lat(cell.latency_ms, factor, unit).split()[0]
                cells.append(text if i == row.home else f"{text} ({cell.source})")
        rows.append([runs[row.home].label, row.name, num(row.val_accuracy), *cells])
    return headers, rows
