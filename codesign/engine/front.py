"""The end of a search: the front's points fine-tuned and re-measured, written, and shown.

Written once for every model source. A source whose candidates come from a
supernet fine-tunes the front (and the layer under it when it is thin);
a source that trained each candidate already publishes its measurements as
they are. Every published latency is measured.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.engine.budget import MIN_FRONT
from codesign.engine.device import retry_when_back
from codesign.engine.measured import time_file
from codesign.errors import CodesignError, TrialFailure
from codesign.latency.build import fidelity
from codesign.latency.spaces import model_path
from codesign.report.manifest import brief
from codesign.report.pareto import feasible, front_trials, pareto_indices, violation, write_front
from codesign.report.style import shell_command
from codesign.run.directory import RunDir
from codesign.run.files import write_atomic
from codesign.run.info import package_versions, profile_summary
from codesign.run.measurement import (
    Measurement,
    constraint_values,
    objective_values,
    ram_bytes,
)
from codesign.run.storage import Locator
from codesign.run.study import DIRECTIONS, complete_trials

TIMED_TOGETHER = "with the front, in one batch"  # a published latency's ``timed``
TUNE_ROUNDS = 4  # rounds of fine-tuning (re-measuring) the front at most (see _tuned_front)
PACKAGES = ("tensorflow", "tf_keras", "tensorflow-model-optimization", "optuna",
            "ai-edge-litert", "ai-edge-quantizer", "numpy", "codesign")


@dataclass(frozen=True)
class Published:
    """What a finished search produced.

    Attributes:
        pareto: The ``pareto.json`` document.
        completed: COMPLETE trials in the study.
        failed: FAIL trials in the study.
        quality: The supernet quality report (empty if not computed).
    """

    pareto: dict[str, Any]
    completed: int
    failed: int
    quality: dict[str, Any] = field(default_factory=dict)


@dataclass
class FrontJob:
    """What publishing the front needs.

    Attributes:
        study: The study.
        child: The evaluation child (fine-tunes and times front points).
        cfg: The search's settings.
        run: The run directory.
        loc: Where the study lives.
        out: Where the table and messages go.
        data_info: The data set's name, seed, labels and preprocessing.
        run_info: What ``pareto.json`` records of the run, given the COMPLETE trials.
        table: The front as a terminal table.
        tune_front: Fine-tune the front (candidates inherited their weights).
        references: Reference networks measured once per run.
        quality: The supernet quality report.
        finetune: Fine-tunes one candidate in the child: ``(candidate, model path,
            epochs) -> measurement with a finetune record`` (the plan's).
        time_together: Times written files as one batch in the child, windows
            interleaved: ``(paths) -> latency record or failure, each`` (the plan's;
            None: the front keeps each point's own timing).
        source: The model source's name in the child (times a point whose
            latency was predicted).
        source_ctx: What that source's requests carry (the plan's).
    """

    study: optuna.Study
    child: EvalChild
    cfg: SearchConfig
    run: RunDir
    loc: Locator
    out: TextIO
    data_info: dict[str, Any]
    run_info: Callable[[list[Any]], dict[str, Any]]
    table: Callable[[dict[str, Any]], str]
    tune_front: bool = True
    references: list[dict[str, Any]] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    finetune: Callable[[dict[str, Any], str, int], dict[str, Any]] | None = None
    time_together: Callable[[list[str]], list[dict[str, Any] | str]] | None = None
    source: str = "supernet"
    source_ctx: Callable[[], dict[str, Any]] = dict


def publish(job: FrontJob) -> Published:
    """Fine-tune the front (if the source asks for it), write it out and print the table.

    Raises:
        CodesignError: If no trial completed or none meets the budgets, or the
            front cannot be written (the study is intact).
    """
    cfg, run, out = job.cfg, job.run, job.out
    trials = complete_trials(job.study)
    failed = len(job.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    if not trials:
        raise CodesignError(
            f"no candidate could be evaluated ({failed} failed); see the fail_reason of "
            f"the trials in {job.loc.masked()}"
        )
    directions = [DIRECTIONS[o] for o in cfg.objectives]
    searched = front_trials(trials, directions)
    if not searched:
        _no_feasible(trials, cfg, run, out)
    tune = job.tune_front and cfg.finetune_epochs > 0
    try:  # a full disk here loses nothing: the study is intact and a rerun writes it again
        front = _tuned_front(job, trials, tune)
        if len(front) < min(MIN_FRONT, len(searched)):
            print(f"fine-tuning reordered the front: {len(front)} points stay undominated of "
                  f"the {len(searched)} the search found (each trial's search figures stay in "
                  "the study and the report)", file=out)
        refs = offered([a for _, a, _ in front], job.references, cfg.objectives, cfg.budgets())
        doc = write_front(run.root, front, refs, job.run_info(trials), job.data_info,
                          cfg.profile_spec.to_dict())
    except OSError as exc:
        raise _write_error(exc, run, job.loc) from None
    print(job.table(doc), file=out)
    for r in doc["references"]:
        if r["offered"]:
            command = shell_command("codesign", "export", run.root, "--reference", r["name"],
                                    "--out", f"{r['name']}.tflite")
            print(f"reference {r['name']}: no trial dominates it (validation accuracy "
                  f"{r['val_accuracy']:.3f}, {r['latency_ms']['median']:.3f} ms); `{command}` "
                  "writes it", file=out)
    if "timing" in doc["run"]:
        print(timing_line(doc["run"]["timing"]), file=out)
    print(
        f"{len(doc['points'])} Pareto points of {len(trials)} trials ({failed} failed); "
        f"models in {run.models}, front in {run.root / 'pareto.json'}",
        file=out,
    )
    return Published(pareto=doc, completed=len(trials), failed=failed, quality=job.quality)


def offered(points: list[dict[str, Any]], references: list[dict[str, Any]],
            objectives: tuple[str, ...], budgets: dict[str, float]) -> list[dict[str, Any]]:
    """The references, each marked ``offered`` or not.

    A reference is offered when it meets the budgets and no point is at least
    as good on every objective.

    Args:
        points: The published front's final measurements.
        references: The run's measured references.
        objectives: The search's objectives (what dominance is judged on).
        budgets: The search's budgets.
    """
    sign = [1.0 if DIRECTIONS[o] == "maximize" else -1.0 for o in objectives]

    def scored(attrs: dict[str, Any]) -> list[float]:
        return [v * s for v, s in zip(objective_values(attrs, objectives), sign, strict=True)]

    values = [scored(p) for p in points]
    out = []
    for r in references:
        mine = scored(r)
        within = all(v <= 0 for v in constraint_values(r, budgets).values())
        matched = any(all(a >= b for a, b in zip(v, mine, strict=True)) for v in values)
        out.append({**r, "offered": within and not matched})
    return out


def _tuned_front(job: FrontJob, trials: list[Any], tune: bool
                 ) -> list[tuple[int, dict[str, Any], Path]]:
    """Fine-tune and re-measure the front; publish what stays undominated and within budget.

    Fine-tuning moves points, and one can come to dominate another. So the
    next Pareto layer is tuned too (:func:`front_layers`); then the front is
    taken over every trial, each by its tuned figures where it was tuned and
    its search figures otherwise. A trial that is not tuned (or re-measured) yet
    but makes that front is in the next round, and while the tuned front holds fewer
    than :data:`MIN_FRONT` points a few trials of the next layers are too, for
    :data:`TUNE_ROUNDS` rounds at most. Only tuned (or, without fine-tuning,
    re-measured) points are published.

    Each round ends by timing every finished point again, all in one batch
    (:func:`_timed_together`): a point timed alone right after its fine-tuning
    can meet the machine in a slow phase (seen here: 1.6x on the fastest two
    networks of a one-minute search, which then dropped off the front), while
    interleaved windows meet the same fast phases, so their order holds.
    """
    cfg = job.cfg
    directions = [DIRECTIONS[o] for o in cfg.objectives]
    budgets = cfg.budgets()
    todo = front_layers(trials, directions, MIN_FRONT + 1) if tune else front_trials(
        trials, directions)
    done: dict[int, tuple[int, dict[str, Any], Path]] = {}
    front: list[tuple[int, dict[str, Any], Path]] = []
    for _ in range(TUNE_ROUNDS):
        for item in _finalize_front(job, todo, tune):
            done[item[0]] = item
        _timed_together(job, done)
        pool = _pool(trials, done, budgets)
        keep = pareto_indices([objective_values(a, cfg.objectives) for _, a in pool],
                              directions)
        ahead = [pool[i][0] for i in keep]
        front = [done[n] for n in ahead if n in done]
        waiting = {n for n in ahead if n not in done}
        if not waiting and (not tune or len(front) >= MIN_FRONT):
            break
        need = max(0, MIN_FRONT - len(front)) if tune else 0  # a few more, best layers first
        extra = [t for t in front_layers(trials, directions, len(done) + need + len(waiting))
                 if t.number not in done and t.number not in waiting][:need]
        todo = [t for t in trials if t.number in waiting] + extra
        if not todo:
            break
    return front


def _timed_together(job: FrontJob, done: dict[int, tuple[int, dict[str, Any], Path]]) -> None:
    """Time every finished point's file and the references' again, in one batch.

    A point or reference keeps its own timing when the batch fails for it.
    The references are in the batch so that the speed-ups against them hold
    too. The figures are kept in the run (``finetune/front-timing.json``, by
    the files timed), so that a rerun of a finished search publishes the
    same front.
    """
    together = job.time_together
    refs = [r for r in job.references if r.get("model") and (job.run.root / r["model"]).is_file()]
    if together is None or len(done) + len(refs) < 2:
        return
    numbers = sorted(done)
    paths = [done[n][2] for n in numbers] + [job.run.root / r["model"] for r in refs]
    stats = [p.stat() for p in paths]
    key = json.dumps([[n, p.name, st.st_size, st.st_mtime_ns] for n, p, st in zip(
        [*numbers, *(r["name"] for r in refs)], paths, stats, strict=True)])
    saved_at = job.run.root / "finetune" / "front-timing.json"
    saved = json.loads(saved_at.read_text()) if saved_at.is_file() else {}
    got = saved.get(key)
    if got is None:
        try:
            got = retry_when_back(lambda: together([str(p) for p in paths]),
                                  job.cfg.profile_spec, job.out)
        except TrialFailure:
            return
        saved_at.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(saved_at, json.dumps({**saved, key: got}, indent=1))
    records = [done[n][1] for n in numbers] + refs
    for attrs, record in zip(records, got, strict=True):
        if isinstance(record, dict):
            attrs["latency_ms"] = {**record, "timed": TIMED_TOGETHER}


def _pool(trials: list[Any], done: dict[int, tuple[int, dict[str, Any], Path]],
          budgets: dict[str, float]) -> list[tuple[int, dict[str, Any]]]:
    """Every trial within budget once: by its tuned figures if it was tuned, else the search's."""
    pool = []
    for t in trials:
        if t.number in done:
            attrs = done[t.number][1]
            if all(v <= 0 for v in constraint_values(attrs, budgets).values()):
                pool.append((t.number, attrs))
        elif feasible(t):
            pool.append((t.number, Measurement.from_attrs(t.user_attrs).to_attrs()))
    return pool


