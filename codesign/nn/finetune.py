"""Brief training of a model with its weights: fine-tuning, early-stopped training, accuracy.

Runs in the evaluation child. :func:`fine_tune` trains a built-in sub-model
with inherited weights for a fixed number of epochs (cosine decay);
:func:`train` trains a built (or pruned) model of a HyperModel or a user's
trained model with early stopping on validation (there is no supernet to
inherit weights from, so a HyperModel's architecture trains from its seeded
initial weights), optionally toward distillation targets
(:func:`distill_targets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tf_keras as keras

from codesign.nn.bn import recalibrate_bn

BN_IMAGES = 512  # training images whose statistics replace batch norm's before validation
LEARNING_RATE = 1e-3  # fine-tuning's initial learning rate (Adam, cosine decay)


class RecalibrateBN(keras.callbacks.Callback):
    """Before each validation, set batch-norm statistics from training images.

    Brief training is too short for batch norm's moving averages to settle
    (they would score a good network at chance), so validation, early
    stopping and the kept best weights all see recalibrated statistics.
    """

    def __init__(self, images: np.ndarray) -> None:
        super().__init__()
        self.images = images

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Recalibrate (called by ``fit`` before it validates)."""
        recalibrate_bn(self.model, self.images)


def outputs_probabilities(model: keras.Model) -> bool:
    """Whether the model ends in a softmax (else its outputs are taken as logits)."""
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    if isinstance(last, keras.layers.Softmax):
        return True
    return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"


def fresh_optimizer(model: keras.Model, learning_rate: float) -> keras.optimizers.Optimizer:
    """A new copy of the optimizer ``build`` compiled the model with, else Adam."""
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        try:
            return keras.optimizers.deserialize(keras.optimizers.serialize(opt))
        except (ValueError, TypeError, KeyError):
            pass
    return keras.optimizers.Adam(learning_rate)


@dataclass(frozen=True)
class Schedule:
    """How long and how a model trains.

    Attributes:
        epochs: Most passes over the training images.
        patience: Epochs without improvement before stopping.
        batch_size: Images per step.
        seed: Seed of the shuffling.
    """

    epochs: int
    patience: int
    batch_size: int
    seed: int


def train(
    model: keras.Model,
    train_xy: tuple[np.ndarray, np.ndarray],
    val_xy: tuple[np.ndarray, np.ndarray],
    schedule: Schedule,
    optimizer: keras.optimizers.Optimizer | None = None,
    on_epoch: Callable[[int, int, float], None] | None = None,
    soft_targets: np.ndarray | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place; stop when validation loss stops improving, keep the best.

    Args:
        model: A functional tf_keras classifier.
        train_xy: Training images at the model's resolution and integer labels.
        val_xy: Validation images and labels (early stopping watches their loss).
        schedule: Epochs, patience, batch size and seed.
        optimizer: The optimizer (default: Adam, 1e-3).
        on_epoch: Called with ``(epoch, epochs, validation accuracy)`` after each epoch.
        soft_targets: Per training image, a target distribution to learn instead
            of its label (knowledge distillation, see :func:`distill_targets`);
            validation still scores the labels.

    Returns:
        ``{"epochs": run, "val_accuracy": best Keras-side validation accuracy}``.
    """
    epochs, patience, batch_size = schedule.epochs, schedule.patience, schedule.batch_size
    if epochs <= 0:
        return {"epochs": 0, "val_accuracy": None}
    keras.utils.set_random_seed(schedule.seed)
    logits = not outputs_probabilities(model)
    loss: keras.losses.Loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    if soft_targets is not None:
        loss = keras.losses.CategoricalCrossentropy(from_logits=logits)
        classes = soft_targets.shape[-1]
        train_xy = (train_xy[0], soft_targets)
        val_xy = (val_xy[0], np.eye(classes, dtype=np.float32)[val_xy[1]])
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), loss=loss,
                  metrics=["accuracy"])
    callbacks: list[keras.callbacks.Callback] = [
        RecalibrateBN(train_xy[0][:BN_IMAGES]),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                      restore_best_weights=True),
    ]
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: on_epoch(e + 1, epochs, float(logs["val_accuracy"]))))
    history = model.fit(*train_xy, validation_data=val_xy, epochs=epochs, batch_size=batch_size,
                        shuffle=True, verbose=0, callbacks=callbacks)
    return {"epochs": len(history.history["loss"]),
            "val_accuracy": round(float(max(history.history["val_accuracy"])), 4)}


def distill_targets(labels: np.ndarray, teacher: np.ndarray, probabilities: bool,
                    weight: float = 0.5, temperature: float = 2.0) -> np.ndarray:
    """Soft targets of knowledge distillation: labels mixed with the teacher's softened outputs.

    Args:
        labels: Integer labels.
        teacher: The teacher's outputs on the same images.
        probabilities: Whether ``teacher`` holds probabilities (else logits).
        weight: Share of the teacher in the target (the rest is the one-hot label).
        temperature: Softening of the teacher's distribution (``p ** (1 / T)``
            renormalised, i.e. ``softmax(logits / T)``).

    Returns:
        ``(images, classes)`` float32 target distributions.
    """
    t = np.asarray(teacher, np.float64)
    logs = np.log(np.clip(t, 1e-12, 1.0)) if probabilities else t
    z = logs / temperature
    soft = np.exp(z - z.max(axis=-1, keepdims=True))
    soft /= soft.sum(axis=-1, keepdims=True)
    onehot = np.eye(t.shape[-1])[labels]
    return ((1.0 - weight) * onehot + weight * soft).astype(np.float32)


def fine_tune(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    learning_rate: float = LEARNING_RATE,
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
