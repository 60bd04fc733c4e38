"""The model-source seam of the evaluation child, and the one evaluation every source shares.

A :class:`ModelSource` turns a candidate into a tf_keras model with its weights
and says how it was made: the supernet source inherits weights and recalibrates
batch norm (:class:`codesign.child.builtin.BuiltinHandlers`); the HyperModel
source builds, trains and prunes (:class:`codesign.hyper.evaluate.HyperHandlers`).
Then :func:`evaluate` runs the same path for every source: convert with each
layer's precision, read the file back and check it, measure accuracy, write it.
Timing is separate (:mod:`codesign.child.timing`), so that it can hold the
device alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codesign.child.convert import Split, checked_tflite, measure_and_write
from codesign.hardware.devicelock import host_work
from codesign.hardware.profile import Profile


@dataclass
class Built:
    """A candidate's model, ready to convert, and how it was made.

    Attributes:
        model: The tf_keras model with its weights.
        precision: Precision per conv, depthwise and dense layer.
        calibration: Training images for quantization, at the model's resolution.
        splits: Validation and test images (at the model's resolution) and labels.
        layers: Per layer: name, kind, output channels and precision.
        made: How it was made (``params``; a source's own facts such as
            ``channels`` kept or ``training``).
    """

    model: Any
    precision: dict[str, str]
    calibration: np.ndarray
    splits: tuple[Split, Split]
    layers: list[dict[str, Any]]
    made: dict[str, Any] = field(default_factory=dict)


class ModelSource(ABC):
    """Turns a candidate (plain data from the search process) into a model with weights."""

    @abstractmethod
    def build(self, candidate: dict[str, Any], times: dict[str, float]) -> Built:
        """Build ``candidate``; record the seconds of each stage in ``times``.

        Raises:
            TrialFailure: If the candidate cannot be built.
            CodesignError: On a user error (the user's own code or settings).
        """


def evaluate(source: ModelSource, candidate: dict[str, Any], profile: Profile,
             model_path: Path) -> tuple[dict[str, Any], bytes]:
    """Build, convert, check and measure one candidate; write its file.

    Everything runs under the host's shared lock: no timing on this machine's
    device overlaps it.

    Returns:
        The measurement record without latency (``latency_ms`` None; see
        :class:`codesign.run.measurement.Measurement`) and the file's bytes.
    """
    times: dict[str, float] = {}
    with host_work():
        built = source.build(candidate, times)
        blob = checked_tflite(built.model, built.precision, built.calibration, profile, times)
        facts = measure_and_write(blob, profile, built.splits, model_path, times)
    return {**facts, "latency_ms": None, "layers": built.layers, **built.made,
            "times": times}, blob
