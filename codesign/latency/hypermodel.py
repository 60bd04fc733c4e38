"""Latency models of one HyperModel: its own candidates measured, their described ops fitted.

``codesign profile build PROFILE --hypermodel FILE.py:NAME --data DATA``
draws random candidates as a ``--hypermodel`` search asks for them: the
HyperModel's own hyperparameters, then a prune ratio per channel group and a
precision per layer of the model it built
(:class:`codesign.hyper.space.HyperModelSpace`, asked by a seeded
:class:`codesign.latency.sources.RandomTrial`). The child builds each with
fresh weights, prunes it and converts it with its precisions (quantized on
the data's images), and times it as a profile's build times its networks;
the profile's kind of model is fitted on the features of each candidate's
chain, read from the built model's description
(:func:`codesign.latency.trained.chain`). Training changes weights, not what
runs, so a search prices a trained candidate with it before timing it. The
drawn candidates (with their descriptions) are kept beside the model, since
drawing asks the child to build the HyperModel once per hyperparameter.
Search process: no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from codesign.errors import CodesignError, TrialFailure
from codesign.hardware.profile import Profile
from codesign.hyper.load import HyperSpec
from codesign.hyper.settings import DEFAULT_PRUNE_RATIOS, HyperSettings
from codesign.hyper.space import HyperModelSpace, layer_choices
from codesign.latency import build as latency
from codesign.latency import sources
from codesign.latency.model import LatencyModel, latency_dir
from codesign.latency.spaces import profile_key
from codesign.latency.trained import candidate_features
from codesign.run.files import write_atomic

CHECK_SEED = 4_000_037  # check candidates differ from every build candidate


@dataclass(frozen=True)
class HyperModelRef:
    """A user's HyperModel, as its latency model needs it.

    Attributes:
        spec: Where the HyperModel lives.
        data: The data it is searched on (its channels, classes and calibration images).
        ctx: What the child's ``hyper_*`` requests carry.
        shape: The data's images and classes (:func:`data_shape`): the HyperModel
            builds other networks for other data, so its latency model is keyed by it.
    """

    spec: HyperSpec
    data: str
    ctx: dict[str, Any]
    shape: str = ""

    @property
    def name(self) -> str:
        """The HyperModel as the user wrote it."""
        return self.spec.text


def key(spec: HyperSpec, shape: str) -> str:
    """The HyperModel's file contents and name and the data's shape, digested.

    A changed file, or data of other images or classes, gets a new model.
    """
    return hashlib.sha256(f"{spec.digest()} {spec.name} {shape}".encode()).hexdigest()[:16]


def data_shape(data: str, seed: int = 0) -> str:
    """``HxWxC:classes`` of the data's training images (what the HyperModel is built for)."""
    from codesign.data import load_dataset

    loaded = load_dataset(data, seed)
    h, w, c = loaded.x_train.shape[1:4]
    return f"{h}x{w}x{c}:{loaded.num_classes}"


def model_file(profile: Profile, spec: HyperSpec, shape: str) -> Path:
    """Where the latency model of ``spec`` on data of ``shape`` on ``profile`` is kept here."""
    return latency_dir() / f"{profile_key(profile)}.hypermodel-{key(spec, shape)}.json"


def reference(profile: Profile, spec: HyperSpec, data: str, seed: int = 0) -> HyperModelRef:
    """The HyperModel with what the child needs to build its candidates on ``data``."""
    return HyperModelRef(spec, data, {"spec": spec.to_dict(), "data": data, "seed": seed,
                                      "profile": profile.path,
                                      "train": HyperSettings().to_dict()},
                         data_shape(data, seed))


def path_of(profile: Profile, ref: HyperModelRef) -> Path:
    """Where the latency model of ``ref`` on ``profile`` is kept on this machine."""
    return model_file(profile, ref.spec, ref.shape)


def target(profile: Profile, ref: HyperModelRef) -> latency.Target:
    """How its candidates are measured: the child's ``source_measure_drawn``."""
    return latency.Target(path_of(profile, ref), "source_measure_drawn",
                          {"source": "hypermodel", "ctx": ref.ctx},
                          f"random candidates of {ref.name}")


def load(profile: Profile, ref: HyperModelRef) -> LatencyModel | None:
    """The latency model of the HyperModel on its data on ``profile`` here, if one was built."""
    return latency.load_model(profile, path_of(profile, ref))


def fidelity(profile: Profile, ref: HyperModelRef) -> latency.Fidelity | None:
    """What the last check (else the build's held-out figure) found of its latency model."""
    return sources.file_fidelity(profile, path_of(profile, ref))


