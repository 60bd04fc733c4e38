"""A minimal TFLite flatbuffer reader, written for the tests.

Deliberately independent of codesign's own code (and of any recipe): it reads
the file's bytes against the published TFLite schema and reports, per
operator, its kind and the types of its input and output tensors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 9: "int8", 10: "float64", 15: "uint32", 16: "uint16", 17: "int4",
    18: "bfloat16",
}
OPERATORS = {
    0: "ADD", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED",
    21: "RELU6", 22: "RESHAPE", 40: "MEAN", 114: "QUANTIZE",
}


@dataclass(frozen=True)
class Tensor:
    name: str
    type: str
    shape: tuple[int, ...]
    has_data: bool


@dataclass(frozen=True)
class Op:
    kind: str
    inputs: tuple[Tensor | None, ...]
    outputs: tuple[Tensor, ...]


class _Buf:
    def __init__(self, data: bytes) -> None:
        self.d = data

    def u8(self, pos: int) -> int:
        return self.d[pos]

    def u16(self, pos: int) -> int:
        return struct.unpack_from("<H", self.d, pos)[0]

    def i32(self, pos: int) -> int:
        return struct.unpack_from("<i", self.d, pos)[0]

    def u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.d, pos)[0]

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None."""
        vtable = table - self.i32(table)
        vt_size = self.u16(vtable)
        slot = 4 + 2 * index
        if slot >= vt_size:
            return None
        off = self.u16(vtable + slot)
        return table + off if off else None

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) if absent."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        vec = self.deref(pos)
        return vec + 4, self.u32(vec)

    def tables(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [self.deref(start + 4 * i) for i in range(n)]

    def ints(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [self.i32(start + 4 * i) for i in range(n)]

    def string(self, table: int, index: int) -> str:
        pos = self.field(table, index)
        if pos is None:
            return ""
        s = self.deref(pos)
        return self.d[s + 4 : s + 4 + self.u32(s)].decode()

    def scalar(self, table: int, index: int, fmt: str, default: int) -> int:
        pos = self.field(table, index)
        return default if pos is None else struct.unpack_from("<" + fmt, self.d, pos)[0]


def read_ops(model: bytes) -> list[Op]:
    """Every operator of the first subgraph, in execution order."""
    b = _Buf(model)
    root = b.deref(0)
    codes = []
    for oc in b.tables(root, 1):
        deprecated = b.scalar(oc, 0, "b", 0)
        builtin = b.scalar(oc, 3, "i", 0)
        codes.append(max(deprecated, builtin))
    buffers = b.tables(root, 4)
    sub = b.tables(root, 2)[0]
    tensors = []
    for t in b.tables(sub, 0):
        buf_index = b.scalar(t, 2, "I", 0)
        has_data = False
        if 0 < buf_index < len(buffers):
            _, n = b.vector(buffers[buf_index], 0)
            offset = b.scalar(buffers[buf_index], 1, "Q", 0)  # large models keep data outside
            has_data = n > 0 or offset > 0
        tensors.append(
            Tensor(
                name=b.string(t, 3),
                type=TENSOR_TYPES.get(b.scalar(t, 1, "b", 0), "other"),
                shape=tuple(b.ints(t, 0)),
                has_data=has_data,
            )
        )
    ops = []
    for op in b.tables(sub, 3):
        code = codes[b.scalar(op, 0, "I", 0)]
        ops.append(
            Op(
                kind=OPERATORS.get(code, f"op{code}"),
                inputs=tuple(tensors[i] if i >= 0 else None for i in b.ints(op, 1)),
                outputs=tuple(tensors[i] for i in b.ints(op, 2)),
            )
        )
    return ops


def weight_of(op: Op, tensors_by_output: dict[str, Op]) -> Tensor:
    """The weight tensor of a conv / depthwise / dense op, followed through a DEQUANTIZE."""
    w = op.inputs[1]
    assert w is not None
    if not w.has_data and w.name in tensors_by_output:
        producer = tensors_by_output[w.name]
        if producer.kind == "DEQUANTIZE" and producer.inputs[0] is not None:
            return producer.inputs[0]
    return w
