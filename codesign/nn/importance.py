"""Sorting every channel group by importance, so that the first ``k`` channels are the best k.

A permutation of a group's channels is applied to every weight that touches
the group: the output axis of the layers that produce it (and their batch
norms), the channel axis of depthwise layers that run on it (and their batch
norms), and the input axis of the layers that consume it. The network computes
exactly the same function afterwards; only the order changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from codesign.space.family import SpaceSpec


@dataclass
class GroupWiring:
    """Which weights touch one channel group.

    Attributes:
        producers: Conv layers whose output channels form the group.
        channelwise: Depthwise layers that run on the group's channels.
        consumers: ``(layer, input axis)`` of layers that read the group.
    """

    producers: list[str] = field(default_factory=list)
    channelwise: list[str] = field(default_factory=list)
    consumers: list[tuple[str, int]] = field(default_factory=list)


def wiring(space: SpaceSpec) -> dict[str, GroupWiring]:
    """Return the wiring of every channel group of the maximal network."""
    w = {g: GroupWiring(producers=list(layers)) for g, layers in space.group_layers().items()}
    for bp in space.blocks():
        if bp.expand > 1:
            w[bp.in_group].consumers.append((f"{bp.name}_expand", 2))
        w[bp.hidden_group].channelwise.append(f"{bp.name}_dw")
        w[bp.hidden_group].consumers.append((f"{bp.name}_project", 2))
    last = space.blocks()[-1].out_group
    w[last].consumers.append(("head_conv", 2))
    w["head_conv"].consumers.append(("classifier", 0))
    return w


def filter_l1(kernel: np.ndarray) -> np.ndarray:
    """The L1 norm of each output filter of a kernel (output channels last).

    The measure of a channel's importance the built-in space sorts by and a
    graph's pruning (:mod:`codesign.hyper.prune`) ranks by.
    """
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def importance(weights: dict[str, list[np.ndarray]], wire: GroupWiring) -> np.ndarray:
    """L1 norm of each output filter, averaged over the group's (tied) producers.

    Each producer's norms are divided by their mean first, so that tied layers
    of different scale count alike.
    """
    total = None
    for name in wire.producers:
        norms = filter_l1(weights[name][0])
        norms = norms / max(float(norms.mean()), 1e-12)
        total = norms if total is None else total + norms
    assert total is not None
    return total


def sort_channels(
    space: SpaceSpec, weights: dict[str, list[np.ndarray]]
) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    """Reorder every group's channels by decreasing importance.

    Args:
        space: The search space.
        weights: Supernet weights by layer name (tf_keras layouts).

    Returns:
        The permuted weights and the permutation applied to each group.
    """
    out = {name: [w.copy() for w in ws] for name, ws in weights.items()}
    perms = {}
    for group, wire in wiring(space).items():
        perm = np.argsort(-importance(out, wire), kind="stable")
        perms[group] = perm
        for name in wire.producers:
            out[name][0] = out[name][0][..., perm]
            out[f"{name}_bn"] = [v[perm] for v in out[f"{name}_bn"]]
        for name in wire.channelwise:
            out[name][0] = out[name][0][:, :, perm, :]
            out[f"{name}_bn"] = [v[perm] for v in out[f"{name}_bn"]]
        for name, axis in wire.consumers:
            out[name][0] = np.take(out[name][0], perm, axis=axis)
    return out, perms
