"""The search-space seam: what turns an Optuna trial into a candidate.

A :class:`Space` lives in the search process and never imports TensorFlow. The
built-in family (:class:`codesign.space.suggest.FamilySpace`) suggests from its
own description; a HyperModel's space (:class:`codesign.hyper.space.HyperModelSpace`)
is define-by-run and gets a callback into the evaluation child, where the
user's ``build`` runs. The loop (:mod:`codesign.engine.trials`) suggests once per
trial, under the ask lock, and hands the candidate to the model source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from codesign.space.candidate import Candidate


class Space(ABC):
    """Turns a trial into a :class:`~codesign.space.candidate.Candidate` (every space's type)."""

    @abstractmethod
    def suggest(self, trial: Any) -> Candidate:
        """Ask ``trial`` for every parameter of one candidate and return it.

        Raises:
            TrialFailure: If this trial cannot yield a candidate (the trial fails).
            CodesignError: On a user error.
        """