def _finalize_front(job: FrontJob, front: list[Any], tune: bool
                    ) -> list[tuple[int, dict[str, Any], Path]]:
    """Fine-tune every Pareto candidate briefly (cached per trial) and re-measure it."""
    final = []
    bar = tqdm(total=len(front), desc="fine-tuning front", unit="model", file=job.out,
               disable=not tune)
    try:
        for t in front:
            attrs = {**Measurement.from_attrs(t.user_attrs).to_attrs(),
                     "candidate": t.user_attrs["candidate"]}
            attrs["search"] = brief(t.user_attrs)
            attrs["latency_predicted_ms"] = t.user_attrs.get("latency_predicted_ms")
            model = job.run.trial_model(t.number)
            if tune:
                res = _cached_finetune(job, t.number, t.user_attrs["candidate"],
                                       t.user_attrs["val_accuracy"])
                if res is None:
                    attrs["finetune"] = {"error": "fine-tuning failed; search measurements kept"}
                elif res["finetune"].get("kept", True):
                    attrs.update(Measurement.from_attrs(res).to_attrs())
                    attrs["finetune"] = res["finetune"]
                    model = job.run.root / "finetune" / f"trial-{t.number}.tflite"
                else:
                    attrs["finetune"] = res["finetune"]
            if attrs["latency_ms"].get("source") == "predicted":
                attrs["latency_ms"] = retry_when_back(  # every exported point is measured
                    lambda m=model: time_file(job.child, str(m), job.source, job.source_ctx()),
                    job.cfg.profile_spec, job.out)
            final.append((t.number, attrs, model))
            bar.update(1)
    finally:
        bar.close()
    return final


