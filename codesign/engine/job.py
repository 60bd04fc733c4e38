"""The search job: supernet, references, the trial loop, fine-tuning, and the front."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from tqdm import tqdm

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.data import load_dataset
from codesign.engine import estimates
from codesign.engine.budget import MIN_FRONT, TimeBudget
from codesign.engine.device import retry_when_back, wait_for_device
from codesign.engine.estimates import DataShape
from codesign.engine.predictor_stage import predictor_stage
from codesign.engine.proposer import Proposer
from codesign.engine.screen import Screen
from codesign.engine.shared_study import Coordinator, counts, wait_a_moment
from codesign.engine.workers import (
    LocalWorkers,
    choose_storage,
    join_locator,
    joinable,
    joined_config,
)
from codesign.errors import CodesignError, DeviceUnavailable, TrialFailure
from codesign.hardware.devicelock import host_work
from codesign.latency.build import fidelity, load_model, speed_factor
from codesign.report.manifest import brief
from codesign.report.pareto import feasible, front_trials, pareto_indices, violation, write_front
from codesign.report.table import pareto_table
from codesign.run.directory import RunDir
from codesign.run.info import package_versions, profile_summary
from codesign.run.measurement import Measurement, constraint_values, objective_values
from codesign.run.retry import retrying
from codesign.run.storage import STORAGE_ENV
from codesign.run.study import (
    DIRECTIONS,
    complete_trials,
    make_sampler,
    open_study,
)
from codesign.space.candidate import Candidate
from codesign.space.suggest import params_of, suggest_candidate

MAX_DUPLICATES = 20  # proposals in a row that repeat a candidate before one is run anyway
PACKAGES = ("tensorflow", "tf_keras", "tensorflow-model-optimization", "optuna",
            "ai-edge-litert", "ai-edge-quantizer", "numpy", "codesign")
JOIN_WAIT_S = 120.0  # a worker started before its search waits this long for the study
QUALITY_FILE = "supernet_quality.json"
REFERENCE_DROPS = ("io", "params", "times")  # what references.json leaves out of a measurement


@dataclass(frozen=True)
class SearchResult:
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
    quality: dict[str, Any]


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
    started = time.monotonic()
    run = RunDir(cfg.out)
    run.check_settings(cfg.identity(), cfg.trials)
    if cfg.storage is not None:  # what reads the run in this process finds the password
        os.environ[STORAGE_ENV] = cfg.storage
    run.acquire()  # a dead owner's RUNNING trials are recovered below
    try:
        return _run_locked(cfg, run, out, started)
    finally:
        run.release()


def _run_locked(cfg: SearchConfig, run: RunDir, out: TextIO, started: float) -> SearchResult:
    profile = cfg.profile_spec
    loc = choose_storage(run, cfg)
    study = open_study(loc, make_sampler(cfg.sampler, cfg.seed, cfg.trials), cfg.objectives)
    coord = Coordinator(run, loc, out)
    data = load_dataset(cfg.data, cfg.seed)
    data_info = {"name": data.name, "seed": cfg.seed, "labels": list(data.labels),
                 "preprocessing": data.preprocessing}
    study.set_user_attr("settings", cfg.identity())
    study.set_user_attr("data_info", data_info)
    study.set_user_attr("profile", profile.to_dict())
    study.set_user_attr("config", joinable(cfg))
    budget = TimeBudget(cfg.time_budget_min, started)
    deadline = budget.deadline
    study.set_user_attr("deadline", None if deadline is None else
                        time.time() + (deadline - time.monotonic()))
    if cfg.time_budget_min is not None:
        print(f"time budget: {cfg.time_budget_min:g} min for set-up and trials from now; then "
              "the front is fine-tuned and written", file=out)
    with coord.study_lock("ask"):
        if not study.get_trials(deepcopy=False):
            _enqueue_anchors(study, cfg)
    recovered = coord.recover(study, all_dead=not loc.shared)
    if recovered:
        print(f"resuming: trials {recovered} were interrupted and are queued again", file=out)
    helpers = LocalWorkers(run, loc)
    try:
        helpers.start(cfg.workers - 1, out)
        log = str(run.root / "logs" / "worker.log")
        with EvalChild(timeout_s=cfg.timeout_s, log_path=log) as worker:
            screen, proposer, references, quality = _prepare(worker, cfg, run, out, study,
                                                             coord, data, budget)
            _trial_loop(study, worker, cfg, run, out, screen, proposer, budget, coord)
            helpers.wait(out)
            said = budget.summary(*_front_and_complete(study, cfg))
            if said:
                print(said, file=out)
            return _publish(study, worker, cfg, run, out, loc, references, quality, data_info)
    finally:
        helpers.stop()


def run_worker(run_dir: Path, storage: str | None = None, study_name: str = "codesign",
               out: TextIO = sys.stdout) -> int:
    """Join a running search's study and run its trials until it has the count asked.

    The worker needs the study's storage and the run directory the search
    uses (the supernet, references and every trial's model live there). It
    trains nothing the run already has; the search that started the study
    publishes the front.

    Args:
        run_dir: The shared run directory.
        storage: Database server URL (None: the run's own journal, or
            ``CODESIGN_STORAGE``).
        study_name: The study on the server.
        out: Where progress goes.

    Returns:
        The number of trials this worker completed.

    Raises:
        CodesignError: If there is no study to join or its settings do not hold here.
    """
    run = RunDir(run_dir)
    loc = join_locator(run, storage, study_name)
    study = _join(loc, out)
    cfg = joined_config(study.user_attrs.get("config"), run.root, loc)
    run.check_settings(cfg.identity(), cfg.trials)
    seed = cfg.seed + os.getpid()  # each worker samples its own candidates
    study.sampler = make_sampler(cfg.sampler, seed, cfg.trials)
    coord = Coordinator(run, loc, out)
    me = f"{coord.me['host']}:{coord.me['pid']}"
    print(f"worker {me} joins {loc.masked()}: {cfg.trials} trials asked", file=out, flush=True)
    data = load_dataset(cfg.data, cfg.seed)
    log = str(run.root / "logs" / f"worker-{coord.me['host']}-{coord.me['pid']}.log")
    with EvalChild(timeout_s=cfg.timeout_s, log_path=log) as worker:
        budget = _budget(study, cfg)
        screen, proposer, _, _ = _prepare(worker, cfg, run, out, study, coord, data, budget)
        mine = _trial_loop(study, worker, cfg, run, out, screen, proposer, budget, coord)
    c = counts(study)
    print(f"worker {me}: completed {mine} trials; the study has {c.complete} of "
          f"{_target(study, cfg, coord)} ({c.failed} failed)", file=out, flush=True)
    return mine


def _join(loc: Any, out: TextIO) -> optuna.Study:
    """The study to join, once the search that starts it has saved its settings."""
    deadline = time.monotonic() + JOIN_WAIT_S
    said = False
    while True:
        try:
            study = open_study(loc, optuna.samplers.RandomSampler(), create=False)
            if study.user_attrs.get("config") is not None:
                return study
        except CodesignError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise CodesignError(f"{loc.masked()} holds no codesign settings; start the study "
                                "with codesign search first")
        if not said:
            print(f"waiting for codesign search to start {loc.masked()}", file=out, flush=True)
            said = True
        time.sleep(1.0)


def _prepare(
    worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO, study: optuna.Study,
    coord: Coordinator, data: Any, budget: TimeBudget,
) -> tuple[Screen | None, Proposer | None, list[dict[str, Any]], dict[str, Any]]:
    """What every worker needs before the trials; the first one makes it, the others load it."""
    wait = "waiting for another worker to {}"
    shape = DataShape(len(data.y_train), data.channels, data.num_classes)
    with coord.file_lock("supernet", wait.format("train the supernet")), \
            host_work(cfg.profile_spec.remote):
        train_s = _setup(worker, cfg, run, out, shape)
    with coord.file_lock("quality", wait.format("finish the quality report")):
        quality = _quality(worker, cfg, run, out, shape, train_s)
    with coord.file_lock("references", wait.format("measure the references")):
        references = _references(worker, cfg, run, out, shape)
        _noise_floor(worker, run, references, cfg.profile_spec, out)
    screen = _screen(cfg, data, worker, out)
    with coord.file_lock("predictor", wait.format("train the accuracy predictor")):
        predictor = predictor_stage(worker, cfg, run, out, budget.left_s())
    proposer = None
    if predictor is not None and screen is not None:
        proposer = Proposer(predictor, screen, cfg, study, out)
    return screen, proposer, references, quality


def _publish(
    study: optuna.Study, worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO,
    loc: Any, references: list[dict[str, Any]], quality: dict[str, Any],
    data_info: dict[str, Any],
) -> SearchResult:
    """Fine-tune the front, write it out and print the table."""
    profile = cfg.profile_spec
    trials = complete_trials(study)
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    if not trials:
        raise CodesignError(
            f"no candidate could be evaluated ({failed} failed); see the fail_reason of "
            f"the trials in {loc.masked()}"
        )
    directions = [DIRECTIONS[o] for o in cfg.objectives]
    searched = front_trials(trials, directions)
    if not searched:
        _no_feasible(trials, cfg, run, out)
    if cfg.finetune_epochs > 0:  # fine-tuning reorders: tune the next layer too if thin
        searched = front_layers(trials, directions, MIN_FRONT + 1)
    try:  # a full disk here loses nothing: the study is intact and a rerun writes it again
        front = _finalize_front(worker, cfg, run, searched, out)
        budgets = cfg.budgets()
        front = [f for f in front
                 if all(v <= 0 for v in constraint_values(f[1], budgets).values())]
        keep = pareto_indices([objective_values(a, cfg.objectives) for _, a, _ in front],
                              directions)
        front = [front[i] for i in keep]  # fine-tuning can reorder; publish the undominated
        doc = write_front(run.root, front, references, _run_info(cfg, len(trials), trials),
                          data_info,
                          profile.to_dict())
    except OSError as exc:
        raise _write_error(exc, run, loc) from None
    print(pareto_table(doc), file=out)
    print(timing_line(doc["run"]["timing"]), file=out)
    print(
        f"{len(doc['points'])} Pareto points of {len(trials)} trials ({failed} failed); "
        f"models in {run.models}, front in {run.root / 'pareto.json'}",
        file=out,
    )
    return SearchResult(pareto=doc, completed=len(trials), failed=failed, quality=quality)


def _write_error(exc: OSError, run: RunDir, loc: Any) -> CodesignError:
    """A one-line error for a front that could not be written (the study is intact)."""
    what = "no space left on the device" if exc.errno == errno.ENOSPC else (
        exc.strerror or str(exc))
    where = exc.filename or run.root
    return CodesignError(
        f"cannot write the front to {where}: {what}; every trial is kept in {loc.masked()}: "
        "free space and rerun the same command (it only writes the front again)"
    )


class _Bar:
    """A tqdm bar driven by progress records of one stage."""

    def __init__(self, stage: str, desc: str, unit: str, out: TextIO) -> None:
        self.stage, self.desc, self.unit, self.out = stage, desc, unit, out
        self.bar: tqdm | None = None

    def __call__(self, info: dict[str, Any]) -> None:
        if info.get("stage") != self.stage:
            return
        done = info.get("epoch", info.get("done", 0))
        total = info.get("epochs", info.get("total", 0))
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=self.out)
        self.bar.update(done - self.bar.n)
        if "loss" in info:
            self.bar.set_postfix(loss=f"{info['loss']:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _setup(worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO,
           shape: DataShape) -> float:
    """Load or train the supernet; return the seconds its training took."""
    if not (run.root / "supernet.npz").is_file():
        expect = estimates.supernet_s(cfg.space_spec, shape, cfg.epochs)
        print(f"supernet: {cfg.epochs} epochs on {shape.images} images, expected about "
              f"{estimates.duration(expect)} on 2 cores", file=out, flush=True)
    bar = _Bar("supernet", "supernet", "epoch", out)
    try:
        result = worker.setup(
            progress=bar,
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
        bar.close()
    if result["supernet"] == "loaded":
        print(f"supernet: reused {run.root / 'supernet.npz'}", file=out)
    return float(result.get("train_seconds") or 0.0)


def _quality(worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO,
             shape: DataShape, train_s: float) -> dict[str, Any]:
    """The supernet quality report: computed once per run, printed every time."""
    epochs = max(1, cfg.finetune_epochs)
    each = estimates.quality_sample_s(cfg.space_spec, shape, epochs)
    samples = estimates.quality_samples(cfg.quality_samples, cfg.trials, train_s, each)
    if samples < 2:
        if cfg.quality_samples is None:
            print(f"supernet quality report: skipped at {cfg.trials} trials (--quality-samples "
                  f"{estimates.QUALITY_MAX} makes one)", file=out)
        return {}
    if not (run.root / QUALITY_FILE).is_file():
        print(f"supernet quality report: {samples} sub-networks, each fine-tuned twice, "
              f"expected about {estimates.duration(samples * each)} (--quality-samples N sets "
              "the count)", file=out, flush=True)
    bar = _Bar("quality", "supernet quality", "subnet", out)
    try:
        report = worker.call(
            "quality", progress=bar, timeout_s=None, run_dir=str(run.root),
            samples=samples, epochs=epochs, seed=cfg.seed,
        )
    except TrialFailure as exc:
        print(f"supernet quality report failed: {exc}", file=out)
        return {}
    finally:
        bar.close()
    print(
        f"supernet quality: Kendall tau {report['kendall_tau']:.2f} between inherited and "
        f"fine-tuned accuracy over {report['samples']} sub-networks (noise ceiling "
        f"{report['noise_ceiling_tau']:.2f}: fine-tuned vs fine-tuned again); narrowest "
        f"{report['narrowest_accuracy']:.3f}, largest {report['largest_accuracy']:.3f} "
        f"(validation, inherited weights); {run.root / 'supernet_quality.json'}",
        file=out,
    )
    return report


def _references(
    worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO, shape: DataShape
) -> list[dict[str, Any]]:
    """Measure the maximal network in float32 and int8 once per run (fine-tuned like the front)."""
    if run.references_file.is_file():
        return json.loads(run.references_file.read_text())
    tune = cfg.finetune_epochs * estimates.network_epoch_s(cfg.space_spec, shape)
    print(f"references: the maximal network in float32 and int8, measured and fine-tuned, "
          f"expected about {estimates.duration(2 * estimates.EVAL_S + 3 * tune)}", file=out,
          flush=True)
    refs = []
    space = cfg.space_spec
    choices = cfg.layer_choices()
    for precision in ("float32", "int8"):
        if any(precision not in c for c in choices.values()):
            continue
        cand = space.max_candidate(precision)
        name = f"max-{precision}"
        path = run.cache / f"reference-{name}.tflite"
        try:
            search = retry_when_back(
                lambda c=cand, p=path: worker.call("evaluate", candidate=c.to_dict(),
                                                   model_path=str(p)), cfg.profile_spec, out)
            final = search
            if cfg.finetune_epochs > 0:
                final = retry_when_back(
                    lambda c=cand, p=path: worker.call(
                        "finetune", candidate=c.to_dict(), model_path=str(p),
                        epochs=cfg.finetune_epochs, seed=cfg.seed), cfg.profile_spec, out)
        except TrialFailure as exc:
            print(f"reference {name} could not be measured: {exc}", file=out)
            continue
        measured = {k: v for k, v in Measurement.from_attrs(final).to_attrs().items()
                    if k not in REFERENCE_DROPS}
        ref = {"name": name, "candidate": cand.to_dict(), **measured,
               "model": f"cache/{path.name}", "search": brief(search)}
        if "finetune" in final:
            ref["finetune"] = final["finetune"]
        refs.append(ref)
    tmp = run.references_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(refs, indent=1))
    tmp.replace(run.references_file)
    return refs


def _noise_floor(
    worker: EvalChild, run: RunDir, references: list[dict[str, Any]], profile: Any, out: TextIO
) -> None:
    """Measure the profile's noise floor once per run on the first reference model."""
    path = run.root / "noise_floor.json"
    if path.is_file() or not references:
        return
    try:
        res = retry_when_back(
            lambda: worker.call("noise_floor", path=str(run.root / references[0]["model"])),
            profile, out)
    except TrialFailure as exc:
        print(f"noise floor not measured: {exc}", file=out)
        return
    res["reference"] = references[0]["name"]
    path.write_text(json.dumps(res, indent=1))
    print(
        f"noise floor: latency median varies by {res['cv']:.1%} (coefficient of variation) over "
        f"{res['repeats']} measurements of {res['reference']} (target 3 % or less)",
        file=out,
    )


def _screen(cfg: SearchConfig, data: Any, worker: EvalChild, out: TextIO) -> Screen | None:
    """The latency predictor of the run (None when the profile has no model here)."""
    model = load_model(cfg.profile_spec)
    if model is None:
        return None
    speed = 1.0
    known = fidelity(cfg.profile_spec, model)
    if cfg.latency != "measured":
        speed = retry_when_back(lambda: speed_factor(cfg.profile_spec, model, worker),
                                cfg.profile_spec, out)
        print(f"latency: {cfg.latency}, with the model of {cfg.profile_spec.name} "
              f"(device speed factor {speed:.3f} against its build; "
              f"{known.describe() if known else 'fidelity unknown'})", file=out)
    return Screen(model, cfg.space_spec, data.num_classes, data.channels, cfg.profile_spec,
                  speed, known.p95 if known is not None else None)


def _target(study: optuna.Study, cfg: SearchConfig, coord: Coordinator) -> int:
    """Trials wanted: the search's latest ``--trials`` (it can grow while workers run)."""
    if not coord.loc.shared:
        return cfg.trials
    saved = study.user_attrs.get("config") or {}
    return int(saved.get("trials", cfg.trials))


def _budget(study: optuna.Study, cfg: SearchConfig) -> TimeBudget:
    """A joining worker's view of the search's time budget (its wall-clock deadline)."""
    wall = study.user_attrs.get("deadline")
    if wall is None or cfg.time_budget_min is None:
        return TimeBudget(None)
    deadline = time.monotonic() + (float(wall) - time.time())
    return TimeBudget(cfg.time_budget_min, deadline - 60.0 * cfg.time_budget_min)


def _front_and_complete(study: optuna.Study, cfg: SearchConfig) -> tuple[int, int]:
    """Points on the search's front (within budget) and COMPLETE trials."""
    trials = complete_trials(study)
    return len(front_trials(trials, [DIRECTIONS[o] for o in cfg.objectives])), len(trials)


def _trial_loop(
    study: optuna.Study, worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO,
    screen: Screen | None, proposer: Proposer | None, budget: TimeBudget,
    coord: Coordinator,
) -> int:
    """Run trials until the study has the count asked; return how many this worker completed.

    Under the ask lock a worker counts COMPLETE and RUNNING trials and asks
    only while they are fewer than the trials wanted, so the study ends with
    exactly that many (see :mod:`codesign.engine.shared_study`).
    """
    where = coord.loc.masked()
    target = _target(study, cfg, coord)
    c = retrying(lambda: counts(study), where)
    if c.complete >= target:
        return 0
    choices = cfg.layer_choices()
    space = cfg.space_spec
    directions = [DIRECTIONS[o] for o in cfg.objectives]
    bar = tqdm(total=target, initial=c.complete, desc="trials", unit="trial", file=out)
    mine = repeats = 0
    try:
        while True:
            if coord.loc.shared:
                coord.recover(study)
            with coord.study_lock("ask"):
                target = _target(study, cfg, coord)
                c = counts(study)
                if c.complete >= target:
                    break
                if budget.spent() and not budget.may_start(
                        *_front_and_complete(study, cfg)):
                    break
                if c.complete + c.failed >= 2 * target:
                    raise CodesignError(
                        f"{c.failed} of {c.complete + c.failed} candidates failed, more than "
                        f"--trials allows; the completed ones are kept in {where}; see their "
                        "fail_reason"
                    )
                trial = None
                if c.complete + c.running < target:
                    if proposer is not None:
                        proposer.refill(target - c.complete)
                    trial = study.ask()
                    coord.claim(study, trial)
                    duplicate = _duplicate_of(study, trial, space, choices)
                    if duplicate is not None and repeats < MAX_DUPLICATES:
                        repeats += 1
                        trial.set_user_attr("duplicate_of", duplicate)
                        study.tell(trial, state=TrialState.PRUNED)
                        coord.release()
                        continue
                    repeats = 0
            if trial is None:  # the last trials run elsewhere; one may fail and need a successor
                wait_a_moment()
                continue
            try:
                done = _attempt(study, trial, worker, run, space, choices, cfg, screen, proposer,
                                out)
            finally:
                coord.release()
            if done:
                mine += 1
                bar.total = target
                bar.update(max(0, len(complete_trials(study)) - bar.n))
                bar.set_postfix_str(_progress_note(complete_trials(study), directions))
    finally:
        bar.close()
    return mine


def _duplicate_of(study: optuna.Study, trial: optuna.Trial, space: Any,
                  choices: dict[str, tuple[str, ...]]) -> int | None:
    """The number of a finished or running trial with this trial's candidate, if any.

    The candidate is suggested here, under the ask lock, so two workers whose
    samplers propose the same candidate never both evaluate it: the later one
    gives its trial up (PRUNED, ``duplicate_of``) and asks again.
    """
    try:
        suggest_candidate(trial, space, choices)
    except (TrialFailure, CodesignError):
        return None  # the trial fails with its reason when it runs
    params = trial.params
    for other in study.get_trials(deepcopy=False,
                                  states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number != trial.number and other.params == params:
            return other.number
    return None


def _attempt(
    study: optuna.Study, trial: optuna.Trial, worker: EvalChild, run: RunDir, space: Any,
    choices: dict[str, tuple[str, ...]], cfg: SearchConfig, screen: Screen | None,
    proposer: Proposer | None, out: TextIO,
) -> bool:
    """Evaluate one asked trial and tell the study; True if it completed."""
    try:
        values = _run_trial(trial, worker, run, space, choices, cfg, screen, study, proposer)
    except DeviceUnavailable as exc:
        # fail this trial with the reason, queue it again, wait for the device
        trial.set_user_attr("fail_reason", f"device unavailable: {exc}"[:2000])
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        wait_for_device(cfg.profile_spec, str(exc), out)
        return False
    except KeyboardInterrupt:
        try:
            trial.set_user_attr("fail_reason", "interrupted")
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            if trial.params:
                study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        except UpdateFinishedTrialError:
            pass  # another worker failed and queued it already
        raise
    except UpdateFinishedTrialError:
        print(f"\ntrial {trial.number} was given up while it ran (no heartbeat reached "
              "the database); its retry runs it again", file=out)
        return False
    if values is None:
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        return False
    study.tell(trial, values, skip_if_finished=True)
    state = study._storage.get_trial(trial._trial_id).state  # noqa: SLF001
    if state != TrialState.COMPLETE:
        print(f"\ntrial {trial.number} was given up while it ran (no heartbeat reached the "
              "database); its retry runs it again", file=out)
        return False
    if proposer is not None:
        proposer.learn(trial)
    return True


def _enqueue_anchors(study: optuna.Study, cfg: SearchConfig) -> None:
    """Start the first generation with a few structured candidates spread over the space.

    A random per-layer precision mix almost never gives most layers one
    precision, yet networks the delegate runs whole are the fast ones: on
    XNNPACK an int16x8 or int4 layer falls back to built-in kernels and splits
    the delegate's graph. So part of the first generation is seeded, in this
    order: the fastest int8 network (most pruned, shallowest, lowest
    resolution); the most accurate one (no pruning, deepest, highest
    resolution); an int8 network of middle size; the same with its first and
    last layers at float16 (the usual place for more precision); a float32
    network of middle size; then int8 at the other pruning levels. The first
    three span the latency range, so even a search stopped early has a front
    to show. Each prunes its
    groups unevenly around its level (one level up or down, seeded). At least
    two members of the first generation stay random.
    """
    import numpy as np

    from codesign.run.study import population_size

    space = cfg.space_spec
    choices = cfg.layer_choices()
    rng = np.random.default_rng(cfg.seed + 104729)
    ratios = sorted(space.prune_ratios)
    top = len(ratios) - 1
    mid = top // 2 if top > 1 else min(1, top)
    shallow = tuple(st.min_depth for st in space.stages)
    middle = tuple((st.min_depth + st.max_depth + 1) // 2 for st in space.stages)
    deep = tuple(st.max_depth for st in space.stages)
    res = sorted(space.resolutions)
    low, centre, high = res[0], res[(len(res) - 1) // 2], res[-1]
    plan = [("int8", top, shallow, low, False, "fastest"),
            ("int8", 0, deep, high, False, "largest"),
            ("int8", mid, middle, centre, False, "middle"),
            ("int8", mid, middle, high, True, "middle"),
            ("float32", mid, middle, high, False, "middle")]
    plan += [("int8", lv, middle, high, False, "middle") for lv in range(1, top)
             if lv != mid]
    names = space.layer_names()
    room = max(0, population_size(cfg.trials) - 2)
    for precision, level, depths, resolution, edges, size in plan[:room]:
        layer_prec = {n: precision for n in names}
        if edges:
            layer_prec[names[0]] = layer_prec[names[-1]] = "float16"
        if any(p not in choices[n] for n, p in layer_prec.items()):
            continue
        jitter = 0 if level in (0, top) and size != "middle" else 1
        prune = {
            g: ratios[int(np.clip(level + rng.integers(-jitter, jitter + 1), 0, top))]
            for g in space.group_sizes()
        }
        cand = Candidate.make(resolution, depths, prune, layer_prec)
        label = (f"{precision}{' + float16 edges' if edges else ''}, {size}, "
                 f"prune ~{ratios[level]}")
        study.enqueue_trial(params_of(cand), user_attrs={"anchor": label})


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


def _progress_note(trials: list[Any], directions: list[str]) -> str:
    front = front_trials(trials, directions)
    best = max((t.values[0] for t in trials if feasible(t)), default=None)
    best_text = f"{best:.3f}" if best is not None else "none yet"
    return f"front {len(front)}, best acc within budget {best_text}"




def _no_feasible(trials: list[Any], cfg: SearchConfig, run: RunDir, out: TextIO) -> None:
    """Say that no trial met the budgets, list the closest ones, and stop."""
    closest = sorted(trials, key=violation)[:5]
    lines = [
        f"  trial {t.number}: acc {t.user_attrs['val_accuracy']:.3f}, "
        f"{t.user_attrs['latency_ms']['median']:.4f} ms, {t.user_attrs['size_bytes'] / 1024:.1f} KB"
        f", over budget by {', '.join(f'{k} {v:.4g}' for k, v in t.constraints.items() if v > 0)}"
        for t in closest
    ]
    print(f"no trial of {len(trials)} meets the budgets {cfg.budgets()}; closest:", file=out)
    print("\n".join(lines), file=out)
    raise CodesignError(
        "no trial meets the budgets; the closest are listed above and kept in "
        f"{run.locator().masked()}; relax a budget or add --trials"
    )


def _run_trial(
    trial: optuna.Trial, worker: EvalChild, run: RunDir, space: Any,
    choices: dict[str, tuple[str, ...]], cfg: SearchConfig, screen: Screen | None,
    study: optuna.Study, proposer: Proposer | None,
) -> tuple[float, ...] | None:
    """Evaluate one trial; return its objective values, or None if it failed."""
    t0 = time.perf_counter()
    path = str(run.trial_model(trial.number))
    try:
        cand = suggest_candidate(trial, space, choices)
        trial.set_user_attr("candidate", cand.to_dict())
        timing = screen is None or cfg.latency == "measured"
        local = not cfg.profile_spec.remote
        # accuracy work keeps off the cores while another worker times
        with host_work(cfg.profile_spec.remote):
            m = Measurement.from_attrs(worker.call(
                "evaluate", candidate=cand.to_dict(), model_path=path,
                timing=timing and not local))
        if timing and local:  # timed alone: the child takes the device's lock exclusively
            t1 = time.perf_counter()
            m = m.timed(worker.call("time", model_path=path), time.perf_counter() - t1)
        if proposer is not None:
            trial.set_user_attr("accuracy_predicted", proposer.predictor.predict(cand))
        if screen is not None:
            predicted = screen.predict(cand)
            trial.set_user_attr("latency_predicted_ms", predicted)
            if not timing:
                m = _latency_by_prediction(worker, screen, cfg, study, m, predicted, path)
    except DeviceUnavailable:
        raise
    except (TrialFailure, CodesignError) as exc:
        trial.set_user_attr("fail_reason", str(exc)[:2000])
        return None
    m = replace(m, times={**m.times, "total": round(time.perf_counter() - t0, 4)})
    for key, value in m.to_attrs().items():
        trial.set_user_attr(key, value)
    for key, value in m.constraint_values(cfg.budgets()).items():
        trial.set_constraint(key, value)
    return m.objective_values(cfg.objectives)


def _latency_by_prediction(
    worker: EvalChild, screen: Screen, cfg: SearchConfig, study: optuna.Study,
    m: Measurement, predicted: float, path: str,
) -> Measurement:
    """Time the candidate if it could enter the front (hybrid), else keep the prediction."""
    if cfg.latency == "hybrid":
        known = {"accuracy": m.val_accuracy, "size": m.size_bytes / 1024}
        others = [t.values for t in complete_trials(study) if feasible(t)]
        directions = [DIRECTIONS[o] for o in cfg.objectives]
        budget = cfg.budgets().get("max_latency_ms")
        if screen.worth_timing(known, predicted, others, cfg.objectives, directions, budget):
            t0 = time.perf_counter()
            timed = worker.call("time", model_path=path)
            return m.timed({**timed, "source": "measured"}, time.perf_counter() - t0)
    return m.timed(predicted_latency(predicted))


def predicted_latency(predicted: float) -> dict[str, Any]:
    """A ``latency_ms`` record that holds a prediction, not a measurement."""
    return {"median": predicted, "p90": predicted, "mean": predicted, "std": 0.0,
            "min": predicted, "runs": 0, "warmup": 0, "peak_memory_mb": None,
            "source": "predicted"}


def _finalize_front(
    worker: EvalChild, cfg: SearchConfig, run: RunDir, front: list[Any], out: TextIO
) -> list[tuple[int, dict[str, Any], Path]]:
    """Fine-tune every Pareto candidate briefly (cached per trial) and re-measure it."""
    final = []
    tuned_dir = run.root / "finetune"
    bar = tqdm(total=len(front), desc="fine-tuning front", unit="model", file=out,
               disable=cfg.finetune_epochs <= 0)
    try:
        for t in front:
            attrs = {**Measurement.from_attrs(t.user_attrs).to_attrs(),
                     "candidate": t.user_attrs["candidate"]}
            attrs["search"] = brief(t.user_attrs)
            attrs["latency_predicted_ms"] = t.user_attrs.get("latency_predicted_ms")
            model = run.trial_model(t.number)
            if cfg.finetune_epochs > 0:
                record = tuned_dir / f"trial-{t.number}.json"
                path = tuned_dir / f"trial-{t.number}.tflite"
                res = _cached_finetune(worker, cfg, record, path, t.user_attrs["candidate"],
                                       out, t.user_attrs["val_accuracy"])
                if res is None:
                    attrs["finetune"] = {"error": "fine-tuning failed; search measurements kept"}
                elif res["finetune"].get("kept", True):
                    attrs.update(Measurement.from_attrs(res).to_attrs())
                    attrs["finetune"] = res["finetune"]
                    model = path
                else:
                    attrs["finetune"] = res["finetune"]
            if attrs["latency_ms"].get("source") == "predicted":
                attrs["latency_ms"] = retry_when_back(  # every exported point is measured
                    lambda m=model: worker.call("time", model_path=str(m)), cfg.profile_spec, out)
            final.append((t.number, attrs, model))
            bar.update(1)
    finally:
        bar.close()
    return final


def _cached_finetune(
    worker: EvalChild, cfg: SearchConfig, record: Path, path: Path, candidate: dict[str, Any],
    out: TextIO, search_val: float,
) -> dict[str, Any] | None:
    """Fine-tune a front candidate (cached); ``finetune.kept`` says if it beat the search's model.

    A brief fine-tuning can lower validation accuracy (seen on small supernets);
    the search's own model and measurements are kept then, so fine-tuning never
    makes a published point worse.
    """
    if record.is_file() and path.is_file():
        saved = json.loads(record.read_text())
        if saved.get("finetune", {}).get("epochs") == cfg.finetune_epochs:
            return saved
    try:
        res = retry_when_back(
            lambda: worker.call("finetune", candidate=candidate, model_path=str(path),
                                epochs=cfg.finetune_epochs, seed=cfg.seed),
            cfg.profile_spec, out)
    except TrialFailure:
        return None
    res["finetune"]["kept"] = res["val_accuracy"] >= search_val
    if not res["finetune"]["kept"]:
        res["finetune"]["note"] = (f"fine-tuning lowered validation accuracy to "
                                   f"{res['val_accuracy']:.4f}; the search's model is kept")
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(record)
    return res


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
            f"({s['rounds_retimed']} rounds, {s['runs_retimed']} runs) because the machine "
            f"was disturbed; {s['disturbed']} stayed disturbed after re-timing")


def _run_info(cfg: SearchConfig, completed: int, trials: list[Any]) -> dict[str, Any]:
    known = fidelity(cfg.profile_spec) if cfg.latency != "measured" else None
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
