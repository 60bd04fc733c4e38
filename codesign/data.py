"""Data sets for the search: loading, deterministic splits and preprocessing.

Only numpy and scikit-learn are used here, so the same preprocessing runs in the
search process, in the evaluation child and in ``codesign evaluate`` without
TensorFlow. Images are NHWC float32 in [0, 1] at their native size; a model of
input resolution ``r`` sees them resized with :func:`resize_bilinear`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from codesign.datasets import (
    KERAS_DATASETS,
    checked,
    checked_val,
    read_folder,
    read_keras,
    read_npz,
    read_val,
)
from codesign.errors import CodesignError

BUILTIN_DATASETS = ("digits",)
CARVED = "carved from the training split"
VAL_FRACTION = 0.2  # of the training split, for sources that bring only train and test
SPLIT = (0.6, 0.2, 0.2)  # train, validation, test


@dataclass(frozen=True)
class Dataset:
    """A classification data set split three ways, images NHWC float32 in [0, 1].

    Attributes:
        name: The name the user gave (``digits`` or a path).
        x_train: Training images.
        y_train: Training labels (int64, 0..num_classes-1).
        x_val: Validation images (the search scores candidates on these).
        y_val: Validation labels.
        x_test: Test images (only the final front and references see these).
        y_test: Test labels.
        labels: One name per class.
        preprocessing: How raw inputs become model inputs, for manifests.
        validation: Where the validation split comes from: :data:`CARVED`,
            ``x_val/y_val of FILE`` or ``--val-data FILE``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: tuple[str, ...]
    preprocessing: dict = field(default_factory=dict)
    validation: str = CARVED

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.labels)

    @property
    def channels(self) -> int:
        """Channels of the images (1 or 3)."""
        return int(self.x_train.shape[-1])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(x, y)`` of the split called ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise CodesignError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def validate_data_name(name: str) -> None:
    """Check that a ``--data`` value names something codesign can load (cheap).

    Raises:
        CodesignError: If it is neither a known name nor an existing file or folder.
    """
    if name in BUILTIN_DATASETS or name in KERAS_DATASETS:
        return
    path = Path(name)
    if path.is_dir() or (path.is_file() and path.suffix == ".npz"):
        return
    if path.exists():
        raise CodesignError(f"{name}: not an .npz file or a folder of class folders")
    known = ", ".join((*BUILTIN_DATASETS, *KERAS_DATASETS))
    raise CodesignError(
        f"unknown data set {name!r}; use one of: {known}, a .npz file or an image folder"
    )


def data_fingerprint(name: str) -> str:
    """What identifies the data: the name, or a digest of the file or folder's contents."""
    path = Path(name)
    if name in BUILTIN_DATASETS or name in KERAS_DATASETS or not path.exists():
        return name
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(path.parent if path.is_file() else path)).encode())
        digest.update(f.read_bytes())
    return f"{path.resolve()} sha256:{digest.hexdigest()[:16]}"


def load_dataset(name: str, seed: int, val_data: str | None = None) -> Dataset:
    """Load a data set and split it deterministically from ``seed``.

    The validation split is ``x_val``/``y_val`` of an npz that holds them, or
    ``val_data``'s; otherwise it is carved from the training images.

    Args:
        name: ``digits`` (scikit-learn's shipped 8x8 digits); ``mnist``,
            ``fashion_mnist`` or ``cifar10`` (keras.datasets, downloaded); a
            path to an ``.npz`` with ``x_train, y_train, x_test, y_test``; or
            a folder with one sub-folder of images per class.
        seed: Seed of the stratified splits.
        val_data: An npz with ``x_val``/``y_val`` (or ``x``/``y``) in the
            training images' format, used as the validation split.

    Returns:
        The split data set.

    Raises:
        CodesignError: Naming the file and what is wrong with the data.
    """
    validate_data_name(name)
    if val_data is not None:
        return _with_val(name, seed, val_data)
    if name == "digits":
        return _load_digits(seed)
    return _load_other(name, seed)


@lru_cache(maxsize=4)
def _with_val(name: str, seed: int, val_data: str) -> Dataset:
    """The data set with ``val_data``'s validation split (carved images go back to training)."""
    data = load_dataset(name, seed)
    path = Path(val_data)
    if not path.is_file() or path.suffix != ".npz":
        raise CodesignError(f"--val-data {val_data}: not an .npz file")
    raw = read_val(path, own=False)
    assert raw is not None
    pre = data.preprocessing
    x, y = checked_val(str(path), raw[0], raw[1], data.x_train, data.num_classes,
                       (float(pre["scale"]), float(pre["offset"])))
    x_train, y_train = data.x_train, data.y_train
    if data.validation == CARVED:
        x_train = np.concatenate([x_train, data.x_val])
        y_train = np.concatenate([y_train, data.y_val])
    return replace(data, x_train=x_train, y_train=y_train, x_val=x, y_val=y,
                   validation=f"--val-data {path}")


