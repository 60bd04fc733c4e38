"""The weight-sharing supernet: the maximal network with channel masks and depth gates.

A sub-network is selected by a mask per channel group (the first ``k`` channels
are 1), a gate per residual block (0 skips the block) and, when the space
offers several depthwise kernels, a kernel mask per block: the depthwise
weights are held at the largest kernel ``K`` and a ``k x k`` kernel is their
centre (the mask zeroes the rest). With ``same`` padding a centred ``k x k``
kernel padded with zeros to ``K x K`` computes exactly what the ``k x k``
kernel computes, at any stride, so every sub-network computes what the narrow
network built by :mod:`codesign.nn.submodel` computes, while shapes stay
static so one traced training step serves all sub-networks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from codesign.errors import CodesignError
from codesign.nn import layers as L
from codesign.space.family import SpaceSpec, SubnetSpec


class Supernet:
    """The maximal network of a space, with weights shared by all sub-networks.

    Args:
        space: The search space whose maximal network this is.
        num_classes: Classifier outputs.
        channels: Input image channels.
    """

    def __init__(self, space: SpaceSpec, num_classes: int, channels: int) -> None:
        self.space = space
        self.num_classes = num_classes
        self.channels = channels
        self.groups = space.group_sizes()
        self.blocks = space.blocks()
        self.kernel = max(space.kernels)  # the depthwise weights' size
        self.layers: dict[str, tf.Module] = {}
        self._make_layers()
        self._build()

    # --- construction ----------------------------------------------------------------

    def _add(self, layer: tf.Module) -> tf.Module:
        self.layers[layer.name] = layer
        return layer

    def _make_layers(self) -> None:
        sp = self.space
        self._add(L.conv("stem_conv", self.groups["stem_conv"], 3, sp.stem_stride))
        self._add(L.batch_norm("stem_conv_bn"))
        for bp in self.blocks:
            if bp.expand > 1:
                self._add(L.conv(f"{bp.name}_expand", self.groups[bp.hidden_group]))
                self._add(L.batch_norm(f"{bp.name}_expand_bn"))
            dw = self._add(L.depthwise(f"{bp.name}_dw", self.kernel, bp.stride))
            dw.build((None, None, None, self.groups[bp.hidden_group]))
            self._add(L.batch_norm(f"{bp.name}_dw_bn"))
            self._add(L.conv(f"{bp.name}_project", self.groups[bp.out_group]))
            self._add(L.batch_norm(f"{bp.name}_project_bn"))
        self._add(L.conv("head_conv", self.groups["head_conv"]))
        self._add(L.batch_norm("head_conv_bn"))
        self._add(L.dense("classifier", self.num_classes))

    def _build(self) -> None:
        r = max(self.space.resolutions)
        x = tf.zeros((1, r, r, self.channels))
        masks = self.masks_for(self.max_subnet())
        self.forward(x, masks, tf.ones(len(self.blocks)), training=False)

    def max_subnet(self) -> SubnetSpec:
        """Return the maximal sub-network (everything on)."""
        return self.space.subnet(self.space.max_candidate())

    # --- masks ---------------------------------------------------------------------------

    def masks_for(self, sub: SubnetSpec) -> dict[str, tf.Tensor]:
        """Return the masks of ``sub``: group -> float vector of full width, and kernel masks."""
        out = {}
        for g, full in self.groups.items():
            k = sub.channels[g]
            out[g] = tf.constant(np.arange(full) < k, dtype=tf.float32)
        if self.space.elastic_kernel:
            for bp in self.blocks:
                mask = self.kernel_mask(sub.kernels[bp.name]).ravel()
                out[f"kernel/{bp.name}"] = tf.constant(mask)
        return out

    def mask_vector(self, sub: SubnetSpec) -> np.ndarray:
        """Return all masks of ``sub`` concatenated: groups, kernels (if elastic), block gates."""
        parts = [np.arange(full) < sub.channels[g] for g, full in self.groups.items()]
        if self.space.elastic_kernel:
            parts += [self.kernel_mask(sub.kernels[bp.name]).ravel() for bp in self.blocks]
        parts.append(self.gates_for(sub))
        return np.concatenate(parts).astype(np.float32)

    def kernel_mask(self, size: int) -> np.ndarray:
        """A ``K x K`` mask whose centre ``size x size`` is 1 (``K``: the largest kernel)."""
        lo = (self.kernel - size) // 2
        mask = np.zeros((self.kernel, self.kernel), np.float32)
        mask[lo : lo + size, lo : lo + size] = 1.0
        return mask

    def gates_for(self, sub: SubnetSpec) -> np.ndarray:
        """Return one gate per block: 1 if the sub-network uses the block."""
        return np.array(
            [1.0 if bp.index <= sub.depths[bp.stage - 1] else 0.0 for bp in self.blocks],
            dtype=np.float32,
        )

    def split_vector(self, vec: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Invert :meth:`mask_vector` inside a traced function."""
        masks = {}
        start = 0
        for g, full in self.groups.items():
            masks[g] = vec[start : start + full]
            start += full
        if self.space.elastic_kernel:
            area = self.kernel * self.kernel
            for bp in self.blocks:
                masks[f"kernel/{bp.name}"] = vec[start : start + area]
                start += area
        return masks, vec[start:]

    # --- forward -------------------------------------------------------------------------

    def forward(
        self,
        x: tf.Tensor,
        masks: dict[str, tf.Tensor],
        gates: tf.Tensor,
        training: bool,
        norm: Callable[[str, tf.Tensor], tf.Tensor] | None = None,
    ) -> tf.Tensor:
        """Run the masked maximal network and return logits.

        Args:
            x: Input images.
            masks: Channel mask per group (and ``kernel/<block>``: the flat
                kernel mask of each block, when the kernel is elastic).
            gates: One gate per block.
            training: Batch-norm mode when ``norm`` is None.
            norm: Replaces every batch norm: ``norm(bn_layer_name, h)``.
        """
        ly = self.layers
        relu6 = tf.nn.relu6

        def bn(name: str, h: tf.Tensor) -> tf.Tensor:
            return ly[name](h, training=training) if norm is None else norm(name, h)
        h = relu6(bn("stem_conv_bn", ly["stem_conv"](x))) * masks["stem_conv"]
        for i, bp in enumerate(self.blocks):
            inp = h
            if bp.expand > 1:
                e = ly[f"{bp.name}_expand"](h)
                e = relu6(bn(f"{bp.name}_expand_bn", e))
                e = e * masks[bp.hidden_group]
            else:
                e = h
            d = relu6(bn(f"{bp.name}_dw_bn", self._depthwise(bp.name, bp.stride, e, masks)))
            d = d * masks[bp.hidden_group]
            p = bn(f"{bp.name}_project_bn", ly[f"{bp.name}_project"](d))
            p = p * masks[bp.out_group]
            h = inp + gates[i] * p if bp.residual else p
        h = relu6(bn("head_conv_bn", ly["head_conv"](h))) * masks["head_conv"]
        h = tf.reduce_mean(h, axis=(1, 2))
        return ly["classifier"](h)

    def _depthwise(self, block: str, stride: int, h: tf.Tensor,
                   masks: dict[str, tf.Tensor]) -> tf.Tensor:
        """The block's depthwise convolution, its kernel cropped to the centre the mask keeps."""
        layer = self.layers[f"{block}_dw"]
        if not self.space.elastic_kernel:
            return layer(h)
        mask = tf.reshape(masks[f"kernel/{block}"], (self.kernel, self.kernel, 1, 1))
        return tf.nn.depthwise_conv2d(h, layer.depthwise_kernel * mask,
                                      strides=(1, stride, stride, 1), padding="SAME")

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        """All trainable variables of the supernet."""
        out: list[tf.Variable] = []
        for layer in self.layers.values():
            out.extend(layer.trainable_variables)
        return out

    # --- persistence ---------------------------------------------------------------------

    def weights(self) -> dict[str, list[np.ndarray]]:
        """Return every layer's weights as numpy arrays, keyed by layer name."""
        return {name: [w.numpy() for w in layer.weights] for name, layer in self.layers.items()}

    def save(self, path: Path) -> None:
        """Save weights to an ``.npz`` file (no pickle), atomically."""
        arrays = {
            f"{name}/{i}": w for name, ws in self.weights().items() for i, w in enumerate(ws)
        }
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    def set_weights(self, weights: dict[str, list[np.ndarray]]) -> None:
        """Assign weights by layer name (the variables stay the same objects)."""
        for name, layer in self.layers.items():
            layer.set_weights(weights[name])

    def load(self, path: Path) -> None:
        """Load weights saved by :meth:`save`.

        Raises:
            CodesignError: If the file does not match this space.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                for name, layer in self.layers.items():
                    ws = [data[f"{name}/{i}"] for i in range(len(layer.weights))]
                    layer.set_weights(ws)
        except (KeyError, ValueError, OSError) as exc:
            raise CodesignError(
                f"supernet weights {path} do not fit this space ({exc}); "
                "delete the file to retrain"
            ) from None
