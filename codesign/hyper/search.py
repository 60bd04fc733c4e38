"""The hypermodel search: the user's HyperModel, codesign's per-layer genes, the measured front.

One Optuna study in the run directory, one evaluation child. Each trial:
the child builds the HyperModel, asking this process for every active
hyperparameter (:mod:`codesign.hyper.propose`); this process then asks the
trial for a prune ratio per channel group and a precision per layer of the
built model; the child trains the model briefly, prunes it to a narrower
graph, fine-tunes, converts with the per-layer precisions, measures accuracy,
and times the file alone on the profile's device. This process never imports
TensorFlow or the user's file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from codesign.child import EvalChild
from codesign.config import lookup_support
from codesign.data import load_dataset
from codesign.engine.device import wait_for_device
from codesign.errors import CodesignError, DeviceUnavailable, TrialFailure
from codesign.hardware.devicelock import host_work
from codesign.hardware.profile import Profile
from codesign.hyper.encoding import EVALUATIONS_FILE
from codesign.hyper.propose import propose
from codesign.hyper.settings import HyperConfig
from codesign.hyper.suggest import suggest_genes
from codesign.report.pareto import front_trials, violation, write_front
from codesign.report.table import format_table, precision_mix
from codesign.run.directory import RunDir
from codesign.run.info import package_versions, profile_summary
from codesign.run.measurement import Measurement
from codesign.run.study import DIRECTIONS, complete_trials, make_sampler, open_study
from codesign.space.candidate import PRECISIONS

PACKAGES = ("tensorflow", "tf_keras", "keras-tuner", "optuna", "ai-edge-litert",
            "ai-edge-quantizer", "numpy", "codesign")


@dataclass(frozen=True)
class HyperResult:
    """What a finished hypermodel search produced.

    Attributes:
        pareto: The ``pareto.json`` document.
        completed: COMPLETE trials in the study.
        failed: FAIL trials in the study.
    """

    pareto: dict[str, Any]
    completed: int
    failed: int


def run_hyper_search(cfg: HyperConfig, out: TextIO = sys.stdout) -> HyperResult:
    """Run (or resume) a hypermodel search and write the measured front.

    Args:
        cfg: Validated settings (see :func:`codesign.hyper.settings.HyperConfig`).
        out: Where progress and the table go.

    Returns:
        The result.

    Raises:
        CodesignError: On a user error (the HyperModel cannot be imported, returns a
            Keras 3 model...) or when too many candidates fail.
    """
    started = time.monotonic()
    run = RunDir(cfg.search.out)
    run.check_settings(cfg.identity(), cfg.search.trials)
    run.acquire()
    try:
        return _run_locked(cfg, run, out, started)
    finally:
        run.release()


def layer_choices(profile: Profile) -> dict[str, tuple[str, ...]]:
    """Precisions offered per layer kind: the profile allows them and its runtime runs them.

    Raises:
        CodesignError: If a layer kind would have none.
    """
    support = lookup_support(profile)
    out = {}
    for kind, runs in support.runs.items():
        out[kind] = tuple(p for p in PRECISIONS if p in runs and p in profile.precisions)
        if not out[kind]:
            raise CodesignError(f"no precision for {kind} layers: the runtime runs {runs}, the "
                                f"profile allows {profile.precisions}")
    return out


def _run_locked(cfg: HyperConfig, run: RunDir, out: TextIO, started: float) -> HyperResult:
    s = cfg.search
    profile = s.profile_spec
    study = open_study(run.locator(), make_sampler(s.sampler, s.seed, s.trials), s.objectives)
    data = load_dataset(s.data, s.seed)
    data_info = {"name": data.name, "seed": s.seed, "labels": list(data.labels),
                 "preprocessing": data.preprocessing}
    study.set_user_attr("settings", cfg.identity())
    study.set_user_attr("data_info", data_info)
    study.set_user_attr("profile", profile.to_dict())
    study.set_user_attr("hypermodel", cfg.hypermodel.text)
    _recover(study, out)
    ctx = {"spec": cfg.hypermodel.to_dict(), "data": s.data, "seed": s.seed,
           "profile": profile.path, "train": cfg.settings.to_dict()}
    deadline = None if s.time_budget_min is None else started + 60 * s.time_budget_min
    print(f"hypermodel {cfg.hypermodel.text}: {s.trials} trials, each trained up to "
          f"{cfg.settings.epochs} epochs (early stopping), on {data.name}, profile "
          f"{profile.name}", file=out, flush=True)
    with EvalChild(timeout_s=s.timeout_s, log_path=str(run.root / "logs" / "worker.log")) as w:
        _trial_loop(study, w, cfg, run, ctx, deadline, out)
    return _publish(study, cfg, run, data_info, out)


def _recover(study: optuna.Study, out: TextIO) -> None:
    """Fail the RUNNING trials of an interrupted run and queue their parameters again."""
    lost = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in lost:
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", "interrupted")  # noqa: SLF001
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        if t.params:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
    if lost:
        print(f"resuming: trials {[t.number for t in lost]} were interrupted and are queued "
              "again", file=out)


def _trial_loop(study: optuna.Study, worker: EvalChild, cfg: HyperConfig, run: RunDir,
                ctx: dict[str, Any], deadline: float | None, out: TextIO) -> None:
    s = cfg.search
    choices = layer_choices(s.profile_spec)
    done = len(complete_trials(study))
    bar = tqdm(total=s.trials, initial=done, desc="trials", unit="trial", file=out)
    try:
        while done < s.trials:
            failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
            if done + failed >= 2 * s.trials + 2:
                last = _last_fail_reason(study)
                raise CodesignError(
                    f"{failed} of {done + failed} candidates failed, more than --trials allows; "
                    f"the last one: {last}; the completed ones are kept in {run.root}")
            if deadline is not None and time.monotonic() > deadline:
                print(f"\ntime budget of {s.time_budget_min:g} min reached after {done} trials",
                      file=out)
                break
            trial = study.ask()
            values = _attempt(study, trial, worker, cfg, run, ctx, choices, bar, out)
            if values is not None:
                study.tell(trial, values)
                done = len(complete_trials(study))
                bar.update(done - bar.n)
    finally:
        bar.close()


def _attempt(study: optuna.Study, trial: optuna.Trial, worker: EvalChild, cfg: HyperConfig,
             run: RunDir, ctx: dict[str, Any], choices: Mapping[str, tuple[str, ...]],
             bar: tqdm, out: TextIO) -> tuple[float, ...] | None:
    """Evaluate one trial; tell the study of a failure; return objective values on success."""
    try:
        return _run_trial(trial, worker, cfg, run, ctx, choices, bar)
    except DeviceUnavailable as exc:
        _fail(study, trial, f"device unavailable: {exc}")
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        wait_for_device(cfg.search.profile_spec, str(exc), out)
    except CodesignError as exc:  # the user's code or settings: every trial would fail
        _fail(study, trial, str(exc))
        raise
    except TrialFailure as exc:
        _fail(study, trial, str(exc))
    except KeyboardInterrupt:
        _fail(study, trial, "interrupted")
        if trial.params:
            study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        raise
    return None


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("fail_reason", reason[:2000])
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def _run_trial(trial: optuna.Trial, worker: EvalChild, cfg: HyperConfig, run: RunDir,
               ctx: dict[str, Any], choices: Mapping[str, tuple[str, ...]],
               bar: tqdm) -> tuple[float, ...]:
    t0 = time.perf_counter()
    answers, built = propose(trial, lambda a: worker.call("hyper_build", ctx=ctx, answers=a))
    t1 = time.perf_counter()
    prune, precision = suggest_genes(trial, built["graph"], choices, cfg.settings.prune_ratios)
    candidate = {"resolution": built["input_shape"][0], "hp": built["hp"], "prune": prune,
                 "precision": precision, "hypermodel": cfg.hypermodel.text}
    trial.set_user_attr("candidate", candidate)
    path = str(run.trial_model(trial.number))
    local = not cfg.search.profile_spec.remote

    def progress(info: dict[str, Any]) -> None:
        if "epoch" in info:
            bar.set_postfix_str(f"trial {trial.number} {info['stage']} {info['epoch']}/"
                                f"{info['epochs']} val {info['val_accuracy']:.3f}")

    with host_work(not local):  # accuracy work keeps off the cores while a timing runs
        m = Measurement.from_attrs(worker.call(
            "hyper_evaluate", progress=progress, ctx=ctx, answers=answers, prune=prune,
            precision=precision, model_path=path))
    t2 = time.perf_counter()
    m = m.timed(worker.call("hyper_time", ctx=ctx, model_path=path), time.perf_counter() - t2)
    m = replace(m, times={**m.times, "build": round(t1 - t0, 4),
                          "total": round(time.perf_counter() - t0, 4)})
    for key, value in m.to_attrs().items():
        trial.set_user_attr(key, value)
    for key, value in m.constraint_values(cfg.search.budgets()).items():
        trial.set_constraint(key, value)
    _record(run, trial.number, candidate, m)
    return m.objective_values(cfg.search.objectives)




def _record(run: RunDir, number: int, candidate: dict[str, Any], m: Measurement) -> None:
    """Append the evaluation to ``hyper_evaluations.jsonl`` (what an accuracy predictor learns)."""
    rec = {"trial": number, "hp": candidate["hp"], "resolution": candidate["resolution"],
           "prune": candidate["prune"], "precision": candidate["precision"],
           "channels": m.channels, "params": m.params,
           "val_accuracy": m.val_accuracy, "test_accuracy": m.test_accuracy,
           "latency_ms": m.latency_median, "size_bytes": m.size_bytes}
    with (run.root / EVALUATIONS_FILE).open("a") as fh:
        fh.write(json.dumps(rec) + "\n")


def _last_fail_reason(study: optuna.Study) -> str:
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return failed[-1].user_attrs.get("fail_reason", "unknown") if failed else "none"


def _publish(study: optuna.Study, cfg: HyperConfig, run: RunDir, data_info: dict[str, Any],
             out: TextIO) -> HyperResult:
    s = cfg.search
    trials = complete_trials(study)
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    if not trials:
        raise CodesignError(f"no candidate could be evaluated ({failed} failed; the last: "
                            f"{_last_fail_reason(study)})")
    front = front_trials(trials, [DIRECTIONS[o] for o in s.objectives])
    if not front:
        _no_feasible(trials, cfg)
    points = [(t.number, _attrs(t), run.trial_model(t.number)) for t in front]
    try:
        doc = write_front(run.root, points, [], _run_info(cfg, len(trials)), data_info,
                          s.profile_spec.to_dict())
    except OSError as exc:
        raise CodesignError(f"cannot write the front to {run.root}: {exc.strerror}; free space "
                            "and rerun the same command (it only writes the front again)"
                            ) from None
    print(front_table(doc), file=out)
    print(f"{len(doc['points'])} Pareto points of {len(trials)} trials ({failed} failed); models "
          f"in {run.models}, front in {run.root / 'pareto.json'}", file=out)
    return HyperResult(pareto=doc, completed=len(trials), failed=failed)


def _attrs(t: FrozenTrial) -> dict[str, Any]:
    attrs = {**Measurement.from_attrs(t.user_attrs).to_attrs(),
             "candidate": t.user_attrs["candidate"]}
    attrs["search"] = {"val_accuracy": attrs["val_accuracy"],
                       "test_accuracy": attrs["test_accuracy"],
                       "latency_ms": attrs["latency_ms"]["median"]}
    return attrs


def _no_feasible(trials: list[FrozenTrial], cfg: HyperConfig) -> None:
    closest = sorted(trials, key=violation)[:3]
    listed = "; ".join(
        f"trial {t.number}: acc {t.user_attrs['val_accuracy']:.3f}, "
        f"{t.user_attrs['latency_ms']['median']:.4f} ms" for t in closest)
    raise CodesignError(f"no trial of {len(trials)} meets the budgets {cfg.search.budgets()} "
                        f"(closest: {listed}); relax a budget or add --trials")


def front_table(doc: dict[str, Any]) -> str:
    """The front of a hypermodel run as a terminal table."""
    headers = ("trial", "val acc", "test acc", "latency us", "size KB", "res", "pruned",
               "precisions", "hyperparameters")
    rows = []
    for p in doc["points"]:
        c = p["candidate"]
        ratios = list(c["prune"].values())
        hps = " ".join(f"{k}={_short(v)}" for k, v in c["hp"].items())
        rows.append((p["trial"], p["val_accuracy"], p["test_accuracy"],
                     p["latency_ms"]["median"] * 1000, p["size_bytes"] / 1024, c["resolution"],
                     sum(ratios) / max(1, len(ratios)),
                     precision_mix(p["layers"]), hps))
    formats = ("", ".3f", ".3f", ".1f", ".1f", "", ".0%", "", "")
    return format_table(headers, rows, formats)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _run_info(cfg: HyperConfig, completed: int) -> dict[str, Any]:
    s = cfg.search
    return {
        "data": s.data,
        "profile": profile_summary(s.profile_spec),
        "space": f"hypermodel {cfg.hypermodel.text}",
        "hypermodel": {"spec": cfg.hypermodel.text, "file": str(Path(cfg.hypermodel.file)),
                       "sha256": cfg.hypermodel.digest()},
        "sampler": s.sampler,
        "seed": s.seed,
        "trials": completed,
        "training": cfg.settings.to_dict(),
        "finetune_epochs": cfg.settings.finetune_epochs,
        "latency": "measured",
        "accuracy": "measured",
        "package_versions": package_versions(PACKAGES),
    }
