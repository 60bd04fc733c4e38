"""Every op that costs time in a tf_keras model, as the TFLite converter will emit it.

Read in model order from the layers' calls (:func:`layer_ops`), for the
description the search process prices candidates from
(:class:`codesign.hyper.opgraph.GraphOp`). What the converter does, checked
against converted files (``tools/check_description.py``):

- Batch norm right after a conv, depthwise or dense layer whose output
  nothing else reads folds into its weights; elsewhere it becomes MUL and ADD.
- A ReLU or ReLU6 (a layer, an ``Activation`` or a layer's own ``activation``)
  fuses into the conv, depthwise, dense, ADD, SUB, MUL or local pool before it when
  nothing else reads that op's output; elsewhere it is a RELU / RELU6 op.
- Dropout, noise, activity regularisation and linear activations vanish;
  ``Flatten`` of a vector vanishes, of a feature map is a RESHAPE.
- ``Rescaling`` is a MUL (scale not 1) and an ADD (offset not 0); the chain
  folds them into the convolution they feed where the converter does
  (:mod:`codesign.latency.graph_chain`).
- Global pools are MEAN / REDUCE_MAX; other activations their own op
  (``softmax``: SOFTMAX, ``swish``: LOGISTIC and MUL...); ``Average`` is ADDs
  and a MUL.
- A dilated convolution becomes SPACE_TO_BATCH_ND, CONV_2D and BATCH_TO_SPACE_ND
  on padded blocks; it is listed as unknown (not priced) for now.

A layer codesign cannot map is listed as ``UNKNOWN:<class>`` (a chain built
from it says so). Runs in the evaluation child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tf_keras as keras

from codesign.hyper.opgraph import MODEL_INPUT, GraphOp

L = keras.layers
VANISH = (L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout,
          L.ActivityRegularization)
FUSE_INTO = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "MAX_POOL_2D",
             "AVERAGE_POOL_2D")
FOLD_INTO = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ACTIVATIONS = {"softmax": ["SOFTMAX"], "sigmoid": ["LOGISTIC"], "tanh": ["TANH"],
               "elu": ["ELU"], "gelu": ["GELU"], "hard_swish": ["HARD_SWISH"],
               "swish": ["LOGISTIC", "MUL"], "silu": ["LOGISTIC", "MUL"]}
SWISH = ("swish", "silu")  # x * sigmoid(x): the MUL reads the LOGISTIC's output and x
MERGES = {L.Add: "ADD", L.Subtract: "SUB", L.Multiply: "MUL", L.Maximum: "MAXIMUM",
          L.Minimum: "MINIMUM"}
Key = tuple[str, int, int]  # (layer, node index, tensor index): one Keras tensor
Layouts = dict[Key, Any]


class _Ops:
    """The op list being built, and which op each Keras tensor is the output of."""

    def __init__(self, layouts: Layouts, namer: Callable[[int], str]) -> None:
        self.ops: list[GraphOp] = []
        self.at: dict[Key, int] = {}
        self.alone: dict[Key, bool] = {}  # whether the op's output reaches it, read by no other
        self.uses: dict[Key, int] = {}
        self.layouts = layouts
        self.namer = namer

    def layout(self, key: Key, tensor: Any = None) -> list[Any]:
        """A tensor's layout as plain data (one frozen segment if the analysis has none)."""
        lay = self.layouts.get(key)
        if lay is None:  # a Sequential model's input is no layer of the model
            last = tensor.shape[-1] if tensor is not None else None
            return [[["_input", int(last)]], 1] if last is not None else []
        return [[[self.namer(g), int(n)] for g, n in lay.segments], int(lay.repeat)]

    def add(self, op: GraphOp, out: Key) -> int:
        self.ops.append(op)
        self.at[out] = len(self.ops) - 1
        self.alone[out] = True
        return len(self.ops) - 1

    def same(self, out: Key, src: Key) -> None:
        """``out`` is ``src`` (a layer that vanishes, folds or fuses)."""
        self.at[out] = self.at.get(src, MODEL_INPUT)
        self.alone[out] = self.alone.get(src, False) and self.uses.get(src, 0) == 1

    def owns(self, src: Key, kinds: tuple[str, ...]) -> GraphOp | None:
        """The op ``src`` is the output of, if it is one of ``kinds`` that only this layer reads."""
        i = self.at.get(src, MODEL_INPUT)
        if i == MODEL_INPUT or not self.alone.get(src) or self.uses.get(src, 0) != 1:
            return None
        op = self.ops[i]
        return op if op.tflite in kinds and not op.fused else None


