"""Latency by prediction: which candidates a hybrid search still times on the device.

A candidate is timed when, at its optimistic latency (the prediction less the
model's 95th-percentile error in its last check, at least 10 %), it would not
be dominated by a trial already in the study and could meet the latency
budget. Everything else keeps its predicted latency; it cannot enter the
front, so no exported point rests on a prediction.

Every model source plugs in here with its chain of kernels: the built-in
family's (:func:`builtin_chain`), or a described model's
(:func:`codesign.latency.trained.chain`: a trained model's candidates, and a
HyperModel's, each from the description of the model it built).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from codesign.latency.build import delegated
from codesign.latency.features import Kernel, features, kernels
from codesign.latency.model import LatencyModel
from codesign.report.pareto import feasible, pareto_indices
from codesign.run.measurement import Measurement
from codesign.run.study import DIRECTIONS, complete_trials
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec

DEFAULT_MARGIN = 0.15
Chain = Callable[[Candidate], list[Kernel]]


def builtin_chain(space: SpaceSpec, num_classes: int, channels: int) -> Chain:
    """The kernels of a built-in candidate (:func:`codesign.latency.features.kernels`)."""
    return lambda cand: kernels(space, cand, num_classes, channels)


class Screen:
    """Predicts candidates' latency and decides which ones to time.

    Args:
        model: The latency model (the profile's, or a trained model's on the profile).
        chain: A candidate's kernels, as the model prices them.
        profile: The profile (for its delegate).
        p95_error: The model's 95th-percentile relative error in its last check
            (None: :data:`DEFAULT_MARGIN`); the margin is at least 10 %.
    """

    def __init__(self, model: LatencyModel, chain: Chain, profile: Any,
                 p95_error: float | None = None) -> None:
        self.model = model
        self.chain = chain
        self.delegate = delegated(profile)
        self.margin = max(0.10, float(p95_error if p95_error is not None else DEFAULT_MARGIN))

    def predict(self, cand: Candidate) -> float:
        """Predicted median latency (ms)."""
        return self.model.predict(features(self.chain(cand), self.delegate))

    def worth_timing(
        self, values: dict[str, float], predicted_ms: float, others: Sequence[Sequence[float]],
        objectives: Sequence[str], directions: Sequence[str], max_latency_ms: float | None,
    ) -> bool:
        """Whether a candidate could enter the front once timed.

        Args:
            values: The candidate's known objective values (accuracy, size).
            predicted_ms: Its predicted latency.
            others: Objective values of the study's finished trials.
            objectives: Objective names in the study's order.
            directions: ``maximize`` / ``minimize`` per objective.
            max_latency_ms: The latency budget, if any.
        """
        optimistic = predicted_ms * (1.0 - self.margin)
        if max_latency_ms is not None and optimistic > max_latency_ms:
            return False
        mine = tuple(optimistic if o == "latency" else values[o] for o in objectives)
        front = pareto_indices([*others, mine], list(directions))
        return len(others) in front

    def hybrid(self, m: Measurement, predicted: float, study: optuna.Study, cfg: Any,
               time_it: Callable[[], dict[str, Any]]) -> Measurement:
        """Time an untimed measurement if it could enter the front, else give it the prediction.

        Args:
            m: The candidate's measurement, all but its latency.
            predicted: Its predicted latency (ms).
            study: The study (its finished, feasible trials are what it must beat).
            cfg: The search's settings (objectives, budgets).
            time_it: Times the candidate's file on the device; its ``latency_ms`` record.
        """
        known = dict(zip(cfg.objectives, m.timed({"median": 0.0}).objective_values(
            cfg.objectives), strict=True))  # all but latency are known before timing
        others = [t.values for t in complete_trials(study) if feasible(t)]
        directions = [DIRECTIONS[o] for o in cfg.objectives]
        budget = cfg.budgets().get("max_latency_ms")
        if self.worth_timing(known, predicted, others, cfg.objectives, directions, budget):
            t0 = time.perf_counter()
            timed = time_it()
            return m.timed({**timed, "source": "measured"}, time.perf_counter() - t0)
        return m.timed(predicted_latency(predicted))


def pricing(screen: Screen | None, trial: optuna.Trial, cand: Candidate, cfg: Any
            ) -> Callable[[Measurement, Callable[[], dict[str, Any]]], Measurement] | None:
    """A trial's price for :func:`codesign.engine.measured.measure` (None: no screen, timed).

    It records the prediction on the trial and lets :meth:`Screen.hybrid` decide.
    """
    if screen is None:
        return None

    def price(m: Measurement, time_it: Callable[[], dict[str, Any]]) -> Measurement:
        predicted = screen.predict(cand)
        trial.set_user_attr("latency_predicted_ms", predicted)
        return screen.hybrid(m, predicted, trial.study, cfg, time_it)

    return price


def predicted_latency(predicted: float) -> dict[str, Any]:
    """A ``latency_ms`` record that holds a prediction, not a measurement."""
    return {"median": predicted, "p90": predicted, "mean": predicted, "std": 0.0,
            "min": predicted, "runs": 0, "warmup": 0, "host_rss_growth_mb": None,
            "source": "predicted"}
