"""Does a model's description price what its converted file runs? A per-kind comparison.

The chain of :mod:`codesign.latency.graph_chain` is built from the description
alone; :func:`file_ops` reads the ops a ``.tflite`` really holds (op type,
tensor types and shapes) and :func:`compare` sets them side by side per kind
and precision: op counts, true multiply-accumulates (from the weight and
output shapes), output elements, and the QUANTIZE / DEQUANTIZE of activations
per direction. A DEQUANTIZE of a constant (float16 and int4 weights, unpacked
once when the interpreter prepares) is counted apart, one per such layer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from codesign.hyper.opgraph import WEIGHTED, op_kind
from codesign.latency.graph_chain import Step

DOMAIN = {"FLOAT32": "f", "INT8": "i8", "INT16": "i16"}
WEIGHT_DEQUANTIZE = "weights:dequantize"
PACKED = ("float16", "int4")


@dataclass(frozen=True)
class FileOp:
    """One op of a converted file, as the chain would name it.

    Attributes:
        key: ``kind:precision`` as the latency features name it (``q:f>i8`` for
            conversions, :data:`WEIGHT_DEQUANTIZE` for unpacked weights).
        tflite: The TFLite op.
        tmacs: Multiply-accumulates of a conv, depthwise or dense op.
        out: Output elements (batch excluded).
        tensor: Its output tensor's name (which layer it is).
    """

    key: str
    tflite: str
    tmacs: float
    out: float
    tensor: str


def step_key(step: Step) -> str:
    """The comparison key of a chain step."""
    k = step.kernel
    return k.kind if k.kind.startswith("q:") else f"{k.name}:{k.precision}"


def file_ops(blob: bytes) -> list[FileOp]:
    """The ops of subgraph 0 of a ``.tflite``, read from its flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    fb = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    sg = fb.subgraphs[0]
    produced = {int(t): op for op in sg.operators for t in op.outputs}
    graph_inputs = {int(t) for t in sg.inputs}

    def opname(op: Any) -> str:
        code = fb.operatorCodes[op.opcodeIndex]
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")

    def constant(t: int) -> bool:
        """No op writes it and it is not an input; or a DEQUANTIZE of such a tensor writes it."""
        if t in graph_inputs:
            return False
        if t not in produced:
            return True
        op = produced[t]
        return opname(op) == "DEQUANTIZE" and constant(int(op.inputs[0]))

    def info(t: int) -> tuple[str, list[int]]:
        tensor = sg.tensors[t]
        return types[tensor.type], [abs(int(d)) for d in tensor.shape]

    out = []
    for op in sg.operators:
        kind = opname(op)
        ins = [int(t) for t in op.inputs if t >= 0]
        acts = [t for t in ins if not constant(t)]
        otype, oshape = info(int(op.outputs[0]))
        elements = float(math.prod(oshape))  # the batch is 1 (more after SPACE_TO_BATCH_ND)
        tensor = sg.tensors[int(op.outputs[0])].name.decode()
        if kind in ("QUANTIZE", "DEQUANTIZE"):
            key = WEIGHT_DEQUANTIZE if not acts else \
                f"q:{DOMAIN.get(info(ins[0])[0], '?')}>{DOMAIN.get(otype, '?')}"
            out.append(FileOp(key, kind, 0.0, elements if acts else 0.0, tensor))
            continue
        tmacs, kernel = 0.0, None
        if kind in WEIGHTED:
            wshape = info(ins[1])[1]
            stored = _stored_type(ins[1], produced, opname, info)
            precision = {"INT8": "int8", "INT16": "int16x8"}.get(otype) or \
                {"FLOAT16": "float16", "INT4": "int4"}.get(stored, "float32")
            kernel = (wshape[1], wshape[2]) if kind != "FULLY_CONNECTED" else None
            pixels = math.prod(oshape[:-1]) if len(oshape) > 2 else 1
            tmacs = float(pixels * math.prod(wshape[1:]) *
                          (wshape[0] if kind == "CONV_2D" else 1)) if kernel else \
                float(math.prod(wshape))
        else:
            precision = {"INT8": "int8", "INT16": "int16x8"}.get(otype, "float32")
        name = op_kind(kind, kernel, len(acts))
        size = max(kernel) if kernel else 1
        name = f"{name}{size}" if name in ("dw", "conv") else name
        out.append(FileOp(f"{name}:{precision}", kind, tmacs, elements, tensor))
    return out


