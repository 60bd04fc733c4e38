"""The model-source seam of the evaluation child, and the one evaluation every source shares.

A :class:`ModelSource` turns a candidate into a tf_keras model with its weights
and says how it was made: the supernet source inherits weights and recalibrates
batch norm (:class:`codesign.child.builtin.BuiltinHandlers`); the HyperModel
source builds, trains and prunes (:class:`codesign.hyper.evaluate.HyperHandlers`);
the trained-model source prunes the user's model
(:class:`codesign.compress.source.TrainedHandlers`). The child finds them by
name in :data:`SOURCES` (imported by name when it starts, so the generic child
imports no feature package), and :class:`SourceRequests` answers the two
requests every source shares: ``source_evaluate`` runs :func:`evaluate`, the
same path for every source (convert with each layer's precision, read the file
back and check it, measure accuracy, write it); ``source_time`` times the file
apart (:mod:`codesign.child.timing`), so that it can hold the device alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codesign.child.convert import Split, checked_tflite, measure_and_write
from codesign.errors import TrialFailure
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


# The model sources by name: the module and class of each (``do_<request>`` methods for
# their own requests). A new source is one more entry.
SOURCES = {
    "supernet": "codesign.child.builtin:BuiltinHandlers",
    "hypermodel": "codesign.hyper.evaluate:HyperHandlers",
    "trained": "codesign.compress.source:TrainedHandlers",
}


class ModelSource(ABC):
    """Turns a candidate (plain data from the search process) into a model with weights.

    Attributes:
        progress: Sends a progress record to the search process.
    """

    progress: Callable[[dict[str, Any]], None]

    @abstractmethod
    def prepare(self, ctx: dict[str, Any]) -> Profile:
        """Set up for a run's context (what it does not hold yet); return the profile.

        Args:
            ctx: What every request of the source carries (model, data, seed,
                profile...), so a child restarted after a crash needs no set-up.
        """

    @abstractmethod
    def time(self, ctx: dict[str, Any], model_path: str) -> dict[str, Any]:
        """Latency figures of a written candidate on the profile's device (exclusive use)."""

    def time_together(self, ctx: dict[str, Any], model_paths: list[str]
                      ) -> list[dict[str, Any] | str]:
        """Latency figures of several written files, or why one failed (default: in turn).

        A source that can time them as one batch (rounds interleaved, so that
        their order holds while the machine drifts) overrides this.
        """
        got: list[dict[str, Any] | str] = []
        for path in model_paths:
            try:
                got.append(self.time(ctx, path))
            except TrialFailure as exc:
                got.append(str(exc))
        return got

    def measure_drawn(self, ctx: dict[str, Any], samples: list[dict[str, Any]], out: str,
                      repeats: int = 1, budget_s: float | None = None) -> dict[str, Any]:
        """Convert drawn candidates and time them as a latency-model build does.

        Each sample is converted once by :meth:`convert_drawn` and timed by
        :func:`codesign.latency.measure.measure_samples` (its batches, the
        reference network, two passes), with progress.

        Returns:
            ``{"records", "timing"}`` (see :func:`~codesign.latency.measure.measure_samples`).
        """
        from codesign.latency.measure import measure_samples

        profile = self.prepare(ctx)
        return measure_samples(
            samples, profile, Path(out),
            lambda done, total: self.progress({"stage": "latency", "done": done,
                                               "total": total}),
            repeats, budget_s, convert=self.convert_drawn)

    def convert_drawn(self, sample: dict[str, Any]) -> Path:
        """A drawn candidate's ``.tflite`` in the latency cache, converted once.

        Raises:
            TrialFailure: For a source without latency models of its own candidates.
        """
        raise TrialFailure(f"{type(self).__name__} draws no candidates of its own to time")

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


class SourceRequests:
    """The requests every model source answers alike, the source named in the request.

    Args:
        sources: The child's model sources by name (see :data:`SOURCES`).
    """

    def __init__(self, sources: Mapping[str, ModelSource]) -> None:
        self.sources = sources

    def _source(self, name: str) -> ModelSource:
        source = self.sources.get(name)
        if source is None:
            raise TrialFailure(f"unknown model source {name!r}; known: {sorted(self.sources)}")
        return source

    def do_source_evaluate(self, source: str, ctx: dict[str, Any], candidate: dict[str, Any],
                           model_path: str) -> dict[str, Any]:
        """Build, convert, check and measure ``candidate`` (:func:`evaluate`); write its file."""
        src = self._source(source)
        return evaluate(src, candidate, src.prepare(ctx), Path(model_path))[0]

    def do_source_time(self, source: str, ctx: dict[str, Any], model_path: str
                       ) -> dict[str, Any]:
        """Latency figures of a written candidate file (see :meth:`ModelSource.time`)."""
        return self._source(source).time(ctx, model_path)

    def do_source_time_together(self, source: str, ctx: dict[str, Any], model_paths: list[str]
                                ) -> list[dict[str, Any] | str]:
        """Latency figures of several written files timed together, or why one failed."""
        return self._source(source).time_together(ctx, model_paths)

    def do_source_measure_drawn(self, source: str, ctx: dict[str, Any],
                                samples: list[dict[str, Any]], out: str, repeats: int = 1,
                                budget_s: float | None = None) -> dict[str, Any]:
        """Convert and time a source's drawn candidates (see :meth:`ModelSource.measure_drawn`)."""
        return self._source(source).measure_drawn(ctx, samples, out, repeats, budget_s)
