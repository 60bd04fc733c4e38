"""Layer factories shared by the supernet and sub-models, so names and settings agree."""

from __future__ import annotations

import tf_keras as keras

BN_EPSILON = 1e-3


def conv(name: str, filters: int, kernel: int = 1, stride: int = 1) -> keras.layers.Conv2D:
    """A bias-free convolution (a batch norm follows)."""
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=name
    )


def depthwise(name: str, kernel: int, stride: int) -> keras.layers.DepthwiseConv2D:
    """A bias-free depthwise convolution (a batch norm follows)."""
    return keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=name
    )


def batch_norm(name: str) -> keras.layers.BatchNormalization:
    """A batch normalization with the family's epsilon."""
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.9, name=name)


def dense(name: str, units: int) -> keras.layers.Dense:
    """The classifier."""
    return keras.layers.Dense(units, name=name)
