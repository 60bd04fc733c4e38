"""Supernet training: the full network first, then nested widths in importance order.

Phase 1 trains the maximal network alone. Then every channel group is sorted
by importance (:mod:`codesign.nn.importance`), so that the first ``k`` channels
of a layer are its ``k`` most important ones. Phase 2 trains nested
sub-networks: every step trains the largest, the smallest and a few random
ones on the same batch (the sandwich rule); the smaller ones learn half from
the labels and half from the largest one's predictions (in-place distillation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from codesign.data import Dataset, resize_bilinear
from codesign.nn.importance import sort_channels
from codesign.nn.supernet import Supernet
from codesign.space.family import SpaceSpec


@dataclass(frozen=True)
class TrainSettings:
    """How the supernet is trained.

    Attributes:
        epochs: Passes over the training split.
        batch_size: Images per step.
        subnets_per_step: Sub-networks per step (largest, smallest, random ones).
        learning_rate: Peak learning rate of Adam (cosine decay to zero).
        seed: Seed of initialisation, shuffling and sub-network sampling.
        full_fraction: Share of the epochs that train the maximal network alone
            before the channels are sorted.
    """

    epochs: int = 20
    batch_size: int = 64
    subnets_per_step: int = 4
    learning_rate: float = 3e-3
    seed: int = 0
    full_fraction: float = 0.25


def set_determinism(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_supernet(
    space: SpaceSpec,
    data: Dataset,
    settings: TrainSettings,
    progress: Callable[[int, int, float], None] | None = None,
) -> Supernet:
    """Train a supernet of ``space`` on ``data``'s training split.

    Args:
        space: The search space.
        data: The data set.
        settings: Training settings.
        progress: Called after each epoch with ``(epoch, epochs, mean loss)``.

    Returns:
        The trained supernet.
    """
    set_determinism(settings.seed)
    net = Supernet(space, data.num_classes, data.channels)
    rng = np.random.default_rng(settings.seed)
    x_by_res = {r: resize_bilinear(data.x_train, r) for r in space.resolutions}
    y = data.y_train
    n = len(y)
    steps_per_epoch = max(1, n // settings.batch_size)
    full_epochs = int(round(settings.epochs * settings.full_fraction)) if settings.epochs > 1 else 0
    nested_epochs = settings.epochs - full_epochs
    variables = net.trainable_variables
    vec_len = len(net.mask_vector(space.subnet(space.max_candidate())))
    max_vec = net.mask_vector(space.subnet(space.max_candidate()))
    min_vec = net.mask_vector(space.subnet(space.min_candidate()))

    def make_step(k: int, opt: keras.optimizers.Optimizer) -> Callable[..., tf.Tensor]:
        signature = [
            tf.TensorSpec([None, None, None, data.channels], tf.float32),
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([k, vec_len], tf.float32),
        ]

        @tf.function(input_signature=signature)  # one trace for every resolution and sub-network
        def step(x: tf.Tensor, yb: tf.Tensor, vectors: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                total_loss = 0.0
                teacher = None
                for i in range(k):
                    masks, gates = net.split_vector(vectors[i])
                    logits = net.forward(x, masks, gates, training=True)
                    hard = tf.reduce_mean(
                        keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)
                    )
                    if teacher is None:
                        teacher = tf.stop_gradient(tf.nn.softmax(logits))
                        loss = hard
                    else:
                        soft = tf.reduce_mean(
                            keras.losses.categorical_crossentropy(teacher, logits, from_logits=True)
                        )
                        loss = 0.5 * hard + 0.5 * soft
                    total_loss += loss
            grads = tape.gradient(total_loss, variables)
            opt.apply_gradients(zip(grads, variables, strict=True))
            return total_loss / k

        return step

    def run_epochs(epochs: int, k: int, offset: int) -> None:
        schedule = keras.optimizers.schedules.CosineDecay(
            settings.learning_rate, max(1, steps_per_epoch * epochs)
        )
        step = make_step(k, keras.optimizers.Adam(schedule))
        for epoch in range(epochs):
            order = rng.permutation(n)
            losses = []
            for s in range(steps_per_epoch):
                idx = order[s * settings.batch_size : (s + 1) * settings.batch_size]
                res = int(rng.choice(space.resolutions))
                vecs = [max_vec, min_vec][:k]
                while len(vecs) < k:
                    vecs.append(net.mask_vector(space.subnet(space.random_candidate(rng))))
                xb, yb = tf.constant(x_by_res[res][idx]), tf.constant(y[idx])
                loss = step(xb, yb, tf.constant(np.stack(vecs)))
                losses.append(float(loss))
            if progress is not None:
                progress(offset + epoch + 1, settings.epochs, float(np.mean(losses)))

    if full_epochs:
        run_epochs(full_epochs, 1, 0)
    sorted_weights, _ = sort_channels(space, net.weights())
    net.set_weights(sorted_weights)
    run_epochs(nested_epochs, settings.subnets_per_step, full_epochs)
    return net
