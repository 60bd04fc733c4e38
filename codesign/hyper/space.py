"""A HyperModel's search space in the search process: define-by-run through the child.

The user's ``build(hp)`` runs in the evaluation child; :class:`HyperModelSpace`
gets a callback into it and replays the build (:mod:`codesign.hyper.propose`),
asking the trial for each active hyperparameter, then asks for codesign's
per-layer genes of the model that was built (:mod:`codesign.hyper.suggest`).
Its candidates are :class:`~codesign.space.candidate.Candidate` with ``hp`` and
``hypermodel`` set.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from codesign.config import lookup_support
from codesign.errors import CodesignError
from codesign.hardware.profile import Profile
from codesign.hyper.propose import BuildStep, propose
from codesign.hyper.suggest import suggest_genes
from codesign.space.base import Space
from codesign.space.candidate import PRECISIONS, Candidate

GRAPHS_KEPT = 64  # descriptions of the last built models (a hybrid search prices from them)


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
        self._graphs: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def suggest(self, trial: Any) -> Candidate:
        """Replay the build to its end, then ask for the built model's genes.

        Returns:
            The candidate, with its ``hp``, ``hypermodel``, the ``answers`` the
            child rebuilds it with and the seconds the replay took (``build_s``).
        """
        t0 = time.perf_counter()
        answers, built = propose(trial, self.build_step)
        prune, precision = suggest_genes(trial, built["graph"], self.choices, self.prune_ratios)
        cand = Candidate.of_graph(built["input_shape"][0], prune, precision, hp=built["hp"],
                                  hypermodel=self.hypermodel, answers=answers,
                                  build_s=round(time.perf_counter() - t0, 4))
        self._graphs[_key(answers)] = built["graph"]
        while len(self._graphs) > GRAPHS_KEPT:
            self._graphs.popitem(last=False)
        return cand

    def graph_of(self, cand: Candidate) -> dict[str, Any]:
        """The description of the model ``cand`` was drawn from (one of the last ones suggested).

        Raises:
            KeyError: If it was not suggested by this space lately.
        """
        return self._graphs[_key(cand.answers_map)]


def _key(answers: Mapping[str, Any]) -> str:
    return json.dumps(dict(answers), sort_keys=True, default=str)


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
