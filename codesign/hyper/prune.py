"""Structured pruning of a trained tf_keras model: a narrower graph, not masks.

Each pruned group keeps its most important channels: the L1 norm of each
producer's filters, normalised per producer and summed over the producers a
residual addition ties together (as the built-in space sorts its channels).
The model is cloned with fewer filters or units and every weight that touches
a group is sliced: producers' output axis, depthwise and batch-norm channels,
consumers' input axis (through concatenations and flattening). Runs in the
evaluation child.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tf_keras as keras

from codesign.errors import TrialFailure
from codesign.hyper.graph import ChannelGraph
from codesign.hyper.opgraph import kept_count
from codesign.nn.importance import filter_l1

L = keras.layers


def kept_counts(graph: ChannelGraph, ratios: Mapping[str, float]) -> dict[str, int]:
    """Channels each group keeps for its prune ratio (at least one)."""
    return {name: kept_count(g.size, ratios.get(name, 0.0)) for name, g in graph.groups.items()}


CRITERIA = ("l1", "bn")


def importance(model: keras.Model, graph: ChannelGraph, criterion: str = "l1"
               ) -> dict[str, np.ndarray]:
    """Per prunable group: each channel's summed, normalised score over its producers.

    Args:
        model: The trained model.
        graph: Its channel groups.
        criterion: ``l1``, the L1 norm of each producer's filters; or ``bn``,
            the magnitude of the batch-norm scale that follows a producer
            (Network Slimming; a producer without one falls back to L1).
    """
    scores = {}
    for name, g in graph.groups.items():
        if not g.prunable:
            continue
        total = np.zeros(g.size, np.float64)
        for producer in g.producers:
            layer = model.get_layer(producer)
            bn = _next_batch_norm(layer) if criterion == "bn" else None
            if bn is not None and bn.scale:
                score = np.abs(np.asarray(bn.gamma.numpy(), np.float64))
            else:
                score = filter_l1(np.asarray(layer.kernel.numpy()))
            total += score / max(float(score.max()), 1e-12)
        scores[name] = total
    return scores


def _next_batch_norm(layer: Any) -> Any:
    """The batch norm that alone reads ``layer``'s output, if there is one."""
    nodes = layer.outbound_nodes
    if len(nodes) == 1 and isinstance(nodes[0].outbound_layer, L.BatchNormalization):
        return nodes[0].outbound_layer
    return None


def prune_model(
    model: keras.Model, graph: ChannelGraph, ratios: Mapping[str, float], criterion: str = "l1"
) -> tuple[keras.Model, dict[str, int]]:
    """A narrower copy of ``model`` that keeps each group's most important channels.

    Args:
        model: The trained model ``graph`` describes.
        graph: Its channel groups.
        ratios: Fraction of channels to remove per group (missing: 0).
        criterion: Which channels count as most important (see :func:`importance`).

    Returns:
        ``(model, channels kept per group)``; ``model`` itself if nothing is pruned.

    Raises:
        TrialFailure: If the narrow model cannot be built or take the weights.
    """
    counts = kept_counts(graph, ratios)
    cut = {n for n, k in counts.items() if graph.groups[n].prunable and k < graph.groups[n].size}
    if not cut:
        return model, counts
    scores = importance(model, graph, criterion)
    kept = {n: np.sort(np.argsort(-scores[n], kind="stable")[:counts[n]]) for n in cut}
    width = {layer: counts[group] for layer, group in graph.outputs.items() if group in cut}

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in width:
            config["filters" if isinstance(layer, L.Conv2D) else "units"] = width[layer.name]
        return layer.__class__.from_config(config)

    try:
        narrow = keras.models.clone_model(model, clone_function=clone)
    except Exception as exc:
        raise TrialFailure(f"cannot rebuild the pruned model: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    for old in model.layers:
        weights = old.get_weights()
        if not weights:
            continue
        new = narrow.get_layer(old.name)
        try:
            new.set_weights(_sliced(old, weights, graph, kept))
        except ValueError as exc:
            raise TrialFailure(f"pruning layer {old.name} failed: {exc}") from None
    return narrow, counts


def _sliced(layer: Any, weights: list[np.ndarray], graph: ChannelGraph,
            kept: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """``layer``'s weights restricted to the kept channels of what it reads and writes."""
    name = layer.name
    if name not in graph.inputs:
        return weights
    idx_in = _indices(graph.inputs[name], kept)
    t = type(layer)
    if t in (L.Conv2D, L.Dense):
        out = kept.get(graph.outputs[name])
        kernel = np.take(weights[0], idx_in, axis=-2)
        rest = weights[1:]
        if out is not None:
            kernel = np.take(kernel, out, axis=-1)
            rest = [w[out] for w in rest]
        return [kernel, *rest]
    if t is L.DepthwiseConv2D:
        return [np.take(weights[0], idx_in, axis=2), *[w[idx_in] for w in weights[1:]]]
    return [w[idx_in] for w in weights]  # batch norm: every weight is per channel


def _indices(layout: tuple[tuple[tuple[str, int], ...], int],
             kept: Mapping[str, np.ndarray]) -> np.ndarray:
    """Kept positions along a tensor's last axis (segments side by side, repeated)."""
    segments, repeat = layout
    total = sum(n for _, n in segments)
    parts = []
    for r in range(repeat):
        offset = r * total
        for group, n in segments:
            idx = kept.get(group)
            parts.append((np.arange(n) if idx is None else idx) + offset)
            offset += n
    return np.concatenate(parts).astype(np.int64)