@lru_cache(maxsize=4)
def _load_other(name: str, seed: int) -> Dataset:
    if name in KERAS_DATASETS:
        raw = read_keras(name)
        source = f"{name} (keras.datasets)"
    elif Path(name).is_dir():
        raw = read_folder(Path(name), seed)
        source = f"image folder {name}"
    else:
        raw = read_npz(Path(name))
        source = f"npz file {name}"
    x_tr, y_tr, x_te, y_te, labels, scale, offset = checked(name, *raw)
    own = read_val(Path(name), own=True) if source.startswith("npz") else None
    if own is not None:
        x_va, y_va = checked_val(name, own[0], own[1], x_tr, len(labels), (scale, offset))
        return Dataset(name, x_tr, y_tr, x_va, y_va, x_te, y_te, labels,
                       _preprocessing(source, scale, offset, x_tr), f"x_val/y_val of {name}")
    idx = np.arange(len(y_tr))
    counts = np.bincount(y_tr)
    stratify = y_tr if counts[counts > 0].min() >= 2 else None
    from sklearn.model_selection import train_test_split  # 1.3 s to import: only to split

    try:
        idx_train, idx_val = train_test_split(
            idx, test_size=VAL_FRACTION, stratify=stratify, random_state=seed
        )
    except ValueError as exc:
        raise CodesignError(f"{name}: too few training images to split ({exc})") from None
    return Dataset(
        name=name,
        x_train=x_tr[idx_train],
        y_train=y_tr[idx_train],
        x_val=x_tr[idx_val],
        y_val=y_tr[idx_val],
        x_test=x_te,
        y_test=y_te,
        labels=labels,
        preprocessing=_preprocessing(source, scale, offset, x_tr),
    )


def _preprocessing(source: str, scale: float, offset: float, x: np.ndarray) -> dict:
    """How raw inputs become the images codesign feeds, for manifests.

    A model's input is square: non-square images are stretched to it, and
    ``aspect`` says so.
    """
    height, width = int(x.shape[1]), int(x.shape[2])
    aspect = {} if height == width else {"aspect": (
        f"{height}x{width} images are stretched to the model's square input (height and width "
        "resized independently, nothing cropped)")}
    return {
        "source": source,
        "scale": scale,
        "offset": offset,
        "resize": "bilinear, half-pixel centres (codesign.data.resize_bilinear)",
        **aspect,
        "channels": int(x.shape[-1]),
        "formula": "input = resize(raw * scale + offset)",
    }


@lru_cache(maxsize=4)
def _load_digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int64)
    idx = np.arange(len(y))
    train_frac, val_frac, test_frac = SPLIT
    idx_train, idx_rest = train_test_split(
        idx, train_size=train_frac, stratify=y, random_state=seed
    )
    idx_val, idx_test = train_test_split(
        idx_rest,
        test_size=test_frac / (val_frac + test_frac),
        stratify=y[idx_rest],
        random_state=seed,
    )
    return Dataset(
        name="digits",
        x_train=x[idx_train],
        y_train=y[idx_train],
        x_val=x[idx_val],
        y_val=y[idx_val],
        x_test=x[idx_test],
        y_test=y[idx_test],
        labels=tuple(str(i) for i in range(10)),
        preprocessing={
            "source": "8x8 grayscale digits, raw values 0..16",
            "scale": 1.0 / 16.0,
            "offset": 0.0,
            "resize": "bilinear, half-pixel centres (codesign.data.resize_bilinear)",
            "channels": 1,
        },
    )


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Matrix ``(n_out, n_in)`` of bilinear weights with half-pixel centres."""
    m = np.zeros((n_out, n_in), dtype=np.float32)
    scale = n_in / n_out
    for i in range(n_out):
        src = (i + 0.5) * scale - 0.5
        src = min(max(src, 0.0), n_in - 1.0)
        lo = int(np.floor(src))
        hi = min(lo + 1, n_in - 1)
        w = src - lo
        m[i, lo] += 1.0 - w
        m[i, hi] += w
    return m


def resize_bilinear(x: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize NHWC images to ``size`` x ``size`` (or ``(height, width)``), bilinear.

    This is the same rule as ``tf.image.resize(..., "bilinear")`` (half-pixel
    centres), written in numpy so that evaluation needs no TensorFlow.
    """
    n, h, w, c = x.shape
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if (h, w) == (out_h, out_w):
        return x.astype(np.float32, copy=False)
    mh = _interp_matrix(h, out_h)
    mw = _interp_matrix(w, out_w)
    out = np.einsum("oh,nhwc->nowc", mh, x.astype(np.float32))
    out = np.einsum("pw,nowc->nopc", mw, out)
    return np.ascontiguousarray(out, dtype=np.float32)
