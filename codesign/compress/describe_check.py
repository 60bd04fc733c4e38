"""Random candidates of a trained model, converted for real and compared with their description.

Each candidate is pruned (:func:`codesign.hyper.prune.prune_model`), rebuilt at
its input resolution if it asks for another (:func:`codesign.compress.resolution.reinput`)
and converted with its precisions (:func:`codesign.tflite.convert.convert`),
as a trial of ``codesign compress`` is; its chain is built from the model's
description at its own resolution alone (:mod:`codesign.latency.graph_chain`)
and the two are compared per kind and precision (:mod:`codesign.latency.graph_check`).
Batch norm is not recalibrated (it changes no op). Runs in a child-side process
(TensorFlow); ``tools/check_description.py`` is its command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codesign.hyper.settings import DEFAULT_PRUNE_RATIOS
from codesign.latency.graph_chain import graph_steps, kept_from_ratios
from codesign.latency.graph_check import Row, compare, file_ops

KINDS = ("conv", "depthwise", "dense")


@dataclass
class CandidateCheck:
    """One candidate and how its description compares with its file.

    Attributes:
        prune: Prune ratio per prunable group.
        precision: Precision per layer.
        resolution: Input side.
        rows: The comparison per kind and precision.
        problems: Layers whose types in the file differ from their precision, and
            ops the chain cannot price.
    """

    prune: dict[str, float]
    precision: dict[str, str]
    resolution: int
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """Whether every row agrees."""
        return all(r.agrees for r in self.rows)


def random_candidate(description: dict[str, Any], rng: np.random.Generator,
                     precisions: Sequence[str], ratios: Sequence[float] = DEFAULT_PRUNE_RATIOS
                     ) -> tuple[dict[str, float], dict[str, str]]:
    """A prune ratio per prunable group and a precision per layer, drawn uniformly."""
    prune = {g["name"]: float(rng.choice(list(ratios)))
             for g in description["groups"] if g["prunable"]}
    precision = {layer["name"]: str(rng.choice(list(precisions)))
                 for layer in description["layers"]}
    return prune, precision


def check_candidate(model: Any, description: dict[str, Any], cand: CandidateCheck,
                    rng: np.random.Generator) -> CandidateCheck:
    """Prune and convert one candidate of ``model``; compare its file with its chain.

    Args:
        model: The trained tf_keras model.
        description: Its description (``channel_graph(model).describe()``).
        cand: The candidate (its rows and problems are filled in).
        rng: Draws the calibration images (their values do not change the ops).
    """
    from codesign.compress.resolution import reinput
    from codesign.hyper.graph import channel_graph
    from codesign.hyper.prune import prune_model
    from codesign.tflite.convert import convert
    from codesign.tflite.inspect import mismatches

    base = model
    if cand.resolution != int(model.input_shape[1]):
        try:
            base = reinput(model, cand.resolution)
        except ValueError as exc:  # e.g. a Flatten before a dense layer: fixed input size
            cand.problems.append(f"the model does not run at {cand.resolution}: "
                                 f"{str(exc).splitlines()[0][:160]}")
            return cand
    narrow, _ = prune_model(base, channel_graph(base), cand.prune)
    shape = (16, *narrow.input_shape[1:])
    blob = convert(narrow, cand.precision, rng.uniform(0.0, 1.0, shape).astype(np.float32))
    cand.problems = mismatches(blob, cand.precision)
    try:
        steps = graph_steps(description, kept_from_ratios(description, cand.prune),
                            cand.precision, cand.resolution)
    except ValueError as exc:  # an op the description cannot price: nothing to compare
        cand.problems.append(str(exc))
        return cand
    cand.rows = compare(steps, file_ops(blob))
    return cand


def check_model(model: Any, n: int, precisions: Sequence[str], seed: int = 0,
                resolutions: Sequence[int] = ()) -> list[CandidateCheck]:
    """``n`` random candidates of ``model``, each converted and compared.

    Args:
        model: The trained tf_keras model.
        n: How many candidates.
        precisions: Precisions to draw each layer's from.
        seed: Seeds the draws.
        resolutions: Input sides to draw from (none: the model's own).
    """
    from codesign.hyper.graph import channel_graph

    description = channel_graph(model).describe()
    rng = np.random.default_rng(seed)
    sides = list(resolutions) or [int(model.input_shape[1])]
    checks = []
    for _ in range(n):
        prune, precision = random_candidate(description, rng, precisions)
        cand = CandidateCheck(prune, precision, int(rng.choice(sides)))
        checks.append(check_candidate(model, description, cand, rng))
    return checks
