"""What a ``.tflite`` really holds, per layer: weight and activation types.

Read from the flatbuffer (the interpreter reports int4 tensors as int8 and
hides weights behind DEQUANTIZE ops).
"""

from __future__ import annotations

from typing import Any

from codesign.tflite.recipe import TARGET_OPS, layer_pattern

# (activation type, stored weight type) each precision must produce
EXPECTED = {
    "float32": ("FLOAT32", "FLOAT32"),
    "float16": ("FLOAT32", "FLOAT16"),
    "int8": ("INT8", "INT8"),
    "int16x8": ("INT16", "INT8"),
    "int4": ("FLOAT32", "INT4"),
}


def layer_types(model: bytes, layers: list[str]) -> dict[str, dict[str, Any]]:
    """For every named layer: op kind, input, stored weight and output types."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    fb = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    sg = fb.subgraphs[0]

    def kind(op: Any) -> str:
        code = fb.operatorCodes[op.opcodeIndex]
        return op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")

    producer = {int(t): op for op in sg.operators for t in op.outputs}

    def stored(t: int) -> int:
        while t in producer and kind(producer[t]) == "DEQUANTIZE":
            t = int(producer[t].inputs[0])
        return t

    def name(t: int) -> str:
        return sg.tensors[t].name.decode()

    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        # TFMOT's quantization-aware models wrap a layer as "quant_<name>"
        patterns = (layer_pattern(layer), layer_pattern(f"quant_{layer}"))
        for op in sg.operators:
            if kind(op) not in TARGET_OPS:
                continue
            weight = stored(int(op.inputs[1]))
            names = [name(int(t)) for t in op.outputs] + [name(weight)]
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                names.append(name(stored(int(op.inputs[2]))))
            if any(p.search(n) for p in patterns for n in names):
                out[layer] = {
                    "op": kind(op),
                    "input": type_names[sg.tensors[int(op.inputs[0])].type],
                    "weight": type_names[sg.tensors[weight].type],
                    "output": type_names[sg.tensors[int(op.outputs[0])].type],
                    "weight_shape": [int(v) for v in sg.tensors[weight].shape],
                }
                break
    return out


def mismatches(model: bytes, layer_precision: dict[str, str]) -> list[str]:
    """Layers whose types in the file differ from their intended precision."""
    found = layer_types(model, list(layer_precision))
    problems = []
    for layer, precision in layer_precision.items():
        info = found.get(layer)
        if info is None:
            problems.append(f"{layer}: not found in the file")
            continue
        act, weight = EXPECTED[precision]
        if (info["output"], info["weight"]) != (act, weight):
            problems.append(
                f"{layer}: wanted {precision} ({act} activations, {weight} weights), the file "
                f"holds {info['output']} activations and {info['weight']} weights"
            )
    return problems
