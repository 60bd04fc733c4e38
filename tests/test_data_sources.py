"""Users' data: npz files and image folders load; bad data is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codesign.data import load_dataset
from tests.conftest import run_cli


def _npz(path: Path, **overrides: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (80, 12, 12, 3), dtype=np.uint8),
        "y_train": np.arange(80) % 4,
        "x_test": rng.integers(0, 256, (20, 12, 12, 3), dtype=np.uint8),
        "y_test": np.arange(20) % 4,
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_loads_with_a_seeded_validation_split(tmp_path: Path) -> None:
    data = load_dataset(str(_npz(tmp_path / "d.npz")), seed=0)
    assert data.num_classes == 4 and data.channels == 3
    assert len(data.y_train) + len(data.y_val) == 80 and len(data.y_test) == 20
    assert data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0
    assert data.preprocessing["scale"] == pytest.approx(1 / 255)


def test_nhw_float_images_get_a_channel_and_are_scaled(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = _npz(tmp_path / "f.npz", x_train=rng.random((40, 10, 10)) * 50,
                y_train=np.arange(40) % 2, x_test=rng.random((10, 10, 10)) * 50,
                y_test=np.arange(10) % 2)
    data = load_dataset(str(path), seed=0)
    assert data.channels == 1 and data.num_classes == 2
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0 + 1e-6


def test_image_folder_loads(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    for cls in ("cat", "dog", "fox"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            arr = rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = load_dataset(str(tmp_path / "imgs"), seed=0)
    assert data.labels == ("cat", "dog", "fox") and data.channels == 3
    assert len(data.y_test) == 6  # a fifth of each class


BAD = {
    "missing keys": ({"y_test": None}, "missing keys ['y_test']"),
    "shape mismatch": ({"y_train": np.arange(79) % 4}, "y_train has shape (79,) for 80 images"),
    "image sizes differ": ({"x_test": np.zeros((20, 10, 10, 3), np.uint8)}, "x_test images"),
    "nan": ({"x_train": np.full((80, 12, 12, 3), np.nan, np.float32)}, "NaN or inf"),
    "labels out of range": ({"y_test": np.arange(20) % 4 + 3}, "y_test holds label 6"),
    "negative labels": ({"y_train": np.arange(80) % 4 - 1}, "negative labels"),
    "labels not integers": ({"y_train": (np.arange(80) % 4) + 0.5}, "not integers"),
    "one class": ({"y_train": np.zeros(80, np.int64), "y_test": np.zeros(20, np.int64)},
                  "need at least 2"),
    "empty split": ({"x_test": np.zeros((0, 12, 12, 3), np.uint8),
                     "y_test": np.zeros(0, np.int64)}, "the test split is empty"),
    "four channels": ({"x_train": np.zeros((80, 12, 12, 4), np.uint8)}, "1 or 3 channels"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_npz_is_refused_before_anything_is_written(tmp_path: Path, case: str) -> None:
    overrides, words = BAD[case]
    data = _npz(tmp_path / "bad.npz", **overrides)
    out = tmp_path / "run"
    proc = run_cli("search", "--data", str(data), "--out", str(out), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert words in lines[0] and str(data) in lines[0], lines[0]
    assert not out.exists()


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip file")
    out = tmp_path / "run"
    proc = run_cli("search", "--data", str(bad), "--out", str(out), timeout=60)
    assert proc.returncode == 2 and "cannot read it as an npz" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_keras_dataset_offline_is_a_clear_error(tmp_path: Path) -> None:
    # an empty KERAS_HOME has no cached copy, so loading must download; this machine
    # reaches no host but the package registries, so the download fails
    out = tmp_path / "run"
    proc = run_cli("search", "--data", "mnist", "--out", str(out), timeout=300,
                   env={"KERAS_HOME": str(tmp_path / "keras")})
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "mnist must be downloaded by keras.datasets" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.e2e
def test_search_runs_end_to_end_on_a_uint8_rgb_npz_with_four_classes(tmp_path: Path) -> None:
    import json

    rng = np.random.default_rng(3)

    def images(labels: np.ndarray) -> np.ndarray:
        # each class a colour, plus noise: learnable in a few epochs
        base = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]])
        x = base[labels][:, None, None, :] + rng.integers(-40, 40, (len(labels), 16, 16, 3))
        return np.clip(x, 0, 255).astype(np.uint8)

    y_train, y_test = np.arange(200) % 4, np.arange(40) % 4
    path = tmp_path / "rgb.npz"
    np.savez(path, x_train=images(y_train), y_train=y_train, x_test=images(y_test),
             y_test=y_test, labels=np.array(["red", "green", "blue", "yellow"]))
    out = tmp_path / "run"
    proc = run_cli("search", "--data", str(path), "--space", "tiny", "--epochs", "2",
                   "--trials", "2", "--quality-samples", "0", "--finetune-epochs", "0",
                   "--no-report", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["points"]
    manifest = json.loads((out / doc["points"][0]["manifest"]).read_text())
    assert manifest["labels"] == ["red", "green", "blue", "yellow"]
    assert manifest["input"]["shape"][-1] == 3
    assert manifest["preprocessing"]["scale"] == pytest.approx(1 / 255)
    model = out / doc["points"][-1]["model"]
    proc = run_cli("evaluate", str(model), "--data", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"accuracy {doc['points'][-1]['test_accuracy']:.4f}" in proc.stdout
