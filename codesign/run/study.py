"""Opening the study: sampler, storage, objectives."""

from __future__ import annotations

import logging
import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import CodesignError
from codesign.run.retry import retrying
from codesign.run.storage import STUDY_NAME, Locator, build_storage, parse_locator

__all__ = ["STUDY_NAME", "DIRECTIONS", "open_study", "load_study", "complete_trials",
           "make_sampler", "population_size"]

DIRECTIONS = {"accuracy": "maximize", "latency": "minimize", "size": "minimize",
              "ram": "minimize", "flash": "minimize"}


def population_size(trials: int) -> int:
    """NSGA-II population sized to the budget: about four generations, 4 to 50."""
    return max(4, min(50, trials // 4))


def make_sampler(name: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """Return the Optuna sampler called ``name``, seeded (always chosen explicitly).

    Constraints set on trials (``trial.set_constraint``) are honoured by all three.

    Raises:
        CodesignError: For an unknown sampler.
    """
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size(trials), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=population_size(trials)
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise CodesignError(f"unknown sampler {name!r}; use nsga2, tpe or random")


def join_generation(study: optuna.Study, trial: optuna.Trial) -> None:
    """Count an enqueued trial (a seed, a retry) in a genetic sampler's current generation.

    Optuna's genetic samplers (NSGA-II) number a trial's generation when they
    sample its parameters. A trial whose every parameter was enqueued is never
    sampled, so it would belong to no generation and never be a parent: the
    seeds would not breed (Optuna 5.0). Call right after ``study.ask()``.
    """
    sampler = study.sampler
    if not isinstance(sampler, optuna.samplers.BaseGASampler):
        return
    frozen = study.get_trials(deepcopy=False)[trial.number]
    if "fixed_params" in frozen.system_attrs:
        sampler.get_trial_generation(study, frozen)


def open_study(
    loc: Locator,
    sampler: optuna.samplers.BaseSampler,
    objectives: tuple[str, ...] = ("accuracy", "latency"),
    create: bool = True,
) -> optuna.Study:
    """Create or load the run's study.

    Objectives: validation accuracy (up) and, down, some of the latency median
    in ms, the file size in KB (``size``, or ``flash``) and the tensor arena in KB
    (``ram``). A server study records heartbeats of
    running trials (see :mod:`codesign.engine.shared_study`).

    Args:
        loc: Where the study lives.
        sampler: The sampler of this process.
        objectives: The run's objectives.
        create: Create the study if it does not exist (else it must).

    Raises:
        CodesignError: If ``create`` is False and there is no such study.
    """
    optuna.logging.set_verbosity(logging.WARNING)
    storage = build_storage(loc, heartbeat=loc.kind == "server")
    where = loc.masked()
    if not create:
        try:
            return retrying(lambda: optuna.load_study(study_name=loc.study, storage=storage,
                                                      sampler=sampler), where)
        except KeyError:
            raise CodesignError(
                f"no study {loc.study} in {where}; start it with codesign search first"
            ) from None
    study = retrying(lambda: optuna.create_study(
        storage=storage,
        sampler=sampler,
        study_name=loc.study,
        directions=[DIRECTIONS[o] for o in objectives],
        load_if_exists=True,
    ), where)
    if list(study.directions) != [_DIRECTION_ENUM[DIRECTIONS[o]] for o in objectives]:
        raise CodesignError(
            f"study {loc.study} in {where} has other objectives; use another --study"
        )
    with warnings.catch_warnings():  # experimental in Optuna, but stable since 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([_METRIC_NAMES[o] for o in objectives])
    return study


_METRIC_NAMES = {"accuracy": "val_accuracy", "latency": "latency_ms", "size": "size_kb",
                 "ram": "ram_kb", "flash": "flash_kb"}
_DIRECTION_ENUM = {"maximize": optuna.study.StudyDirection.MAXIMIZE,
                   "minimize": optuna.study.StudyDirection.MINIMIZE}


def load_study(storage_url: str) -> optuna.Study:
    """Load an existing study read-only (for export and reports).

    Args:
        storage_url: A locator (``RunDir.storage_url``; a plain SQLAlchemy URL works).

    Raises:
        CodesignError: If there is no study there.
    """
    optuna.logging.set_verbosity(logging.WARNING)
    loc = parse_locator(storage_url)
    try:
        return retrying(lambda: optuna.load_study(study_name=loc.study,
                                                  storage=build_storage(loc)), loc.masked())
    except KeyError:
        raise CodesignError(f"no codesign study in {loc.masked()}") from None


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials in number order."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
