"""A whole tiny search: the run directory, its formats, export, evaluate, benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from codesign.hardware import litert
from tests.conftest import BASE_ARGS, BASE_TRIALS, ROOT, run_cli

pytestmark = pytest.mark.e2e
STAGES = {"build", "bn_recalibration", "conversion", "accuracy", "latency"}


def _pareto(run: Path) -> dict:
    return json.loads((run / "pareto.json").read_text())


def test_study_holds_the_trials_asked_with_their_attributes(base_run: Path) -> None:
    study = optuna.load_study(study_name="codesign", storage=f"sqlite:///{base_run / 'study.db'}")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == BASE_TRIALS
    anchors = [t for t in complete if "anchor" in t.user_attrs]
    assert anchors, "the first generation starts with uniform candidates"
    for t in complete:
        ua = t.user_attrs
        assert STAGES <= set(ua["times"])
        assert {"median", "p90", "std", "mean"} <= set(ua["latency_ms"])
        assert 0.0 <= ua["val_accuracy"] <= 1.0 and t.values[0] == ua["val_accuracy"]
        assert t.values[1] == ua["latency_ms"]["median"] > 0
        assert ua["candidate"]["resolution"] == t.params["resolution"]
        assert {f"precision/{n}" for n in ua["candidate"]["precision"]} <= set(t.params)
        assert (base_run / "cache" / f"trial-{t.number}.tflite").is_file()


def test_pareto_json_schema_and_front(base_run: Path) -> None:
    doc = _pareto(base_run)
    assert doc["schema_version"] == 3
    run = doc["run"]
    assert {"data", "profile", "sampler", "seed", "trials", "package_versions"} <= set(run)
    assert run["package_versions"]["optuna"].startswith("5.")
    assert {r["name"] for r in doc["references"]} == {"max-float32", "max-int8"}
    points = doc["points"]
    for r in doc["references"]:  # offered: no point at least as accurate and as fast, better
        beaten = any(p["val_accuracy"] >= r["val_accuracy"] and p["latency_ms"]["median"]
                     <= r["latency_ms"]["median"] for p in points)
        assert r["offered"] is (not beaten), (r, points)
    assert points
    lat = [p["latency_ms"]["median"] for p in points]
    acc = [p["val_accuracy"] for p in points]
    assert lat == sorted(lat)
    # a front sorted by latency gains accuracy with every step
    assert all(a2 > a1 for a1, a2 in zip(acc, acc[1:], strict=False))
    for p in points:
        assert {"trial", "val_accuracy", "test_accuracy", "latency_ms", "size_bytes",
                "size_gzip_bytes", "model", "candidate", "search", "finetune"} <= set(p)
        assert p["finetune"]["epochs"] == 1
        assert p["finetune"]["method"] in ("float_then_quantize", "qat")
        assert p["size_gzip_bytes"] < p["size_bytes"]
        assert (base_run / p["model"]).is_file()
        # RAM on a LiteRT profile: the arena estimated from the file, never a process's RSS
        assert "peak_memory_mb" not in p and p["flash_bytes"] == p["size_bytes"]
        assert p["ram"]["source"] == "estimate" and 1024 < p["ram_bytes"] < 1024 * 1024
        assert p["ram_bytes"] == p["ram"]["head_bytes"] + p["ram"]["tail_bytes"]
        # every point timed again with the others, so a slow phase cannot reorder them
        assert p["latency_ms"]["timed"] == "with the front, in one batch"
    assert all(r["ram_bytes"] > 0 for r in doc["references"])
    # ... and the references with them, so the speed-ups against them hold
    assert all(r["latency_ms"]["timed"] == "with the front, in one batch"
               for r in doc["references"])
    csv_lines = (base_run / "pareto.csv").read_text().strip().splitlines()
    assert len(csv_lines) == len(points) + 1


def test_every_model_loads_and_its_manifest_is_true(base_run: Path) -> None:
    for p in _pareto(base_run)["points"]:
        model = (base_run / p["model"]).read_bytes()
        manifest = json.loads((base_run / p["model"]).with_suffix(".json").read_text())
        io = litert.io_details(model)
        assert manifest["input"]["shape"] == [1, *io["input"]["shape"][1:]]
        assert manifest["input"]["shape"][1] == p["candidate"]["resolution"]
        assert manifest["labels"] == [str(i) for i in range(10)]
        assert manifest["preprocessing"]["resize"].startswith("bilinear")
        assert manifest["test_accuracy"] == p["test_accuracy"]
        assert manifest["tensor_arena_bytes"] == p["ram_bytes"] > 0
        assert manifest["flash_bytes"] == len(model) and manifest["ram"]["source"] == "estimate"
        names = [layer["name"] for layer in manifest["layers"]]
        assert names[0] == "stem_conv" and names[-1] == "classifier"
        for layer in manifest["layers"]:
            assert layer["precision"] == p["candidate"]["precision"][layer["name"]]


def test_independent_script_agrees_on_latency(base_run: Path) -> None:
    # tools/verify_run.py re-times every model with the standalone device_bench.py script.
    # Tiny models run in a few microseconds, so the tolerance here is wider than the 25 %
    # the acceptance run on the default space is held to.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "verify_run.py"), str(base_run),
         "--tolerance", "0.5"],
        capture_output=True, text=True, timeout=300,
    )
    # 0: every model agrees; 3: none is off, but the machine was too disturbed to judge some
    # (the script says so); never 1, a model off while its repeats agreed
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert "0 off by more than" in proc.stdout
    if proc.returncode == 3:
        assert "could not be judged" in proc.stdout and "disturbed" in proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith(("trial ", "max-"))]
    assert sum("unsure" not in ln for ln in rows) >= len(rows) / 2, proc.stdout


def test_export_evaluate_and_benchmark(base_run: Path, tmp_path: Path) -> None:
    point = _pareto(base_run)["points"][-1]
    out = tmp_path / "deploy" / "best.tflite"
    proc = run_cli("export", str(base_run), "--trial", str(point["trial"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (base_run / point["model"]).read_bytes()
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["trial"] == point["trial"]

    proc = run_cli("evaluate", str(out), "--data", "digits")
    assert proc.returncode == 0, proc.stderr
    assert f"accuracy {point['test_accuracy']:.4f}" in proc.stdout

    proc = run_cli("benchmark", str(out), "--profile", "xnnpack-1t")
    assert proc.returncode == 0, proc.stderr
    assert "median" in proc.stdout and "xnnpack-1t" in proc.stdout


def test_a_reference_is_exported_with_its_manifest(base_run: Path, tmp_path: Path) -> None:
    ref = next(r for r in _pareto(base_run)["references"] if r["name"] == "max-int8")
    out = tmp_path / "ref.tflite"
    proc = run_cli("export", str(base_run), "--reference", "max-int8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (base_run / ref["model"]).read_bytes()
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["trial"] is None and manifest["reference"] == "max-int8"
    assert manifest["val_accuracy"] == ref["val_accuracy"]
    assert manifest["input"]["shape"][1:3] == [ref["candidate"]["resolution"]] * 2
    proc = run_cli("export", str(base_run), "--reference", "max-int4", "--out", str(out))
    assert proc.returncode == 2 and "has no reference 'max-int4'" in proc.stderr
    assert "max-float32, max-int8" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_offered_references_are_those_no_point_dominates_within_the_budgets() -> None:
    from codesign.engine.front import offered

    def rec(acc: float, ms: float) -> dict:
        return {"val_accuracy": acc, "latency_ms": {"median": ms}, "size_bytes": 1024}

    points = [rec(0.90, 1.0), rec(0.95, 2.0)]
    refs = [{**rec(0.97, 3.0), "name": "best"}, {**rec(0.94, 2.5), "name": "beaten"},
            {**rec(0.95, 2.0), "name": "tied"}]
    marks = {r["name"]: r["offered"] for r in offered(points, refs, ("accuracy", "latency"), {})}
    assert marks == {"best": True, "beaten": False, "tied": False}  # a point as good is enough
    budget = offered(points, refs[:1], ("accuracy", "latency"), {"max_latency_ms": 2.5})
    assert budget[0]["offered"] is False  # over the latency budget: not offered


def test_export_of_missing_trial_is_a_user_error(base_run: Path, tmp_path: Path) -> None:
    proc = run_cli("export", str(base_run), "--trial", "9999", "--out", str(tmp_path / "m.tflite"))
    assert proc.returncode == 2 and "has no trial 9999" in proc.stderr
    assert not (tmp_path / "m.tflite").exists()


def test_rerun_of_a_finished_run_reuses_everything(base_run: Path) -> None:
    before = (base_run / "pareto.json").read_text()
    proc = run_cli("search", *BASE_ARGS, "--out", str(base_run))
    assert proc.returncode == 0, proc.stderr
    assert "supernet: reused" in proc.stdout
    doc = json.loads((base_run / "pareto.json").read_text())
    assert doc["points"] == json.loads(before)["points"]


def test_supernet_quality_report(base_run: Path) -> None:
    from tests.conftest import QUALITY_SAMPLES

    q = json.loads((base_run / "supernet_quality.json").read_text())
    assert q["samples"] == QUALITY_SAMPLES == len(q["candidates"])
    assert -1.0 <= q["kendall_tau"] <= 1.0 and -1.0 <= q["noise_ceiling_tau"] <= 1.0
    assert 0.0 < q["narrowest_accuracy"] <= q["largest_accuracy"] <= 1.0
    for row in q["candidates"]:
        assert 0.0 <= row["inherited"] <= 1.0 and 0.0 <= row["fine_tuned"] <= 1.0


def test_export_picks_a_point_by_budget(base_run: Path, tmp_path: Path) -> None:
    points = _pareto(base_run)["points"]
    fastest, best = points[0], points[-1]
    out = tmp_path / "fast.tflite"
    limit = fastest["latency_ms"]["median"] * 1.0001
    proc = run_cli("export", str(base_run), "--max-latency-ms", str(limit), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"picked trial {fastest['trial']}" in proc.stdout
    proc = run_cli("export", str(base_run), "--min-accuracy", str(best["val_accuracy"]),
                   "--out", str(tmp_path / "best.tflite"))
    assert proc.returncode == 0 and f"picked trial {best['trial']}" in proc.stdout
    proc = run_cli("export", str(base_run), "--min-accuracy", "1.01",
                   "--out", str(tmp_path / "none.tflite"))
    assert proc.returncode == 2 and "no front point reaches accuracy" in proc.stderr
    assert not (tmp_path / "none.tflite").exists()


def test_export_with_int8_io_exactly_when_first_and_last_layers_are_int8(
    base_run: Path, tmp_path: Path
) -> None:
    for p in _pareto(base_run)["points"]:
        out = tmp_path / f"t{p['trial']}.tflite"
        proc = run_cli("export", str(base_run), "--trial", str(p["trial"]), "--io-type", "int8",
                       "--out", str(out))
        precision = p["candidate"]["precision"]
        if precision["stem_conv"] == "int8" and precision["classifier"] == "int8":
            assert proc.returncode == 0, proc.stderr
            manifest = json.loads(out.with_suffix(".json").read_text())
            assert manifest["input"]["dtype"] == manifest["output"]["dtype"] == "int8"
            assert litert.io_details(out.read_bytes())["input"]["dtype"] == "int8"
        else:
            assert proc.returncode == 2
            assert "first and last layers must be int8" in proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
