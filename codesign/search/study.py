"""Opening the study and repairing it after an interrupted run."""

from __future__ import annotations

import logging
import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import CodesignError

STUDY_NAME = "codesign"
DIRECTIONS = {"accuracy": "maximize", "latency": "minimize", "size": "minimize"}
INTERRUPTED = "interrupted"


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


def open_study(
    storage_url: str,
    sampler: optuna.samplers.BaseSampler,
    objectives: tuple[str, ...] = ("accuracy", "latency"),
) -> optuna.Study:
    """Create or load the run's study.

    Objectives: validation accuracy (up), latency median in ms (down) and,
    optionally, file size in KB (down).
    """
    optuna.logging.set_verbosity(logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url)
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        study_name=STUDY_NAME,
        directions=[DIRECTIONS[o] for o in objectives],
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental in Optuna, but stable since 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([_METRIC_NAMES[o] for o in objectives])
    return study


_METRIC_NAMES = {"accuracy": "val_accuracy", "latency": "latency_ms", "size": "size_kb"}


def load_study(storage_url: str) -> optuna.Study:
    """Load an existing study read-only (for export and reports).

    Raises:
        CodesignError: If there is no study there.
    """
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=storage_url)
    except KeyError:
        raise CodesignError(f"no codesign study in {storage_url}") from None


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Fail trials a dead process left RUNNING and queue their parameters again.

    Only call this while holding the run's lock (no live process owns them).

    Returns:
        Numbers of the trials that were failed.
    """
    storage = study._storage  # noqa: SLF001  (the public Study has no state setter)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "fail_reason", INTERRUPTED)  # noqa: SLF001
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001
        if t.params:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
        failed.append(t.number)
    return failed


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials in number order."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
