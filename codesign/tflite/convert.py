"""Fast conversion of a tf_keras model to TFLite bytes.

``TFLiteConverter.from_keras_model`` spends most of its time writing a
SavedModel; converting a concrete function without lowering to a SavedModel is
an order of magnitude faster for the same file (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tf_keras as keras

from codesign.errors import TrialFailure

CALIBRATION_SAMPLES = 128


def convert(
    model: keras.Model, precision: str, calibration: np.ndarray | None = None
) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer.

    The batch dimension stays dynamic (``-1`` in the signature), so one file
    serves batch-1 latency and batched evaluation. Inputs and outputs stay
    float32; an int8 model quantizes at its input and dequantizes at its output.

    Args:
        model: A functional tf_keras model with one image input.
        precision: ``float32`` or ``int8`` (full integer, 8-bit weights and
            activations, calibrated on ``calibration``).
        calibration: Training images at the model's resolution (int8 only).

    Returns:
        The flatbuffer bytes.

    Raises:
        TrialFailure: If the converter rejects the model.
    """
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    converter.experimental_lower_to_saved_model = False
    if precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise TrialFailure("int8 conversion needs calibration images")
        samples = calibration[:CALIBRATION_SAMPLES].astype(np.float32)

        def representative() -> Iterator[list[np.ndarray]]:
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif precision != "float32":
        raise TrialFailure(f"precision {precision!r} is not supported by this converter")
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises many unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrialFailure(f"conversion failed: {first}") from exc
