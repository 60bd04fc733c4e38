"""Define-by-run across two processes: the child builds, the search process suggests.

``build(hp)`` runs in the evaluation child (it imports TensorFlow); Optuna's
trial lives in the search process. The child builds with the values known so
far; at the first hyperparameter it has no value for, it stops and describes
it. The search process asks the trial for it and the child builds again from
the start, until ``build`` returns. A build is cheap next to training, it is
deterministic given the values, and no state survives a crash of the child, so
a restarted child simply continues. Inactive conditional branches never ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codesign.errors import TrialFailure
from codesign.hyper.suggest import HP_PREFIX, suggest_hp

MAX_HYPERPARAMETERS = 500

BuildStep = Callable[[dict[str, Any]], dict[str, Any]]


def propose(trial: Any, build_step: BuildStep) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drive one trial's build to the end and return ``(answers, the child's final reply)``.

    Args:
        trial: An ``optuna.Trial``.
        build_step: Builds with the given answers (``hp/<name> -> value``) and
            returns ``{"need": spec}`` for a missing value or the build's
            description (``{"graph": ..., "hp": ...}``, with every value it
            used under ``answers``).

    Raises:
        TrialFailure: If the build fails, or asks for too many values.
    """
    answers: dict[str, Any] = {}
    for _ in range(MAX_HYPERPARAMETERS + 1):
        reply = build_step(dict(answers))
        need = reply.get("need")
        if need is None:  # the child may have drawn values itself (see do_hyper_build)
            return dict(reply.get("answers") or answers), reply
        key = HP_PREFIX + str(need["name"])
        if key in answers:  # the same name asked again: the child's answer was not used
            raise TrialFailure(f"hyperparameter {need['name']!r} was asked for twice")
        answers[key] = suggest_hp(trial, need)
    raise TrialFailure(f"build asked for more than {MAX_HYPERPARAMETERS} hyperparameters")
