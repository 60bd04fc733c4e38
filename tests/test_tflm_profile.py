"""The TFLM profile: op support re-checked on the installed TFLM, RAM, flash, accuracy, latency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import codesign  # noqa: F401
from codesign.child.convert import checked_tflite, measure_and_write, ram_record
from codesign.child.timing import STAND_IN, DeviceTiming
from codesign.config import lookup_support, reference_runs
from codesign.data import load_dataset, resize_bilinear
from codesign.errors import TrialFailure
from codesign.hardware import litert, tflm
from codesign.hardware.profile import load_profile
from codesign.nn.bn import recalibrate_bn
from codesign.nn.submodel import build_submodel
from codesign.space import get_space
from codesign.space.candidate import PRECISIONS
from codesign.tflite import memplan
from codesign.tflite.convert import convert
from codesign.tflite.support import layer_choices

pytest.importorskip("tflite_micro")

ROOT = Path(__file__).resolve().parents[1]
PROBES = {"conv": "s2b1_expand", "depthwise": "s2b1_dw", "dense": "classifier"}


@pytest.fixture(scope="module")
def tiny() -> tuple:
    """The tiny space's maximal network (BN recalibrated on digits) and its images."""
    space = get_space("tiny")
    sub = space.subnet(space.max_candidate())
    model = build_submodel(space, sub, 10, 1)
    data = load_dataset("digits", 0)
    calib = resize_bilinear(data.x_train[:64], sub.resolution)
    recalibrate_bn(model, calib)
    val = resize_bilinear(data.x_val[:40], sub.resolution), data.y_val[:40]
    return model, sub, calib, val


@pytest.fixture(scope="module")
def int8_blob(tiny) -> bytes:
    model, sub, calib, _ = tiny
    return convert(model, {n: "int8" for n in sub.precision}, calib)


def test_the_profile_offers_int8_and_int16x8_and_float32_for_references_only() -> None:
    p = load_profile("tflm")
    assert p.micro and p.runtime == "tflite-micro" and p.resolver == "reference"
    assert p.precisions == ("int8", "int16x8") and p.reference_precisions == ("float32",)
    assert "stand-in" in p.description
    choices = layer_choices(get_space("tiny"), lookup_support(p), p.precisions)
    assert set(choices.values()) == {("int8", "int16x8")}
    assert reference_runs(p, "float32") and reference_runs(p, "int8")
    assert not reference_runs(p, "float16")
    assert reference_runs(load_profile("xnnpack-1t"), "int16x8")  # LiteRT runs every one


def test_op_support_entry_matches_the_installed_tflm_both_ways(tiny) -> None:
    """Every precision the table lists runs in TFLM; every other one fails naming the op."""
    from importlib import metadata

    model, sub, calib, _ = tiny
    entry = lookup_support(load_profile("tflm"))
    assert entry.version == metadata.version("tflite-micro")
    for kind, layer in PROBES.items():
        for precision in PRECISIONS:
            assignment = {n: "int8" for n in sub.precision}  # as the search mixes them
            assignment[layer] = precision
            blob = convert(model, assignment, calib)
            if precision in entry.runs[kind]:
                facts = tflm.arena(blob)
                assert facts.total_bytes > 0, (kind, precision)
                assert tflm.predict(blob, calib[:2]).shape == (2, 10)
            else:
                with pytest.raises(TrialFailure, match="DEQUANTIZE") as err:
                    tflm.arena(blob)
                assert "weights" in str(err.value), (kind, precision, err.value)


def test_measure_on_tflm_records_the_arena_and_tflm_accuracy(tiny, int8_blob, tmp_path) -> None:
    _, _, _, (xv, yv) = tiny
    p = load_profile("tflm")
    times: dict[str, float] = {}
    res = measure_and_write(int8_blob, p, ((xv, yv), (xv[:20], yv[:20])), tmp_path / "m.tflite",
                            times)
    facts = tflm.arena(int8_blob)
    needed = tflm.needed_arena(int8_blob)
    assert res["ram"] == {"bytes": needed, "recorded_bytes": facts.total_bytes,
                          "head_bytes": facts.head_bytes, "tail_bytes": facts.tail_bytes,
                          "source": "tflm"}
    assert res["val_accuracy"] == tflm.accuracy(int8_blob, xv, yv)
    assert res["size_bytes"] == len(int8_blob) == (tmp_path / "m.tflite").stat().st_size
    assert times["ram"] >= 0 and times["accuracy"] > 0


