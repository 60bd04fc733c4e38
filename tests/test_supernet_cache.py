"""A second search that only changes the profile takes the first one's supernet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codesign.nn import supernet_cache
from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.e2e


def _search(out: Path, home: Path, *extra: str, cache: str = "1") -> str:
    proc = run_cli("search", *TINY, "--trials", "1", "--finetune-epochs", "0", "--no-report",
                   "--latency", "measured", "--out", str(out), *extra,
                   env={"CODESIGN_HOME": str(home), "CODESIGN_SUPERNET_CACHE": cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_a_supernet_is_trained_once_per_machine(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _search(tmp_path / "a", home)
    assert "taken from this machine's cache" not in first
    cached = list((home / "supernets").iterdir())
    assert len(cached) == 1 and (cached[0] / "supernet.npz").is_file()

    second = _search(tmp_path / "b", home, "--profile", "builtin-1t")
    assert "taken from this machine's cache" in second
    a = np.load(tmp_path / "a" / "supernet.npz", allow_pickle=False)
    b = np.load(tmp_path / "b" / "supernet.npz", allow_pickle=False)
    assert sorted(a.files) == sorted(b.files)
    assert all(np.array_equal(a[k], b[k]) for k in a.files)  # the run holds its own copy

    other_seed = _search(tmp_path / "c", home, "--seed", "1")  # another split: trained anew
    assert "taken from this machine's cache" not in other_seed
    assert len(list((home / "supernets").iterdir())) == 2

    off = _search(tmp_path / "d", home, cache="0")
    assert "taken from this machine's cache" not in off
    meta = json.loads((tmp_path / "d" / "supernet.json").read_text())
    assert meta["train_seconds"] > 0


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
