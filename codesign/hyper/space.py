"""A HyperModel's search space in the search process: define-by-run through the child.

The user's ``build(hp)`` runs in the evaluation child; :class:`HyperModelSpace`
gets a callback into it and replays the build (:mod:`codesign.hyper.propose`),
asking the trial for each active hyperparameter, then asks for codesign's
per-layer genes of the model that was built (:mod:`codesign.hyper.suggest`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codesign.config import lookup_support
from codesign.errors import CodesignError
from codesign.hardware.profile import Profile
from codesign.hyper.propose import BuildStep, propose
from codesign.hyper.suggest import suggest_genes
from codesign.space.base import Space
from codesign.space.candidate import PRECISIONS


@dataclass(frozen=True)
class HyperCandidate:
    """One HyperModel candidate: hyperparameter values and per-layer genes.

    Attributes:
        answers: The trial's ``hp/<name>`` values the child builds with.
        resolution: The model's input side.
        hp: The HyperModel's values by keras-tuner name.
        prune: Prune ratio per prunable channel group.
        precision: Precision per conv, depthwise and dense layer.
        hypermodel: Where the HyperModel lives (as the user wrote it).
        build_s: Seconds the replayed build took.
    """

    answers: dict[str, Any]
    resolution: int
    hp: dict[str, Any]
    prune: dict[str, float]
    precision: dict[str, str]
    hypermodel: str
    build_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The candidate as ``pareto.json`` and the trial record it."""
        return {"resolution": self.resolution, "hp": self.hp, "prune": self.prune,
                "precision": self.precision, "hypermodel": self.hypermodel}


class HyperModelSpace(Space):
    """The HyperModel's hyperparameters, then codesign's genes of each built model.

    Args:
        build_step: Builds in the child with the values given (see
            :func:`codesign.hyper.propose.propose`).
        choices: Precisions offered per layer kind (see :func:`layer_choices`).
        prune_ratios: Fractions of a channel group that may be removed.
        hypermodel: Where the HyperModel lives (as the user wrote it).
    """

    def __init__(self, build_step: BuildStep, choices: Mapping[str, tuple[str, ...]],
                 prune_ratios: Sequence[float], hypermodel: str) -> None:
        self.build_step = build_step
        self.choices = choices
        self.prune_ratios = prune_ratios
        self.hypermodel = hypermodel

    def suggest(self, trial: Any) -> HyperCandidate:
        """Replay the build to its end, then ask for the built model's genes."""
        t0 = time.perf_counter()
        answers, built = propose(trial, self.build_step)
        prune, precision = suggest_genes(trial, built["graph"], self.choices, self.prune_ratios)
        return HyperCandidate(answers, built["input_shape"][0], built["hp"], prune, precision,
                              self.hypermodel, round(time.perf_counter() - t0, 4))


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
