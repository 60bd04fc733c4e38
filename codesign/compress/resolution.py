"""The user's model at another input resolution (``--search-resolution``), in the child.

A model that is fully convolutional up to its global pooling computes the same
function at any input size; :func:`resolutions` tries a few smaller square
sizes (multiples of 8 down to half the model's) by rebuilding the model on a
new input with the same layers and weights and running it once, and offers
those that give the model's output. :func:`at_resolution` is the rebuilt model,
its channel groups and the data resized to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FRACTIONS = (0.875, 0.75, 0.625, 0.5)
Split = tuple[np.ndarray, np.ndarray]


@dataclass
class Variant:
    """The model at one input resolution.

    Attributes:
        model: The tf_keras model (the user's own at the original resolution).
        graph: Its channel groups.
        train: Training images at this resolution and labels.
        val: Validation split.
        test: Test split.
    """

    model: Any
    graph: Any
    train: Split
    val: Split
    test: Split


def reinput(model: Any, size: int) -> Any:
    """The same layers and weights on a ``size`` x ``size`` input."""
    import tf_keras as keras

    channels = int(model.input_shape[-1])
    clone = keras.models.clone_model(model, input_tensors=keras.Input((size, size, channels)))
    clone.set_weights(model.get_weights())
    return clone


def resolutions(model: Any, shape: tuple[int, int, int], classes: int) -> tuple[list[int], str]:
    """Input sides the model runs at (its own first), and why others are not offered."""
    h, w, c = shape
    if h != w:
        return [h], f"the input is {h}x{w}, not square"
    sizes = sorted({int(round(h * f / 8)) * 8 for f in FRACTIONS} - {0, h}, reverse=True)
    ok = [h]
    why = ""
    for size in sizes:
        try:
            out = reinput(model, size)(np.zeros((1, size, size, c), np.float32), training=False)
        except Exception as exc:  # noqa: BLE001 - any failure means this size does not fit
            why = f"at {size}x{size}: {str(exc).splitlines()[0][:160] if str(exc) else exc!r}"
            continue
        if tuple(out.shape) == (1, classes):
            ok.append(size)
    return ok, why


def at_resolution(loaded: Any, size: int, cache: dict[int, Variant]) -> Variant:
    """The model of ``loaded`` (a :class:`codesign.compress.source.Loaded`) at ``size``."""
    from codesign.data import resize_bilinear
    from codesign.hyper.graph import channel_graph

    h = loaded.user.input_shape[0]
    if size == h:
        return Variant(loaded.user.model, loaded.graph, loaded.train, loaded.val, loaded.test)
    if size not in cache:
        model = reinput(loaded.user.model, size)

        def split(x: np.ndarray, y: np.ndarray) -> Split:
            return loaded.inputs(resize_bilinear(x, size)), y

        d = loaded.data
        cache[size] = Variant(model, channel_graph(model), split(d.x_train, d.y_train),
                              split(d.x_val, d.y_val), split(d.x_test, d.y_test))
    return cache[size]