def _stored_type(t: int, produced: dict[int, Any], opname: Any, info: Any) -> str:
    """The type a weight is stored as (through the DEQUANTIZE that unpacks it)."""
    while t in produced and opname(produced[t]) == "DEQUANTIZE":
        t = int(produced[t].inputs[0])
    return info(t)[0]


@dataclass
class Row:
    """One kind and precision: what the chain says and what the file holds."""

    key: str
    chain: list[tuple[str, float, float]] = field(default_factory=list)  # (layer, tmacs, out)
    file: list[tuple[str, float, float]] = field(default_factory=list)  # (tensor, tmacs, out)

    def totals(self, side: list[tuple[str, float, float]]) -> tuple[int, float, float]:
        """Ops, MACs and output elements of one side."""
        return len(side), sum(m for _, m, _ in side), sum(e for _, _, e in side)

    @property
    def agrees(self) -> bool:
        """Whether both sides have as many ops, MACs and output elements."""
        a, b = self.totals(self.chain), self.totals(self.file)
        return all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(a, b, strict=True))


def compare(steps: list[Step], ops: list[FileOp]) -> list[Row]:
    """The chain and the file side by side, per kind and precision (sorted by key)."""
    rows: dict[str, Row] = defaultdict(lambda: Row(""))
    for s in steps:
        rows[step_key(s)].chain.append((s.layer, s.kernel.tmacs, s.kernel.out))
        if s.tflite in WEIGHTED and s.kernel.precision in PACKED:
            rows[WEIGHT_DEQUANTIZE].chain.append((s.layer, 0.0, 0.0))
    for o in ops:
        rows[o.key].file.append((o.tensor, o.tmacs, o.out))
    for key, row in rows.items():
        row.key = key
    return [rows[k] for k in sorted(rows)]


def disagreements(rows: list[Row]) -> list[str]:
    """Each row that differs, with the ops on either side that have no equal on the other."""
    lines = []
    for row in rows:
        if row.agrees:
            continue
        said = [(m, e) for _, m, e in row.chain]
        held = [(m, e) for _, m, e in row.file]
        only_chain = [c for c in row.chain if not _take(held, (c[1], c[2]))]
        only_file = [f for f in row.file if not _take(said, (f[1], f[2]))]
        lines.append(f"{row.key}: the description says {_side(row, row.chain)}, the file holds "
                     f"{_side(row, row.file)}")
        lines += [f"    described only: {n} (macs {m:.0f}, out {e:.0f})" for n, m, e in only_chain]
        lines += [f"    in the file only: {n} (macs {m:.0f}, out {e:.0f})" for n, m, e in only_file]
    return lines


def _take(pool: list[tuple[float, float]], item: tuple[float, float]) -> bool:
    if item in pool:
        pool.remove(item)
        return True
    return False


def _side(row: Row, side: list[tuple[str, float, float]]) -> str:
    n, m, e = row.totals(side)
    return f"{n} op(s), {m:.0f} MACs, {e:.0f} output elements"


def table(rows: list[Row]) -> str:
    """The comparison as a fixed-width table."""
    head = (f"{'kind:precision':<32}{'ops':>9}{'MACs (desc / file)':>26}"
            f"{'out el. (desc / file)':>24}")
    lines = [head, "-" * len(head)]
    for row in rows:
        a, b = row.totals(row.chain), row.totals(row.file)
        lines.append(f"{row.key:<32}{f'{a[0]}/{b[0]}':>9}{f'{a[1]:.0f} / {b[1]:.0f}':>26}"
                     f"{f'{a[2]:.0f} / {b[2]:.0f}':>24}{'' if row.agrees else '  <- differs'}")
    return "\n".join(lines)
