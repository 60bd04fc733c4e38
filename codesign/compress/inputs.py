"""What the user's model is fed, and whether it scores better than chance (numpy only).

codesign's images are in [0, 1] (``raw * scale + offset``, see
:mod:`codesign.data`). A model that scales its own input (a ``Rescaling`` or
``Normalization`` layer first) is fed the raw pixels; otherwise the pixels
``raw * input_scale + input_offset`` the user names, or codesign's [0, 1]
images. :func:`diagnose` names the likely cause when the original model scores
near chance: its preprocessing, or the order of its labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codesign.errors import CodesignError


@dataclass(frozen=True)
class InputMap:
    """Model input = ``images * a + b``, for codesign's [0, 1] images.

    Attributes:
        a: Multiplier.
        b: Offset.
        formula: How the model's input is made from raw pixels, for manifests.
        source: ``model`` (its own preprocessing layers), ``flags``
            (``--input-scale``/``--input-offset``) or ``default`` ([0, 1]).
    """

    a: float
    b: float
    formula: str
    source: str

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """The model's input for codesign images."""
        if self.a == 1.0 and self.b == 0.0:
            return images
        return (images * np.float32(self.a) + np.float32(self.b)).astype(np.float32)


def input_map(data_scale: float, data_offset: float, model_layers: list[str],
              flags: tuple[float | None, float | None]) -> InputMap:
    """How codesign's [0, 1] images become the model's input.

    Args:
        data_scale: The data's ``scale`` (``[0, 1] image = raw * scale + offset``).
        data_offset: The data's ``offset``.
        model_layers: Names of the model's own preprocessing layers at its input.
        flags: ``(--input-scale, --input-offset)`` (None where not given).

    Raises:
        CodesignError: If the model scales its own input and flags are given too.
    """
    scale, offset = flags
    if model_layers and (scale is not None or offset is not None):
        raise CodesignError(
            f"the model scales its own input (layer {model_layers[0]!r}), so codesign feeds "
            "it raw pixels: drop --input-scale/--input-offset")
    if model_layers:
        scale, offset, source = 1.0, 0.0, "model"
    elif scale is None and offset is None:
        return InputMap(1.0, 0.0, "input = resize(raw * scale + offset) (codesign's [0, 1])",
                        "default")
    else:
        source = "flags"
    s, o = (1.0 if scale is None else float(scale)), (0.0 if offset is None else float(offset))
    a = s / data_scale  # raw = (image - offset) / scale
    formula = "input = resize(raw)" if (s, o) == (1.0, 0.0) else \
        f"input = resize(raw * {s:g} + {o:g})"
    return InputMap(a, o - data_offset * a, formula, source)


def chance(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class."""
    return float(np.bincount(labels).max() / max(1, len(labels)))


def near_chance(accuracy: float, labels: np.ndarray) -> bool:
    """Whether ``accuracy`` is within a tenth of the way from chance to perfect."""
    c = chance(labels)
    return accuracy < c + 0.1 * (1.0 - c)


def diagnose(pred: np.ndarray, labels: np.ndarray, inputs: InputMap, classes: int) -> str:
    """One line naming the likely cause of a near-chance score.

    If relabelling the model's classes would make it accurate, the label order
    differs; otherwise the model is probably fed other pixels than it was
    trained on.
    """
    from scipy.optimize import linear_sum_assignment

    acc = float(np.mean(pred == labels))
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (pred, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    relabelled = float(counts[rows, cols].sum() / max(1, len(labels)))
    head = (f"the original model scores {acc:.1%} on the validation split, near chance "
            f"({chance(labels):.1%})")
    if relabelled >= acc + 0.5 * (1.0 - acc) and not near_chance(relabelled, labels):
        pairs = ", ".join(f"{r}->{c}" for r, c in zip(rows, cols, strict=True) if r != c)
        return (f"{head}, but {relabelled:.1%} with its classes renamed ({pairs}): the data's "
                "label order differs from the model's; relabel the data (or its labels list)")
    how = {"model": "raw pixels, because the model scales its own input",
           "flags": "pixels scaled by --input-scale/--input-offset",
           "default": "images in [0, 1], because the model has no Rescaling or Normalization "
                      "layer"}[inputs.source]
    return (f"{head}: codesign fed it {how} ({inputs.formula}); unless the model is "
            "untrained, the likely cause is preprocessing: give --input-scale/--input-offset "
            "as in training (e.g. --input-scale 1 for raw 0..255 pixels)")
