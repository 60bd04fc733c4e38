"""The search job, written once for every space and model source.

Open the run and its study (the storage is chosen once per run and kept on
resume), record what a resumed run and a joining worker need, recover trials
that dead workers left, start local workers, let the plan
(:mod:`codesign.engine.plan`) prepare, run the loop
(:mod:`codesign.engine.trials`) and publish the front
(:mod:`codesign.engine.front`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import optuna

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.data import load_dataset
from codesign.engine.budget import SPARE, TimeBudget
from codesign.engine.front import FrontJob, Published, publish
from codesign.engine.plan import JobContext, SearchPlan, plan_of
from codesign.engine.shared_study import Coordinator, counts
from codesign.engine.trials import Session, run_trials
from codesign.engine.workers import LocalWorkers, choose_storage, join_locator, joined_config
from codesign.errors import CodesignError
from codesign.run.directory import RunDir
from codesign.run.storage import STORAGE_ENV, Locator
from codesign.run.study import make_sampler, open_study

JOIN_WAIT_S = 120.0  # a worker started before its search waits this long for the study

SearchResult = Published  # what a finished search produced


def run_search(plan: SearchPlan | SearchConfig, out: TextIO = sys.stdout) -> Published:
    """Run (or resume) a search and write the front into the run directory.

    Args:
        plan: The search (a :class:`SearchConfig` is the built-in space's).
        out: Where progress messages and the table go.

    Returns:
        The result.

    Raises:
        CodesignError: On a user error or when too many candidates fail.
    """
    if isinstance(plan, SearchConfig):
        from codesign.engine.builtin import BuiltinPlan

        plan = BuiltinPlan(plan)
    started = time.monotonic()
    cfg = plan.cfg
    run = RunDir(cfg.out)
    run.check_settings(plan.identity(), cfg.trials)
    if cfg.storage is not None:  # what reads the run in this process finds the password
        os.environ[STORAGE_ENV] = cfg.storage
    run.acquire()  # a dead owner's RUNNING trials are recovered below
    try:
        return _run_locked(plan, run, out, started)
    finally:
        run.release()


def _run_locked(plan: SearchPlan, run: RunDir, out: TextIO, started: float) -> Published:
    cfg = plan.cfg
    loc = choose_storage(run, cfg)
    study = open_study(loc, make_sampler(cfg.sampler, cfg.seed, cfg.trials), cfg.objectives)
    coord = Coordinator(run, loc, out)
    data = load_dataset(cfg.data, cfg.seed, cfg.val_data)
    data_info = plan.describe_data({"name": data.name, "seed": cfg.seed,
                                    "labels": list(data.labels),
                                    "preprocessing": data.preprocessing,
                                    "validation": data.validation})
    study.set_user_attr("settings", plan.identity())
    study.set_user_attr("data_info", data_info)
    study.set_user_attr("profile", cfg.profile_spec.to_dict())
    study.set_user_attr("config", plan.joinable())
    budget = TimeBudget(cfg.time_budget_min, started,
                        spare=SPARE if plan.tune_front and cfg.finetune_epochs > 0 else 0)
    deadline = budget.deadline
    study.set_user_attr("deadline", None if deadline is None else
                        time.time() + (deadline - time.monotonic()))
    if cfg.time_budget_min is not None:
        print(f"time budget: {cfg.time_budget_min:g} min for set-up and trials from now; then "
              f"the front is {'fine-tuned and ' if plan.tune_front else ''}written", file=out)
    with coord.study_lock("ask"):
        plan.start(study, out)
    recovered = coord.recover(study, all_dead=not loc.shared)
    if recovered:
        print(f"resuming: trials {recovered} were interrupted and are queued again", file=out)
    helpers = LocalWorkers(run, loc)
    try:
        helpers.start(cfg.workers - 1, out)
        log = str(run.root / "logs" / "worker.log")
        with EvalChild(timeout_s=cfg.timeout_s, log_path=log) as child:
            ctx = JobContext(child, run, study, coord, data, budget, out)
            prepared = plan.prepare(ctx)
            session = _session(plan, ctx, prepared)
            run_trials(session)
            helpers.wait(out)
            said = budget.summary(*session.front_and_complete())
            if said:
                print(said, file=out)
            return publish(FrontJob(  # the plan's settings: set-up may resolve a budget
                study=study, child=child, cfg=plan.cfg, run=run, loc=loc, out=out,
                data_info=data_info, run_info=plan.run_info, table=plan.table,
                tune_front=plan.tune_front, references=prepared.references,
                quality=prepared.quality,
                finetune=lambda c, p, e: plan.finetune(child, c, p, e),
                time_together=lambda paths: plan.time_together(child, paths),
                source=plan.source, source_ctx=plan.source_ctx))
    finally:
        helpers.stop()


def _session(plan: SearchPlan, ctx: JobContext, prepared: Any) -> Session:
    cfg = plan.cfg
    return Session(study=ctx.study, coord=ctx.coord, space=prepared.space,
                   evaluate=prepared.evaluate, profile=cfg.profile_spec, budget=ctx.budget,
                   objectives=cfg.objectives, trials=cfg.trials, out=ctx.out,
                   proposer=prepared.proposer, user_errors_stop=plan.user_errors_stop,
                   screen=prepared.screen)


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
    saved = study.user_attrs.get("config")
    plan = plan_of(saved, joined_config(saved, run.root, loc))
    cfg = plan.cfg
    run.check_settings(plan.identity(), cfg.trials)
    seed = cfg.seed + os.getpid()  # each worker samples its own candidates
    study.sampler = make_sampler(cfg.sampler, seed, cfg.trials)
    coord = Coordinator(run, loc, out)
    me = f"{coord.me['host']}:{coord.me['pid']}"
    print(f"worker {me} joins {loc.masked()}: {cfg.trials} trials asked", file=out, flush=True)
    data = load_dataset(cfg.data, cfg.seed, cfg.val_data)
    log = str(run.root / "logs" / f"worker-{coord.me['host']}-{coord.me['pid']}.log")
    with EvalChild(timeout_s=cfg.timeout_s, log_path=log) as child:
        ctx = JobContext(child, run, study, coord, data, _budget(study, cfg), out)
        session = _session(plan, ctx, plan.prepare(ctx))
        mine = run_trials(session)
    c = counts(study)
    print(f"worker {me}: completed {mine} trials; the study has {c.complete} of "
          f"{session.target()} ({c.failed} failed)", file=out, flush=True)
    return mine


def _join(loc: Locator, out: TextIO) -> optuna.Study:
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



def _budget(study: optuna.Study, cfg: SearchConfig) -> TimeBudget:
    """A joining worker's view of the search's time budget (its wall-clock deadline)."""
    wall = study.user_attrs.get("deadline")
    if wall is None or cfg.time_budget_min is None:
        return TimeBudget(None)
    deadline = time.monotonic() + (float(wall) - time.time())
    return TimeBudget(cfg.time_budget_min, deadline - 60.0 * cfg.time_budget_min,
                      spare=SPARE if cfg.finetune_epochs > 0 else 0)
