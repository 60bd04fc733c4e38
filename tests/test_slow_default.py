"""A whole search at default settings on the default space (make test-long): 7 minutes here.

In ``make test-long``, not ``make test-slow``: CI's hour holds the tests, the
slow tests and ``make demo`` (the default space under a time budget, at the
demo's shorter settings), whose front ``.ci/run`` then checks from the outside
(``tools/verify_run.py``, three points or more). This test adds the default
epochs, the quality report and the references to that.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesign.engine.budget import MIN_FRONT
from tests.conftest import run_cli

pytestmark = pytest.mark.long


def test_default_space_under_a_short_budget_ends_with_a_measured_front(tmp_path: Path) -> None:
    """The default space, default settings, a 2-minute budget: exit 0, a front of 3 or more."""
    out = tmp_path / "run"
    proc = run_cli("search", "--data", "digits", "--trials", "1000", "--time-budget-min", "2",
                   "--latency", "measured", "--out", str(out), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    text = proc.stdout
    assert "supernet: " in text and "expected about" in text  # said before it started
    assert "time budget of 2 min" in text
    doc = json.loads((out / "pareto.json").read_text())
    assert len(doc["points"]) >= MIN_FRONT
    assert doc["run"]["timing"]["timed"] >= len(doc["points"])
    for p in doc["points"]:
        assert p["latency_ms"]["median"] > 0 and (out / p["model"]).is_file()
    assert (out / "report" / "index.html").is_file()
