"""tools/chaos.py in its quick mode: a killed worker, a database restart, a full disk."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Three processes, a database restart and a full disk: minutes; in make test-slow.
pytestmark = pytest.mark.slow


def test_chaos_quick_loses_nothing(postgres: object, tmp_path: Path) -> None:
    del postgres  # the fixture checks PostgreSQL is installed; chaos starts its own cluster
    proc = subprocess.run([sys.executable, "tools/chaos.py", "--quick", "--out",
                           str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    report = proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    assert "lost 0, run twice 0" in proc.stdout, report
    assert not re.search(r"^FAIL ", proc.stdout, re.M), report
    passed = re.search(r"chaos: (\d+) of (\d+) checks passed", proc.stdout)
    assert passed and passed.group(1) == passed.group(2) and int(passed.group(2)) >= 7, report
    assert "pw-" not in proc.stdout + proc.stderr
