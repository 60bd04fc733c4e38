"""The chain of kernels of any described model: what a latency model prices, unconverted.

:func:`codesign.latency.features.kernels` reads a candidate of the built-in
family; this module reads the ops any model source describes before
conversion (``describe()["ops"]`` of :class:`codesign.hyper.graph.ChannelGraph`:
a trained model, a HyperModel's build) with a candidate's kept channels per
group, precision per layer and input resolution, and gives the same chain:
channels padded to the vector width in ``macs``, true counts in ``tmacs`` and
``weights``, a ``q:<from>><to>`` kernel wherever the activation type changes
between neighbours, glue ops (additions, pooling, reshapes...) integer exactly
where the converter's recipe makes them so
(:func:`codesign.tflite.recipe.glue_precisions` and the quantizer's policy,
:data:`codesign.hyper.opgraph.INTEGER_OPS`), and the model's outputs
dequantized to float. Pure Python: no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codesign.hyper.opgraph import (
    INTEGER_OPS,
    MODEL_INPUT,
    GraphOp,
    kept_count,
    spatial_out,
)
from codesign.latency.features import ACTIVATION, SIMD, Kernel

STATIC = ("int8", "int16x8")
PRECISION_OF = {"i8": "int8", "i16": "int16x8"}


@dataclass(frozen=True)
class Step:
    """One kernel of the chain and where it comes from.

    Attributes:
        layer: The Keras layer (for a ``q:`` kernel: the layer whose output it converts).
        tflite: The TFLite op (``QUANTIZE`` / ``DEQUANTIZE`` for ``q:`` kernels).
        kernel: What the latency model sees.
    """

    layer: str
    tflite: str
    kernel: Kernel


@dataclass
class _Tensor:
    hw: tuple[int, int] | None
    channels: int
    domain: str  # activation type: f, i8, i16
    nominal: str  # the precision the recipe gives its op (glue ops follow it)
    layer: str

    @property
    def elements(self) -> int:
        return self.channels * (self.hw[0] * self.hw[1] if self.hw else 1)


def described_ops(description: Mapping[str, Any]) -> list[GraphOp]:
    """The ops of a description (``describe()`` of the channel graph)."""
    return [GraphOp.from_json(dict(o)) for o in description.get("ops", [])]


def kept_from_ratios(description: Mapping[str, Any], ratios: Mapping[str, float]
                     ) -> dict[str, int]:
    """Channels each prunable group keeps for its prune ratio (as pruning rounds them)."""
    return {g["name"]: kept_count(int(g["size"]), ratios.get(g["name"], 0.0))
            for g in description["groups"] if g["prunable"]}


def _pad(c: int) -> int:
    return SIMD * math.ceil(c / SIMD)


def _count(layout: list[Any], kept: Mapping[str, int]) -> int:
    """Channels of a layout with the candidate's kept channels."""
    if not layout:
        return 0
    segments, repeat = layout
    return int(repeat) * sum(int(kept.get(g, n)) for g, n in segments)


def graph_steps(description: Mapping[str, Any], kept: Mapping[str, int],
                precision: Mapping[str, str], resolution: int | tuple[int, int] | None = None
                ) -> list[Step]:
    """The chain of a described model's candidate, in execution order.

    Args:
        description: The child's description of the model (with ``ops``).
        kept: Channels kept per pruned group (missing groups keep all).
        precision: Precision per conv, depthwise and dense layer.
        resolution: Input side (or height and width); None: the model's own.

    Raises:
        ValueError: If the description has no ops, or an op codesign cannot price.
    """
    ops = described_ops(description)
    if not ops:
        raise ValueError("the description lists no ops (described by an older codesign?)")
    unknown = sorted({f"{o.name} ({o.tflite[8:]})" for o in ops if o.tflite.startswith("UNKNOWN")})
    if unknown:
        raise ValueError(f"cannot price: {', '.join(unknown)}")
    first = next(o for o in ops if MODEL_INPUT in o.inputs)
    hw = first.in_hw if resolution is None else (
        (resolution, resolution) if isinstance(resolution, int) else resolution)
    source = _Tensor(None if hw is None else (int(hw[0]), int(hw[1])),
                     _count(first.in_layouts[first.inputs.index(MODEL_INPUT)], {}), "f",
                     "float32", "input")
    chain = _Chain(source, ops)
    for op in ops:
        chain.run(op, kept, precision)
    read = {i for op in ops for i in op.inputs}
    for i in range(len(ops)):
        if i not in read:
            chain.feed(i, "f")  # the model's outputs are float
    return chain.steps


