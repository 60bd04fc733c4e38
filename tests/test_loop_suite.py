"""The loop's guarantees, run against every search space (as Optuna's suites run every sampler).

Each test drives the one loop (:func:`codesign.engine.trials.run_trials`) with a
real space: the built-in family, a HyperModel whose ``build`` runs in a
real evaluation child (the define-by-run callback), and a trained model's genes
(the channel groups of a real tf_keras graph). The evaluation stands at
the loop's seam (:data:`codesign.engine.trials.Evaluate`): it records what it
was given, so each test can say exactly which candidates were evaluated.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from codesign.child import EvalChild
from codesign.engine.budget import TimeBudget
from codesign.engine.shared_study import Coordinator
from codesign.engine.trials import Session, run_trials
from codesign.errors import DeviceUnavailable
from codesign.hardware.profile import Profile, load_profile
from codesign.hyper.load import parse_spec
from codesign.hyper.settings import HyperSettings
from codesign.hyper.space import HyperModelSpace, layer_choices
from codesign.run.directory import RunDir
from codesign.run.storage import Locator
from codesign.run.study import open_study
from codesign.space import get_space
from codesign.space.base import Space
from codesign.space.suggest import FamilySpace
from tests.device import LoopbackBoard

SOURCES = ("builtin", "hypermodel", "trained")
BUILD = '''
import tf_keras as keras


def build(hp):
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(hp.Choice("filters", [4, 8]), 3, name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="classifier")(x))
'''


@pytest.fixture(scope="module")
def hyper_child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EvalChild, dict]]:
    """One evaluation child that builds the suite's HyperModel, and the requests' context."""
    folder = tmp_path_factory.mktemp("suite")
    path = folder / "tiny_build.py"
    path.write_text(textwrap.dedent(BUILD))
    spec = parse_spec(f"{path}:build", folder)
    ctx = {"spec": spec.to_dict(), "data": "digits", "seed": 0,
           "profile": load_profile("xnnpack-1t").path, "train": HyperSettings().to_dict()}
    with EvalChild(timeout_s=300) as child:
        yield child, ctx


def _space(source: str, profile: Profile, request: pytest.FixtureRequest) -> Space:
    if source == "builtin":
        spec = get_space("tiny")
        return FamilySpace(spec, {n: ("float32", "int8") for n in spec.layer_names()})
    if source == "trained":
        import tf_keras

        from codesign.compress.space import TrainedSpace
        from codesign.hyper.graph import channel_graph

        layers = tf_keras.layers
        inp = tf_keras.Input((8, 8, 1))
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, name="conv")(inp)))
        x = layers.Conv2D(6, 1, name="mix")(x)
        out = layers.Dense(10, name="classifier")(layers.GlobalAveragePooling2D()(x))
        graph = channel_graph(tf_keras.Model(inp, out)).describe()
        return TrainedSpace(graph, 8, layer_choices(profile), (0.0, 0.5), "m.keras")
    child, ctx = request.getfixturevalue("hyper_child")
    return HyperModelSpace(lambda a: child.call("hyper_build", ctx=ctx, answers=a),
                           layer_choices(profile), (0.0, 0.5), "tiny_build.py:build")


class Recorder:
    """The evaluation seam: records each candidate; raises DeviceUnavailable when told to."""

    def __init__(self, drop_outs: int = 0) -> None:
        self.seen: list[dict[str, Any]] = []
        self.drop_outs = drop_outs

    def __call__(self, trial: optuna.Trial, cand: Any, bar: Any) -> tuple[float, float]:
        if self.drop_outs:
            self.drop_outs -= 1
            raise DeviceUnavailable("ssh: connection refused (the suite's drop-out)")
        self.seen.append(dict(trial.params))
        return 0.5 + 0.01 * len(self.seen), 1.0 + len(self.seen)


def _session(tmp_path: Path, space: Space, evaluate: Recorder, profile: Profile,
             trials: int) -> Session:
    run = RunDir(tmp_path / "run")
    run.root.mkdir(parents=True, exist_ok=True)
    loc = Locator("journal", str((run.root / "study.journal").resolve()))  # shared: recovery runs
    study = open_study(loc, optuna.samplers.RandomSampler(seed=3), ("accuracy", "latency"))
    return Session(study=study, coord=Coordinator(run, loc, io.StringIO()), space=space,
                   evaluate=evaluate, profile=profile, budget=TimeBudget(None),
                   objectives=("accuracy", "latency"), trials=trials, out=io.StringIO())


def _setup(source: str, request: pytest.FixtureRequest, tmp_path: Path, profile: Profile,
           drop_outs: int = 0) -> tuple[Space, Recorder, Session]:
    """The space of ``source``, a recording evaluation and a session of two trials."""
    space = _space(source, profile, request)
    record = Recorder(drop_outs)
    return space, record, _session(tmp_path, space, record, profile, trials=2 - drop_outs)


def _params_of_one(space: Space) -> dict[str, Any]:
    """The parameters of one candidate of ``space`` (asked of a throwaway study)."""
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = scratch.ask()
    space.suggest(trial)
    return dict(trial.params)


@pytest.mark.parametrize("source", SOURCES)
def test_a_duplicate_candidate_is_given_up_not_evaluated(
        source: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    space, record, s = _setup(source, request, tmp_path, load_profile("xnnpack-1t"))
    params = _params_of_one(space)
    for _ in range(2):
        s.study.enqueue_trial(params)
    assert run_trials(s) == 2
    assert record.seen[0] == params and params not in record.seen[1:]
    assert len({tuple(sorted(p.items())) for p in record.seen}) == len(record.seen) == 2
    pruned = s.study.get_trials(states=(TrialState.PRUNED,))
    assert (pruned[0].number, pruned[0].user_attrs["duplicate_of"]) == (1, 0)


@pytest.mark.parametrize("source", SOURCES)
def test_a_dead_workers_trial_is_failed_and_run_again(
        source: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    space, record, s = _setup(source, request, tmp_path, load_profile("xnnpack-1t"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    params = _params_of_one(space)
    s.study.enqueue_trial(params)
    lost = s.study.ask()  # a worker asked for it, then died
    space.suggest(lost)
    lost.set_user_attr("worker", {"host": os.uname().nodename, "pid": dead.pid, "start": None})
    assert run_trials(s) == 2
    failed = s.study.get_trials(states=(TrialState.FAIL,))
    assert [(t.number, t.user_attrs["fail_reason"]) for t in failed] == [(0, "interrupted")]
    retried = [t for t in s.study.get_trials(states=(TrialState.COMPLETE,))
               if t.user_attrs.get("retry_of") == 0]
    assert len(retried) == 1 and retried[0].params == params


@pytest.mark.parametrize("source", SOURCES)
def test_a_device_drop_out_fails_the_trial_waits_and_runs_it_again(
        source: str, tmp_path: Path, request: pytest.FixtureRequest,
        board: LoopbackBoard) -> None:
    space, record, s = _setup(source, request, tmp_path, load_profile(board.profile()), 1)
    assert run_trials(s) == 1
    failed = s.study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"].startswith(
        "device unavailable: ssh: connection refused")
    done = s.study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.user_attrs.get("retry_of") for t in done] == [failed[0].number]
    assert done[0].params == failed[0].params == record.seen[0]
    assert "is back; the search goes on" in s.out.getvalue()  # type: ignore[attr-defined]


def test_the_ram_screen_gives_up_candidates_over_the_budget(tmp_path: Path) -> None:
    """Built-in space: what the estimate rules out is PRUNED unevaluated, and counted."""
    from dataclasses import replace

    from codesign.engine.ramscreen import MARGIN, RamScreen
    from codesign.engine.trials import MAX_SKIPS
    from codesign.space.suggest import candidate_from_params

    spec = get_space("tiny")
    space = FamilySpace(spec, {n: ("int8", "int16x8") for n in spec.layer_names()})
    budget_kb = 11.0  # the tiny space's RGB arenas span about 6 to 17 KB
    screen = RamScreen(spec, budget_kb, 10, 3)
    record = Recorder()
    s = replace(_session(tmp_path, space, record, load_profile("tflm"), trials=6),
                screen=screen)
    assert run_trials(s) == 6
    skipped = s.study.get_trials(states=(TrialState.PRUNED,))
    assert skipped and all("over --max-ram-kb 11" in t.user_attrs["skipped"] for t in skipped)
    assert f"skipped {len(skipped)} candidates" in s.out.getvalue()  # type: ignore[attr-defined]
    for t in s.study.get_trials(states=(TrialState.COMPLETE,)):
        cand = candidate_from_params(t.params, spec)
        assert screen.estimate(cand).total_bytes * (1 - MARGIN) <= budget_kb * 1024
    for t in skipped:
        assert screen(candidate_from_params(t.params, spec)) is not None
        assert t.params not in record.seen
    # a budget nothing meets: after MAX_SKIPS in a row one is measured anyway, so it ends
    hopeless = replace(_session(tmp_path / "b", space, Recorder(), load_profile("tflm"),
                                trials=1), screen=RamScreen(spec, 0.5, 10, 3))
    assert run_trials(hopeless) == 1
    assert len(hopeless.study.get_trials(states=(TrialState.PRUNED,))) == MAX_SKIPS
