"""TFLM's activation memory (its arena's *head*) estimated from a ``.tflite`` file alone.

TensorFlow Lite Micro plans one arena for the whole graph: every tensor that
is neither a constant nor a variable, and every scratch buffer a kernel asks
for, gets a block of bytes rounded up to 16 and a lifetime in *scopes* (the
graph's inputs are born at scope 0, op ``i`` runs at scope ``i + 1``, the
graph's outputs live to the last scope). Blocks that are alive at the same
scope must not overlap. Blocks are added tensors first (by index), then scratch
buffers (in op order). TFLM's greedy planner places them largest first (among
equal sizes, the one added *last* first), each at the lowest offset where it
fits between the blocks already placed that overlap it in time; the head is
the highest end. TFLM shares no buffer between an op's input and output
(RESHAPE, SQUEEZE and EXPAND_DIMS copy unless the two happen to be planned at
the same address), so no op is treated as in place here.

Scratch buffers are those of TFLM's reference kernels: MEAN and SUM (an int32
accumulator per output element for integer inputs, and two small index
arrays), REDUCE_MAX / REDUCE_MIN and the int4-unpacking buffer of CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED with int4 weights. Optimised kernels
(CMSIS-NN, ...) ask for others (im2col buffers), which this does not model.

The *tail* (what lives as long as the interpreter) is estimated roughly by
:func:`tail_bytes`: TFLM's struct sizes on a 64-bit host (a TfLiteEvalTensor
per tensor, a NodeAndRegistration per op, a TfLiteTensor per graph input and
output), the per-channel output multipliers and shifts of every conv and
depthwise op (and of per-channel integer dense ops), and a constant per op kind
for its kernel data and parameters, fitted to what TFLM's recording allocator
reported for 109 converted models (within a few bytes on those). A 32-bit
microcontroller's structs are smaller, so there the tail is an overestimate.

Only ``ai_edge_litert``'s flatbuffer reader is used: no TensorFlow, no TFLM.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codesign.errors import TrialFailure

ALIGNMENT = 16
TYPE_BYTES = {
    "FLOAT32": 4, "FLOAT16": 2, "BFLOAT16": 2, "FLOAT64": 8, "INT64": 8, "UINT64": 8,
    "INT32": 4, "UINT32": 4, "INT16": 2, "UINT16": 2, "INT8": 1, "UINT8": 1, "BOOL": 1,
    "INT4": 1, "COMPLEX64": 8, "COMPLEX128": 16, "RESOURCE": 4,
}
INT_ACTIVATIONS = ("INT8", "INT16")
# Tail model (bytes, TFLM 0.dev20261023182759 on x86-64): fixed allocator objects, structs per
# tensor / op / graph input or output, and each kernel's data and parameters per op kind.
TAIL_BASE = 530
TAIL_PER_TENSOR = 24
TAIL_PER_OP = 64
TAIL_PER_IO = 64
TAIL_OP_DATA = {"CONV_2D": 108, "DEPTHWISE_CONV_2D": 102, "FULLY_CONNECTED": 100, "MEAN": 100,
                "ADD": 78, "QUANTIZE": 32, "DEQUANTIZE": 32}
TAIL_OP_DATA_DEFAULT = 64
PER_CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class Block:
    """One block of the arena's head: a tensor or a kernel's scratch buffer.

    Attributes:
        label: The tensor's name, or ``scratch <what> of <OP> #<index>``.
        size: Bytes, rounded up to :data:`ALIGNMENT`.
        first: First scope it is alive in.
        last: Last scope it is alive in.
    """

    label: str
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class MemoryPlan:
    """Where the planner puts every block, and the head that results.

    Attributes:
        blocks: The blocks, in the order TFLM adds them.
        offsets: Each block's offset in the head.
        head_bytes: The end of the highest block: the estimate of TFLM's head.
        lower_bound: The largest sum of block sizes alive at one scope (no plan
            can do better).
        tail_bytes: The rough estimate of TFLM's tail (see :func:`tail_bytes`).
    """

    blocks: tuple[Block, ...]
    offsets: tuple[int, ...]
    head_bytes: int
    lower_bound: int
    tail_bytes: int


def align(size: int, alignment: int = ALIGNMENT) -> int:
    """``size`` rounded up to a multiple of ``alignment``."""
    return -(-size // alignment) * alignment


def _names(enum: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _elements(shape: Sequence[int] | None) -> int:
    count = 1
    for d in shape if shape is not None else ():
        count *= max(int(d), 0)
    return count


def read_model(model: bytes) -> Any:
    """The flatbuffer as objects (``ModelT``).

    Raises:
        TrialFailure: If the file has control flow (TFLM plans every subgraph
            together, which this does not model).
    """
    from ai_edge_litert.tools import flatbuffer_utils

    fb = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    if len(fb.subgraphs) != 1:
        raise TrialFailure(f"the memory plan covers one subgraph; the file has {len(fb.subgraphs)}")
    return fb


def _op_kinds(fb: Any) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    names = _names(schema.BuiltinOperator)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in fb.operatorCodes]
    return [names.get(codes[op.opcodeIndex], "?") for op in fb.subgraphs[0].operators]


def read_blocks(fb: Any) -> list[Block]:
    """Every block TFLM plans for subgraph 0 of ``fb`` (:func:`read_model`), with its lifetime.

    Raises:
        TrialFailure: If a tensor's type has no size.
    """
    from ai_edge_litert import schema_py_generated as schema

    sg = fb.subgraphs[0]
    type_names = _names(schema.TensorType)
    kinds = _op_kinds(fb)
    tensors = sg.tensors
    first = [-1] * len(tensors)
    last = [-1] * len(tensors)

    def born(t: int, scope: int) -> None:
        if first[t] == -1:
            first[t] = scope

    for t in sg.inputs:
        born(int(t), 0)
        last[int(t)] = 0
    scratch: list[Block] = []
    scope = 0
    for index, op in enumerate(sg.operators):
        scope += 1
        outputs = [int(t) for t in op.outputs if t >= 0]
        for t in outputs:
            born(t, scope)
        for t in [int(t) for t in op.inputs if t >= 0] + outputs:
            last[t] = scope
        kind = kinds[index]
        for what, size in _scratch(kind, op, tensors, type_names):
            scratch.append(Block(f"scratch {what} of {kind} #{index}", align(size), scope, scope))
    for t in sg.outputs:
        born(int(t), scope)
        last[int(t)] = scope

    blocks = []
    for t, tensor in enumerate(tensors):
        buffer = fb.buffers[tensor.buffer] if tensor.buffer < len(fb.buffers) else None
        constant = buffer is not None and buffer.data is not None and len(buffer.data) > 0
        if constant or tensor.isVariable:
            continue
        type_name = type_names.get(tensor.type, str(tensor.type))
        if type_name not in TYPE_BYTES:
            raise TrialFailure(f"TFLM gives tensors of type {type_name} no size")
        size = _elements(tensor.shape) * TYPE_BYTES[type_name]
        if size:
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            blocks.append(Block(name, align(size), first[t], last[t]))
    return blocks + [b for b in scratch if b.size]


def _scratch(kind: str, op: Any, tensors: Sequence[Any], type_names: dict[int, str]
             ) -> list[tuple[str, int]]:
    """Scratch buffers (what, bytes) a reference kernel asks for, in the order it asks."""
    inputs = [int(t) for t in op.inputs]
    if kind in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and len(inputs) > 1:
        data, axis = tensors[inputs[0]], tensors[inputs[1]]
        rank = len(data.shape) if data.shape is not None else 0
        out = []
        if kind in ("MEAN", "SUM") and type_names.get(data.type) in INT_ACTIVATIONS:
            out.append(("accumulator", 4 * _elements(tensors[int(op.outputs[0])].shape)))
        return [*out, ("index", 4 * rank), ("axes", 4 * _elements(axis.shape))]
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(inputs) > 1:
        weights = tensors[inputs[1]]
        if type_names.get(weights.type) == "INT4":
            return [("int4 unpacking", _elements(weights.shape))]
    return []


def place(blocks: Sequence[Block]) -> list[int]:
    """Offsets for ``blocks``, placed as TFLM's greedy planner does (largest first)."""
    # TFLM lists its online buffers back to front before a stable sort by size, so among
    # blocks of one size the one added last is placed first
    order = sorted(range(len(blocks)), key=lambda i: (-blocks[i].size, -i))
    offsets = [0] * len(blocks)
    placed: list[tuple[int, int]] = []  # (offset, block index), sorted by offset
    for i in order:
        want = blocks[i]
        live = [
            (off, j) for off, j in placed
            if blocks[j].first <= want.last and want.first <= blocks[j].last
        ]
        candidate = 0
        for off, j in live:  # the first gap (in offset order) that holds the block
            if off - candidate >= want.size:
                break
            candidate = max(candidate, off + blocks[j].size)
        offsets[i] = candidate
        keys = [off for off, _ in placed]
        placed.insert(bisect.bisect_right(keys, candidate), (candidate, i))
    return offsets


