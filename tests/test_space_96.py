"""A search on 96x96 RGB images with no flag but --trials (make test-long): the space follows
the data (resolutions 48-96 px, an extra stride), elastic kernels are searched, and the
exported front re-measures (issue 18's acceptance)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from examples.trained_models import rgb_shapes
from tests.conftest import ROOT, run_cli

# About 20 min (a search of 16-17 min on a quiet machine): beyond what CI's hour leaves (make
# test-long), and beyond the 15 minutes pytest-timeout gives any test by default.
pytestmark = [pytest.mark.long, pytest.mark.timeout(3 * 3600)]

SIDE = 96


def _npz(path: Path) -> Path:
    x, y = rgb_shapes(1600, seed=3, classes=5, size=SIDE)
    xt, yt = rgb_shapes(400, seed=4, classes=5, size=SIDE)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def test_a_96px_search_searches_resolutions_and_kernels_and_its_front_re_measures(
        tmp_path: Path) -> None:
    data = _npz(tmp_path / "shapes96.npz")
    out = tmp_path / "run"
    proc = run_cli("search", "--data", str(data), "--trials", "30", "--out", str(out),
                   timeout=3 * 3600)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    space = (out / "space.toml").read_text()
    assert 'name = "default-96px"' in space and "resolutions = [48, 64, 80, 96]" in space
    assert "stem_stride = 2" in space and "kernels = [3, 5, 7]" in space

    study = optuna.load_study(study_name="codesign", storage=f"sqlite:///{out / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 30
    resolutions = {t.params["resolution"] for t in done}
    kernels = {v for t in done for k, v in t.params.items() if k.startswith("kernel/")}
    assert len(resolutions) >= 2, resolutions
    assert len(kernels) >= 2, kernels

    doc = json.loads((out / "pareto.json").read_text())
    front = {p["candidate"]["resolution"] for p in doc["points"]}
    assert len(front) >= 2, [p["candidate"] for p in doc["points"]]
    for p in doc["points"]:
        assert set(p["candidate"]["kernel"].values()) <= {3, 5, 7}
        manifest = json.loads((out / p["model"]).with_suffix(".json").read_text())
        assert manifest["preprocessing"]["resolution"] == p["candidate"]["resolution"]

    # every exported model loads and re-measures within 25 % (tools/verify_run.py: the
    # standalone device script; a disturbed machine gets three tries, and exit 3 says the
    # machine, not a model, could not be judged)
    for _ in range(3):
        check = subprocess.run([sys.executable, str(ROOT / "tools" / "verify_run.py"), str(out),
                                "--tolerance", "0.25"], capture_output=True, text=True, cwd=ROOT)
        if check.returncode == 0:
            break
    rows = [ln for ln in check.stdout.splitlines() if ln.startswith("trial ")]
    assert len(rows) == len(doc["points"]), check.stdout + check.stderr
    assert not any("<-- off" in ln for ln in rows), check.stdout
    assert check.returncode in (0, 3), check.stdout + check.stderr
