"""Latency by prediction: which candidates a hybrid search still times on the device.

A candidate is timed when, at its optimistic latency (the prediction less the
model's 95th-percentile error in its last check, at least 10 %), it would not
be dominated by a trial already in the study and could meet the latency
budget. Everything else keeps its predicted latency; it cannot enter the
front, so no exported point rests on a prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codesign.latency.build import delegated
from codesign.latency.features import features, kernels
from codesign.latency.model import LatencyModel
from codesign.report.pareto import pareto_indices
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec

DEFAULT_MARGIN = 0.15


class Screen:
    """Predicts candidates' latency and decides which ones to time.

    Args:
        model: The profile's latency model.
        space: The search space.
        num_classes: Classifier outputs.
        channels: Input image channels.
        profile: The profile (for its delegate).
        p95_error: The model's 95th-percentile relative error in its last check
            (None: :data:`DEFAULT_MARGIN`); the margin is at least 10 %.
    """

    def __init__(self, model: LatencyModel, space: SpaceSpec, num_classes: int,
                 channels: int, profile: Any, p95_error: float | None = None) -> None:
        self.model = model
        self.space = space
        self.num_classes = num_classes
        self.channels = channels
        self.delegate = delegated(profile)
        self.margin = max(0.10, float(p95_error if p95_error is not None else DEFAULT_MARGIN))

    def predict(self, cand: Candidate) -> float:
        """Predicted median latency (ms)."""
        chain = kernels(self.space, cand, self.num_classes, self.channels)
        return self.model.predict(features(chain, self.delegate))

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
