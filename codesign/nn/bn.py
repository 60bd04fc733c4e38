"""Batch-norm recalibration of a sub-model (EagleEye's adaptive BN).

Inherited batch-norm statistics belong to the supernet, not to the narrower
network; recomputing them on a few training images before scoring is what
makes inherited-weight scores track real accuracy.
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras


def recalibrate_bn(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> None:
    """Replace every batch norm's moving statistics with those of ``images``.

    The statistics are the mean over batches of the batch statistics seen in a
    training-mode forward pass, so each layer sees inputs normalised the way
    training normalises them.

    Args:
        model: The sub-model (modified in place).
        images: Calibration images at the model's input resolution.
        batch_size: Images per forward pass.
    """
    bns = [ly for ly in model.layers if isinstance(ly, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    sums_mean = [np.zeros(bn.moving_mean.shape, np.float64) for bn in bns]
    sums_var = [np.zeros(bn.moving_variance.shape, np.float64) for bn in bns]
    batches = 0
    try:
        for bn in bns:
            bn.momentum = 0.0  # moving statistics := this batch's statistics
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            if len(batch) < 2:
                break
            model(batch, training=True)
            for i, bn in enumerate(bns):
                sums_mean[i] += bn.moving_mean.numpy()
                sums_var[i] += bn.moving_variance.numpy()
            batches += 1
    finally:
        for bn, m in zip(bns, saved, strict=True):
            bn.momentum = m
    if batches:
        for i, bn in enumerate(bns):
            bn.moving_mean.assign((sums_mean[i] / batches).astype(np.float32))
            bn.moving_variance.assign((sums_var[i] / batches).astype(np.float32))