def layer_ops(model: keras.Model, layouts: Layouts, namer: Callable[[int], str]
              ) -> list[GraphOp]:
    """The ops of ``model`` in model order.

    Args:
        model: A functional (or Sequential) tf_keras model.
        layouts: Each Keras tensor's channel layout, from the channel-group analysis.
        namer: A group variable's name.
    """
    s = _Ops(layouts, namer)
    network = model._network_nodes  # noqa: SLF001 (which nodes belong to this model)
    calls = []
    for layer in model.layers:
        for index, node in enumerate(layer._inbound_nodes):  # noqa: SLF001
            if f"{layer.name}_ib-{index}" in network and not node.is_input:
                srcs = [(src.name, ni, ti) for src, ni, ti, _ in node.iterate_inbound()]
                calls.append((layer, index, node, srcs))
                for key in srcs:
                    s.uses[key] = s.uses.get(key, 0) + 1
    for layer, index, node, srcs in calls:
        _call(s, layer, node, srcs, (layer.name, index, 0))
    return s.ops


def _hw(tensor: Any) -> list[int] | None:
    shape = tuple(tensor.shape)
    return [int(shape[1]), int(shape[2])] if len(shape) == 4 else None


def _call(s: _Ops, layer: Any, node: Any, srcs: list[Key], out: Key) -> None:
    """Add the ops of one layer call (or map its output to the op it folds into)."""
    t = type(layer)
    ins = _flat(node.input_tensors)
    src = srcs[0]
    base = dict(name=layer.name, inputs=[s.at.get(k, MODEL_INPUT) for k in srcs],
                in_layouts=[s.layout(k, x) for k, x in zip(srcs, ins, strict=True)],
                out_layout=s.layout(out),
                in_hw=_hw(ins[0]), out_hw=_hw(_flat(node.outputs)[0]))
    relu = _relu(layer)
    if isinstance(layer, VANISH) or relu == "linear" or (
            t is L.Flatten and len(ins[0].shape) == 2):
        s.same(out, src)
        return
    if relu in ("relu", "relu6"):
        host = s.owns(src, FUSE_INTO)
        if host is not None:
            host.fused = relu
            s.same(out, src)
        else:
            s.add(GraphOp(tflite=relu.upper(), **base), out)
        return
    if t is L.BatchNormalization:
        host = s.owns(src, FOLD_INTO)
        if host is not None:
            s.same(out, src)
            return
        _chain(s, [GraphOp(tflite=k, const="channel", **base) for k in ("MUL", "ADD")], base,
               out)
        return
    ops = _convert(layer, base)
    if not ops:
        s.same(out, src)
        return
    _chain(s, ops, base, out, isinstance(layer, L.Activation) and _act(layer) in SWISH)
    name = _act(layer) if not isinstance(layer, L.Activation) else None
    if name in ("relu", "relu6") and s.ops[-1].tflite in FUSE_INTO:
        s.ops[-1].fused = name
    elif name and name != "linear":
        following = dict(base, inputs=[len(s.ops) - 1], in_layouts=[base["out_layout"]],
                         in_hw=base["out_hw"])
        _chain(s, ACTIVATIONS.get(name, [f"UNKNOWN:activation:{name}"]), following, out,
               name in SWISH)


def _chain(s: _Ops, tflite: list[Any], base: dict[str, Any], out: Key, swish: bool = False
           ) -> None:
    """Add ops one after the other (the first reads the layer's inputs).

    With ``swish``, the last op (a MUL) also reads the first op's input.
    """
    for k, item in enumerate(tflite):
        op = item if isinstance(item, GraphOp) else GraphOp(tflite=item, **base)
        if k:
            op.inputs, op.in_layouts, op.in_hw = [len(s.ops) - 1], [base["out_layout"]], \
                base["out_hw"]
        if k and swish and k == len(tflite) - 1:
            op.inputs.append(base["inputs"][0])
            op.in_layouts.append(base["in_layouts"][0])
        s.add(op, out)


