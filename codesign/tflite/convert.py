"""Fast conversion of a tf_keras model to TFLite bytes, with per-layer precision.

``TFLiteConverter.from_keras_model`` spends most of its time writing a
SavedModel; converting a concrete function without lowering to a SavedModel is
an order of magnitude faster for the same file (see docs/architecture.md).
Layers other than float32 are then quantized one by one with
ai-edge-quantizer (:mod:`codesign.tflite.quantize`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from codesign.errors import TrialFailure
from codesign.tflite.quantize import add_signature, quantize_layers

CALIBRATION_SAMPLES = 128


def concrete_converter(model: keras.Model) -> tf.lite.TFLiteConverter:
    """A converter of ``model``'s inference function with a dynamic batch, no SavedModel."""
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    converter.experimental_lower_to_saved_model = False
    return converter


def convert_float(model: keras.Model) -> bytes:
    """Convert ``model`` to a float32 flatbuffer with a ``serving_default`` signature.

    The batch dimension stays dynamic (``-1``), so one file serves batch-1
    latency and batched evaluation.

    Raises:
        TrialFailure: If the converter rejects the model.
    """
    converter = concrete_converter(model)
    try:
        return add_signature(bytes(converter.convert()))
    except Exception as exc:  # the converter raises many unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrialFailure(f"conversion failed: {first}") from exc


def convert(
    model: keras.Model, layer_precision: dict[str, str], calibration: np.ndarray | None = None
) -> bytes:
    """Convert ``model`` and give each named layer its precision.

    Args:
        model: A functional tf_keras model with one image input.
        layer_precision: Layer name -> precision for every conv, depthwise
            and dense layer (``float32``, ``float16``, ``int8``, ``int16x8``,
            ``int4``). Inputs and outputs stay float32.
        calibration: Training images at the model's resolution (needed when a
            layer is int8 or int16x8).

    Returns:
        The flatbuffer bytes.

    Raises:
        TrialFailure: If conversion or quantization fails.
    """
    float_model = convert_float(model)
    if all(p == "float32" for p in layer_precision.values()):
        return float_model
    samples = None if calibration is None else calibration[:CALIBRATION_SAMPLES]
    return quantize_layers(float_model, layer_precision, samples)
