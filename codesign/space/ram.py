"""A candidate's TFLM arena estimated before conversion, from its layer shapes and precisions.

The converter turns a built-in candidate into a chain this module rebuilds
without TensorFlow: the float input is quantized for the first layer, every
conv, depthwise and dense layer produces one activation tensor in its
precision's type (float32 for float32, float16 and int4 layers, int8, int16
for int16x8), a tensor is converted (QUANTIZE or DEQUANTIZE, once per tensor
and type) just before the first consumer that needs another type, a residual
addition is integer when both its inputs have the same integer type and float
otherwise, global pooling is a MEAN in the head convolution's type (an
integer MEAN asks for an int32 accumulator per output element and two small
index buffers), and the logits are dequantized to float at the end. Float16
and int4 weights are dequantized to float32 just before their layer (a
tensor the planner places like an activation). Each tensor lives from the op
that makes it to the last op that reads it; the blocks are packed as TFLM's
greedy planner packs them (:func:`codesign.tflite.memplan.place`), which gives
the head. The tail uses the same per-tensor, per-op and per-channel costs as
the file's estimate (:func:`codesign.tflite.memplan.tail_bytes`).

Pure Python: the search process uses it to skip candidates whose arena cannot
fit ``--max-ram-kb`` before anything is built or converted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec
from codesign.tflite import memplan

ACTIVATION = {"float32": "f", "float16": "f", "int4": "f", "int8": "i8", "int16x8": "i16"}
BYTES = {"f": 4, "i8": 1, "i16": 2}
DEQUANTIZED_WEIGHTS = ("float16", "int4")


@dataclass(frozen=True)
class RamEstimate:
    """A candidate's arena, estimated before conversion.

    Attributes:
        head_bytes: The planned activations and scratch buffers (TFLM's head).
        tail_bytes: The persistent part, roughly (64-bit host structs).
    """

    head_bytes: int
    tail_bytes: int

    @property
    def total_bytes(self) -> int:
        """Head plus tail: the arena TFLM's recording allocator would report."""
        return self.head_bytes + self.tail_bytes


@dataclass
class _Tensor:
    """One tensor: its bytes and type, its place in the file's order, and its lifetime."""

    size: int
    kind: str  # activation type: "f", "i8", "i16"
    order: int  # 0 input, 1 layer outputs, 2 conversions, 3 dequantized weights
    first: int
    last: int


@dataclass
class _Chain:
    """The converted graph, rebuilt op by op (op ``i`` runs at scope ``i + 1``)."""

    tensors: list[_Tensor] = field(default_factory=list)
    scratch: list[memplan.Block] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    constants: int = 0
    per_channel: list[int] = field(default_factory=list)
    converted: dict[tuple[int, str], int] = field(default_factory=dict)

    def tensor(self, elements: int, kind: str, order: int) -> int:
        scope = len(self.ops)
        self.tensors.append(_Tensor(elements * BYTES[kind], kind, order, scope, scope))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: list[int], elements: int, out_kind: str,
           order: int = 1) -> int:
        """Append an op reading ``inputs``; return its output tensor."""
        self.ops.append(kind)
        for t in inputs:
            self.tensors[t].last = len(self.ops)
        return self.tensor(elements, out_kind, order)

    def feed(self, t: int, kind: str) -> int:
        """``t`` in type ``kind`` for a consumer: itself, or its conversion (made once)."""
        if self.tensors[t].kind == kind:
            return t
        key = (t, kind)
        if key not in self.converted:
            src = self.tensors[t]
            elements = src.size // BYTES[src.kind]
            quantize = "DEQUANTIZE" if kind == "f" else "QUANTIZE"
            self.converted[key] = self.op(quantize, [t], elements, kind, order=2)
        return self.converted[key]

    def layer(self, kind: str, src: int, precision: str, out: int, weights: int,
              channels: int) -> int:
        """A conv, depthwise or dense layer of ``precision``: its weights, then the op."""
        act = ACTIVATION[precision]
        x = self.feed(src, act)
        inputs = [x]
        if precision in DEQUANTIZED_WEIGHTS:  # weights dequantized to float just before
            inputs.append(self.op("DEQUANTIZE", [], weights, "f", order=3))
            self.constants += 1
        self.constants += 2  # weights (or their packed form) and bias
        integer_dense = kind == "FULLY_CONNECTED" and act != "f"
        self.per_channel.append(channels if kind != "FULLY_CONNECTED" or integer_dense else 0)
        return self.op(kind, inputs, out, act)