def _relu(layer: Any) -> str | None:
    """``relu`` / ``relu6`` / ``linear`` for a layer that is only that activation, else None."""
    if isinstance(layer, L.Activation):
        name = _act(layer)
        return name if name in ("relu", "relu6", "linear") else None
    if type(layer) is L.ReLU and not float(layer.negative_slope) and not float(layer.threshold):
        if layer.max_value is None:
            return "relu"
        return "relu6" if float(layer.max_value) == 6.0 else None
    return None


def _convert(layer: Any, base: dict[str, Any]) -> list[Any]:
    """The ops a layer (other than batch norm and ReLU) converts to."""
    t = type(layer)
    conv = {L.Conv2D: "CONV_2D", L.DepthwiseConv2D: "DEPTHWISE_CONV_2D"}.get(t)
    if conv and max(layer.dilation_rate) > 1:
        return [f"UNKNOWN:{t.__name__}(dilated)"]
    if conv and not (t is L.Conv2D and layer.groups != 1) and not (
            t is L.DepthwiseConv2D and layer.depth_multiplier != 1):
        return [GraphOp(tflite=conv, kernel=list(layer.kernel_size), strides=list(layer.strides),
                        padding=layer.padding, dilation=list(layer.dilation_rate),
                        group=_group(base["out_layout"]) if conv == "CONV_2D" else None,
                        layer=True, **base)]
    if t is L.Dense and base["in_hw"] is None:
        return [GraphOp(tflite="FULLY_CONNECTED", group=_group(base["out_layout"]), layer=True,
                        **base)]
    pools = {L.MaxPooling2D: "MAX_POOL_2D", L.AveragePooling2D: "AVERAGE_POOL_2D"}
    if t in pools:
        return [GraphOp(tflite=pools[t], kernel=list(layer.pool_size), strides=list(layer.strides),
                        padding=layer.padding, **base)]
    simple = {L.GlobalAveragePooling2D: ["MEAN"], L.GlobalMaxPooling2D: ["REDUCE_MAX"],
              L.Flatten: ["RESHAPE"], L.Reshape: ["RESHAPE"], L.Concatenate: ["CONCATENATION"],
              L.Softmax: ["SOFTMAX"], L.LeakyReLU: ["LEAKY_RELU"], L.ELU: ["ELU"]}
    if t in simple:
        return list(simple[t])
    if t in MERGES or t is L.Average:
        n = len(base["inputs"]) - 1
        half = [GraphOp(tflite="MUL", const="scalar", **base)] if t is L.Average else []
        return [MERGES.get(t, "ADD")] * n + half
    if t is L.Rescaling:
        return [GraphOp(tflite=k, const="scalar" if np.size(v) == 1 else "channel", **base)
                for k, v, skip in (("MUL", layer.scale, 1), ("ADD", layer.offset, 0))
                if np.any(np.asarray(v) != skip)]
    if t is L.ZeroPadding2D:
        return [GraphOp(tflite="PAD", pads=[list(p) for p in layer.padding], **base)]
    if t is L.UpSampling2D:
        resize = "RESIZE_BILINEAR" if layer.interpolation == "bilinear" else \
            "RESIZE_NEAREST_NEIGHBOR"
        return [GraphOp(tflite=resize, scale=list(layer.size), **base)]
    if t is L.Activation:
        name = _act(layer)
        return list(ACTIVATIONS.get(name, [f"UNKNOWN:activation:{name}"]))
    return [f"UNKNOWN:{t.__name__}"]


def _act(layer: Any) -> str:
    """The name of a layer's activation function."""
    return str(getattr(getattr(layer, "activation", None), "__name__", "linear"))


def _group(layout: list[Any]) -> str | None:
    return str(layout[0][0][0]) if layout and len(layout[0]) == 1 else None


def _flat(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]