def samples(profile: Profile, ref: HyperModelRef, n: int, seed: int,
            stream: TextIO = sys.stdout) -> list[dict[str, Any]]:
    """``n`` random candidates, each ``{"id", "candidate", "graph"}`` (reproducible, kept).

    Each is drawn as a search's trial is, but the child draws the
    HyperModel's own values during one build (``draw_seed``) rather than
    stopping at each (the candidate's ``candidate`` is its
    :meth:`~codesign.space.candidate.Candidate.request`); a draw whose build
    fails is skipped. The first ``n`` of a seed are always
    the same, so a kept longer list serves a shorter one.
    """
    kept = target(profile, ref).beside(f".samples-{seed}.json")
    if kept.is_file():
        old = json.loads(kept.read_text())
        if len(old) >= n:
            return list(old[:n])
    from codesign.child import EvalChild

    rng = np.random.default_rng(seed)
    choices = layer_choices(profile)
    out: list[dict[str, Any]] = []
    failed = 0
    print(f"drawing {n} random candidates of {ref.name} (the child builds each)", file=stream,
          flush=True)
    with EvalChild(log_path=str(latency_dir() / "logs" / "worker.log")) as child:
        space = HyperModelSpace(  # the child draws the hyperparameters: one build each
            lambda answers: child.call("hyper_build", ctx=ref.ctx, answers=answers,
                                       draw_seed=int(rng.integers(2**31))),
            choices, DEFAULT_PRUNE_RATIOS, ref.name)
        while len(out) < n:
            if failed > max(10, n):
                raise CodesignError(f"{ref.name}: {failed} of {failed + len(out)} random "
                                    "candidates failed to build; check the HyperModel with a "
                                    "--hypermodel search")
            try:
                cand = space.suggest(sources.draw(rng, choices))
            except TrialFailure:
                failed += 1
                continue
            digest = hashlib.sha256(f"{key(ref.spec, ref.shape)} {cand.to_json()}".encode()
                                    ).hexdigest()
            out.append({"id": f"h{digest[:20]}", "candidate": cand.request(),
                        "graph": space.graph_of(cand)})
    write_atomic(kept, json.dumps(out))
    return out


def sample_features(profile: Profile) -> sources.Features:
    """A drawn candidate's features: those of its chain, from its build's description."""
    delegate = latency.delegated(profile)
    return lambda s: candidate_features(s["graph"], s["candidate"], delegate)


def _flags(ref: HyperModelRef) -> str:
    """What names the HyperModel to ``codesign profile``."""
    return f"--hypermodel {ref.name} --data {ref.data}"


def build(profile: Profile, ref: HyperModelRef, n: int = 150, seed: int = 0,
          budget_min: float = 30.0, stream: TextIO = sys.stdout) -> LatencyModel:
    """Measure ``n`` random candidates of the HyperModel and fit its latency model.

    Raises:
        CodesignError: If fewer than :data:`codesign.latency.sources.MIN_MEASURED`
            candidates could be measured.
    """
    drawn = sources.Drawn(ref.name, samples(profile, ref, n, seed, stream),
                          sample_features(profile))
    return sources.fit(profile, target(profile, ref), drawn,
                       {"hypermodel": {"spec": ref.name, "file": ref.spec.file,
                                       "name": ref.spec.name, "key": key(ref.spec, ref.shape),
                                       "data": ref.data, "shape": ref.shape}},
                       seed, budget_min, stream)


def check(profile: Profile, ref: HyperModelRef, n: int = 50, seed: int = CHECK_SEED,
          stream: TextIO = sys.stdout) -> dict[str, Any]:
    """Time ``n`` fresh random candidates and compare them with the latency model.

    Raises:
        CodesignError: If the HyperModel has no latency model on this profile here.
    """
    model = load(profile, ref)
    todo = samples(profile, ref, n, seed, stream) if model is not None else []
    return sources.check(profile, model, target(profile, ref),
                         sources.Drawn(ref.name, todo, sample_features(profile)),
                         f"codesign profile build {profile.name} {_flags(ref)}", stream)


def search_mode(asked: str | None, profile: Profile, ref: HyperModelRef
                ) -> tuple[str, str | None]:
    """The latency mode of a ``--hypermodel`` search (see :func:`sources.search_mode`).

    Raises:
        CodesignError: On ``--latency hybrid`` without a checked latency model
            meeting its target, and on ``predicted``.
    """
    return sources.search_mode(asked, profile, path_of(profile, ref), ref.name, _flags(ref))
