"""Giving every conv, depthwise and dense layer its own precision in one ``.tflite``."""

from __future__ import annotations

import numpy as np

from codesign.tflite.recipe import (
    RecipeError,
    exact_regex,
    glue_precisions,
    list_ops,
    op_config,
    resolve_layers,
)

SIGNATURE_KEY = "serving_default"
CALIBRATION_CHUNK = 64


def add_signature(model: bytes) -> bytes:
    """Add a ``serving_default`` SignatureDef to a flatbuffer that has none.

    ai-edge-quantizer calibrates through a signature runner; the fast
    concrete-function conversion writes none. Editing the flatbuffer costs a
    few milliseconds (a SavedModel round trip costs most of a second).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    fb = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    if fb.signatureDefs:
        return model
    sg = fb.subgraphs[0]

    def tensor_map(index: int, name: str) -> object:
        t = schema.TensorMapT()
        t.name = name.encode()
        t.tensorIndex = int(index)
        return t

    sig = schema.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY.encode()
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map(i, f"input_{k}") for k, i in enumerate(sg.inputs)]
    sig.outputs = [tensor_map(i, f"output_{k}") for k, i in enumerate(sg.outputs)]
    fb.signatureDefs = [sig]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(fb))


def quantize_layers(
    float_model: bytes, layer_precision: dict[str, str], calibration: np.ndarray
) -> bytes:
    """Quantize each named layer to its precision; other layers stay float32.

    Args:
        float_model: A float ``.tflite`` with a signature (:func:`add_signature`).
        layer_precision: Layer name -> ``float32``, ``float16``, ``int8``,
            ``int16x8`` or ``int4``.
        calibration: Float images for the static (int8, int16x8) layers.

    Returns:
        The quantized flatbuffer (float32 input and output, dynamic batch).

    Raises:
        RecipeError: If a layer cannot be aimed at exactly one op, or the
            quantizer refuses the recipe.
    """
    from ai_edge_quantizer import qtyping, quantizer

    ops = list_ops(float_model)
    resolved = resolve_layers(ops, list(layer_precision))
    q = quantizer.Quantizer(bytearray(float_model))
    entries = 0
    assigned = {}
    try:
        for layer, precision in layer_precision.items():
            op = resolved[layer]
            assigned[op.index] = precision
            cfg = op_config(precision, op.op)
            if cfg is None:
                continue
            q.update_quantization_recipe(
                regex=exact_regex(op),
                operation_name=qtyping.TFLOperationName(op.op),
                op_config=cfg[1],
                algorithm_key=cfg[0],
            )
            entries += 1
        if not entries:
            return float_model
        for index, precision in glue_precisions(ops, assigned).items():
            op = ops[index]
            cfg = op_config(precision, op.op)
            try:
                name = qtyping.TFLOperationName(op.op)
                q.update_quantization_recipe(
                    regex=exact_regex(op), operation_name=name, op_config=cfg[1],
                    algorithm_key=cfg[0],
                )
            except ValueError:
                continue  # not quantizable at this precision: stays float between (de)quantize ops
        result = None
        if q.need_calibration:
            if calibration is None or len(calibration) == 0:
                raise RecipeError("int8 / int16x8 layers need calibration images")
            x = np.asarray(calibration, dtype=np.float32)
            from ai_edge_litert.interpreter import Interpreter

            sigs = Interpreter(model_content=float_model).get_signature_list()
            input_name = sigs[SIGNATURE_KEY]["inputs"][0]
            chunks = [
                {input_name: x[i : i + CALIBRATION_CHUNK]}
                for i in range(0, len(x), CALIBRATION_CHUNK)
            ]
            result = q.calibrate({SIGNATURE_KEY: chunks}, num_threads=1)
        return bytes(q.quantize(result, enable_progress_report=False).quantized_model)
    except (ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise RecipeError(f"quantization failed: {first}") from exc
