"""What differs between searches: a :class:`SearchPlan` per kind of search space and model source.

The job (:mod:`codesign.engine.job`), the loop (:mod:`codesign.engine.trials`) and
the front (:mod:`codesign.engine.front`) are written once; a plan supplies the
rest: the settings a resumed run must match, what a joining worker needs, the
set-up stages that run before the trials, the :class:`~codesign.space.base.Space`
and the evaluation of one trial, and how the front is shown. The built-in
family's plan is :class:`codesign.engine.builtin.BuiltinPlan`; a HyperModel's is
:class:`codesign.hyper.search.HyperPlan`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import optuna

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.data import Dataset
from codesign.engine.budget import TimeBudget
from codesign.engine.shared_study import Coordinator
from codesign.engine.trials import Evaluate
from codesign.run.directory import RunDir
from codesign.space.base import Space


@dataclass
class JobContext:
    """One worker's view of the run while it prepares.

    Attributes:
        child: The evaluation child.
        run: The run directory.
        study: The study.
        coord: This worker's locks on the study.
        data: The data set.
        budget: The time budget.
        out: Where progress goes.
    """

    child: EvalChild
    run: RunDir
    study: optuna.Study
    coord: Coordinator
    data: Dataset
    budget: TimeBudget
    out: TextIO


@dataclass
class Prepared:
    """What a plan's set-up hands the loop and the front.

    Attributes:
        space: Suggests candidates.
        evaluate: Measures one trial's candidate.
        proposer: Queues predicted candidates (or None).
        references: Reference networks for ``pareto.json``.
        quality: The supernet quality report.
        screen: Says why a candidate cannot meet a budget before it is built (the
            loop gives it up unevaluated), or None when it may; None: no screen.
    """

    space: Space
    evaluate: Evaluate
    proposer: Any = None
    references: list[dict[str, Any]] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    screen: Callable[[Any], str | None] | None = None


class SearchPlan(ABC):
    """The part of a search that depends on its space and model source.

    Attributes:
        cfg: The settings every search has (data, profile, trials, objectives,
            budgets, storage, workers, run directory).
        source: The model source's name in the child (see
            :data:`codesign.child.source.SOURCES`).
        tune_front: Fine-tune the front before publishing it (its candidates
            inherited their weights).
        user_errors_stop: A user error in one evaluation stops the search (the
            user's own code runs in the child).
    """

    cfg: SearchConfig
    source: str = "supernet"
    tune_front: bool = True
    user_errors_stop: bool = False

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must match."""

    @abstractmethod
    def joinable(self) -> dict[str, Any]:
        """What a joining worker rebuilds this plan from (JSON; see :func:`plan_of`)."""

    def start(self, study: optuna.Study, out: TextIO) -> None:  # noqa: B027
        """Once per study, before any trial: seed its first trials, say what runs."""

    @abstractmethod
    def prepare(self, ctx: JobContext) -> Prepared:
        """Set-up before the trials (every worker; the first makes what is shared).

        A plan may replace ``self.cfg`` here with settings it resolved (a budget
        relative to a measured reference); the front applies those.
        """

    def finetune(self, child: EvalChild, candidate: dict[str, Any], model_path: str,
                 epochs: int) -> dict[str, Any]:
        """Fine-tune a front candidate in the child; its measurement and ``finetune`` record."""
        return child.call("finetune", candidate=candidate, model_path=model_path, epochs=epochs,
                          seed=self.cfg.seed)

    def time_together(self, child: EvalChild, model_paths: list[str]
                      ) -> list[dict[str, Any] | str]:
        """Time written front files in the child as one batch; a record or failure, each."""
        return child.call("source_time_together", source=self.source, ctx=self.source_ctx(),
                          model_paths=model_paths)

    def source_ctx(self) -> dict[str, Any]:
        """What the model source's child requests carry (known once :meth:`prepare` ran)."""
        return {}

    def describe_data(self, info: dict[str, Any]) -> dict[str, Any]:
        """The data's description in manifests and ``pareto.json`` (a source may add to it)."""
        return info

    @abstractmethod
    def run_info(self, trials: list[Any]) -> dict[str, Any]:
        """What ``pareto.json`` records of the run (``run``)."""

    @abstractmethod
    def table(self, doc: dict[str, Any]) -> str:
        """The published front as a terminal table."""


def plan_of(saved: Any, cfg: SearchConfig) -> SearchPlan:
    """The plan a joining worker runs, from the study's saved settings.

    Args:
        saved: The study's ``config`` user attribute.
        cfg: The common settings rebuilt from it (validated here).
    """
    if isinstance(saved, dict) and saved.get("trained") is not None:
        from codesign.compress.search import CompressPlan

        return CompressPlan.joined(saved, cfg)
    if isinstance(saved, dict) and saved.get("hypermodel") is not None:
        from codesign.hyper.search import HyperPlan

        return HyperPlan.joined(saved, cfg)
    from codesign.engine.builtin import BuiltinPlan

    return BuiltinPlan(cfg)