def _cached_finetune(job: FrontJob, number: int, candidate: dict[str, Any],
                     search_val: float) -> dict[str, Any] | None:
    """Fine-tune a front candidate (cached); ``finetune.kept`` says if it beat the search's model.

    A brief fine-tuning can lower validation accuracy (seen on small supernets);
    the search's own model and measurements are kept then, so fine-tuning never
    makes a published point worse.
    """
    cfg, out = job.cfg, job.out
    record = job.run.root / "finetune" / f"trial-{number}.json"
    path = record.with_suffix(".tflite")
    if record.is_file() and path.is_file():
        saved = json.loads(record.read_text())
        if saved.get("finetune", {}).get("epochs") == cfg.finetune_epochs:
            return saved
    try:
        assert job.finetune is not None
        tune = job.finetune
        res = retry_when_back(lambda: tune(candidate, str(path), cfg.finetune_epochs),
                              cfg.profile_spec, out)
    except TrialFailure:
        return None
    res["finetune"]["kept"] = res["val_accuracy"] >= search_val
    if not res["finetune"]["kept"]:
        res["finetune"]["note"] = (f"fine-tuning lowered validation accuracy to "
                                   f"{res['val_accuracy']:.4f}; the search's model is kept")
    write_atomic(record, json.dumps(res, indent=1))
    return res


