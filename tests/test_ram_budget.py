"""RAM and flash as objectives and budgets: the study's values, export's pick, old runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesign.errors import CodesignError
from codesign.export import pick_trial
from codesign.report.pareto import read_pareto
from codesign.run.measurement import Measurement
from codesign.run.study import DIRECTIONS


def _measurement(ram: int | None, size: int, acc: float = 0.9) -> Measurement:
    return Measurement(
        val_accuracy=acc, test_accuracy=acc, latency_ms={"median": 2.0}, size_bytes=size,
        size_gzip_bytes=size // 2, layers=[], io={},
        ram=None if ram is None else {"bytes": ram, "head_bytes": ram // 3,
                                      "tail_bytes": ram - ram // 3, "source": "tflm"})


def test_objectives_and_budgets_read_the_arena_and_the_file() -> None:
    m = _measurement(40 * 1024, 100 * 1024)
    assert m.ram_bytes == 40 * 1024 and m.flash_bytes == 100 * 1024
    assert m.objective_values(("accuracy", "ram")) == (0.9, 40.0)
    assert m.objective_values(("accuracy", "latency", "ram")) == (0.9, 2.0, 40.0)
    assert m.objective_values(("accuracy", "ram", "flash")) == (0.9, 40.0, 100.0)
    assert DIRECTIONS["ram"] == DIRECTIONS["flash"] == "minimize"
    c = m.constraint_values({"max_ram_kb": 64, "max_flash_kb": 64})
    assert c == {"ram": -24.0, "flash": 36.0}  # fits the RAM, not the flash
    # a measurement without an arena (an unreadable file) never meets a RAM budget
    unknown = _measurement(None, 1024)
    assert unknown.ram_bytes is None
    assert unknown.constraint_values({"max_ram_kb": 1e9})["ram"] == float("inf")
    assert m.to_attrs()["ram"]["source"] == "tflm" and "ram" not in unknown.to_attrs()


def _run(tmp_path: Path, schema: int) -> Path:
    points = []
    for trial, (acc, ms, ram, flash) in enumerate([(0.80, 1.0, 30, 90), (0.85, 2.0, 50, 120),
                                                   (0.90, 3.0, 70, 200)]):
        p = {"trial": trial, "val_accuracy": acc, "latency_ms": {"median": ms},
             "size_bytes": flash * 1024}
        if schema == 2:
            p.update(ram_bytes=ram * 1024, flash_bytes=flash * 1024)
        else:
            p["peak_memory_mb"] = 0.0
        points.append(p)
    (tmp_path / "pareto.json").write_text(json.dumps(
        {"schema_version": schema, "run": {}, "points": points, "references": []}))
    return tmp_path


def test_export_picks_within_ram_and_flash(tmp_path: Path) -> None:
    run = _run(tmp_path, 2)
    assert pick_trial(run, max_ram_kb=64) == 1  # the most accurate that fits 64 KB
    assert pick_trial(run, max_ram_kb=64, max_flash_kb=100) == 0
    assert pick_trial(run, max_ram_kb=1000, min_accuracy=0.82) == 1  # the fastest above it
    assert pick_trial(run, max_ram_kb=1000, max_latency_ms=2.5) == 1
    assert pick_trial(run, max_flash_kb=1000) == 2
    with pytest.raises(CodesignError, match=r"no front point needs 20 KB of RAM .*least: 30.0"):
        pick_trial(run, max_ram_kb=20)
    with pytest.raises(CodesignError, match="give --trial"):
        pick_trial(run)


def test_schema_1_is_read_and_refused_for_a_ram_pick(tmp_path: Path) -> None:
    run = _run(tmp_path, 1)
    doc = read_pareto(json.loads((run / "pareto.json").read_text()))
    assert [p["flash_bytes"] for p in doc["points"]] == [90 * 1024, 120 * 1024, 200 * 1024]
    assert all(p["ram_bytes"] is None for p in doc["points"])
    assert pick_trial(run, max_latency_ms=2.5) == 1  # older runs still export
    assert pick_trial(run, max_flash_kb=100) == 0
    with pytest.raises(CodesignError, match="records no RAM"):
        pick_trial(run, max_ram_kb=64)
    with pytest.raises(ValueError, match="schema_version 7"):
        read_pareto({"schema_version": 7})
