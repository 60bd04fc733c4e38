"""Latency models of one trained model: its own candidates measured, its described ops fitted.

``codesign profile build PROFILE --model PATH --data DATA`` draws random
candidates of the model as its search asks for them (a prune ratio per channel
group from the search's defaults, a precision per layer from the profile's
choices: :class:`codesign.compress.space.TrainedSpace`, asked by a seeded
draw instead of an optuna trial; half of them at one precision, see
:func:`_draw`), has the evaluation child build and convert
each as a trial does (pruned, batch norm recalibrated, quantized on the
data's images) and time it as a profile's build times its networks
(:func:`codesign.latency.measure.measure_samples`), then fits the profile's
kind of model (:func:`codesign.latency.build.fitted`) on the features of each
candidate's chain, read from the model's description alone
(:func:`codesign.latency.graph_chain.graph_kernels`). So a search prices a
candidate before it is converted. The model is kept under the profile's key
and the model file's fingerprint; ``check`` times fresh candidates (another
seed) against it. Search process: no TensorFlow.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from codesign.compress.space import TrainedSpace
from codesign.data import data_fingerprint
from codesign.errors import CodesignError
from codesign.hardware.profile import Profile
from codesign.hyper.settings import DEFAULT_PRUNE_RATIOS
from codesign.hyper.space import layer_choices
from codesign.latency import build as latency
from codesign.latency.features import Kernel, features
from codesign.latency.graph_chain import graph_kernels, kept_from_ratios
from codesign.latency.model import LatencyModel, latency_dir
from codesign.space.suggest import PRECISION_PREFIX

TARGET_WITHIN_10PCT = 0.90  # a search prices a trained model's candidates above this share
CHECK_SEED = 3_000_017  # check candidates differ from every build candidate
CONVERT_S = 2.5  # building and converting one candidate in the child, here (one core)
MIN_MEASURED = 10


@dataclass(frozen=True)
class TrainedModel:
    """A user's trained model, as its latency model needs it.

    Attributes:
        path: The model's file (resolved).
        ctx: What the child's ``trained_*`` requests carry (model, data, profile...).
        facts: The child's check of the model (its description under ``graph``).
    """

    path: str
    ctx: dict[str, Any]
    facts: dict[str, Any]

    @property
    def description(self) -> dict[str, Any]:
        """The model's description (groups, layers and ops)."""
        return dict(self.facts["graph"])


def fingerprint(model: str | Path) -> str:
    """The digest of the model file's bytes (and name), as a trained-model search keys it."""
    return data_fingerprint(str(model)).rsplit("sha256:", 1)[-1]


def model_file(profile: Profile, model: str | Path) -> Path:
    """Where the latency model of ``model`` on ``profile`` is kept on this machine."""
    return latency_dir() / f"{latency.profile_key(profile)}.model-{fingerprint(model)}.json"


def target(profile: Profile, trained: TrainedModel) -> latency.Target:
    """How the model's candidates are measured: the child's ``trained_latency_measure``."""
    return latency.Target(model_file(profile, trained.path), "trained_latency_measure",
                          {"ctx": trained.ctx}, f"random candidates of {Path(trained.path).name}")


def load(profile: Profile, model: str | Path) -> LatencyModel | None:
    """The latency model of ``model`` on ``profile`` here, if one was built for its settings."""
    return latency.load_model(profile, model_file(profile, model))


def fidelity(profile: Profile, model: str | Path) -> latency.Fidelity | None:
    """What the last check (else the build's held-out figure) found of the model's latency model."""
    return file_fidelity(profile, model_file(profile, model))


def file_fidelity(profile: Profile, path: Path, fitted: LatencyModel | None = None
                  ) -> latency.Fidelity | None:
    """:func:`fidelity` of the latency model kept at ``path`` (``fitted``: already loaded)."""
    known = latency.fidelity(profile, fitted, path)
    return None if known is None else replace(known, target=TARGET_WITHIN_10PCT)


def open_model(profile: Profile, model: str | Path, data: str, seed: int = 0) -> TrainedModel:
    """Check ``model`` against ``data`` in a child, as a ``--model`` search does, and describe it.

    Raises:
        CodesignError: If the model is missing, not one codesign can compress, or
            does not fit the data.
    """
    from codesign.child import EvalChild

    path = Path(model)
    if not path.exists():
        raise CodesignError(f"--model {model}: no such file or directory: give a .keras file, "
                            "an .h5 file or a SavedModel directory")
    ctx = {"model": str(path.resolve()), "data": data, "seed": seed, "val_data": None,
           "profile": profile.path, "input": [None, None], "criterion": "bn",
           "search_resolution": False}
    with EvalChild(log_path=str(latency_dir() / "logs" / "worker.log")) as child:
        facts = child.call("trained_check", ctx=ctx)
    if not facts["graph"].get("ops"):
        raise CodesignError(f"{path.name}: its description lists no ops, so no latency model "
                            "can price it")
    return TrainedModel(str(path.resolve()), ctx, facts)