def tail_bytes(fb: Any) -> int:
    """Rough bytes of TFLM's persistent allocations (its tail) for ``fb`` (:func:`read_model`)."""
    from ai_edge_litert import schema_py_generated as schema

    sg = fb.subgraphs[0]
    type_names = _names(schema.TensorType)
    kinds = _op_kinds(fb)
    total = (TAIL_BASE + TAIL_PER_TENSOR * len(sg.tensors) + TAIL_PER_OP * len(kinds)
             + TAIL_PER_IO * (len(sg.inputs) + len(sg.outputs)))
    for op, kind in zip(sg.operators, kinds, strict=True):
        total += TAIL_OP_DATA.get(kind, TAIL_OP_DATA_DEFAULT)
        if kind in PER_CHANNEL_OPS and len(op.inputs) > 1:
            channels = _per_channel(kind, sg.tensors[int(op.inputs[0])],
                                    sg.tensors[int(op.inputs[1])], type_names)
            total += 2 * align(4 * channels)  # output multipliers and shifts (int32 each)
    return total


def _per_channel(kind: str, data: Any, weights: Any, type_names: dict[int, str]) -> int:
    """Output channels a kernel keeps a multiplier and a shift for (0 for none)."""
    shape = list(weights.shape) if weights.shape is not None else []
    if not shape:
        return 0
    if kind == "CONV_2D":
        return int(shape[0])  # allocated for float convolutions too
    if kind == "DEPTHWISE_CONV_2D":
        return int(shape[-1])
    q = weights.quantization
    scales = 0 if q is None or q.scale is None else len(q.scale)
    integer = type_names.get(data.type) in INT_ACTIVATIONS
    return int(shape[0]) if integer and scales > 1 else 0


def plan(model: bytes) -> MemoryPlan:
    """The memory plan TFLM's greedy planner would make for ``model``, and its tail.

    Raises:
        TrialFailure: If the file has several subgraphs or a tensor type without a size.
    """
    fb = read_model(model)
    blocks = read_blocks(fb)
    offsets = place(blocks)
    head = max((o + b.size for o, b in zip(offsets, blocks, strict=True)), default=0)
    scopes = {s for b in blocks for s in (b.first, b.last)}
    bound = max(
        (sum(b.size for b in blocks if b.first <= s <= b.last) for s in scopes), default=0
    )
    return MemoryPlan(tuple(blocks), tuple(offsets), head, bound, tail_bytes(fb))


def estimate_head(model: bytes) -> int:
    """Estimated bytes of TFLM's arena head (planned activations) for ``model``."""
    return plan(model).head_bytes
