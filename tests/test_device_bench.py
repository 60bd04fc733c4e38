"""The device script (codesign/hardware/device_bench.py) under ai-edge-litert and tflite-runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.device import DEVICE_PYTHON, ROOT, require_device, tiny_models

BENCH = ROOT / "codesign" / "hardware" / "device_bench.py"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A float32 and an int8 model of the tiny space (spaces in the names), and no model."""
    names = ("tiny float32.tflite", "tiny int8.tflite")
    return tiny_models(tmp_path_factory.mktemp("bench"), names)


def _bench(python: str, models: list[Path], *args: str) -> dict:
    proc = subprocess.run(
        [python, str(BENCH), *map(str, models), "--runs", "15", "--warmup", "5", *args],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _check(doc: dict, models: list[Path], threads: int) -> None:
    assert doc["threads"] == threads
    good, bad = doc["models"][:2], doc["models"][2]
    for entry, path in zip(good, models, strict=False):
        assert entry["model"] == str(path)
        assert 0 < entry["min_ms"] <= entry["median_ms"] <= entry["p90_ms"]
        assert entry["runs"] == 15 and entry["warmup_runs"] >= 5
        assert entry["process_threads"] >= 1
    assert "error" in bad and "median_ms" not in bad


def test_under_ai_edge_litert(models: list[Path]) -> None:
    doc = _bench(sys.executable, models, "--threads", "2")
    assert doc["runtime"]["name"] == "ai-edge-litert"
    assert doc["runtime"]["numpy"].startswith("2.")
    _check(doc, models, 2)


def test_under_tflite_runtime_214_numpy1(models: list[Path]) -> None:
    """The board's Python: only numpy 1.x and tflite-runtime 2.14 (no TF, no codesign)."""
    require_device()
    doc = _bench(DEVICE_PYTHON, models)
    assert doc["runtime"] == {"name": "tflite-runtime", "version": "2.14.0",
                              "numpy": doc["runtime"]["numpy"]}
    assert doc["runtime"]["numpy"].startswith("1.")
    _check(doc, models, 1)
    for resolver in ("builtin", "reference"):
        assert "median_ms" in _bench(DEVICE_PYTHON, models[:1], "--resolver", resolver)[
            "models"][0]


def test_facts_without_models() -> None:
    doc = _bench(sys.executable, [])
    assert doc["models"] == [] and doc["machine"] and doc["cpu_count"] >= 1


def test_bad_arguments_are_one_line() -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--runs", "0"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
