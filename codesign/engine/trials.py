"""The one trial loop: ask, suggest, evaluate, tell, for every search space and model source.

It is the only module that calls ``study.ask`` and ``study.tell``. Under the
ask lock (:mod:`codesign.engine.shared_study`) a worker counts COMPLETE and
RUNNING trials and asks only while they are fewer than the trials wanted, so
the study ends with exactly that many; the candidate is suggested there too, so
a candidate that a finished or running trial has already is given up
(PRUNED, ``duplicate_of``) instead of evaluated twice. A device that drops out
fails its trial, queues it again and is waited for; a trial given up while it
ran (its worker seemed dead) drops its result; an interrupted trial is queued
again. The time budget decides when to stop starting trials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from tqdm import tqdm

from codesign.engine.budget import TimeBudget
from codesign.engine.device import wait_for_device
from codesign.engine.shared_study import Coordinator, counts, wait_a_moment
from codesign.errors import CodesignError, DeviceUnavailable, TrialFailure
from codesign.hardware.profile import Profile
from codesign.report.pareto import feasible, front_trials
from codesign.run.measurement import Measurement, fail_reason
from codesign.run.retry import retrying
from codesign.run.study import DIRECTIONS, complete_trials, join_generation
from codesign.space.base import Space
from codesign.space.candidate import Candidate

MAX_DUPLICATES = 20  # proposals in a row that repeat a candidate before one is run anyway
MAX_SKIPS = 50  # proposals in a row a screen gives up before one is measured anyway

# Evaluates an asked trial's candidate; returns its objective values (the trial's user
# attributes and constraints set) or raises TrialFailure. The bar shows its progress.
Evaluate = Callable[[optuna.Trial, Candidate, tqdm], tuple[float, ...]]


@dataclass
class Session:
    """What the loop works with: one worker's study, space, evaluation and limits.

    Attributes:
        study: The study (on its shared storage).
        coord: Locks and trial ownership of this worker.
        space: Turns a trial into a candidate.
        evaluate: Measures a candidate (see :data:`Evaluate`).
        profile: The hardware profile (its device is waited for when it drops out).
        budget: The time budget.
        objectives: The study's objectives, in order.
        trials: COMPLETE trials wanted (a shared study's saved count wins).
        out: Where progress goes.
        proposer: Queues predicted candidates and learns from results (or None).
        user_errors_stop: A user error (:class:`CodesignError`) in an evaluation
            stops the search (a source running the user's code) instead of failing
            only its trial.
        screen: Says why a candidate cannot meet a budget (it is given up
            unevaluated: PRUNED, ``skipped``), or None; None: every candidate runs.
    """

    study: optuna.Study
    coord: Coordinator
    space: Space
    evaluate: Evaluate
    profile: Profile
    budget: TimeBudget
    objectives: tuple[str, ...]
    trials: int
    out: TextIO
    proposer: Any = None
    user_errors_stop: bool = False
    screen: Callable[[Candidate], str | None] | None = None

    @property
    def directions(self) -> list[str]:
        """Optimisation direction of each objective."""
        return [DIRECTIONS[o] for o in self.objectives]

    def target(self) -> int:
        """Trials wanted: the search's latest count (it can grow while workers run)."""
        if not self.coord.loc.shared:
            return self.trials
        saved = self.study.user_attrs.get("config") or {}
        return int(saved.get("trials", self.trials))

    def front_and_complete(self) -> tuple[int, int]:
        """Points on the front (within budget) and COMPLETE trials."""
        trials = complete_trials(self.study)
        return len(front_trials(trials, self.directions)), len(trials)


def run_trials(s: Session) -> int:
    """Run trials until the study has the count asked; return how many this worker completed.

    Raises:
        CodesignError: When failures outnumber ``2 x trials``, or on a user error
            of a source whose user errors stop the search.
    """
    study, coord = s.study, s.coord
    where = coord.loc.masked()
    c = retrying(lambda: counts(study), where)
    if c.complete >= s.target():
        return 0
    bar = tqdm(total=s.target(), initial=c.complete, desc="trials", unit="trial", file=s.out)
    mine = repeats = skips = skipped = 0
    try:
        while True:
            if coord.loc.shared:
                coord.recover(study)
            with coord.study_lock("ask"):
                step = _ask(s, repeats, skips)
            if step.stop:
                break
            if step.trial is None:
                if step.duplicate:
                    repeats += 1
                elif step.skipped:
                    skips, skipped = skips + 1, skipped + 1
                else:  # the last trials run elsewhere; one may fail and need a successor
                    wait_a_moment()
                continue
            repeats = skips = 0
            try:
                done = _attempt(s, step.trial, step.candidate, bar)
            finally:
                coord.release()
            if done:
                mine += 1
                bar.total = s.target()
                bar.update(max(0, len(complete_trials(study)) - bar.n))
                bar.set_postfix_str(progress_note(complete_trials(study), s.directions))
    finally:
        bar.close()
        if skipped:
            print(f"skipped {skipped} candidates before building them: {SKIP_WHY}", file=s.out)
    return mine


SKIP_WHY = ("their estimated tensor arena is over --max-ram-kb (see the skipped attribute of "
            "the PRUNED trials)")


@dataclass(frozen=True)
class _Step:
    """What one turn of the loop does: stop, wait, ask again after a duplicate, or run."""

    stop: bool = False
    duplicate: bool = False
    skipped: bool = False
    trial: optuna.Trial | None = None
    candidate: Candidate | Exception | None = None  # an exception: the trial fails with it


def _ask(s: Session, repeats: int, skips: int = 0) -> _Step:
    """Under the ask lock: the next trial and its candidate, or why there is none."""
    study = s.study
    target = s.target()
    c = counts(study)
    if c.complete >= target:
        return _Step(stop=True)
    if s.budget.spent() and not s.budget.may_start(*s.front_and_complete()):
        return _Step(stop=True)
    if c.complete + c.failed >= 2 * target + 2:
        raise CodesignError(
            f"{c.failed} of {c.complete + c.failed} candidates failed, more than --trials "
            f"allows; the completed ones are kept in {s.coord.loc.masked()}; see their "
            f"fail_reason (the last: {_last_fail_reason(study)})"
        )
    if c.complete + c.running >= target:
        return _Step()
    if s.proposer is not None:
        s.proposer.refill(target - c.complete)
    trial = study.ask()
    join_generation(study, trial)
    s.coord.claim(study, trial)
    try:
        candidate = s.space.suggest(trial)
    except (TrialFailure, CodesignError) as exc:
        return _Step(trial=trial, candidate=exc)
    duplicate = duplicate_of(study, trial)
    if duplicate is not None and repeats < MAX_DUPLICATES:
        trial.set_user_attr("duplicate_of", duplicate)
        study.tell(trial, state=TrialState.PRUNED)
        s.coord.release()
        return _Step(duplicate=True)
    why = s.screen(candidate) if s.screen is not None and skips < MAX_SKIPS else None
    if why is not None:  # cannot meet a budget: given up before any work
        trial.set_user_attr("skipped", why)
        study.tell(trial, state=TrialState.PRUNED)
        s.coord.release()
        return _Step(skipped=True)
    return _Step(trial=trial, candidate=candidate)


def duplicate_of(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of a finished or running trial with this trial's parameters, if any.

    The candidate is suggested under the ask lock, so two workers whose samplers
    propose the same candidate never both evaluate it.
    """
    params = trial.params
    for other in study.get_trials(deepcopy=False,
                                  states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number != trial.number and other.params == params:
            return other.number
    return None


def _attempt(s: Session, trial: optuna.Trial, candidate: Candidate | Exception | None,
             bar: tqdm) -> bool:
    """Evaluate one asked trial and tell the study; True if it completed."""
    study = s.study
    try:
        if isinstance(candidate, Exception):
            raise candidate
        values = s.evaluate(trial, candidate, bar)
    except DeviceUnavailable as exc:
        # fail this trial with the reason, queue it again, wait for the device
        _fail(study, trial, f"device unavailable: {exc}")
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        wait_for_device(s.profile, str(exc), s.out)
        return False
    except KeyboardInterrupt:
        try:
            _fail(study, trial, "interrupted")
            if trial.params:
                study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        except UpdateFinishedTrialError:
            pass  # another worker failed and queued it already
        raise
    except UpdateFinishedTrialError:
        _given_up(trial, s.out)
        return False
    except CodesignError as exc:
        _fail(study, trial, str(exc))
        if s.user_errors_stop:  # the user's code or settings: every trial would fail
            raise
        return False
    except TrialFailure as exc:
        _fail(study, trial, str(exc))
        return False
    study.tell(trial, values, skip_if_finished=True)
    state = study._storage.get_trial(trial._trial_id).state  # noqa: SLF001
    if state != TrialState.COMPLETE:
        _given_up(trial, s.out)
        return False
    if s.proposer is not None:
        s.proposer.learn(trial)
    return True


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    Measurement.failure(reason).record(trial)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def _given_up(trial: optuna.Trial, out: TextIO) -> None:
    print(f"\ntrial {trial.number} was given up while it ran (no heartbeat reached the "
          "database); its retry runs it again", file=out)


def _last_fail_reason(study: optuna.Study) -> str:
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return (fail_reason(failed[-1].user_attrs) or "unknown") if failed else "none"


def progress_note(trials: list[Any], directions: list[str]) -> str:
    """The progress bar's note: the front's size and the best accuracy within budget."""
    front = front_trials(trials, directions)
    best = max((t.values[0] for t in trials if feasible(t)), default=None)
    best_text = f"{best:.3f}" if best is not None else "none yet"
    return f"front {len(front)}, best acc within budget {best_text}"
