"""Per-layer precision recipes for ai-edge-quantizer, aimed at exactly one op each.

The quantizer matches a recipe's ``regex`` with ``re.search`` against an op's
*scope*: its output tensor names joined by ``;`` with a trailing ``;``. Layer
names survive batch-norm folding in those names, but not everywhere: the final
dense layer's output is called ``Identity`` (or ``PartitionedCall:0`` on other
conversion paths) and only its weight names say ``classifier``. So a layer is
found by its name as a whole path component (``/s1b1_dw/`` never matches
``s1b10_dw`` or ``s1b1_dw_bn``) in the op's output *or constant input* names;
exactly one op must match, and the quantizer is then given that op's exact,
anchored scope together with its concrete op type. A layer that matches no op
or several is an error, never a silently float layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from codesign.errors import TrialFailure

TARGET_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
STATIC = ("int8", "int16x8")  # precisions with integer activations (need calibration)


class RecipeError(TrialFailure):
    """A precision recipe could not be aimed at exactly one layer."""


@dataclass(frozen=True)
class OpInfo:
    """One operator of a float model, as the quantizer sees it.

    Attributes:
        index: Position in the subgraph (topological order).
        op: Builtin operator name (``CONV_2D``...).
        scope: The string a recipe regex is matched against.
        outputs: Output tensor names.
        constants: Names of inputs no op produces (weights, biases).
        producers: Indices of the ops that produce this op's inputs.
        reads_model_input: Whether an input is the model's input.
    """

    index: int
    op: str
    scope: str
    outputs: tuple[str, ...]
    constants: tuple[str, ...]
    producers: tuple[int, ...]
    reads_model_input: bool


def list_ops(model: bytes) -> list[OpInfo]:
    """Every operator of subgraph 0, read with the quantizer's own flatbuffer utilities."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fbu

    fb = fbu.read_model(bytearray(model))
    sg = fb.subgraphs[0]
    graph_inputs = {int(t) for t in sg.inputs}
    producer = {int(t): i for i, op in enumerate(sg.operators) for t in op.outputs}
    ops = []
    for i, op in enumerate(sg.operators):
        code = fb.operatorCodes[op.opcodeIndex].builtinCode
        name = fbu.TFL_OP_CODE_TO_NAME.get(code)
        inputs = [int(t) for t in op.inputs if t >= 0]
        ops.append(
            OpInfo(
                index=i,
                op=name.value if name is not None else f"BUILTIN_{code}",
                scope=fbu.get_op_scope(op, sg.tensors),
                outputs=tuple(fbu.get_tensor_name(sg.tensors[t]) for t in op.outputs if t >= 0),
                constants=tuple(
                    fbu.get_tensor_name(sg.tensors[t])
                    for t in inputs
                    if t not in producer and t not in graph_inputs
                ),
                producers=tuple(producer[t] for t in inputs if t in producer),
                reads_model_input=any(t in graph_inputs for t in inputs),
            )
        )
    return ops


def layer_pattern(layer: str) -> re.Pattern[str]:
    """``layer`` as a whole path component of a tensor name."""
    return re.compile(r"(?:^|[;/])" + re.escape(layer) + r"/")


def resolve_layers(ops: list[OpInfo], layers: list[str]) -> dict[str, OpInfo]:
    """Map every layer name to its one conv / depthwise / dense op.

    Raises:
        RecipeError: If a layer matches no op or several, or two layers share one.
    """
    targets = [o for o in ops if o.op in TARGET_OPS]
    found: dict[str, OpInfo] = {}
    owner: dict[int, str] = {}
    for layer in layers:
        pattern = layer_pattern(layer)
        hits = [o for o in targets if any(pattern.search(n) for n in o.outputs + o.constants)]
        if len(hits) != 1:
            listed = ", ".join(f"#{o.index} {o.op} {o.scope!r}" for o in hits) or "none"
            raise RecipeError(f"layer {layer!r} matches {len(hits)} ops (need exactly 1): {listed}")
        op = hits[0]
        if op.index in owner:
            raise RecipeError(f"layers {owner[op.index]!r} and {layer!r} resolve to op #{op.index}")
        owner[op.index] = layer
        same = [o for o in ops if o.op == op.op and re.search(exact_regex(op), o.scope)]
        if len(same) != 1:
            raise RecipeError(f"the scope of layer {layer!r} matches {len(same)} ops")
        found[layer] = op
    return found


def exact_regex(op: OpInfo) -> str:
    """The anchored regex that matches only ``op``'s scope."""
    return "^" + re.escape(op.scope) + "$"


def op_config(precision: str, op_type: str) -> tuple[Any, Any] | None:
    """``(algorithm key, OpQuantizationConfig)`` realising ``precision`` on one op.

    ``float32`` needs no entry (None). ``float16`` stores fp16 weights that are
    dequantized once; ``int8`` and ``int16x8`` are static (calibrated) with
    per-channel 8-bit weights; ``int4`` stores per-channel 4-bit weights,
    dequantized to float (the only int4 form that runs correctly on depthwise
    layers in LiteRT 2.3, so it is used for every layer kind).
    """
    from ai_edge_quantizer import algorithm_manager, qtyping

    algo = algorithm_manager.AlgorithmName
    tqc, oqc = qtyping.TensorQuantizationConfig, qtyping.OpQuantizationConfig
    cp, gran = qtyping.ComputePrecision, qtyping.QuantGranularity
    w8 = tqc(num_bits=8, symmetric=True, granularity=gran.CHANNELWISE)
    if precision == "float32":
        return None
    if precision == "float16":
        weights = tqc(num_bits=16, dtype=qtyping.TensorDataType.FLOAT)
        return algo.FLOAT_CASTING, oqc(
            weight_tensor_config=weights, compute_precision=cp.FLOAT, explicit_dequantize=True
        )
    if precision in STATIC:
        bits, symmetric = (8, False) if precision == "int8" else (16, True)
        return algo.MIN_MAX_UNIFORM_QUANT, oqc(
            activation_tensor_config=tqc(num_bits=bits, symmetric=symmetric),
            weight_tensor_config=w8,
            compute_precision=cp.INTEGER,
            explicit_dequantize=False,
        )
    if precision == "int4":
        w4 = tqc(num_bits=4, symmetric=True, granularity=gran.CHANNELWISE)
        return algo.MIN_MAX_UNIFORM_QUANT, oqc(
            weight_tensor_config=w4,
            compute_precision=cp.FLOAT,
            explicit_dequantize=True,
            skip_checks=op_type == "DEPTHWISE_CONV_2D",  # outside the quantizer's policy; runs
        )
    raise RecipeError(f"unknown precision {precision!r}")


def glue_precisions(ops: list[OpInfo], assigned: dict[int, str]) -> dict[int, str]:
    """Precision for ops between layers (ADD, MEAN...): integer if all their inputs are.

    An op whose activation inputs all come from int8 ops (or all from int16x8
    ops) gets that precision too, so residual additions and pooling do not
    become float islands between a DEQUANTIZE and a QUANTIZE.
    """
    prec = dict(assigned)
    glue = {}
    for o in ops:
        if o.index in prec or not o.producers or o.reads_model_input:
            continue
        kinds = {prec.get(p, "float32") for p in o.producers}
        if len(kinds) == 1 and (kind := next(iter(kinds))) in STATIC:
            glue[o.index] = prec[o.index] = kind
    return glue