def _write_error(exc: OSError, run: RunDir, loc: Any) -> CodesignError:
    """A one-line error for a front that could not be written (the study is intact)."""
    what = "no space left on the device" if exc.errno == errno.ENOSPC else (
        exc.strerror or str(exc))
    where = exc.filename or run.root
    return CodesignError(
        f"cannot write the front to {where}: {what}; every trial is kept in {loc.masked()}: "
        "free space and rerun the same command (it only writes the front again)"
    )


def front_layers(trials: list[Any], directions: list[str], want: int) -> list[Any]:
    """The feasible front, then the fronts under it, until ``want`` trials are taken.

    Fine-tuning moves points: one can come to dominate another, and a front of
    two would be published. Tuning the next layer too leaves a front of
    :data:`~codesign.engine.budget.MIN_FRONT` whenever the trials allow.
    """
    left = [t for t in trials if feasible(t)]
    taken: list[Any] = []
    while left and len(taken) < want:
        layer = front_trials(left, directions)
        taken += layer
        numbers = {t.number for t in layer}
        left = [t for t in left if t.number not in numbers]
    return taken


def _no_feasible(trials: list[Any], cfg: SearchConfig, run: RunDir, out: TextIO) -> None:
    """Say that no trial met the budgets, list the closest ones, and stop."""
    closest = sorted(trials, key=violation)[:5]
    lines = [
        f"  trial {t.number}: acc {t.user_attrs['val_accuracy']:.3f}, "
        f"{t.user_attrs['latency_ms']['median']:.4f} ms, {t.user_attrs['size_bytes'] / 1024:.1f} KB"
        f"{_ram_kb(t.user_attrs)}, over budget by "
        f"{', '.join(f'{k} {v:.4g}' for k, v in t.constraints.items() if v > 0)}"
        for t in closest
    ]
    print(f"no trial of {len(trials)} meets the budgets {cfg.budgets()}; closest:", file=out)
    print("\n".join(lines), file=out)
    raise CodesignError(
        "no trial meets the budgets; the closest are listed above and kept in "
        f"{run.locator().masked()}; relax a budget or add --trials"
    )


def _ram_kb(attrs: dict[str, Any]) -> str:
    """``, RAM 12.3 KB`` for a trial with a tensor arena, else nothing."""
    ram = ram_bytes(attrs)
    return "" if ram is None else f", RAM {ram / 1024:.1f} KB"


def timing_summary(trials: list[Any]) -> dict[str, int]:
    """How the trials' latencies were taken on a machine that may not have been idle."""
    recs = [t.user_attrs.get("latency_ms") or {} for t in trials]
    timed = [r for r in recs if r.get("source", "measured") == "measured"]
    return {"timed": len(timed),
            "retimed": sum(1 for r in timed if r.get("retimed") or r.get("runs_retimed")),
            "rounds_retimed": sum(int(r.get("retimed") or 0) for r in timed),
            "runs_retimed": sum(int(r.get("runs_retimed") or 0) for r in timed),
            "disturbed": sum(1 for r in timed if r.get("disturbed"))}


def timing_line(s: dict[str, int]) -> str:
    """The timing summary in one line."""
    return (f"timing: {s['retimed']} of {s['timed']} timed candidates were re-timed in part "
            f"({s['rounds_retimed']} windows, {s['runs_retimed']} runs) because the machine "
            f"was disturbed; {s['disturbed']} stayed disturbed after re-timing")


def builtin_run_info(cfg: SearchConfig, completed: int, trials: list[Any]) -> dict[str, Any]:
    """What ``pareto.json`` records of a built-in search (``run``)."""
    known = (fidelity(cfg.profile_spec, path=model_path(cfg.profile_spec, cfg.space_spec))
             if cfg.latency != "measured" else None)
    return {
        "timing": timing_summary(trials),
        "latency_model": None if known is None else {
            "within_10pct": known.within_10pct, "p95_abs_rel_error": known.p95, "n": known.n,
            "source": known.source, "meets_target": known.meets_target},
        "data": cfg.data,
        "profile": profile_summary(cfg.profile_spec),
        "space": cfg.space,
        "sampler": cfg.sampler,
        "seed": cfg.seed,
        "trials": completed,
        "epochs": cfg.epochs,
        "finetune_epochs": cfg.finetune_epochs,
        "latency": cfg.latency,
        "accuracy": cfg.accuracy,
        "package_versions": package_versions(PACKAGES),
    }