def graph_kernels(description: Mapping[str, Any], kept: Mapping[str, int],
                  precision: Mapping[str, str], resolution: int | tuple[int, int] | None = None
                  ) -> list[Kernel]:
    """The kernels of :func:`graph_steps` (what :func:`codesign.latency.features.features` sums)."""
    return [s.kernel for s in graph_steps(description, kept, precision, resolution)]


class _Chain:
    """The chain being built: each op's output tensor and the conversions already made."""

    def __init__(self, source: _Tensor, ops: list[GraphOp]) -> None:
        self.source = source
        self.readers: dict[int, list[GraphOp]] = {}
        for op in ops:
            for i in op.inputs:
                self.readers.setdefault(i, []).append(op)
        self.tensors: list[_Tensor] = []
        self.alias: dict[int, int] = {}  # an op the converter folds: the tensor it reads
        self.folded = _folded_constants(ops, self.readers)
        self.steps: list[Step] = []
        self.converted: set[tuple[int, str]] = set()

    def tensor(self, i: int) -> _Tensor:
        return self.source if i == MODEL_INPUT else self.tensors[i]

    def feed(self, i: int, domain: str) -> None:
        """Convert tensor ``i`` to ``domain`` for a consumer, once per tensor and type."""
        i = self.alias.get(i, i)
        t = self.tensor(i)
        if t.domain != domain and (i, domain) not in self.converted:
            self.converted.add((i, domain))
            kind = f"q:{t.domain}>{domain}"
            self.steps.append(Step(t.layer, "DEQUANTIZE" if domain == "f" else "QUANTIZE",
                                   Kernel(kind, "", 0.0, t.elements, t.elements)))

    def run(self, op: GraphOp, kept: Mapping[str, int], precision: Mapping[str, str]) -> None:
        """Add ``op``'s kernel (after converting its inputs) and its output tensor."""
        ins = [self.tensor(i) for i in op.inputs]
        if len(self.tensors) in self.folded or (op.tflite == "PAD" and self._folds(op, ins[0].hw)):
            t = ins[0]
            self.alias[len(self.tensors)] = self.alias.get(op.inputs[0], op.inputs[0])
            self.tensors.append(_Tensor(spatial_out(op, t.hw), t.channels, t.domain, t.nominal,
                                        t.layer))
            return
        nominal, domain = self._types(op, ins, precision)
        lead = max(ins, key=lambda t: t.elements) if ins else None  # a broadcast merge's big side
        hw = spatial_out(op, lead.hw if lead else None)
        c = lead.channels if lead else 0
        if op.tflite in ("CONV_2D", "FULLY_CONNECTED") or op.tflite.startswith("UNKNOWN"):
            c = _count(op.out_layout, kept)
        elif op.tflite == "CONCATENATION":
            c = sum(t.channels for t in ins)
        elif op.tflite == "RESHAPE" and hw is None:
            c = ins[0].elements
        out = _Tensor(hw, c, domain, nominal, op.name)
        prec = precision[op.name] if op.layer else PRECISION_OF.get(domain, "float32")
        kernel = _kernel(op, [self.tensor(self.alias.get(i, i)) for i in op.inputs], out, prec)
        for i in op.inputs:
            self.feed(i, domain)
        self.steps.append(Step(op.name, op.tflite, kernel))
        self.tensors.append(out)

    def _folds(self, op: GraphOp, hw: tuple[int, int] | None) -> bool:
        """Whether the converter folds this PAD into the one convolution that reads it.

        It does when the rows and columns added are what ``same`` padding adds
        at this size (checked per size, kernel and stride on converted files).
        """
        readers = self.readers.get(len(self.tensors), [])
        if hw is None or op.pads is None or len(readers) != 1:
            return False
        conv = readers[0]
        if conv.tflite not in ("CONV_2D", "DEPTHWISE_CONV_2D") or conv.padding != "valid":
            return False
        k, s = conv.kernel or [1, 1], conv.strides or [1, 1]
        for d in range(2):
            total = max((math.ceil(hw[d] / s[d]) - 1) * s[d] + k[d] - hw[d], 0)
            if list(op.pads[d]) != [total // 2, total - total // 2]:
                return False
        return True

    def _types(self, op: GraphOp, ins: list[_Tensor], precision: Mapping[str, str]
               ) -> tuple[str, str]:
        """The op's precision in the recipe and its activation type in the file."""
        if op.layer:
            return precision[op.name], ACTIVATION[precision[op.name]]
        kinds = {t.nominal for t in ins}
        nominal = kinds.pop() if len(kinds) == 1 else "float32"
        if MODEL_INPUT in op.inputs or nominal not in STATIC:
            return "float32", "f"
        return nominal, ACTIVATION[nominal] if op.tflite in INTEGER_OPS[nominal] else "f"


def _folded_constants(ops: list[GraphOp], readers: dict[int, list[GraphOp]]) -> set[int]:
    """Element-wise ops with one number that the converter folds into the convolution after them.

    A MUL by a scalar folds into the conv or depthwise layer that alone reads
    it (its weights scale); an ADD of a scalar only into a ``valid`` one (its
    bias shifts; ``same`` padding would add the shifted zeros). Folded from the
    convolution backwards: a ``Rescaling`` with an offset before a ``valid``
    convolution folds whole. Per-channel constants stay (checked on converted files).
    """
    index = {id(op): i for i, op in enumerate(ops)}
    folded: set[int] = set()
    target: dict[int, GraphOp] = {}  # a folded op: the convolution it folds into
    for i in range(len(ops) - 1, -1, -1):
        op, after = ops[i], readers.get(i, [])
        if op.const != "scalar" or op.tflite not in ("MUL", "ADD") or len(after) != 1:
            continue
        reader = after[0]
        conv = target.get(index[id(reader)]) if index[id(reader)] in folded else reader
        if conv.tflite in ("CONV_2D", "DEPTHWISE_CONV_2D") and (
                op.tflite == "MUL" or conv.padding == "valid"):
            folded.add(i)
            target[i] = conv
    return folded


def _kernel(op: GraphOp, ins: list[_Tensor], out: _Tensor, prec: str) -> Kernel:
    """One op's kernel, as :func:`codesign.latency.features.kernels` counts them."""
    kind = op.kind
    inp = float(sum(t.elements for t in ins))
    size = max(op.kernel) if op.kernel else 1
    if op.tflite in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        cin, cout = ins[0].channels, out.channels
        kh, kw = op.kernel or [1, 1]
        px = out.hw[0] * out.hw[1] if out.hw else 1
        depthwise = op.tflite == "DEPTHWISE_CONV_2D"
        per_pixel = kh * kw * (1 if depthwise else _pad(cin)) * _pad(cout)
        true_pixel = kh * kw * (1 if depthwise else cin) * cout
        return Kernel(kind, prec, float(px * per_pixel), float(px * cout), inp, float(px),
                      float(px * true_pixel), float(true_pixel), size)
    if op.tflite == "FULLY_CONNECTED":
        cin, cout = ins[0].elements, out.channels
        return Kernel(kind, prec, float(_pad(cin) * _pad(cout)), float(cout), inp,
                      tmacs=float(cin * cout), weights=float(cin * cout))
    px = float(out.hw[0] * out.hw[1]) if out.hw and kind == "add" else 0.0
    return Kernel(kind, prec, 0.0, float(out.elements), inp, px, size=size)
