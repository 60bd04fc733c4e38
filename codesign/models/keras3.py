"""A Keras 3 functional or Sequential model rebuilt as a tf_keras functional model.

The Keras 3 graph is walked node by node, deepest first, exactly as Keras 3 runs
it (``Function._nodes_by_depth``; each node's ``arguments`` say which tensors it
consumes and where). Each layer becomes the tf_keras layer of the same class
and name, built from its adapted config (:mod:`codesign.models.configs`) and
called on the tf_keras tensors that correspond to its inputs; a layer called
twice stays one shared layer. Nested models (``MobileNetV2`` inside a
``Sequential``) are flattened: their layers join the outer graph, a clashing
name gets the nested model's name in front. Arithmetic written on tensors
(``x / 255.0``, ``x + y``), which Keras 3 records as operations rather than
layers, becomes ``Rescaling``, ``Add``, ``Subtract`` or ``Multiply`` layers.
The weights are then copied layer by layer, shapes checked.

A node's ``training`` argument is not carried over: Keras 3 records the
default of a layer's ``call`` (``RandomFlip`` and ``GaussianNoise`` record
``training=True``) and, when the model is run with ``training`` given (fit,
predict), gives every layer that instead. tf_keras does the same for layers
called without one, while an explicit ``training=True`` would keep them random
at inference. (A nested model called with ``training=False`` is overridden in
Keras 3 too; what keeps its batch norms in inference mode is ``trainable=False``,
which both Keras versions honour and the translation keeps.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from codesign.errors import CodesignError
from codesign.models.configs import is_builtin, layer_config, tf_keras_layer_class

L = tf_keras.layers
ARITHMETIC = ("Add", "Subtract", "Multiply", "TrueDivide", "Divide", "Negative")


@dataclass(frozen=True)
class Translation:
    """A Keras 3 model rebuilt in tf_keras.

    Attributes:
        model: The tf_keras functional model, with the Keras 3 model's weights.
        flattened: Names of the nested models whose layers joined the graph.
        added: What was rebuilt from several layers or turned into layers
            (``"stem_activation: hard_swish"``, ``"true_divide: Rescaling"``).
        renamed: ``(old, new)`` layer names changed because they clashed.
    """

    model: tf_keras.Model
    flattened: tuple[str, ...]
    added: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]


def graph_of(model: Any) -> Any:
    """The Keras 3 functional graph a model runs (a Sequential's inner one).

    Raises:
        CodesignError: If the model is subclassed, or a Sequential that was never built.
    """
    import keras  # Keras 3
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential) and is_builtin(model):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise CodesignError(
                f"the Sequential model '{model.name}' has no input shape: start it with "
                "keras.Input(shape=(H, W, C)) and save it again"
            )
        return graph
    if isinstance(model, Functional) and is_builtin(model):
        return model
    raise CodesignError(
        f"'{model.name}' is a subclassed model (class {type(model).__name__}): codesign needs "
        "a functional or Sequential model (keras.Model(inputs, outputs)); rebuild it so and "
        "save it again"
    )


def translate(model: Any) -> Translation:
    """Rebuild a Keras 3 functional or Sequential model as a tf_keras functional model.

    Raises:
        CodesignError: If a layer, setting or operation has no tf_keras equivalent,
            or the weights do not fit.
    """
    graph = graph_of(model)
    walk = _Walk()
    inputs = []
    for x in graph.inputs:
        name = walk.unique(x._keras_history.operation.name, "")
        inputs.append(tf_keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype, name=name))
    outputs = walk.run(graph, inputs, "")
    out = tf_keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name)
    for layer3, layer2 in walk.pairs:
        copy_weights(layer3, layer2)
    return Translation(out, tuple(walk.flattened), tuple(walk.added), tuple(walk.renamed))


def copy_weights(layer3: Any, layer2: Any) -> None:
    """Give the tf_keras layer the Keras 3 layer's weights, in order, shapes checked.

    Raises:
        CodesignError: If the two layers do not hold the same weights.
    """
    w3, w2 = layer3.get_weights(), layer2.get_weights()
    shapes3, shapes2 = [w.shape for w in w3], [w.shape for w in w2]
    if shapes3 != shapes2:
        raise CodesignError(
            f"layer '{layer3.name}' ({type(layer3).__name__}) holds weights of shapes "
            f"{shapes3} but its tf_keras counterpart {shapes2}: codesign cannot translate it"
        )
    if w3:
        layer2.set_weights(w3)


class _Walk:
    """The state of one translation: layers made so far and names taken."""

    def __init__(self) -> None:
        self.made: dict[int, Callable[..., Any]] = {}
        self.pairs: list[tuple[Any, Any]] = []
        self.names: set[str] = set()
        self.flattened: list[str] = []
        self.added: list[str] = []
        self.renamed: list[tuple[str, str]] = []

    def unique(self, name: str, prefix: str) -> str:
        """``name`` if free, else with the nested model's name (and a number) in front."""
        new = name
        if new in self.names and prefix:
            new = f"{prefix}_{name}"
        base, i = new, 1
        while new in self.names:
            new, i = f"{base}_{i}", i + 1
        if new != name:
            self.renamed.append((name, new))
        self.names.add(new)
        return new

    def run(self, graph: Any, inputs: list[Any], prefix: str) -> list:
        """Call tf_keras layers along ``graph`` from ``inputs``; return the outputs."""
        tensors = {id(x): y for x, y in zip(graph.inputs, inputs, strict=True)}
        by_depth = graph._nodes_by_depth
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if node.operation is None or node.is_input:
                    continue
                if any(id(x) not in tensors for x in node.input_tensors):
                    continue  # not part of this model's computation
                args, kwargs = node.arguments.fill_in(tensors)
                outs = self.call(node.operation, list(args), dict(kwargs), prefix)
                for x, y in zip(node.outputs, tf.nest.flatten(outs), strict=True):
                    tensors[id(x)] = y
        return [tensors[id(x)] for x in graph.outputs]

    def call(self, op: Any, args: list, kwargs: dict, prefix: str) -> Any:
        """The tf_keras output of one Keras 3 node."""
        import keras  # Keras 3

        if isinstance(op, keras.Model):
            inner = graph_of(op)
            self.flattened.append(op.name)
            outs = self.run(inner, tf.nest.flatten(args[0]), op.name)
            return outs[0] if len(outs) == 1 else outs
        if isinstance(op, keras.layers.Layer):
            layer = self.layer(op, prefix)
            kwargs = {k: v for k, v in kwargs.items()
                      if v is not None and k not in ("mask", "training")}
            return layer(*args, **kwargs)
        return self.operation(op, args, prefix)

    def layer(self, layer3: Any, prefix: str) -> Callable[..., Any]:
        """The tf_keras stand-in for a Keras 3 layer, made on its first call."""
        if id(layer3) in self.made:
            return self.made[id(layer3)]
        cls = tf_keras_layer_class(layer3)
        config, tail = layer_config(layer3, cls)
        name = self.unique(layer3.name, prefix)
        main = None
        if config is not None:
            config["name"] = name
            main = cls.from_config(config)
            self.pairs.append((layer3, main))
        if tail is not None:
            self.added.append(f"{name}: {tail}")
            tail_fn = _tail(tail, name if main is None else self.unique(f"{name}_{tail}", ""),
                            self.unique)
        made = _Stand(main, tail_fn if tail is not None else None)
        self.made[id(layer3)] = made
        return made

    def operation(self, op: Any, args: list, prefix: str) -> Any:
        """Keras 3 arithmetic on tensors as the tf_keras layer that computes it.

        Raises:
            CodesignError: For any other operation.
        """
        kind = type(op).__name__
        is_tensor = [_is_tensor(a) for a in args]
        name = self.unique(op.name, prefix)
        layer = None
        if kind == "Negative" and is_tensor == [True]:
            layer = L.Rescaling(-1.0, name=name)
        elif kind in ("Add", "Subtract", "Multiply") and is_tensor == [True, True]:
            layer = getattr(L, kind)(name=name)
            self.added.append(f"{op.name}: {kind}")
            return layer(args)
        elif kind in ARITHMETIC and len(args) == 2 and sum(is_tensor) == 1 \
                and _scalar(args[1 - is_tensor.index(True)]) is not None:
            c = _scalar(args[1 - is_tensor.index(True)])
            first = is_tensor[0]
            scale, offset = {
                "Add": (1.0, c), "Multiply": (c, 0.0),
                "Subtract": (1.0, -c) if first else (-1.0, c),
                "TrueDivide": (1.0 / c, 0.0) if first and c else None,
                "Divide": (1.0 / c, 0.0) if first and c else None,
            }.get(kind) or (None, None)
            if scale is not None:
                layer = L.Rescaling(scale, offset, name=name)
        if layer is None:
            raise CodesignError(
                f"the model computes '{op.name}' (keras.ops {kind}) outside a layer: codesign "
                "needs built-in Keras layers; use a layer (Rescaling, Add, Multiply...) "
                "instead and save the model again"
            )
        self.added.append(f"{op.name}: {type(layer).__name__}")
        return layer(args[is_tensor.index(True)])


class _Stand:
    """A tf_keras layer, and the layers of its tail activation, called as one."""

    def __init__(self, main: Any, tail: Callable[[Any], Any] | None) -> None:
        self.main, self.tail = main, tail

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        x = self.main(*args, **kwargs) if self.main is not None else args[0]
        return self.tail(x) if self.tail is not None else x


def _tail(kind: str, name: str, unique: Callable[[str, str], str]) -> Callable[[Any], Any]:
    """Keras 3's ``hard_sigmoid`` (``relu6(x + 3) / 6``) or ``hard_swish`` from tf_keras layers.

    The last layer gets ``name``. ``x * relu6(x + 3) / 6`` is the pattern the
    TFLite converter fuses into one ``HARD_SWISH``.
    """
    swish = kind == "hard_swish"
    plus3 = L.Rescaling(1.0, 3.0, name=unique(f"{name}_plus3", ""))
    relu6 = L.ReLU(6.0, name=unique(f"{name}_relu6", ""))
    div6 = L.Rescaling(1.0 / 6.0, name=unique(f"{name}_div6", "") if swish else name)
    times = L.Multiply(name=name) if swish else None

    def apply(x: Any) -> Any:
        h = div6(relu6(plus3(x)))
        return times([x, h]) if times is not None else h

    return apply


def _is_tensor(value: Any) -> bool:
    """Whether ``value`` is a tf_keras symbolic tensor (not a constant)."""
    try:
        return bool(tf_keras.backend.is_keras_tensor(value))
    except ValueError:
        return False


def _scalar(value: Any) -> float | None:
    """A Python or NumPy number (or 0-d array) as a float, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | np.number):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return float(value)
    return None