class _Draw:
    """Answers the search's suggestions at random (a seeded stand-in for an optuna trial).

    Args:
        rng: The draws.
        base: The precision most layers get (None: every layer's drawn alone).
        others: Layers drawn alone even so.
    """

    def __init__(self, rng: np.random.Generator, base: str | None = None,
                 others: frozenset[str] = frozenset()) -> None:
        self.rng = rng
        self.base = base
        self.others = others

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        """The base precision where it applies, else one of ``choices``, uniformly."""
        if (self.base in choices and name.startswith(PRECISION_PREFIX)
                and name[len(PRECISION_PREFIX):] not in self.others):
            return self.base
        return choices[int(self.rng.integers(len(choices)))]


def _draw(rng: np.random.Generator, layers: list[str], choices: Mapping[str, Sequence[str]]
          ) -> _Draw:
    """Half the candidates mix precisions layer by layer; half run one with up to two others.

    As the built-in family's samples (:func:`codesign.latency.sampling.whole_networks`):
    a search's seeds and its fast candidates run most layers at one precision,
    which layer-by-layer mixes almost never give (the delegate runs them whole,
    with no conversions between layers). Without them, uniform float32
    candidates of the tests' model came out 12-26 % over their timings.
    """
    common = sorted(set.intersection(*(set(c) for c in choices.values())))
    if not common or not layers or rng.random() < 0.5:
        return _Draw(rng)
    base = common[int(rng.integers(len(common)))]
    others = rng.choice(layers, size=min(len(layers), int(rng.integers(0, 3))), replace=False)
    return _Draw(rng, base, frozenset(str(n) for n in others))


def samples(profile: Profile, trained: TrainedModel, n: int, seed: int,
            prune_ratios: Sequence[float] = DEFAULT_PRUNE_RATIOS) -> list[dict[str, Any]]:
    """``n`` random candidates of the model, each ``{"id", "candidate"}`` (reproducible)."""
    f = trained.facts
    choices = layer_choices(profile)
    space = TrainedSpace(f["graph"], int(f["input_shape"][0]), choices, prune_ratios,
                         Path(trained.path).name)
    layers = [layer["name"] for layer in f["graph"]["layers"]]
    rng = np.random.default_rng(seed)
    key = fingerprint(trained.path)
    out = []
    for _ in range(n):
        cand = space.suggest(_draw(rng, layers, choices))
        digest = hashlib.sha256(f"{key} {cand.to_json()}".encode()).hexdigest()[:20]
        out.append({"id": f"m{digest}", "candidate": cand.to_dict()})
    return out


