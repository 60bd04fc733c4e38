"""What codesign needs to know about a user's tf_keras model, and the translation check.

* :func:`check_io`: one image input ``(batch, H, W, C)`` of fixed size, one
  ``(batch, classes)`` output.
* :func:`preprocessing`: the ``Rescaling`` and ``Normalization`` layers the
  input goes through first, in order.
* :func:`output_activation`: whether the model ends in a softmax, a sigmoid or
  gives logits (looking back through ``Flatten``, ``Reshape``, ``Dropout``).
* :func:`output_difference`: how far a translated model's outputs are from the
  original's on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tf_keras

from codesign.errors import CodesignError

OutputKind = Literal["softmax", "sigmoid", "logits"]
SHAPE_ONLY = ("Flatten", "Reshape", "Dropout", "SpatialDropout2D", "GaussianNoise",
              "GaussianDropout", "AlphaDropout", "ActivityRegularization")
RTOL = 1e-4  # a translation may differ by this much, relative to the outputs' range (at least 1)


@dataclass(frozen=True)
class Rescale:
    """A ``Rescaling`` layer: ``x * scale + offset``.

    Attributes:
        layer: Its name.
        scale: One value, or one per channel.
        offset: One value, or one per channel.
    """

    layer: str
    scale: tuple[float, ...]
    offset: tuple[float, ...]


@dataclass(frozen=True)
class Normalize:
    """A ``Normalization`` layer: ``(x - mean) / sqrt(variance)`` (or the inverse).

    Attributes:
        layer: Its name.
        mean: One value per channel (or one for all).
        variance: Likewise.
        invert: True if the layer undoes a normalization instead.
    """

    layer: str
    mean: tuple[float, ...]
    variance: tuple[float, ...]
    invert: bool = False


def check_io(inputs: Sequence[tuple], outputs: Sequence[tuple], names: Sequence[str]) -> None:
    """Refuse models codesign cannot compress: it needs one image in, class scores out.

    Args:
        inputs: The input shapes, batch axis first.
        outputs: The output shapes.
        names: The input names (for the message).

    Raises:
        CodesignError: With what is wrong and what codesign needs.
    """
    if len(inputs) != 1:
        raise CodesignError(
            f"the model has {len(inputs)} inputs ({', '.join(names)}): codesign needs a model "
            "with one image input"
        )
    if len(outputs) != 1:
        raise CodesignError(
            f"the model has {len(outputs)} outputs: codesign needs a model with one output "
            "(the class scores)"
        )
    shape = tuple(inputs[0])
    if len(shape) != 4:
        raise CodesignError(
            f"the model's input has shape {_show(shape)}, not an image: codesign needs an image "
            "input (batch, height, width, channels), e.g. keras.Input(shape=(32, 32, 3))"
        )
    if any(d is None for d in shape[1:]):
        raise CodesignError(
            f"the model's input shape {_show(shape)} is not fixed: codesign needs a fixed image "
            "size; build the model with keras.Input(shape=(H, W, C)) and save it again"
        )
    if len(outputs[0]) != 2 or outputs[0][-1] is None:
        raise CodesignError(
            f"the model's output has shape {_show(tuple(outputs[0]))}: codesign needs a "
            "classifier whose output is (batch, classes)"
        )


def _show(shape: tuple) -> str:
    """``(None, 32, 32, 3)``."""
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _graph(model: tf_keras.Model) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Layer names in order, each layer's input layers, and the output layers' names."""
    if isinstance(model, tf_keras.Sequential):
        names = [layer.name for layer in model.layers]
        first = model.input_names[0] if model.input_names else None
        inbound = {n: [p] for n, p in zip(names, [first, *names[:-1]], strict=True) if p}
        return names, inbound, names[-1:]
    config = model.get_config()
    inbound: dict[str, list[str]] = {}
    for entry in config["layers"]:
        sources = []
        for node in entry.get("inbound_nodes", []):
            sources.extend(str(t[0]) for t in tf_keras_tensors(node))
        inbound[entry["name"]] = sources
    return [e["name"] for e in config["layers"]], inbound, [o[0] for o in config["output_layers"]]