def test_the_needed_arena_is_the_smallest_tflm_runs_the_model_in(tiny) -> None:
    """Preparing borrows temporary memory: the arena needed can exceed the recorded total."""
    model, sub, calib, _ = tiny
    rng = np.random.default_rng(3)
    above = 0
    for k in range(4):
        precision = {n: str(rng.choice(["int8", "int16x8"])) for n in sub.precision}
        blob = convert(model, precision, calib) if k else convert(
            model, {n: "int8" for n in sub.precision}, calib)
        facts = tflm.arena(blob)
        needed = tflm.needed_arena(blob, facts)
        assert needed >= facts.total_bytes and needed % tflm.ARENA_STEP == 0
        assert tflm.arena(blob, needed).head_bytes == facts.head_bytes  # runs in it ...
        with pytest.raises(TrialFailure):
            tflm.arena(blob, needed - tflm.ARENA_STEP)  # ... and in nothing smaller
        above += needed > facts.total_bytes
    print(f"needed arena above the recorded total in {above} of 4 models")


def test_other_profiles_record_the_estimated_arena(int8_blob) -> None:
    ram = ram_record(int8_blob, load_profile("xnnpack-1t"))
    plan = memplan.plan(int8_blob)
    assert ram["source"] == "estimate" and ram["head_bytes"] == plan.head_bytes
    assert ram["bytes"] == plan.head_bytes + plan.tail_bytes
    measured = tflm.arena(int8_blob)
    assert abs(ram["bytes"] - measured.total_bytes) <= 0.1 * measured.total_bytes


def test_tflm_refuses_what_it_cannot_run_with_the_op_name(tiny) -> None:
    model, sub, calib, _ = tiny
    p = load_profile("tflm")
    with pytest.raises(TrialFailure, match="cannot run .*float16"):
        checked_tflite(model, {n: "float16" for n in sub.precision}, calib, p, {})
    # float32 is a reference precision: converted, and TFLM runs it (a larger arena)
    blob = checked_tflite(model, {n: "float32" for n in sub.precision}, calib, p, {})
    assert ram_record(blob, p)["bytes"] > 2 * tflm.arena(
        convert(model, {n: "int8" for n in sub.precision}, calib)).head_bytes


def test_latency_on_tflm_is_labelled_a_host_stand_in(tiny, int8_blob, tmp_path) -> None:
    _, _, calib, _ = tiny
    p = load_profile("tflm")
    path = tmp_path / "m.tflite"
    path.write_bytes(int8_blob)
    rec = DeviceTiming().time(p, int8_blob, path, calib[:1])
    assert rec["stand_in"] == STAND_IN and "not a microcontroller" in STAND_IN
    assert rec["runtime"].startswith("tflite-micro ")
    assert 0 < rec["min"] <= rec["median"] and rec["runs"] == p.runs and rec["rounds"] == 3
    # TFLM's reference kernels are much slower than LiteRT's XNNPACK on the same file
    fast = litert.time_latency(int8_blob, calib[:1], runs=20, warmup=5)
    assert rec["median"] > fast.median


def _without_tflm(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python finds every installed package but tflite-micro."""
    import site

    packages = Path(next(p for p in site.getsitepackages() if p.endswith("site-packages")))
    view = tmp_path / "site"
    view.mkdir()
    for entry in packages.iterdir():
        if not entry.name.lower().startswith(("tflite_micro", "tflite-micro")):
            (view / entry.name).symlink_to(entry)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(view)])}


def test_without_the_package_the_profile_says_how_to_install_it(tmp_path) -> None:
    env = _without_tflm(tmp_path)
    probe = subprocess.run([sys.executable, "-S", "-c", "import tflite_micro"], env=env,
                           capture_output=True, text=True, cwd=ROOT)
    assert probe.returncode != 0  # really absent from this environment
    for args in (["search", "--data", "digits", "--space", "tiny", "--profile", "tflm",
                  "--out", str(tmp_path / "run")],
                 ["benchmark", str(ROOT / "tests" / "missing.tflite"), "--profile", "tflm"]):
        if args[0] == "benchmark":
            model = tmp_path / "m.tflite"
            model.write_bytes(b"\0" * 16)
            args[1] = str(model)
        proc = subprocess.run([sys.executable, "-S", "-m", "codesign.cli", *args], env=env,
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "pip install tflite-micro==0.dev" in lines[0]
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_budget_no_trial_meets_lists_the_closest_with_their_ram(tmp_path) -> None:
    from tests.conftest import TINY, run_cli

    out = tmp_path / "run"
    proc = run_cli("search", *TINY, "--profile", "tflm", "--trials", "2", "--finetune-epochs",
                   "0", "--max-flash-kb", "1", "--no-report", "--out", str(out), timeout=1200)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "no trial meets" in proc.stderr
    closest = [ln for ln in proc.stdout.splitlines() if ln.startswith("  trial ")]
    assert closest and all(" KB, RAM " in ln and "flash" in ln for ln in closest)
