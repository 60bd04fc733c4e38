"""Latency models of a HyperModel: random candidates drawn as a search draws them, and used.

The slow test builds the latency model of ``examples/small_cnn.py:SmallCNN``
on the digits data and ``xnnpack-1t`` from 12 of its candidates (built,
pruned, converted and timed for real in the evaluation child), checks it on 6
fresh ones, and runs a ``--hypermodel`` search that prices candidates with it.
Whether a search may price them rests on the last check; the test writes that
figure itself before the search (said where it does), since what it tests
there is the decision, not the fit of a 12-candidate build. It keeps its own
``CODESIGN_HOME``, so the session's other HyperModel searches stay measured.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from codesign.hardware.profile import load_profile
from codesign.hyper.load import parse_spec
from codesign.latency import hypermodel
from codesign.latency.sources import RandomTrial, draw
from codesign.latency.trained import chain
from tests.conftest import ROOT, run_cli

PROFILE = "xnnpack-1t"
SPEC = "examples/small_cnn.py:SmallCNN"


def test_random_trials_answer_within_what_was_asked() -> None:
    rng = np.random.default_rng(0)
    trial = RandomTrial(rng)
    ints = [trial.suggest_int("a", 16, 64, step=16) for _ in range(200)]
    assert set(ints) == {16, 32, 48, 64}
    logs = [trial.suggest_int("b", 1, 100, log=True) for _ in range(400)]
    assert min(logs) >= 1 and max(logs) <= 100 and np.median(logs) < 30  # log-uniform
    floats = [trial.suggest_float("c", 1e-3, 1e-2, log=True) for _ in range(200)]
    assert all(1e-3 <= f <= 1e-2 for f in floats)
    assert np.median([math.log10(f) for f in floats]) == pytest.approx(-2.5, abs=0.2)
    grid = {round(trial.suggest_float("d", 0.0, 0.3, step=0.1), 6) for _ in range(200)}
    assert grid == {0.0, 0.1, 0.2, 0.3}
    # a draw at one precision keeps most layers there when the layers are not known in advance
    choices = {"conv": ("float32", "int8"), "dense": ("float32", "int8")}
    based = [d for d in (draw(np.random.default_rng(s), choices) for s in range(40)) if d.base]
    assert based and all(d.p_other == 0.1 and not d.others for d in based)
    picks = [based[0].suggest_categorical(f"precision/l{i}", ["float32", "int8"])
             for i in range(400)]
    assert picks.count(based[0].base) > 300


def test_a_hypermodel_latency_model_is_keyed_by_the_data_it_is_built_for(tmp_path: Path) -> None:
    profile = load_profile(PROFILE)
    spec = parse_spec(SPEC, ROOT)
    digits = hypermodel.reference(profile, spec, "digits")
    assert digits.shape == "8x8x1:10"
    x = np.zeros((40, 16, 16, 3), np.uint8)
    y = np.arange(40) % 4
    np.savez(tmp_path / "rgb.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    rgb = hypermodel.reference(profile, spec, str(tmp_path / "rgb.npz"))
    assert rgb.shape == "16x16x3:4"
    # the HyperModel builds other networks for other images or classes: another model file
    assert hypermodel.path_of(profile, rgb) != hypermodel.path_of(profile, digits)
    assert hypermodel.path_of(profile, digits) == hypermodel.path_of(
        profile, hypermodel.reference(profile, spec, "digits", seed=3))


@pytest.mark.slow  # a 12-candidate build, a 6-candidate check and an 8-trial search (~4 min)
def test_a_hypermodel_latency_model_is_built_checked_and_prices_a_search(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CODESIGN_HOME", str(home))
    env = {"CODESIGN_HOME": str(home)}
    profile = load_profile(PROFILE)
    spec = parse_spec(SPEC, ROOT)
    proc = run_cli("search", "--hypermodel", SPEC, "--latency", "hybrid", "--trials", "2",
                   "--out", str(tmp_path / "refused"), env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"codesign profile build {PROFILE} --hypermodel {SPEC} --data" in proc.stderr

    proc = run_cli("profile", "build", PROFILE, "--hypermodel", SPEC, "--data", "digits",
                   "--candidates", "12", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "drawing 12 random candidates" in proc.stdout and "expected about" in proc.stdout
    assert "12 candidates measured" in proc.stdout
    path = hypermodel.path_of(profile, hypermodel.reference(profile, spec, "digits"))
    assert path.is_file()
    drawn = json.loads(path.with_suffix(".samples-0.json").read_text())
    assert len(drawn) == 12 and len({d["id"] for d in drawn}) == 12
    assert len({json.dumps(d["candidate"]["hp"], sort_keys=True) for d in drawn}) > 3
    for d in drawn:  # each priced from its own build's description, as a search prices it
        kernels = chain(d["graph"], d["candidate"])
        convs = [layer for layer in d["graph"]["layers"] if layer["kind"] == "conv"]
        assert sum(k.kind == "conv" for k in kernels) == len(convs) >= 1
        assert d["candidate"]["resolution"] in (8, 12, 16)

    proc = run_cli("profile", "check", PROFILE, "--hypermodel", SPEC, "--data", "digits",
                   "--n", "6", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert f"{PROFILE}, {SPEC}: " in proc.stdout and "of 6 random candidates" in proc.stdout
    check = json.loads(path.with_suffix(".check.json").read_text())
    assert check["n"] == 6 and 0.0 <= check["within_10pct"] <= 1.0
    listed = run_cli("profiles", env=env)  # names the HyperModel and the check's figure
    assert listed.returncode == 0, listed.stderr[-2000:]
    row = next(ln for ln in listed.stdout.splitlines() if f"HyperModel {SPEC}" in ln)
    assert row.startswith(PROFILE) and "(check, n=6)" in row and "changed" not in row

    # This test writes the check's figure itself (96 %): what is tested from here is the
    # search's use of the model, not the fit of a 12-candidate build.
    path.with_suffix(".check.json").write_text(json.dumps(
        {**check, "within_10pct": 0.96, "p95_abs_rel_error": 0.12, "n": 50,
         "checked": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    out = tmp_path / "run"
    proc = run_cli("search", "--hypermodel", SPEC, "--trials", "8", "--sampler", "random",
                   "--candidate-epochs", "1", "--finetune-epochs", "0", "--no-report",
                   "--out", str(out), env=env)  # hybrid: the default with such a model
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert f"latency: hybrid, with the model of {SPEC} on {PROFILE}" in proc.stdout
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 8 and all(t.user_attrs["latency_predicted_ms"] > 0 for t in done)
    sources = [t.user_attrs["latency_ms"].get("source") for t in done]
    assert "measured" in sources, sources
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["run"]["latency"] == "hybrid" and doc["points"]
    for p in doc["points"]:  # every exported point was timed
        assert p["latency_ms"].get("source", "measured") == "measured"
        assert p["latency_ms"]["median"] > 0
    assert os.environ["CODESIGN_HOME"] == str(home)
