"""A space fitted to images over 32 px is priced by a latency model of its own (issue 18).

The profile's own model measures block networks at 8-32 px and default-space
candidates; a search on 48x48 RGB images searches ``default-48px``, whose
stages run on feature maps that model never measured. ``codesign profile build
NAME --data DATA`` builds that space's model, for real, in a home of this
test's own, and the search's latency mode follows it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from codesign.config import SearchConfig
from codesign.errors import CodesignError
from codesign.latency.measure import read_records
from codesign.preflight import preflight
from examples.trained_models import rgb_shapes
from tests.conftest import run_cli


def _npz(path: Path) -> Path:
    x, y = rgb_shapes(120, seed=5, classes=3, size=48)
    xt, yt = rgb_shapes(60, seed=6, classes=3, size=48)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def test_a_space_fitted_to_larger_images_gets_its_own_latency_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _npz(tmp_path / "shapes48.npz")
    home = tmp_path / "home"
    monkeypatch.setenv("CODESIGN_HOME", str(home))
    env = {"CODESIGN_HOME": str(home)}
    cfg = SearchConfig(data=str(data), out=tmp_path / "run", trials=2)

    # no model of the fitted space: a search times every candidate, and one that asks to
    # predict is told the command that builds the model
    assert preflight(cfg, builtin=True).latency == "measured"
    with pytest.raises(CodesignError, match=f"codesign profile build xnnpack-1t --data {data}"):
        preflight(SearchConfig(data=str(data), out=tmp_path / "run", latency="hybrid"),
                  builtin=True)

    proc = run_cli("profile", "build", "xnnpack-1t", "--data", str(data), "--blocks", "10",
                   "--whole", "6", env=env)  # too few to fit: refused before any work
    assert proc.returncode == 2 and "a model needs at least 20 networks" in proc.stderr
    assert not (home / "latency").exists() or not list((home / "latency").glob("*.jsonl"))
    proc = run_cli("profile", "build", "xnnpack-1t", "--data", str(data), "--blocks", "14",
                   "--whole", "6", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "random candidates of space default-48px" in proc.stdout
    models = [p for p in (home / "latency").glob("xnnpack-1t-*.space-*.json")
              if re.fullmatch(r"xnnpack-1t-[0-9a-f]+\.space-[0-9a-f]+\.json", p.name)]
    assert len(models) == 1, list((home / "latency").iterdir())
    meta = json.loads(models[0].read_text())["meta"]
    assert meta["space"]["name"] == "default-48px" and meta["channels"] == 3
    assert not list((home / "latency").glob("xnnpack-1t-????????.json"))  # not the own model
    assert len(read_records(models[0].with_suffix(".measurements.jsonl"))) == 20

    fitted = preflight(cfg, builtin=True)
    assert fitted.space_spec.name == "default-48px" and fitted.latency == "hybrid"
    # the default space (digits, 8 px) is still the profile's own model's, which is not built
    assert preflight(SearchConfig(data="digits", out=tmp_path / "d"), builtin=True
                     ).latency == "measured"

    proc = run_cli("profile", "check", "xnnpack-1t", "--data", str(data), "--n", "4", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "of 4 random candidates of space default-48px within ±10 %" in proc.stdout
    check = json.loads(models[0].with_suffix(".check.json").read_text())
    assert check["n"] == 4 and check["candidates"] == "random candidates of space default-48px"

    proc = run_cli("profiles", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "space default-48px (3-channel inputs)" in proc.stdout, proc.stdout
    proc = run_cli("profile", "check", "xnnpack-1t", "--n", "4", env=env)
    assert proc.returncode == 2 and "no latency model of random default-space" in proc.stderr
    proc = run_cli("profile", "build", "xnnpack-1t", "--model", "m.keras", "--space", "tiny",
                   env=env)
    assert proc.returncode == 2 and "--space names a space of the built-in family" in proc.stderr