def estimate_ram(space: SpaceSpec, cand: Candidate, num_classes: int,
                 channels: int) -> RamEstimate:
    """The TFLM arena of ``cand`` as the converter would build it (see the module's notes)."""
    chain = _build(space, cand, num_classes, channels)
    blocks = _blocks(chain)
    offsets = memplan.place(blocks)
    head = max((o + b.size for o, b in zip(offsets, blocks, strict=True)), default=0)
    return RamEstimate(head, _tail(chain))


def _build(space: SpaceSpec, cand: Candidate, num_classes: int, channels: int) -> _Chain:
    sub = space.subnet(cand)
    ch, prec = sub.channels, sub.precision
    chain = _Chain()
    res = sub.resolution
    h = chain.tensor(res * res * channels, "f", 0)
    c, res_out = ch["stem_conv"], math.ceil(res / space.stem_stride)
    h = chain.layer("CONV_2D", h, prec["stem_conv"], res_out * res_out * c,
                    9 * channels * c, c)
    res = res_out
    for bp in space.blocks():
        if bp.index > sub.depths[bp.stage - 1]:
            continue
        x_in, hidden = h, ch[bp.hidden_group]
        if bp.expand > 1:
            name = f"{bp.name}_expand"
            h = chain.layer("CONV_2D", h, prec[name], res * res * hidden, c * hidden, hidden)
        res = math.ceil(res / bp.stride)
        k2 = sub.kernels[bp.name] ** 2
        h = chain.layer("DEPTHWISE_CONV_2D", h, prec[f"{bp.name}_dw"], res * res * hidden,
                        k2 * hidden, hidden)
        c = ch[bp.out_group]
        h = chain.layer("CONV_2D", h, prec[f"{bp.name}_project"], res * res * c, hidden * c, c)
        if bp.residual:
            kinds = {chain.tensors[x_in].kind, chain.tensors[h].kind}
            kind = kinds.pop() if len(kinds) == 1 else "f"
            inputs = [chain.feed(x_in, kind), chain.feed(h, kind)]
            h = chain.op("ADD", inputs, res * res * c, kind)
    head = ch["head_conv"]
    h = chain.layer("CONV_2D", h, prec["head_conv"], res * res * head, c * head, head)
    kind = chain.tensors[h].kind
    chain.constants += 1  # the axes
    h = chain.op("MEAN", [h], head, kind)
    scope = len(chain.ops)
    if kind != "f":
        chain.scratch.append(memplan.Block("accumulator", memplan.align(4 * head), scope, scope))
    chain.scratch += [memplan.Block("index", memplan.align(16), scope, scope),
                      memplan.Block("axes", memplan.align(8), scope, scope)]
    h = chain.layer("FULLY_CONNECTED", h, prec["classifier"], num_classes,
                    head * num_classes, num_classes)
    out = chain.feed(h, "f")
    chain.tensors[out].last = len(chain.ops)  # the graph's output lives to the end
    return chain


def _blocks(chain: _Chain) -> list[memplan.Block]:
    """The head's blocks in TFLM's order: tensors as the file numbers them, then scratch."""
    order = sorted(range(len(chain.tensors)), key=lambda i: (chain.tensors[i].order, i))
    blocks = [memplan.Block(f"t{i}", memplan.align(chain.tensors[i].size),
                            chain.tensors[i].first, chain.tensors[i].last) for i in order]
    return blocks + chain.scratch


def _tail(chain: _Chain) -> int:
    """The persistent part, with the file estimate's costs (see :mod:`codesign.tflite.memplan`)."""
    tensors = len(chain.tensors) + chain.constants
    total = (memplan.TAIL_BASE + memplan.TAIL_PER_TENSOR * tensors
             + memplan.TAIL_PER_OP * len(chain.ops) + memplan.TAIL_PER_IO * 2)
    total += sum(memplan.TAIL_OP_DATA.get(op, memplan.TAIL_OP_DATA_DEFAULT) for op in chain.ops)
    return total + sum(2 * memplan.align(4 * n) for n in chain.per_channel if n)
