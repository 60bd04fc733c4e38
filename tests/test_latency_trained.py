"""Latency models of a trained model: built, checked, keyed to the file, and used by a search.

The module trains the small Keras 3 MobileNetV2-style model of
``tests/test_compress.py`` (32x32 RGB, a few epochs), builds its latency model
on ``xnnpack-1t`` from 30 of its candidates (pruned, converted and timed for
real in the evaluation child), checks it on 10 fresh ones, and runs a
``--model`` search that prices candidates with it. Whether a search may price
candidates rests on the last check; two tests write that check's figure
themselves (said where they do), since what they test is the decision, not
the fit of a 30-candidate build.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from codesign.errors import CodesignError
from codesign.hardware.profile import load_profile
from codesign.hyper.space import layer_choices
from codesign.latency import trained
from codesign.latency.model import LatencyModel
from tests.conftest import run_cli
from tests.test_compress import rgb_images, save_rgb_data, train_mobilenet

PROFILE = "xnnpack-1t"
BUILD_N = 30


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The data and the trained ``.keras`` model."""
    root = tmp_path_factory.mktemp("latency-trained")
    train, _ = save_rgb_data(root, 600)
    train_mobilenet(train, 4, root / "m.keras")
    return {"root": root, "data": root / "d.npz", "model": root / "m.keras"}


@pytest.fixture(scope="module")
def built(model: dict[str, Path]) -> dict[str, Path]:
    """The model's latency model on the profile, from :data:`BUILD_N` real candidates."""
    proc = run_cli("profile", "build", PROFILE, "--model", str(model["model"]), "--data",
                   str(model["data"]), "--candidates", str(BUILD_N))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "candidates to measure" in proc.stdout and "expected about" in proc.stdout
    return {**model, "stdout": proc.stdout}  # type: ignore[dict-item]


def _write_check(profile_name: str, model_path: Path, within: float) -> Path:
    """A check file with the figure given, as ``profile check --model`` would write it."""
    path = trained.model_file(load_profile(profile_name), model_path).with_suffix(".check.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"within_10pct": within, "p95_abs_rel_error": 0.12, "n": 50,
                                "checked": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    return path


@pytest.mark.slow  # training the model and a 30-candidate build (about 100 s): make test-slow
def test_the_build_is_keyed_to_the_model_file(built: dict[str, Path], tmp_path: Path) -> None:
    profile = load_profile(PROFILE)
    fitted = trained.load(profile, built["model"])
    assert fitted is not None
    meta = fitted.meta
    assert meta["networks"]["whole"] >= BUILD_N - 2 and meta["networks"]["block"] == 0
    assert meta["model"]["fingerprint"] == trained.fingerprint(built["model"])
    assert meta["holdout"]["n"] == meta["networks"]["whole"] and meta["holdout"]["folds"] == 5
    # the model's own kinds were seen: k x k convolutions, depthwise, dense, additions
    seen = " ".join(meta["features"])
    assert "dense:" in seen and ("conv3:" in seen or "conv:" in seen) and "add:" in seen
    assert "held-out candidates:" in str(built["stdout"])
    other = tmp_path / "m.keras"  # the same name, other bytes: another model
    other.write_bytes(built["model"].read_bytes() + b"\0")
    assert trained.load(profile, other) is None
    assert trained.model_file(profile, other) != trained.model_file(profile, built["model"])


@pytest.mark.slow  # a check times 10 fresh candidates and a noise floor (about a minute)
def test_the_check_reports_figures_in_range(built: dict[str, Path]) -> None:
    proc = run_cli("profile", "check", PROFILE, "--model", str(built["model"]), "--data",
                   str(built["data"]), "--n", "10")
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(f"{PROFILE}, m.keras:"))
    assert "random candidates of the model within ±10 %" in line and "Kendall tau" in line
    f = json.loads(trained.model_file(load_profile(PROFILE), built["model"])
                   .with_suffix(".check.json").read_text())
    assert f["n"] == 10 and 0.0 <= f["within_10pct"] <= 1.0 and f["mape"] >= 0.0
    assert -1.0 <= f["kendall_tau"] <= 1.0 and f["candidates"] == "random candidates of m.keras"
    assert f["mape"] < 0.5  # the fit prices this model's candidates, however roughly
    known = trained.fidelity(load_profile(PROFILE), built["model"])
    assert known is not None and known.source == "check" and known.n == 10
    listed = run_cli("profiles")  # codesign profiles names the model and the check's figure
    assert listed.returncode == 0, listed.stderr[-2000:]
    row = next(ln for ln in listed.stdout.splitlines() if str(built["model"]) in ln)
    assert row.startswith(PROFILE) and "(check, n=10)" in row


