"""Quantization-aware training of chosen layers with TFMOT, and its conversion."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from codesign.errors import TrialFailure
from codesign.tflite.convert import concrete_converter


def qat_epochs(epochs: int) -> int:
    """Epochs of QAT after ``epochs`` of float fine-tuning: a third of them, at least one."""
    return max(1, round(epochs / 3))


def qat_model(model: keras.Model) -> keras.Model:
    """Wrap the whole ``model`` for quantization-aware training (8-bit, TFMOT defaults).

    Whole-network wrapping folds each convolution with its batch norm and
    activation. Annotating single layers of a conv + batch-norm graph did not
    give a correct file (layers stayed float, accuracy collapsed), so QAT is
    only offered to candidates whose every layer is int8.

    Args:
        model: A float sub-model (its weights are carried over).

    Returns:
        A TFMOT quantization-aware model, ready to fine-tune.
    """
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_model(model)


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
