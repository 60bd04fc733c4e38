"""Weights rounded as each layer's precision stores them, for the masked supernet.

The converter folds every batch norm into the convolution before it and then
quantizes the folded kernel per output channel (``codesign.tflite.recipe``):
8-bit symmetric for ``int8`` and ``int16x8``, 4-bit symmetric for ``int4``,
half floats for ``float16``. :func:`rounded_kernels` computes that rounding on
the masked supernet's shared weights for one sub-network, given the batch-norm
statistics it was recalibrated with, and returns kernels to assign in place of
the float ones: each is the rounded folded kernel divided again by the batch
norm's scale, so the unchanged masked forward pass (convolution, then batch
norm with those statistics) computes what the rounded folded kernel computes.

Only the input channels and kernel taps the sub-network keeps enter a
channel's range, as in the narrow model the converter sees. Activations are
left in float: this screens what weight rounding costs a candidate, which is
where its precisions differ most (4-bit weights); integer activations add a
smaller error per tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codesign.nn.importance import wiring
from codesign.space.family import SubnetSpec

#: Largest integer level of each symmetric weight format (None: half floats).
LEVELS: dict[str, int | None] = {"int8": 127, "int16x8": 127, "int4": 7, "float16": None}


def round_per_channel(w: np.ndarray, precision: str) -> np.ndarray:
    """Round ``w`` (output channels on the last axis) as ``precision`` stores it.

    Args:
        w: Folded kernel, output channels last; entries the sub-network does
            not use must already be zero.
        precision: A layer precision; ``float32`` returns ``w`` unchanged.
    """
    if precision not in LEVELS:
        return w
    levels = LEVELS[precision]
    if levels is None:
        return w.astype(np.float16).astype(w.dtype)
    flat = w.reshape(-1, w.shape[-1])
    top = np.max(np.abs(flat), axis=0)
    scale = np.where(top > 0, top / levels, 1.0)
    q = np.clip(np.round(flat / scale), -levels, levels) * scale
    return q.reshape(w.shape).astype(w.dtype)


def _kept(n_full: int, n_kept: int) -> np.ndarray:
    return (np.arange(n_full) < n_kept).astype(np.float32)


def rounded_kernels(net: Any, sub: SubnetSpec, stats: dict[str, tuple[np.ndarray, np.ndarray]]
                    ) -> dict[str, np.ndarray]:
    """Kernels that make the masked forward pass compute ``sub`` with rounded weights.

    Args:
        net: The :class:`codesign.nn.supernet.Supernet`.
        sub: The sub-network, with a precision per layer it has.
        stats: Batch-norm name -> (mean, variance) the sub-network was
            recalibrated with (names of skipped blocks may be absent).

    Returns:
        Layer name -> kernel to assign (only layers whose precision rounds).
    """
    reads = {layer: (group, axis) for group, wire in wiring(net.space).items()
             for layer, axis in wire.consumers}  # the group each layer reads, on which axis
    out: dict[str, np.ndarray] = {}
    for name, precision in sub.precision.items():
        if precision not in LEVELS:
            continue
        w = kernel_variable(net, name).numpy()
        scale, safe = np.float32(1.0), np.float32(1.0)  # the classifier has no batch norm
        if f"{name}_bn" in net.layers:
            mean, var = stats[f"{name}_bn"]
            bn = net.layers[f"{name}_bn"]
            scale = bn.gamma.numpy() * (1.0 / np.sqrt(var + bn.epsilon))
            safe = np.where(np.abs(scale) > 1e-12, scale, 1.0)
        if name.endswith("_dw"):  # (K, K, C, 1): channels on axis 2
            block = name[: -len("_dw")]
            taps = net.kernel_mask(sub.kernels.get(block, net.kernel))[:, :, None, None]
            folded = w * taps * scale[None, None, :, None]
            q = np.moveaxis(round_per_channel(np.moveaxis(folded, 2, 3), precision), 3, 2)
            out[name] = np.where(taps > 0, q / safe[None, None, :, None], w)
            continue
        keep: np.ndarray | float = 1.0  # the stem reads the image: every input channel
        if name in reads:
            group, axis = reads[name]
            shape = [1] * w.ndim
            shape[axis] = -1
            keep = _kept(w.shape[axis], sub.channels[group]).reshape(shape)
        q = round_per_channel(w * keep * scale, precision) / safe
        out[name] = q * keep + w * (1 - keep)
    return out


def kernel_variable(net: Any, name: str) -> Any:
    """The variable holding layer ``name``'s kernel."""
    layer = net.layers[name]
    return layer.depthwise_kernel if name.endswith("_dw") else layer.kernel
