"""A second search that only changes the profile takes the first one's supernet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codesign.nn import supernet_cache
from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.e2e


def test_a_search_that_only_changes_the_profile_reuses_the_supernet(
        base_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "other-profile"
    proc = run_cli("search", *TINY, "--trials", "1", "--finetune-epochs", "0", "--no-report",
                   "--latency", "measured", "--profile", "builtin-1t", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "taken from this machine's cache" in proc.stdout  # base_run trained it
    a = np.load(base_run / "supernet.npz", allow_pickle=False)
    b = np.load(out / "supernet.npz", allow_pickle=False)  # the run holds its own copy
    assert sorted(a.files) == sorted(b.files)
    assert all(np.array_equal(a[k], b[k]) for k in a.files)
    cached = list(supernet_cache.cache_dir().iterdir())
    assert any((c / "supernet.npz").is_file() for c in cached)


def test_the_cache_can_be_turned_off(base_run: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    name = next(c.name for c in supernet_cache.cache_dir().iterdir())
    weights, meta = tmp_path / "supernet.npz", tmp_path / "supernet.json"
    monkeypatch.setenv(supernet_cache.ENV, "0")
    assert not supernet_cache.fetch(name, weights, meta) and not weights.exists()
    monkeypatch.setenv(supernet_cache.ENV, "1")
    assert supernet_cache.fetch(name, weights, meta)
    assert json.loads(meta.read_text())["train_seconds"] > 0


def test_the_key_follows_contents_not_the_path(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 2
    for name in ("one.npz", "two.npz"):
        np.savez(tmp_path / name, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    fp = {"space": "tiny", "train": {"epochs": 1}}
    one = supernet_cache.key(fp, str(tmp_path / "one.npz"), 0)
    assert one == supernet_cache.key(fp, str(tmp_path / "two.npz"), 0)
    assert one != supernet_cache.key(fp, str(tmp_path / "one.npz"), 1)
    np.savez(tmp_path / "two.npz", x_train=x, y_train=1 - y, x_test=x[:8], y_test=y[:8])
    assert one != supernet_cache.key(fp, str(tmp_path / "two.npz"), 0)