def chain(description: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[Kernel]:
    """The kernels of a candidate (``Candidate.to_dict()``) of a described model."""
    return graph_kernels(description, kept_from_ratios(description, candidate["prune"]),
                         candidate["precision"], int(candidate["resolution"]))


def candidate_features(description: Mapping[str, Any], candidate: Mapping[str, Any],
                       delegate: tuple[str, ...]) -> dict[str, float]:
    """What the latency model reads of a candidate: the features of its chain."""
    return features(chain(description, candidate), delegate)


def build(profile: Profile, trained: TrainedModel, n: int = 150, seed: int = 0,
          budget_min: float = 30.0, stream: TextIO = sys.stdout) -> LatencyModel:
    """Measure ``n`` random candidates of the model and fit its latency model on ``profile``.

    Every candidate is a whole network, so the held-out figure is the
    five-fold one of :func:`codesign.latency.build.cross_validate` over all.
    The default of 150: on the MobileNetV2-style model of the tests (18
    layers at five precisions each), five-fold error over the first 50, 80,
    105 and 130 measured candidates put 72, 78, 83 and 90 % within ±10 %.
    An interrupted or smaller build is resumed: the first candidates of a
    seed are always the same.

    Returns:
        The saved model.

    Raises:
        CodesignError: If fewer than :data:`MIN_MEASURED` candidates could be measured.
    """
    t0 = time.perf_counter()
    todo = samples(profile, trained, n, seed)
    tgt = target(profile, trained)
    meas = tgt.beside(".measurements.jsonl")
    print(f"latency model of {Path(trained.path).name} on {profile.name}: {len(todo)} "
          f"candidates to measure, {_expected(todo, meas)}", file=stream, flush=True)
    records, timing = latency.measure_networks(
        profile, todo, meas, f"measuring on {profile.name}", stream, budget_s=budget_min * 60,
        target=tgt)
    delegate = latency.delegated(profile)
    rows, lat = [], []
    for s in todo:
        rec = records.get(s["id"], {})
        if "median_ms" in rec:
            rows.append(candidate_features(trained.description, s["candidate"], delegate))
            lat.append(float(rec.get("quiet_ms", rec["median_ms"])))
    if len(rows) < MIN_MEASURED:
        errors = sorted({r["error"][:160] for r in records.values() if "error" in r})
        raise CodesignError(f"only {len(rows)} candidates of {Path(trained.path).name} measured "
                            f"on {profile.name}{': ' + errors[0] if errors else ''}; rerun to "
                            "measure more")
    model = latency.fitted(profile, rows, lat, [1.0] * len(rows), [True] * len(rows), seed, {
        "model": {"path": trained.path, "fingerprint": fingerprint(trained.path)},
        "networks": {"block": 0, "whole": len(rows)},
        "failed": sum(1 for r in records.values() if "error" in r),
        "reference_calibrated_ms": timing.get("reference_ms"),
        "timing": timing,
        "seconds": round(time.perf_counter() - t0, 1),
    })
    model.save(tgt.path)
    return model


def check(profile: Profile, trained: TrainedModel, n: int = 50, seed: int = CHECK_SEED,
          stream: TextIO = sys.stdout) -> dict[str, Any]:
    """Time ``n`` fresh random candidates of the model and compare them with its latency model.

    Returns:
        The figures of :func:`codesign.latency.build.compare` (saved beside the model).

    Raises:
        CodesignError: If the model has no latency model on this profile here.
    """
    model = load(profile, trained.path)
    if model is None:
        raise CodesignError(
            f"{Path(trained.path).name} has no latency model on {profile.name} here; run: "
            f"codesign profile build {profile.name} --model {trained.path} --data "
            f"{trained.ctx['data']}")
    todo = samples(profile, trained, n, seed)
    delegate = latency.delegated(profile)
    print(f"checking the latency model of {Path(trained.path).name} on {profile.name}: "
          f"{len(todo)} candidates, {_expected(todo, None)}", file=stream, flush=True)
    return latency.compare(
        profile, model, target(profile, trained), todo,
        lambda s: model.predict(candidate_features(trained.description, s["candidate"],
                                                   delegate)), stream)


def _expected(todo: list[dict[str, Any]], done_file: Path | None) -> str:
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


def search_mode(asked: str | None, profile: Profile, model: str | Path, data: str
                ) -> tuple[str, str | None]:
    """The latency mode of a ``--model`` search, and a line saying why when not the asked one.

    Hybrid needs a latency model of this model on this profile whose last
    check found at least :data:`TARGET_WITHIN_10PCT` of its candidates within
    ±10 %; it is the default then. Not given otherwise: measured, said in a line.

    Raises:
        CodesignError: On ``--latency hybrid`` without such a model (one line,
            with the measured figure or the commands to run), and on ``predicted``.
    """
    if asked == "predicted":
        raise CodesignError("--latency predicted is for the built-in space: a --model search "
                            "times what could enter its front; use --latency hybrid or measured")
    if asked == "measured":
        return "measured", None
    name = Path(model).name
    known = fidelity(profile, model)
    if known is not None and known.source == "check" and known.meets_target:
        return "hybrid", None
    commands = (f"codesign profile build {profile.name} --model {model} --data {data}, then "
                f"codesign profile check {profile.name} --model {model} --data {data}")
    if load(profile, model) is None:
        why = f"{name} has no latency model on {profile.name} here: run {commands}"
    elif known is None or known.source != "check":
        why = (f"the latency model of {name} on {profile.name} has no check since its build: "
               f"run codesign profile check {profile.name} --model {model} --data {data}")
    else:
        why = (f"the latency model of {name} on {profile.name} had {known.within_10pct:.0%} of "
               f"{known.n} candidates within ±10 % in its last check, below the "
               f"{TARGET_WITHIN_10PCT:.0%} hybrid needs")
    if asked == "hybrid":
        raise CodesignError(f"--latency hybrid refused: {why}; or use --latency measured")
    return "measured", f"latency: measured, every candidate timed ({why})" if load(
        profile, model) is not None else None
