"""The one place that asks an Optuna trial for values.

Parameter names are stable (``resolution``, ``width``, ``precision``,
``stageN_depth``): later runs, the report and optuna-dashboard read them.
"""

from __future__ import annotations

from typing import Any

from codesign.errors import CodesignError
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec


def suggest_candidate(trial: Any, space: SpaceSpec) -> Candidate:
    """Ask ``trial`` for every parameter of ``space`` and return the candidate.

    Args:
        trial: An ``optuna.Trial`` (anything with ``suggest_int`` and
            ``suggest_categorical``).
        space: The search space.

    Returns:
        The proposed candidate.
    """
    resolution = trial.suggest_categorical("resolution", list(space.resolutions))
    depths = tuple(
        trial.suggest_int(f"stage{s}_depth", st.min_depth, st.max_depth)
        for s, st in enumerate(space.stages, start=1)
    )
    width = trial.suggest_categorical("width", list(space.widths))
    precision = trial.suggest_categorical("precision", list(space.precisions))
    cand = Candidate(
        resolution=int(resolution), depths=depths, width=float(width), precision=str(precision)
    )
    space.check(cand)
    return cand


def candidate_from_params(params: dict[str, Any], space: SpaceSpec) -> Candidate:
    """Decode a trial's parameter dict back into a candidate.

    Raises:
        CodesignError: If a parameter is missing or out of the space.
    """
    try:
        cand = Candidate(
            resolution=int(params["resolution"]),
            depths=tuple(
                int(params[f"stage{s}_depth"]) for s in range(1, len(space.stages) + 1)
            ),
            width=float(params["width"]),
            precision=str(params["precision"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodesignError(f"cannot decode candidate from {params!r}: {exc}") from None
    space.check(cand)
    return cand
