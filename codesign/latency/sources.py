"""Latency models of a model source's own candidates: drawn at random, measured, fitted, checked.

A trained model (:mod:`codesign.latency.trained`) and a HyperModel
(:mod:`codesign.latency.hypermodel`) are priced alike: random candidates drawn
through the source's own space (a seeded :class:`RandomTrial` stands in for an
optuna trial), each converted and timed by the child as a trial would be, and
the profile's kind of model fitted on the features of each candidate's chain
of kernels, read from the model's description before conversion. This module
holds what both share; each source says how its candidates are drawn,
described and converted. Search process: no TensorFlow.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from codesign.errors import CodesignError
from codesign.hardware.profile import Profile
from codesign.latency import build as latency
from codesign.latency.model import LatencyModel
from codesign.space.suggest import PRECISION_PREFIX

TARGET_WITHIN_10PCT = 0.90  # a search prices a source's candidates above this share
MIN_MEASURED = 10
# Building and converting one candidate in the child (one core). The example sources' builds
# of 150 candidates took 0.7-0.8 s (SmallCNN), 1.2 s (the ResNet-style .h5), 1.6 s (the
# MobileNetV2-style .keras) and 1.8-1.9 s (SmallResNet) a candidate in all, timing included;
# 2.5 s here had made the estimate 1.6-4x high (one figure cannot fit all: SmallCNN's
# 104 s is still said as 4.0 min).
CONVERT_S = 1.1

Features = Callable[[dict[str, Any]], dict[str, float]]


@dataclass(frozen=True)
class Drawn:
    """Random candidates of one source, and how its latency model reads them.

    Attributes:
        name: The source in a few words (``model.keras``).
        todo: The candidates (``{"id", "candidate", ...}``).
        features_of: A candidate's features, from its sample.
    """

    name: str
    todo: list[dict[str, Any]]
    features_of: Features


class RandomTrial:
    """Answers a space's suggestions at random (a seeded stand-in for an optuna trial).

    Args:
        rng: The draws.
        base: The precision most layers get (None: every layer's drawn alone).
        others: Layers drawn alone even so.
        p_other: The chance that any other layer is drawn alone too (for a space
            whose layers are not known before it is asked: a HyperModel's).
    """

    def __init__(self, rng: np.random.Generator, base: str | None = None,
                 others: frozenset[str] = frozenset(), p_other: float = 0.0) -> None:
        self.rng = rng
        self.base = base
        self.others = others
        self.p_other = p_other

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        """The base precision where it applies, else one of ``choices``, uniformly."""
        if (self.base in choices and name.startswith(PRECISION_PREFIX)
                and name[len(PRECISION_PREFIX):] not in self.others
                and not (self.p_other and self.rng.random() < self.p_other)):
            return self.base
        return choices[int(self.rng.integers(len(choices)))]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1,
                    log: bool = False) -> int:
        """An integer on ``low..high`` by ``step``: uniform, or uniform in its log."""
        if log:
            value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
            return int(min(high, low + step * round((value - low) / step)))
        return int(low + step * int(self.rng.integers((high - low) // step + 1)))

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None,
                      log: bool = False) -> float:
        """A float on ``[low, high]``: on the ``step`` grid, uniform, or uniform in its log."""
        if step:
            return float(low + step * int(self.rng.integers(int(round((high - low) / step)) + 1)))
        if log:
            return float(math.exp(self.rng.uniform(math.log(low), math.log(high))))
        return float(self.rng.uniform(low, high))


def draw(rng: np.random.Generator, choices: dict[str, Sequence[str]],
         layers: Sequence[str] | None = None) -> RandomTrial:
    """Half the candidates mix precisions layer by layer; half run one with a few others.

    As the built-in family's samples (:func:`codesign.latency.sampling.whole_networks`):
    a search's seeds and its fast candidates run most layers at one precision,
    which layer-by-layer mixes almost never give (the delegate runs them whole,
    with no conversions between layers). Without them, uniform float32
    candidates of the tests' trained model came out 12-26 % over their timings.

    Args:
        rng: The draws.
        choices: Precisions per layer kind.
        layers: The layers, when known before drawing (up to two are drawn
            alone); None: each layer is drawn alone with a chance of 10 %.
    """
    common = sorted(set.intersection(*(set(c) for c in choices.values())))
    if not common or layers == [] or rng.random() < 0.5:
        return RandomTrial(rng)
    base = common[int(rng.integers(len(common)))]
    if layers is None:
        return RandomTrial(rng, base, p_other=0.1)
    others = rng.choice(list(layers), size=min(len(layers), int(rng.integers(0, 3))),
                        replace=False)
    return RandomTrial(rng, base, frozenset(str(n) for n in others))


def expected(todo: list[dict[str, Any]], done_file: Path | None) -> str:
    """What measuring the candidates should take (conversions and two timing passes)."""
    from codesign.latency.measure import converted_path, read_records

    done = read_records(done_file) if done_file is not None else {}
    left = [s for s in todo if s["id"] not in done]
    fresh = sum(1 for s in left if not converted_path(s).is_file())
    seconds = fresh * CONVERT_S + len(left) * latency.TIME_S + (20.0 if left else 0.0)
    if not left:
        return "all measured already"
    return (f"{len(todo) - len(left)} measured already, {fresh} to convert: expected about "
            f"{seconds / 60:.1f} min on one core")


def fit(profile: Profile, tgt: latency.Target, drawn: Drawn, meta: dict[str, Any], seed: int,
        budget_min: float, stream: TextIO = sys.stdout) -> LatencyModel:
    """Measure the drawn candidates of ``tgt`` and fit its latency model on their features.

    Every candidate is a whole network, so the held-out figure is the
    five-fold one of :func:`codesign.latency.build.cross_validate` over all.
    What was measured is kept, so an interrupted build resumes.

    Args:
        profile: The profile.
        tgt: The model's file and the child request that measures its candidates.
        drawn: The candidates, and how the model reads them.
        meta: What the model's file records of its source.
        seed: The draws' seed (the cross-validation folds follow it).
        budget_min: Minutes of measuring at most.
        stream: Where progress goes.

    Returns:
        The saved model.

    Raises:
        CodesignError: If fewer than :data:`MIN_MEASURED` candidates could be measured.
    """
    t0 = time.perf_counter()
    name, todo = drawn.name, drawn.todo
    meas = tgt.beside(".measurements.jsonl")
    print(f"latency model of {name} on {profile.name}: {len(todo)} candidates to measure, "
          f"{expected(todo, meas)}", file=stream, flush=True)
    records, timing = latency.measure_networks(
        profile, todo, meas, f"measuring on {profile.name}", stream, budget_s=budget_min * 60,
        target=tgt)
    rows, lat = [], []
    for s in todo:
        rec = records.get(s["id"], {})
        if "median_ms" in rec:
            rows.append(drawn.features_of(s))
            lat.append(latency.quiet_ms(rec))
    if len(rows) < MIN_MEASURED:
        errors = sorted({r["error"][:160] for r in records.values() if "error" in r})
        raise CodesignError(f"only {len(rows)} candidates of {name} measured on "
                            f"{profile.name}{': ' + errors[0] if errors else ''}; rerun to "
                            "measure more")
    model = latency.fitted(profile, rows, lat, [1.0] * len(rows), [True] * len(rows), seed, {
        **meta,
        "networks": {"block": 0, "whole": len(rows)},
        "failed": sum(1 for r in records.values() if "error" in r),
        "reference_calibrated_ms": timing.get("reference_ms"),
        "timing": timing,
        "seconds": round(time.perf_counter() - t0, 1)})
    model.save(tgt.path)
    return model


def check(profile: Profile, model: LatencyModel | None, tgt: latency.Target, drawn: Drawn,
          build_command: str, stream: TextIO = sys.stdout) -> dict[str, Any]:
    """Time fresh candidates now and compare them with the latency model's predictions.

    Returns:
        The figures of :func:`codesign.latency.build.compare` (saved beside the model).

    Raises:
        CodesignError: If there is no latency model (naming ``build_command``).
    """
    if model is None:
        raise CodesignError(f"{drawn.name} has no latency model on {profile.name} here; run: "
                            f"{build_command}")
    print(f"checking the latency model of {drawn.name} on {profile.name}: {len(drawn.todo)} "
          f"candidates, {expected(drawn.todo, None)}", file=stream, flush=True)
    return latency.compare(profile, model, tgt, drawn.todo,
                           lambda s: model.predict(drawn.features_of(s)), stream)


def file_fidelity(profile: Profile, path: Path, fitted: LatencyModel | None = None
                  ) -> latency.Fidelity | None:
    """What the last check (else the build's held-out figure) found of the model at ``path``."""
    known = latency.fidelity(profile, fitted, path)
    return None if known is None else replace(known, target=TARGET_WITHIN_10PCT)


def search_mode(asked: str | None, profile: Profile, path: Path, name: str, flags: str
                ) -> tuple[str, str | None]:
    """The latency mode of a search of one source's candidates, and why when not the asked one.

    Hybrid needs the source's latency model on the profile whose last check
    found at least :data:`TARGET_WITHIN_10PCT` of its candidates within ±10 %;
    it is the default then. Not given otherwise: measured, said in a line.

    Args:
        asked: ``--latency`` (None: not given).
        profile: The profile.
        path: Where the source's latency model is kept.
        name: The source in a few words.
        flags: What names the source to ``codesign profile`` (``--model M --data D``).

    Raises:
        CodesignError: On ``--latency hybrid`` without such a model (one line,
            with the measured figure or the commands to run), and on ``predicted``.
    """
    if asked == "predicted":
        raise CodesignError("--latency predicted is for the built-in space: this search times "
                            "what could enter its front; use --latency hybrid or measured")
    if asked == "measured":
        return "measured", None
    model = latency.load_model(profile, path)
    known = file_fidelity(profile, path, model) if model is not None else None
    if known is not None and known.source == "check" and known.meets_target:
        return "hybrid", None
    check_cmd = f"codesign profile check {profile.name} {flags}"
    if model is None:
        why = (f"{name} has no latency model on {profile.name} here: run codesign profile "
               f"build {profile.name} {flags}, then {check_cmd}")
    elif known is None or known.source != "check":
        why = (f"the latency model of {name} on {profile.name} has no check since its build: "
               f"run {check_cmd}")
    else:
        why = (f"the latency model of {name} on {profile.name} had {known.within_10pct:.0%} of "
               f"{known.n} candidates within ±10 % in its last check, below the "
               f"{TARGET_WITHIN_10PCT:.0%} hybrid needs")
    if asked == "hybrid":
        raise CodesignError(f"--latency hybrid refused: {why}; or use --latency measured")
    return "measured", (f"latency: measured, every candidate timed ({why})"
                        if model is not None else None)
