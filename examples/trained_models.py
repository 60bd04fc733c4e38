"""Trained models to compress with ``codesign search --model``: data and two model builders.

User code, not part of the package (linted with it). ``tools/bench_compress.py``
and ``tests/test_compress.py`` train these on data made here:

* :func:`rgb_shapes`: 32x32 RGB uint8 images of coloured shapes on noise, one
  class per (shape, dominant colour) pair;
* :func:`mobilenet_v2_style`: a Keras 3 model of inverted residual blocks
  (expand, depthwise, project, residual add; ReLU6; batch-norm momentum 0.9),
  scaling its own input with ``Rescaling``;
* :func:`resnet_style`: a tf_keras model of residual blocks (or, with
  ``concat=True``, blocks whose branches are concatenated), giving logits.

Import ``codesign`` (or set ``TF_USE_LEGACY_KERAS=1``) before TensorFlow loads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SHAPES = ("square", "disk", "bar", "column", "cross")


def rgb_shapes(n: int, seed: int, classes: int = 10, size: int = 32, contrast: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images and labels: shape ``k % 5`` drawn brighter in channel ``k // 5``.

    Args:
        n: Images.
        seed: Seed of the images.
        classes: At most 10 (5 shapes x 2 colours); fewer use the first ones.
        size: Image side.
        contrast: How much brighter the shape is than the noise (1: clear; less is harder).

    Returns:
        ``(uint8 images (n, size, size, 3), int64 labels)``.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.uniform(0, 140, (n, size, size, 3))
    yy, xx = np.mgrid[:size, :size]
    for i, label in enumerate(y):
        r = int(rng.integers(size // 6, size // 4))
        cy, cx = rng.integers(r, size - r, 2)
        dy, dx = np.abs(yy - cy), np.abs(xx - cx)
        mask = {"square": (dy <= r) & (dx <= r),
                "disk": dy ** 2 + dx ** 2 <= r * r,
                "bar": (dy <= r // 3) & (dx <= r),
                "column": (dx <= r // 3) & (dy <= r),
                "cross": ((dy <= r // 3) & (dx <= r)) | ((dx <= r // 3) & (dy <= r))
                }[SHAPES[label % 5]]
        x[i][mask, label // 5] += 110 * contrast
        x[i][mask] += 20 * contrast
    return np.clip(x, 0, 255).astype("uint8"), y.astype("int64")


def mobilenet_v2_style(classes: int, alpha: float = 1.0, rescale: bool = True) -> Any:
    """A small Keras 3 MobileNetV2-style classifier for 32x32 RGB images (softmax output)."""
    import keras

    layers = keras.layers

    def width(c: int) -> int:
        return max(8, int(c * alpha) // 8 * 8)

    inp = keras.Input((32, 32, 3))
    x = layers.Rescaling(1 / 255.0)(inp) if rescale else inp
    x = layers.Conv2D(width(16), 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))
    for filters, stride in ((16, 1), (24, 2), (24, 1), (32, 2), (32, 1)):
        cin = x.shape[-1]
        h = layers.Conv2D(cin * 3, 1, use_bias=False)(x)
        h = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(h))
        h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(h)
        h = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(h))
        h = layers.BatchNormalization(momentum=0.9)(
            layers.Conv2D(width(filters), 1, use_bias=False)(h))
        x = layers.Add()([x, h]) if stride == 1 and cin == width(filters) else h
    x = layers.Conv2D(width(64), 1, use_bias=False)(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(classes, activation="softmax")(x))


def resnet_style(classes: int, concat: bool = False) -> Any:
    """A small tf_keras ResNet-style classifier for 32x32 RGB images (logits output)."""
    import tf_keras

    layers = tf_keras.layers
    inp = tf_keras.Input((32, 32, 3))
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(
        layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)))
    for width in (16, 32, 48):
        if width != x.shape[-1]:
            x = layers.Conv2D(width, 1, strides=2, use_bias=False)(x)
        h = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(
            layers.Conv2D(width, 3, padding="same", use_bias=False)(x)))
        h = layers.BatchNormalization(momentum=0.9)(
            layers.Conv2D(width, 3, padding="same", use_bias=False)(h))
        if concat:
            x = layers.Concatenate()([h, layers.Conv2D(8, 1, activation="relu")(x)])
        else:
            x = layers.ReLU()(layers.Add()([x, h]))
    x = layers.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inp, layers.Dense(classes)(x))
