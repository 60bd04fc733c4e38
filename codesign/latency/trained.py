"""Latency models of one trained model: its own candidates measured, its described ops fitted.

``codesign profile build PROFILE --model PATH --data DATA`` draws random
candidates of the model as its search asks for them (a prune ratio per channel
group from the search's defaults, a precision per layer from the profile's
choices: :class:`codesign.compress.space.TrainedSpace`, asked by a seeded
draw instead of an optuna trial; half of them at one precision, see
:func:`codesign.latency.sources.draw`), has the evaluation child build and convert
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from codesign.latency import sources
from codesign.latency.features import Kernel, features
from codesign.latency.graph_chain import graph_kernels, kept_from_ratios
from codesign.latency.model import LatencyModel, latency_dir
from codesign.latency.spaces import profile_key

CHECK_SEED = 3_000_017  # check candidates differ from every build candidate


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
    return latency_dir() / f"{profile_key(profile)}.model-{fingerprint(model)}.json"


def target(profile: Profile, trained: TrainedModel) -> latency.Target:
    """How the model's candidates are measured: the child's ``source_measure_drawn``."""
    return latency.Target(model_file(profile, trained.path), "source_measure_drawn",
                          {"source": "trained", "ctx": trained.ctx},
                          f"random candidates of {Path(trained.path).name}")


def load(profile: Profile, model: str | Path) -> LatencyModel | None:
    """The latency model of ``model`` on ``profile`` here, if one was built for its settings."""
    return latency.load_model(profile, model_file(profile, model))


def fidelity(profile: Profile, model: str | Path) -> latency.Fidelity | None:
    """What the last check (else the build's held-out figure) found of the model's latency model."""
    return sources.file_fidelity(profile, model_file(profile, model))


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
        cand = space.suggest(sources.draw(rng, choices, layers))
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

    The default of 150: on the MobileNetV2-style model of the tests (18
    layers at five precisions each), five-fold error over the first 50, 80,
    105 and 130 measured candidates put 72, 78, 83 and 90 % within ±10 %.
    An interrupted or smaller build is resumed: the first candidates of a
    seed are always the same (see :func:`codesign.latency.sources.fit`).

    Raises:
        CodesignError: If fewer than :data:`codesign.latency.sources.MIN_MEASURED`
            candidates could be measured.
    """
    return sources.fit(
        profile, target(profile, trained), _drawn(profile, trained, n, seed),
        {"model": {"path": trained.path, "fingerprint": fingerprint(trained.path)}}, seed,
        budget_min, stream)


def check(profile: Profile, trained: TrainedModel, n: int = 50, seed: int = CHECK_SEED,
          stream: TextIO = sys.stdout) -> dict[str, Any]:
    """Time ``n`` fresh random candidates of the model and compare them with its latency model.

    Returns:
        The figures of :func:`codesign.latency.build.compare` (saved beside the model).

    Raises:
        CodesignError: If the model has no latency model on this profile here.
    """
    return sources.check(
        profile, load(profile, trained.path), target(profile, trained),
        _drawn(profile, trained, n, seed),
        f"codesign profile build {profile.name} {_flags(trained.path, trained.ctx['data'])}",
        stream)


def _drawn(profile: Profile, trained: TrainedModel, n: int, seed: int) -> sources.Drawn:
    """``n`` random candidates of the model, priced from its description."""
    delegate = latency.delegated(profile)
    return sources.Drawn(
        Path(trained.path).name, samples(profile, trained, n, seed),
        lambda s: candidate_features(trained.description, s["candidate"], delegate))


def _flags(model: str | Path, data: str) -> str:
    """What names the model to ``codesign profile``."""
    return f"--model {model} --data {data}"


def search_mode(asked: str | None, profile: Profile, model: str | Path, data: str
                ) -> tuple[str, str | None]:
    """The latency mode of a ``--model`` search (:func:`codesign.latency.sources.search_mode`).

    Raises:
        CodesignError: On ``--latency hybrid`` without a checked latency model
            meeting its target, and on ``predicted``.
    """
    return sources.search_mode(asked, profile, model_file(profile, model), Path(model).name,
                               _flags(model, data))
