"""Where data comes from: npz files, image folders and keras.datasets names.

Every source yields raw arrays that :func:`checked` validates and normalises,
so bad data is refused before any training with the file and what is wrong.
Only numpy (and Pillow for image folders) is used, except for the
keras.datasets names, which download through tf_keras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codesign.errors import CodesignError

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
VAL_KEYS = (("x_val", "y_val"), ("x", "y"))  # a validation npz may name its arrays either way

Raw = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...] | None]


def read_npz(path: Path) -> Raw:
    """Arrays of an ``.npz`` with ``x_train, y_train, x_test, y_test`` (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise CodesignError(
                    f"{path}: missing keys {missing}; an npz needs {', '.join(NPZ_KEYS)}"
                )
            arrays = [f[k] for k in NPZ_KEYS]
            names = tuple(str(v) for v in f["labels"]) if "labels" in f.files else None
    except CodesignError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise CodesignError(f"{path}: cannot read it as an npz file ({exc})") from None
    return arrays[0], arrays[1], arrays[2], arrays[3], names


def read_folder(path: Path, seed: int) -> Raw:
    """Images in ``path/<class>/*.png``; a seeded fifth of each class becomes the test split."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise CodesignError(f"{path}: found {len(classes)} class folders; need at least 2")
    images, labels, shapes = [], [], set()
    for label, name in enumerate(classes):
        files = sorted(p for p in (path / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CodesignError(f"{path / name}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for file in files:
            try:
                with Image.open(file) as im:
                    arr = np.asarray(im.convert("RGB" if im.mode not in ("L", "I;16") else "L"))
            except (OSError, UnidentifiedImageError) as exc:
                raise CodesignError(f"{file}: unreadable image ({exc})") from None
            shapes.add(arr.shape)
            images.append(arr)
            labels.append(label)
    if len(shapes) != 1:
        raise CodesignError(
            f"{path}: images differ in size or channels {sorted(shapes)[:3]}; make them equal"
        )
    x, y = np.stack(images), np.array(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in range(len(classes)):
        idx = np.flatnonzero(y == c)
        test[rng.permutation(idx)[: max(1, len(idx) // 5)]] = True
    return x[~test], y[~test], x[test], y[test], tuple(classes)


def read_keras(name: str) -> Raw:
    """A keras.datasets set (downloads on first use; refused clearly when offline)."""
    import codesign  # noqa: F401  (tf_keras, not Keras 3)

    try:
        import tf_keras as keras

        loader = getattr(keras.datasets, name)
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # urllib, ssl, http: many kinds of offline
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CodesignError(
            f"{name} must be downloaded by keras.datasets and that failed ({first}); connect to "
            "the internet or save the arrays as an .npz and pass its path"
        ) from None
    return x_train, y_train.reshape(-1), x_test, y_test.reshape(-1), None


def checked(
    source: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
    y_test: np.ndarray, names: tuple[str, ...] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], float, float]:
    """Validate raw arrays and return NHWC float32 images in [0, 1] with int64 labels.

    Returns:
        ``x_train, y_train, x_test, y_test, class names, scale, offset`` where
        model input = raw * scale + offset.

    Raises:
        CodesignError: Naming ``source`` and the first problem found.
    """
    def fail(why: str) -> CodesignError:
        return CodesignError(f"{source}: {why}")

    xs = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.size == 0 or len(x) == 0:
            raise fail(f"the {split} split is empty")
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise fail(f"x_{split} has shape {x.shape}; use NHW or NHWC with 1 or 3 channels")
        if y.ndim != 1 or len(y) != len(x):
            raise fail(f"y_{split} has shape {y.shape} for {len(x)} images; use one label each")
        if x.dtype.kind not in "uif":
            raise fail(f"x_{split} has dtype {x.dtype}; use uint8 or float images")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise fail(f"x_{split} holds NaN or inf")
        if x.dtype.kind in "iuf" and x.dtype.itemsize > 2 and np.abs(x).max(initial=0) > 1e30:
            raise fail(f"x_{split} holds values beyond ±1e30; scale the images to [0, 1] or "
                       "[0, 255]")
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or not np.equal(np.mod(y, 1), 0).all():
                raise fail(f"y_{split} holds labels that are not integers")
        elif y.dtype.kind not in "iu":
            raise fail(f"y_{split} has dtype {y.dtype}; labels must be integers")
        if (y < 0).any():
            raise fail(f"y_{split} holds negative labels; use 0..classes-1")
        xs.append(x)
    x_train, x_test = xs
    if x_train.dtype != x_test.dtype:
        raise fail(f"x_train is {x_train.dtype} but x_test {x_test.dtype}; give both splits the "
                   "same dtype")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise fail(f"x_train images are {x_train.shape[1:]} but x_test images {x_test.shape[1:]}")
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    classes = int(y_train.max()) + 1
    if names is not None and len(names) < classes:
        raise fail(f"labels go up to {classes - 1} but only {len(names)} names are given")
    classes = len(names) if names is not None else classes
    if len(np.unique(y_train)) < 2:
        raise fail(f"y_train holds {len(np.unique(y_train))} class; need at least 2")
    if int(y_test.max()) >= classes:
        raise fail(f"y_test holds label {int(y_test.max())} but y_train only 0..{classes - 1}")
    if x_train.dtype == np.uint8:
        scale, offset = 1.0 / 255.0, 0.0
    else:
        low = float(min(x_train.min(), 0.0))
        high = float(max(x_train.max(), 1.0))
        scale, offset = 1.0 / (high - low), -low / (high - low)
    prep = [(x.astype(np.float64) * scale + offset).astype(np.float32) for x in (x_train, x_test)]
    labels = names if names is not None else tuple(str(i) for i in range(classes))
    return prep[0], y_train, prep[1], y_test, labels, scale, offset


def read_val(path: Path, own: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """A named validation split: ``x_val``/``y_val`` of an npz (or ``x``/``y`` of ``--val-data``).

    Args:
        path: The npz file.
        own: True for the data set's own npz (only ``x_val``/``y_val`` count; None if absent).

    Raises:
        CodesignError: If a ``--val-data`` file holds neither pair, or cannot be read.
    """
    keys = VAL_KEYS[:1] if own else VAL_KEYS
    try:
        with np.load(path, allow_pickle=False) as f:
            for xk, yk in keys:
                if xk in f.files and yk in f.files:
                    return f[xk], f[yk]
            found = sorted(f.files)
    except (OSError, ValueError, EOFError) as exc:
        raise CodesignError(f"{path}: cannot read it as an npz file ({exc})") from None
    if own:
        return None
    raise CodesignError(f"{path}: holds {found}; a validation npz needs x_val and y_val (or x "
                        "and y)")


def checked_val(source: str, x: np.ndarray, y: np.ndarray, like: np.ndarray, classes: int,
                scale_offset: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Validate a named validation split against the training images; scale it like them.

    Args:
        source: Where it came from (for messages).
        x: Raw validation images.
        y: Their labels.
        like: The training images (already scaled; shape and channels must match).
        classes: The data set's classes.
        scale_offset: The training images' ``(scale, offset)``.

    Raises:
        CodesignError: Naming ``source`` and the first problem.
    """
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != like.shape[1:] or len(x) == 0:
        raise CodesignError(f"{source}: validation images have shape {x.shape}; the training "
                            f"images are {like.shape[1:]} each")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        raise CodesignError(f"{source}: y_val must hold one integer label per image, got shape "
                            f"{y.shape} and dtype {y.dtype}")
    if x.dtype.kind not in "uif" or (x.dtype.kind == "f" and not np.isfinite(x).all()):
        raise CodesignError(f"{source}: x_val must hold finite uint8 or float pixels")
    if (y < 0).any() or int(y.max()) >= classes:
        raise CodesignError(f"{source}: y_val holds label {int(y.max())}; the data has labels "
                            f"0..{classes - 1}")
    scale, offset = scale_offset
    return (x.astype(np.float64) * scale + offset).astype(np.float32), y.astype(np.int64)
