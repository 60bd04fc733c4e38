"""The ops a described model will run, as plain records both processes share.

The evaluation child lists, in model order, every op of a tf_keras model that
becomes a TFLite op (:func:`codesign.hyper.graph_ops.layer_ops`); the search
process reads the list back from the JSON description and prices candidates
from it (:mod:`codesign.latency.graph_chain`) without converting them. The
rules both sides must agree on live here: how many channels a pruned group
keeps, how a spatial size follows strides and padding at another input
resolution, which kind an op is priced as, and which ops ai-edge-quantizer
takes at an integer precision. Pure Python: no TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

MODEL_INPUT = -1  # an op's input index when it reads the model's input
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
SPATIAL = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D")
ELEMENTWISE = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")
# Glue ops (between conv, depthwise and dense layers) that ai-edge-quantizer's default policy
# quantizes at each static precision (its ``static_wi8_ai8`` / ``static_wi8_ai16`` lists, for
# the ops a Keras classifier converts to; tests/test_graph_chain.py reads the installed policy).
INTEGER_OPS = {
    "int8": frozenset({"ADD", "SUB", "MUL", "MAXIMUM", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
                       "CONCATENATION", "RESHAPE", "SOFTMAX", "LOGISTIC", "TANH", "PAD",
                       "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "STRIDED_SLICE",
                       "HARD_SWISH", "RELU", "GELU"}),
    "int16x8": frozenset({"ADD", "SUB", "MUL", "MAXIMUM", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                          "MEAN", "CONCATENATION", "RESHAPE", "SOFTMAX", "LOGISTIC", "TANH",
                          "PAD", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "STRIDED_SLICE",
                          "RELU", "GELU"}),
}
KIND_OF = {"DEPTHWISE_CONV_2D": "dw", "FULLY_CONNECTED": "dense", "MEAN": "pool",
           "REDUCE_MAX": "gmax", "MAX_POOL_2D": "maxpool", "AVERAGE_POOL_2D": "avgpool"}


def kept_count(size: int, ratio: float) -> int:
    """Channels a group of ``size`` keeps when ``ratio`` of them is pruned (at least one)."""
    return max(1, int(round(size * (1.0 - float(ratio)))))


def op_kind(tflite: str, kernel: tuple[int, int] | None, tensor_inputs: int) -> str:
    """The kind an op is priced as (the built-in chain's names where they exist).

    Args:
        tflite: The TFLite builtin op (``CONV_2D``...).
        kernel: Its kernel's height and width (convolutions).
        tensor_inputs: How many of its inputs are activations (not constants).

    Returns:
        ``pw`` (1x1 convolution), ``conv`` (k x k), ``dw``, ``dense``, ``add``
        (two activations added), ``rescale`` (an element-wise op with a
        constant: a ``Rescaling`` or an unfolded batch norm), ``pool``
        (global average), ``gmax``, ``maxpool``, ``avgpool``, or the op's name
        in lower case (``mul``, ``concatenation``, ``reshape``, ``softmax``...).
    """
    if tflite == "CONV_2D":
        return "pw" if tuple(kernel or (1, 1)) == (1, 1) else "conv"
    if tflite in ELEMENTWISE and tensor_inputs < 2:
        return "rescale"
    return KIND_OF.get(tflite, tflite.lower())


@dataclass
class GraphOp:
    """One op a model runs, at the model's own input resolution.

    Attributes:
        name: The Keras layer it comes from (one layer may give several ops).
        tflite: The TFLite op it converts to (``UNKNOWN:<class>`` if codesign
            cannot say).
        inputs: Indices of the ops whose outputs it reads (``MODEL_INPUT``: the
            model's input), activations only.
        in_layouts: Per input, its channels as ``[[group, channels], ...]``
            side by side, and how often they repeat (after ``Flatten``).
        out_layout: Its output's channels, alike.
        in_hw: Height and width of its first input (None: no spatial axes).
        out_hw: Height and width of its output (None: no spatial axes).
        kernel: Kernel (or pool window) height and width.
        strides: Strides.
        padding: ``same`` or ``valid``.
        dilation: Dilation rate.
        pads: Rows and columns added ``[[top, bottom], [left, right]]`` (PAD;
            negative: cropped).
        scale: Upsampling factor (resize ops).
        group: The channel group it produces (conv and dense: its output channels).
        fused: Activation fused into it by the converter (``relu``, ``relu6``).
        const: For an element-wise op with a constant: ``scalar`` (one number)
            or ``channel`` (one per channel).
        layer: Whether it carries a precision gene of its own (conv, depthwise, dense).
    """

    name: str
    tflite: str
    inputs: list[int]
    in_layouts: list[list[Any]] = field(default_factory=list)
    out_layout: list[Any] = field(default_factory=list)
    in_hw: list[int] | None = None
    out_hw: list[int] | None = None
    kernel: list[int] | None = None
    strides: list[int] | None = None
    padding: str = "valid"
    dilation: list[int] | None = None
    pads: list[list[int]] | None = None
    scale: list[int] | None = None
    group: str | None = None
    fused: str = ""
    const: str = ""
    layer: bool = False

    @property
    def kind(self) -> str:
        """The kind it is priced as (:func:`op_kind`)."""
        return op_kind(self.tflite, tuple(self.kernel) if self.kernel else None, len(self.inputs))

    def to_json(self) -> dict[str, Any]:
        """Plain data for the description (fields at their defaults left out; ``kind`` added)."""
        empty = GraphOp("", "", [])
        kept = {k: v for k, v in asdict(self).items()
                if k in ("name", "tflite", "inputs") or v != getattr(empty, k)}
        return {"kind": self.kind, **kept}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GraphOp:
        """Read one op of a description back."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def spatial_out(op: GraphOp, hw: tuple[int, int] | None) -> tuple[int, int] | None:
    """An op's output height and width when its first input is ``hw``.

    Follows the converter's arithmetic: ``same`` padding gives ``ceil(h / s)``,
    ``valid`` ``floor((h - effective kernel) / s) + 1``; PAD adds its rows,
    resizing multiplies; global pooling, flattening and dense layers have none.
    """
    if op.out_hw is None or hw is None:
        return None if op.out_hw is None else (int(op.out_hw[0]), int(op.out_hw[1]))
    if op.tflite in SPATIAL:
        k, s = op.kernel or [1, 1], op.strides or [1, 1]
        d = op.dilation or [1, 1]
        if op.padding == "same":
            return math.ceil(hw[0] / s[0]), math.ceil(hw[1] / s[1])
        return tuple(  # type: ignore[return-value]
            max(0, (hw[i] - ((k[i] - 1) * d[i] + 1)) // s[i] + 1) for i in range(2))
    if op.pads is not None:
        return hw[0] + sum(op.pads[0]), hw[1] + sum(op.pads[1])
    if op.scale is not None:
        return hw[0] * op.scale[0], hw[1] * op.scale[1]
    if op.in_hw is not None and list(op.in_hw) != list(op.out_hw):
        return int(op.out_hw[0]), int(op.out_hw[1])  # a fixed reshape: its shape as recorded
    return hw