def tf_keras_tensors(node: Any) -> list[list]:
    """The ``[layer, node, tensor, kwargs]`` entries of a tf_keras functional config node."""
    if isinstance(node, list) and len(node) >= 3 and isinstance(node[0], str):
        return [node]
    if isinstance(node, list | tuple):
        return [t for item in node for t in tf_keras_tensors(item)]
    if isinstance(node, dict):
        return [t for item in node.values() for t in tf_keras_tensors(item)]
    return []


def preprocessing(model: tf_keras.Model) -> tuple[Rescale | Normalize, ...]:
    """The ``Rescaling``/``Normalization`` layers the input goes through first, in order.

    A layer counts if it is the only consumer of the input (or of the previous
    such layer) and has that one input. Augmentation layers (``RandomFlip``...,
    ``GaussianNoise``), which do nothing at inference, are looked through.
    """
    names, inbound, _ = _graph(model)
    current = model.input_names[0]
    found: list[Rescale | Normalize] = []
    while True:
        users = [n for n in names if current in inbound.get(n, [])]
        if len(users) != 1 or inbound[users[0]] != [current]:
            break
        layer = model.get_layer(users[0])
        if isinstance(layer, tf_keras.layers.Rescaling):
            found.append(Rescale(layer.name, _values(layer.scale), _values(layer.offset)))
        elif isinstance(layer, tf_keras.layers.Normalization):
            found.append(Normalize(layer.name, _values(layer.mean), _values(layer.variance),
                                   bool(getattr(layer, "invert", False))))
        elif not _augmentation(layer):
            break
        current = layer.name
    return tuple(found)


def _augmentation(layer: Any) -> bool:
    """Whether a layer only acts while training (random augmentation, noise)."""
    kind = type(layer).__name__
    return kind.startswith("Random") or kind in ("GaussianNoise", "GaussianDropout")


def _values(value: Any) -> tuple[float, ...]:
    """A scalar or array (or tensor) as a flat tuple of floats."""
    arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)
    return tuple(float(v) for v in arr.ravel())


def output_activation(model: tf_keras.Model) -> OutputKind:
    """``"softmax"``, ``"sigmoid"`` or ``"logits"``: what the model's last activation is."""
    _, inbound, outputs = _graph(model)
    name = outputs[0]
    while True:
        layer = model.get_layer(name)
        kind = type(layer).__name__
        fn = getattr(layer, "activation", None)
        fn_name = getattr(fn, "__name__", str(fn)) if fn is not None else ""
        if kind == "Softmax" or fn_name == "softmax":
            return "softmax"
        if fn_name == "sigmoid":
            return "sigmoid"
        shape_only = kind in SHAPE_ONLY or (kind == "Activation" and fn_name == "linear")
        if not shape_only or len(inbound.get(name, [])) != 1:
            return "logits"
        name = inbound[name][0]


def sample_images(
    shape: tuple[int, ...], dtype: str, preprocess: Sequence[Rescale | Normalize], n: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """Inputs to compare two models on when the caller has no real images.

    Pixels in ``[0, 255]`` if the model scales its input itself, else in ``[0, 1]``.
    """
    rng = np.random.default_rng(seed)
    high = 255.0 if preprocess or "int" in dtype else 1.0
    x = rng.uniform(0.0, high, size=(n, *shape))
    return (np.round(x) if "int" in dtype else x).astype(dtype)


def output_difference(
    reference: Callable[[np.ndarray], Any], model: tf_keras.Model, x: np.ndarray
) -> tuple[float, float]:
    """The largest absolute difference between two models' outputs, and its tolerance.

    Args:
        reference: The original model, called as ``reference(x)``.
        model: The translated tf_keras model.
        x: Inputs.

    Returns:
        ``(max_abs_difference, tolerance)``; the tolerance is :data:`RTOL` times
        the range of the reference outputs (at least 1).
    """
    want = np.asarray(reference(x), dtype=np.float64)
    got = np.asarray(model(x, training=False), dtype=np.float64)
    if want.shape != got.shape:
        return float("inf"), 0.0
    tolerance = RTOL * max(1.0, float(np.ptp(want)) if want.size else 1.0)
    diff = float(np.max(np.abs(want - got))) if want.size else 0.0
    return diff, tolerance
