"""Quantization-aware training of chosen layers with TFMOT, and its conversion."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from codesign.errors import TrialFailure
from codesign.tflite.convert import concrete_converter


def qat_model(model: keras.Model, layers: list[str]) -> keras.Model:
    """Wrap ``model`` so that the named layers train with fake 8-bit quantization.

    Args:
        model: A float sub-model (its weights are carried over).
        layers: Names of the layers to quantize (int8); the rest stay float.

    Returns:
        A TFMOT quantization-aware model, ready to fine-tune.
    """
    import tensorflow_model_optimization as tfmot

    annotate = tfmot.quantization.keras.quantize_annotate_layer
    chosen = set(layers)

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        fresh = layer.__class__.from_config(layer.get_config())
        return annotate(fresh) if layer.name in chosen else fresh

    annotated = keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    with tfmot.quantization.keras.quantize_scope():
        return tfmot.quantization.keras.quantize_apply(annotated)


def convert_qat(model: keras.Model) -> bytes:
    """Convert a quantization-aware model to a ``.tflite`` with int8 layers.

    Raises:
        TrialFailure: If the converter rejects the model.
    """
    converter = concrete_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises many unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrialFailure(f"QAT conversion failed: {first}") from exc
