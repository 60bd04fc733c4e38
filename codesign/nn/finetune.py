"""Brief fine-tuning of a sub-model, and Keras-side accuracy."""

from __future__ import annotations

import numpy as np
import tf_keras as keras


def fine_tune(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> keras.Model:
    """Train ``model`` in place for a few epochs (Adam, cosine decay) and return it.

    Args:
        model: A sub-model with inherited weights (or a QAT-wrapped model).
        x: Training images at the model's resolution.
        y: Integer labels.
        epochs: Passes over ``x``.
        learning_rate: Initial learning rate.
        batch_size: Images per step.
        seed: Seed of the shuffling.
    """
    if epochs <= 0:
        return model
    keras.utils.set_random_seed(seed)
    steps = max(1, int(np.ceil(len(x) / batch_size))) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def keras_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a Keras model (inference mode)."""
    logits = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == y))