@pytest.mark.slow  # a search of 12 trials with real conversions (about two minutes)
def test_a_model_search_runs_hybrid_and_measures_every_front_point(
        built: dict[str, Path], tmp_path: Path) -> None:
    # This test writes the check's figure itself (96 %): a 30-candidate build's check of 10
    # may land either side of 90 %, and what is tested here is the search's use of the model.
    _write_check(PROFILE, built["model"], 0.96)
    out = tmp_path / "run"
    proc = run_cli("search", "--model", str(built["model"]), "--data", str(built["data"]),
                   "--trials", "12", "--sampler", "random", "--finetune-epochs", "0",
                   "--no-report", "--out", str(out))  # hybrid: the default with such a model
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "latency: hybrid, with the model of m.keras on xnnpack-1t" in proc.stdout
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    sources = [t.user_attrs["latency_ms"].get("source") for t in done]
    assert "predicted" in sources and "measured" in sources, sources
    assert all(t.user_attrs["latency_predicted_ms"] > 0 for t in done)
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["run"]["latency"] == "hybrid" and doc["points"]
    for p in doc["points"]:  # every exported point was timed, its prediction beside it
        trial = next(t for t in done if t.number == p["trial"])
        assert trial.user_attrs["latency_ms"].get("source") == "measured"
        assert p["latency_ms"].get("source", "measured") == "measured"
        assert p["latency_ms"]["median"] > 0 and p["latency_ms"]["predicted"] > 0


def test_hybrid_is_refused_in_one_line_below_ninety_percent(tmp_path: Path) -> None:
    # The model file's bytes only key the latency model: the refusal comes before the model
    # is read. This test writes the latency model and its check (62 %) itself.
    x, y = rgb_images(64, 0)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    path = tmp_path / "m.keras"
    path.write_bytes(b"not read before the refusal")
    args = ("search", "--model", str(path), "--data", str(tmp_path / "d.npz"), "--latency",
            "hybrid", "--trials", "2", "--out", str(tmp_path / "run"))
    proc = run_cli(*args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "has no latency model on xnnpack-1t" in proc.stderr
    assert f"codesign profile build {PROFILE} --model" in proc.stderr
    profile = load_profile(PROFILE)
    LatencyModel(json.loads(json.dumps(profile.identity())), {"const": 0.01},
                 {"created": "2000-01-01T00:00:00+0000"}).save(trained.model_file(profile, path))
    proc = run_cli(*args)
    assert proc.returncode == 2 and "no check since its build" in proc.stderr, proc.stderr
    _write_check(PROFILE, path, 0.62)
    proc = run_cli(*args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "62% of 50 candidates within ±10 %" in proc.stderr
    assert "below the 90% hybrid needs" in proc.stderr
    assert not (tmp_path / "run").exists()
    with pytest.raises(CodesignError, match="built-in space"):
        trained.search_mode("predicted", profile, path, "d.npz")
    assert trained.search_mode("measured", profile, path, "d.npz") == ("measured", None)
    mode, note = trained.search_mode(None, profile, path, "d.npz")
    assert mode == "measured" and note is not None and "62%" in note
    _write_check(PROFILE, path, 0.9)
    assert trained.search_mode(None, profile, path, "d.npz") == ("hybrid", None)


def test_samples_follow_the_search_genes_and_price_from_the_description() -> None:
    """Sampled candidates ask what a trial asks; their chains come from the description alone."""
    profile = load_profile(PROFILE)
    desc = _toy_description()
    model = trained.TrainedModel("/nonexistent/m.keras", {}, {"graph": desc,
                                                              "input_shape": [8, 8, 3]})
    a = trained.samples(profile, model, 6, 0)
    assert a == trained.samples(profile, model, 6, 0) and a != trained.samples(profile, model, 6, 1)
    choices = layer_choices(profile)
    for s in a:
        cand = s["candidate"]
        assert set(cand["prune"]) == {"c1"} and cand["prune"]["c1"] in (0.0, 0.25, 0.5, 0.75)
        assert all(p in choices[kind] for (name, p), kind in zip(
            sorted(cand["precision"].items()), ("conv", "dense"), strict=True))
        assert cand["resolution"] == 8 and cand["model"] == "m.keras"
        assert sum(k.kind == "conv" for k in trained.chain(desc, cand)) == 1


def _toy_description() -> dict:
    """The description of conv (8 channels, prunable) -> global pool -> dense."""
    return {
        "groups": [{"name": "c1", "size": 8, "prunable": True, "producers": ["c1"]},
                   {"name": "out", "size": 4, "prunable": False, "producers": ["d1"]}],
        "layers": [{"name": "c1", "kind": "conv"}, {"name": "d1", "kind": "dense"}],
        "ops": [{"name": "c1", "tflite": "CONV_2D", "kind": "conv", "layer": True,
                 "inputs": [-1], "in_layouts": [[[["in", 3]], 1]], "in_hw": [8, 8],
                 "out_layout": [[["c1", 8]], 1], "out_hw": [8, 8], "kernel": [3, 3],
                 "strides": [1, 1], "padding": "same"},
                {"name": "pool", "tflite": "MEAN", "kind": "gpool", "inputs": [0]},
                {"name": "d1", "tflite": "FULLY_CONNECTED", "kind": "dense", "layer": True,
                 "inputs": [1], "out_layout": [[["out", 4]], 1]}],
    }
