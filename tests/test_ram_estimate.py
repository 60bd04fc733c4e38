"""The arena estimated before conversion: equal to the file's plan and TFLM's head; the screen."""

from __future__ import annotations

import numpy as np
import pytest

import codesign  # noqa: F401
from codesign.engine.ramscreen import MARGIN, RamScreen, check_budget, smallest
from codesign.errors import CodesignError
from codesign.hardware import tflm
from codesign.latency.measure import converted
from codesign.latency.sampling import space_from_dict, whole_networks
from codesign.space import get_space
from codesign.space.candidate import Candidate
from codesign.space.ram import estimate_ram
from codesign.tflite import memplan
from tests.conftest import run_cli

pytest.importorskip("tflite_micro")


@pytest.mark.parametrize(("space", "allowed", "seed"), [
    ("tiny", ("int8", "int16x8"), 1),
    ("default", ("int8", "int16x8"), 2),
    ("tiny", ("float32", "float16", "int8", "int16x8", "int4"), 3),
])
def test_pre_conversion_head_equals_the_files_plan(space, allowed, seed) -> None:
    """Converted for real (random weights): the graph rebuilt without TensorFlow is the file's."""
    for sample in whole_networks(3, seed, allowed, space, channels=3):
        blob = converted(sample).read_bytes()
        est = estimate_ram(space_from_dict(sample["space"]),
                           Candidate.from_dict(sample["candidate"]), sample["num_classes"], 3)
        plan = memplan.plan(blob)
        assert est.head_bytes == plan.head_bytes, sample["candidate"]
        assert abs(est.tail_bytes - plan.tail_bytes) <= 0.05 * plan.tail_bytes
        if set(sample["candidate"]["precision"].values()) <= {"int8", "int16x8"}:
            assert est.head_bytes == tflm.arena(blob).head_bytes  # and TFLM's own


def test_more_channels_or_int16_need_more_arena() -> None:
    space = get_space("tiny")
    small = space.uniform(16, (1, 1, 1), 0.5, "int8")
    assert estimate_ram(space, small, 10, 3).total_bytes < estimate_ram(
        space, space.uniform(24, (1, 2, 2), 0.0, "int8"), 10, 3).total_bytes
    assert estimate_ram(space, small, 10, 3).head_bytes < estimate_ram(
        space, space.uniform(16, (1, 1, 1), 0.5, "int16x8"), 10, 3).head_bytes


def test_screen_skips_only_what_is_clearly_over_the_budget() -> None:
    space = get_space("tiny")
    cand = space.uniform(24, (1, 2, 2), 0.0, "int8")
    total = estimate_ram(space, cand, 10, 3).total_bytes / 1024
    assert RamScreen(space, total, 10, 3)(cand) is None  # at the budget: measured
    assert RamScreen(space, total * (1 - MARGIN) * 1.01, 10, 3)(cand) is None  # near it too
    why = RamScreen(space, total * (1 - MARGIN) * 0.98, 10, 3)(cand)
    assert why is not None and "over --max-ram-kb" in why and f"{total:.1f} KB" in why


def test_a_budget_no_candidate_meets_is_refused_with_the_smallest() -> None:
    space = get_space("tiny")
    choices = {n: ("int8", "int16x8") for n in space.layer_names()}
    least = smallest(space, choices)
    assert least.resolution == 16 and set(least.precision_map.values()) == {"int8"}
    need = estimate_ram(space, least, 10, 3).total_bytes / 1024
    check_budget(RamScreen(space, need, 10, 3), choices)  # the smallest fits: fine
    with pytest.raises(CodesignError, match=rf"fits no candidate .* about {need:.1f} KB"):
        check_budget(RamScreen(space, need / 2, 10, 3), choices)


def test_cli_refuses_an_impossible_ram_budget_before_any_work(tmp_path) -> None:
    out = tmp_path / "run"
    proc = run_cli("search", "--data", "digits", "--space", "tiny", "--profile", "tflm",
                   "--max-ram-kb", "1", "--out", str(out), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--max-ram-kb 1 fits no candidate" in lines[0]
    assert not out.exists()


def test_profile_check_prints_both_estimates_against_tflm(tmp_path) -> None:
    proc = run_cli("profile", "check", "tflm", "--n", "3", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert "before conversion (layer shapes and precisions): 100% within 5%" in text
    assert "from the .tflite file:" in text and "on 3 of 3 random default-space" in text
    proc = run_cli("profile", "build", "tflm", timeout=60)
    assert proc.returncode == 2 and "no latency model to build" in proc.stderr


def test_smallest_candidate_is_the_least_of_random_ones() -> None:
    space = get_space("default")
    choices = {n: ("int8", "int16x8") for n in space.layer_names()}
    floor = estimate_ram(space, smallest(space, choices), 10, 3).total_bytes
    rng = np.random.default_rng(0)
    for _ in range(50):
        cand = space.random_candidate(rng, choices)
        assert estimate_ram(space, cand, 10, 3).total_bytes >= floor
