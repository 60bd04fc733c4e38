"""The one place that asks an Optuna trial for values.

Parameter names are stable and named by layer: ``resolution``,
``stageN_depth``, ``prune/<group>`` (a group is named after the layers it
prunes, e.g. ``prune/s2_project`` for every projection of stage 2),
``precision/<layer>`` and, when the space offers more than one depthwise
kernel, ``kernel/<block>``. Every per-layer parameter of the maximal network is
suggested in every trial (NSGA-II samples conditional parameters
independently); a shallower candidate ignores those of blocks it lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codesign.errors import CodesignError
from codesign.space.base import Space
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec

PRUNE_PREFIX = "prune/"
PRECISION_PREFIX = "precision/"
KERNEL_PREFIX = "kernel/"


def suggest_candidate(
    trial: Any, space: SpaceSpec, precisions: Mapping[str, tuple[str, ...]] | None = None
) -> Candidate:
    """Ask ``trial`` for every parameter of ``space`` and return the candidate.

    Args:
        trial: An ``optuna.Trial`` (anything with ``suggest_int`` and
            ``suggest_categorical``).
        space: The search space.
        precisions: Precisions offered to each layer (what the profile's
            runtime can run); default: the space's for every layer.

    Returns:
        The proposed candidate.
    """
    precisions = precisions or {n: space.precisions for n in space.layer_names()}
    resolution = trial.suggest_categorical("resolution", list(space.resolutions))
    depths = tuple(
        trial.suggest_int(f"stage{s}_depth", st.min_depth, st.max_depth)
        for s, st in enumerate(space.stages, start=1)
    )
    prune = {
        g: float(trial.suggest_categorical(PRUNE_PREFIX + g, list(space.prune_ratios)))
        for g in space.group_sizes()
    }
    precision = {
        n: str(trial.suggest_categorical(PRECISION_PREFIX + n, list(precisions[n])))
        for n in space.layer_names()
    }
    kernel = space.kernel_genes({
        bp.name: int(trial.suggest_categorical(KERNEL_PREFIX + bp.name, list(space.kernels)))
        for bp in space.blocks()
    }) if space.elastic_kernel else None
    cand = Candidate.make(resolution, depths, prune, precision, kernel)
    space.check(cand)
    return cand


class FamilySpace(Space):
    """The built-in network family as a :class:`~codesign.space.base.Space`.

    Args:
        spec: The family's description.
        choices: Precisions offered to each layer (what the profile's runtime runs).
    """

    def __init__(self, spec: SpaceSpec, choices: Mapping[str, tuple[str, ...]]) -> None:
        self.spec = spec
        self.choices = choices

    def suggest(self, trial: Any) -> Candidate:
        """Ask ``trial`` for a candidate of the family (see :func:`suggest_candidate`)."""
        return suggest_candidate(trial, self.spec, self.choices)


def candidate_from_params(params: Mapping[str, Any], space: SpaceSpec) -> Candidate:
    """Decode a trial's parameter dict back into a candidate.

    Raises:
        CodesignError: If a parameter is missing or out of the space.
    """
    try:
        cand = Candidate.make(
            params["resolution"],
            [params[f"stage{s}_depth"] for s in range(1, len(space.stages) + 1)],
            {g: params[PRUNE_PREFIX + g] for g in space.group_sizes()},
            {n: params[PRECISION_PREFIX + n] for n in space.layer_names()},
            {bp.name: params[KERNEL_PREFIX + bp.name] for bp in space.blocks()}
            if space.elastic_kernel else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodesignError(f"cannot decode a candidate from the parameters: {exc!r}") from None
    space.check(cand)
    return cand


def params_of(cand: Candidate) -> dict[str, Any]:
    """The trial parameters that propose ``cand`` (for ``study.enqueue_trial``)."""
    params: dict[str, Any] = {"resolution": cand.resolution}
    params.update({f"stage{s}_depth": d for s, d in enumerate(cand.depths, start=1)})
    params.update({PRUNE_PREFIX + g: r for g, r in cand.prune})
    params.update({PRECISION_PREFIX + n: p for n, p in cand.precision})
    params.update({KERNEL_PREFIX + b: k for b, k in cand.kernel or ()})
    return params
