"""A tf_keras model with nested models (a ``MobileNetV2`` base inside it) made flat.

codesign prunes channels across a graph of layers; a nested model is one
opaque layer to it. :func:`flatten` rebuilds the model with every nested
model's layers in the outer graph: each layer is a fresh copy (same class,
config, name and weights) called on the copies of its inputs, deepest node
first, as tf_keras runs the graph. A name two models share gets the nested
model's name in front. A nested model called with ``training=False`` (the
transfer-learning idiom) passes it on to each of its layers that takes it,
which is what tf_keras does when running the nested model.
"""

from __future__ import annotations

import inspect
from typing import Any

import tensorflow as tf
import tf_keras

from codesign.errors import CodesignError


def nested(model: tf_keras.Model) -> list[str]:
    """Names of the models nested directly in ``model``."""
    return [layer.name for layer in model.layers if isinstance(layer, tf_keras.Model)]


def flatten(model: tf_keras.Model) -> tuple[tf_keras.Model, list[str], list[tuple[str, str]]]:
    """The model with its nested models' layers in the outer graph.

    Returns:
        ``(flat model, names of the flattened models, (old, new) renamed layers)``.

    Raises:
        CodesignError: If a nested model is subclassed.
    """
    walk = _Flatten()
    inputs = [tf_keras.Input(shape=x.shape[1:], dtype=x.dtype, name=walk.unique(name, ""))
              for x, name in zip(model.inputs, model.input_names, strict=True)]
    outputs = walk.run(model, inputs, "", None)
    flat = tf_keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name)
    for old, new in walk.pairs:
        new.set_weights(old.get_weights())
    return flat, walk.flattened, walk.renamed


class _Flatten:
    """The state of one flattening: layers copied and names taken."""

    def __init__(self) -> None:
        self.copies: dict[int, Any] = {}
        self.pairs: list[tuple[Any, Any]] = []
        self.names: set[str] = set()
        self.flattened: list[str] = []
        self.renamed: list[tuple[str, str]] = []

    def unique(self, name: str, prefix: str) -> str:
        """``name`` if free, else with the nested model's name (and a number) in front."""
        new = f"{prefix}_{name}" if name in self.names and prefix else name
        base, i = new, 1
        while new in self.names:
            new, i = f"{base}_{i}", i + 1
        if new != name:
            self.renamed.append((name, new))
        self.names.add(new)
        return new

    def run(self, model: Any, inputs: list, prefix: str, training: bool | None) -> list:
        """Call copies of ``model``'s layers from ``inputs``; return the outputs."""
        if not getattr(model, "_is_graph_network", False):
            raise CodesignError(
                f"the nested model '{model.name}' is subclassed (class {type(model).__name__}): "
                "codesign needs functional or Sequential models"
            )
        tensors = {id(x): y for x, y in zip(model.inputs, inputs, strict=True)}
        by_depth = model._nodes_by_depth
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if node.is_input or any(id(x) not in tensors for x in node.keras_inputs):
                    continue
                args, kwargs = tf.nest.map_structure(
                    lambda t: tensors.get(id(t), t), (node.call_args, node.call_kwargs))
                outs = self.call(node.layer, list(args), dict(kwargs), prefix, training)
                for x, y in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outs),
                                strict=True):
                    tensors[id(x)] = y
        return [tensors[id(x)] for x in model.outputs]

    def call(self, layer: Any, args: list, kwargs: dict, prefix: str,
             training: bool | None) -> Any:
        """The output of a copy of ``layer`` (or of a flattened nested model)."""
        if kwargs.get("training") is None:
            kwargs.pop("training", None)
        if isinstance(layer, tf_keras.Model):
            self.flattened.append(layer.name)
            given = kwargs.get("training")
            outs = self.run(layer, tf.nest.flatten(args[0]), layer.name,
                            training if given is None else bool(given))
            return outs[0] if len(outs) == 1 else outs
        if id(layer) not in self.copies:
            config = layer.get_config()
            config["name"] = self.unique(layer.name, prefix)
            copy = type(layer).from_config(config)
            self.copies[id(layer)] = copy
            self.pairs.append((layer, copy))
        copy = self.copies[id(layer)]
        if training is not None and "training" not in kwargs and \
                "training" in inspect.signature(copy.call).parameters:
            kwargs["training"] = training
        return copy(*args, **kwargs)
