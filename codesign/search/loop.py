"""The search job: supernet, references, the trial loop, and the front."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from codesign.config import SearchConfig
from codesign.data import load_dataset
from codesign.errors import CodesignError, TrialFailure
from codesign.report.pareto import front_trials, write_front
from codesign.report.table import pareto_table
from codesign.search.rundir import RunDir
from codesign.search.study import (
    complete_trials,
    make_sampler,
    open_study,
    recover_interrupted,
)
from codesign.space.suggest import suggest_candidate
from codesign.worker import EvalWorker

PACKAGES = ("tensorflow", "tf_keras", "optuna", "ai-edge-litert", "numpy", "codesign")


@dataclass(frozen=True)
class SearchResult:
    """What a finished search produced.

    Attributes:
        pareto: The ``pareto.json`` document.
        completed: COMPLETE trials in the study.
        failed: FAIL trials in the study.
    """

    pareto: dict[str, Any]
    completed: int
    failed: int


def run_search(cfg: SearchConfig, out: TextIO = sys.stdout) -> SearchResult:
    """Run (or resume) a search and write the front into the run directory.

    Args:
        cfg: Validated settings.
        out: Where progress messages and the table go.

    Returns:
        The result.

    Raises:
        CodesignError: On a user error or when too many candidates fail.
    """
    run = RunDir(cfg.out)
    run.check_settings(cfg.identity(), cfg.trials)
    stale = run.acquire()
    try:
        return _run_locked(cfg, run, stale, out)
    finally:
        run.release()


def _run_locked(cfg: SearchConfig, run: RunDir, stale: bool, out: TextIO) -> SearchResult:
    space = cfg.space_spec
    profile = cfg.profile_spec
    study = open_study(run.storage_url, make_sampler(cfg.sampler, cfg.seed, cfg.trials))
    data = load_dataset(cfg.data, cfg.seed)
    data_info = {"name": data.name, "seed": cfg.seed, "labels": list(data.labels),
                 "preprocessing": data.preprocessing}
    study.set_user_attr("settings", cfg.identity())
    study.set_user_attr("data_info", data_info)
    study.set_user_attr("profile", profile.to_dict())
    recovered = recover_interrupted(study)
    if recovered:
        print(f"resuming: trials {recovered} were interrupted and are queued again", file=out)
    log = str(run.root / "logs" / "worker.log")
    with EvalWorker(timeout_s=cfg.timeout_s, log_path=log) as worker:
        _setup(worker, cfg, run, out)
        references = _references(worker, cfg, run, out)
        _trial_loop(study, worker, cfg, run, space, out)
        trials = complete_trials(study)
        failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        if not trials:
            raise CodesignError(
                f"no candidate could be evaluated ({failed} failed); see the fail_reason of "
                f"the trials in {run.study_db}"
            )
        doc = write_front(
            run.root,
            front_trials(trials),
            references,
            _run_info(cfg, len(trials)),
            data_info,
            profile.to_dict(),
        )
    print(pareto_table(doc), file=out)
    print(
        f"{len(doc['points'])} Pareto points of {len(trials)} trials ({failed} failed); "
        f"models in {run.models}, front in {run.root / 'pareto.json'}",
        file=out,
    )
    return SearchResult(pareto=doc, completed=len(trials), failed=failed)


def _setup(worker: EvalWorker, cfg: SearchConfig, run: RunDir, out: TextIO) -> None:
    bar: tqdm | None = None

    def progress(info: dict[str, Any]) -> None:
        nonlocal bar
        if info.get("stage") != "supernet":
            return
        if bar is None:
            bar = tqdm(total=info["epochs"], desc="supernet", unit="epoch", file=out, leave=True)
        bar.update(info["epoch"] - bar.n)
        bar.set_postfix(loss=f"{info['loss']:.3f}")

    try:
        result = worker.setup(
            progress=progress,
            run_dir=str(run.root),
            data=cfg.data,
            seed=cfg.seed,
            space=cfg.space,
            profile=cfg.profile_spec.path,
            train=cfg.train_settings(),
        )
    except TrialFailure as exc:
        raise CodesignError(f"supernet could not be trained or loaded: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
    if result["supernet"] == "loaded":
        print(f"supernet: reused {run.root / 'supernet.npz'}", file=out)


def _references(
    worker: EvalWorker, cfg: SearchConfig, run: RunDir, out: TextIO
) -> list[dict[str, Any]]:
    """Measure the maximal network in float32 and int8 once per run."""
    if run.references_file.is_file():
        return json.loads(run.references_file.read_text())
    refs = []
    space = cfg.space_spec
    for precision in ("float32", "int8"):
        if precision not in cfg.profile_spec.precisions or precision not in space.precisions:
            continue
        cand = space.max_candidate(precision)
        name = f"max-{precision}"
        path = run.cache / f"reference-{name}.tflite"
        try:
            res = worker.call("evaluate", candidate=cand.to_dict(), model_path=str(path))
        except TrialFailure as exc:
            print(f"reference {name} could not be measured: {exc}", file=out)
            continue
        refs.append({"name": name, "candidate": cand.to_dict(), **_public(res),
                     "model": f"cache/{path.name}"})
    tmp = run.references_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(refs, indent=1))
    tmp.replace(run.references_file)
    return refs


def _public(res: dict[str, Any]) -> dict[str, Any]:
    keys = ("val_accuracy", "test_accuracy", "latency_ms", "size_bytes", "size_gzip_bytes")
    return {k: res[k] for k in keys}


def _trial_loop(
    study: optuna.Study,
    worker: EvalWorker,
    cfg: SearchConfig,
    run: RunDir,
    space: Any,
    out: TextIO,
) -> None:
    done = len(complete_trials(study))
    attempts = len(study.get_trials(deepcopy=False))
    limit = 2 * cfg.trials
    if done >= cfg.trials:
        return
    bar = tqdm(total=cfg.trials, initial=done, desc="trials", unit="trial", file=out)
    try:
        while done < cfg.trials:
            if attempts >= limit:
                failed = attempts - done
                raise CodesignError(
                    f"{failed} of {attempts} candidates failed, more than --trials allows; "
                    f"the completed ones are kept in {run.study_db}; see their fail_reason"
                )
            trial = study.ask()
            attempts += 1
            try:
                ok = _run_trial(trial, worker, run, space)
            except KeyboardInterrupt:
                trial.set_user_attr("fail_reason", "interrupted")
                study.tell(trial, state=TrialState.FAIL)
                if trial.params:
                    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
                raise
            if ok is None:
                study.tell(trial, state=TrialState.FAIL)
                continue
            study.tell(trial, ok)
            done += 1
            bar.update(1)
            bar.set_postfix(acc=f"{ok[0]:.3f}", ms=f"{ok[1]:.3f}")
    finally:
        bar.close()


def _run_trial(
    trial: optuna.Trial, worker: EvalWorker, run: RunDir, space: Any
) -> tuple[float, float] | None:
    """Evaluate one trial; return its objective values, or None if it failed."""
    t0 = time.perf_counter()
    try:
        cand = suggest_candidate(trial, space)
        trial.set_user_attr("candidate", cand.to_dict())
        res = worker.call(
            "evaluate", candidate=cand.to_dict(), model_path=str(run.trial_model(trial.number))
        )
    except (TrialFailure, CodesignError) as exc:
        trial.set_user_attr("fail_reason", str(exc)[:2000])
        return None
    for key in ("val_accuracy", "test_accuracy", "latency_ms", "size_bytes", "size_gzip_bytes",
                "params", "layers", "io"):
        trial.set_user_attr(key, res[key])
    times = dict(res["times"])
    times["total"] = round(time.perf_counter() - t0, 4)
    trial.set_user_attr("times", times)
    return res["val_accuracy"], res["latency_ms"]["median"]


def _run_info(cfg: SearchConfig, completed: int) -> dict[str, Any]:
    prof = cfg.profile_spec
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "data": cfg.data,
        "profile": {"name": prof.name, "runtime": prof.runtime,
                    "runtime_version": prof.runtime_version, "resolver": prof.resolver,
                    "threads": prof.threads},
        "space": cfg.space,
        "sampler": cfg.sampler,
        "seed": cfg.seed,
        "trials": completed,
        "epochs": cfg.epochs,
        "package_versions": versions,
    }
