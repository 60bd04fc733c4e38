"""Narrow sub-models: flat functional tf_keras graphs with inherited weights.

The sub-model has exactly the channels and blocks of its :class:`SubnetSpec`
(structural, not masked): its weights are the first ``k`` channels of the
supernet's layers of the same name.
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from codesign.nn import layers as L
from codesign.space.family import SpaceSpec, SubnetSpec


def build_submodel(
    space: SpaceSpec, sub: SubnetSpec, num_classes: int, channels: int
) -> keras.Model:
    """Build the narrow functional model of ``sub`` (fresh weights).

    Args:
        space: The search space.
        sub: The sub-network to build.
        num_classes: Classifier outputs.
        channels: Input image channels.

    Returns:
        An uncompiled ``tf_keras.Model`` whose layers carry the supernet's names.
    """
    ch = sub.channels
    inp = keras.Input((sub.resolution, sub.resolution, channels), name="input")
    h = L.conv("stem_conv", ch["stem_conv"], 3, space.stem_stride)(inp)
    h = _bn_relu(h, "stem_conv")
    for bp in space.blocks():
        if bp.index > sub.depths[bp.stage - 1]:
            continue
        x_in = h
        if bp.expand > 1:
            h = L.conv(f"{bp.name}_expand", ch[bp.hidden_group])(h)
            h = _bn_relu(h, f"{bp.name}_expand")
        h = L.depthwise(f"{bp.name}_dw", sub.kernels[bp.name], bp.stride)(h)
        h = _bn_relu(h, f"{bp.name}_dw")
        h = L.conv(f"{bp.name}_project", ch[bp.out_group])(h)
        h = L.batch_norm(f"{bp.name}_project_bn")(h)
        if bp.residual:
            h = keras.layers.Add(name=f"{bp.name}_add")([x_in, h])
    h = L.conv("head_conv", ch["head_conv"])(h)
    h = _bn_relu(h, "head_conv")
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    out = L.dense("classifier", num_classes)(h)
    return keras.Model(inp, out, name="codesign")


def _bn_relu(h: object, prefix: str) -> object:
    h = L.batch_norm(f"{prefix}_bn")(h)
    return keras.layers.ReLU(6.0, name=f"{prefix}_relu")(h)


def inherit_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Copy the leading slice of each supernet layer's weights into ``model``.

    Channels are the leading ones; the spatial axes of a convolution kernel are
    its centre (a depthwise kernel smaller than the supernet's is its centre crop).

    Args:
        model: A model from :func:`build_submodel`.
        weights: Supernet weights by layer name (:meth:`Supernet.weights`).
    """
    for layer in model.layers:
        if layer.name not in weights:
            continue
        src = weights[layer.name]
        dst = []
        for w_src, w_dst in zip(src, layer.get_weights(), strict=True):
            index = [slice(0, n) for n in w_dst.shape]
            if w_dst.ndim == 4:  # (height, width, in, out): centre of the spatial axes
                index[:2] = [slice((m - n) // 2, (m - n) // 2 + n)
                             for m, n in zip(w_src.shape[:2], w_dst.shape[:2], strict=True)]
            dst.append(w_src[tuple(index)])
        layer.set_weights(dst)


def kept_channels(model: keras.Model) -> dict[str, int]:
    """Return the output channels of every conv, depthwise and dense layer by name."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out[layer.name] = int(layer.get_weights()[0].shape[2])
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            out[layer.name] = int(layer.get_weights()[0].shape[-1])
    return out
