"""Channel groups of a functional tf_keras model: which channels can be removed together.

A *group* is a set of channels that must shrink together for the graph to stay
valid: the output channels of a Conv2D or Dense layer, carried unchanged
through batch norm, activations, pooling, depthwise convolutions (one channel
each) and flattening, and tied to other groups by element-wise merges
(``Add``, ``Multiply``...: a residual addition ties its branches).
``Concatenate`` keeps its inputs' groups side by side. Groups that reach the
model's output, come from its input, or meet a layer codesign does not know
(``Reshape``, a lambda, a nested model, a shared layer) are frozen: never
pruned, and each says which layers froze it and why. A scalar ``Rescaling``
passes channels through. The description also lists every op the model
converts to, with the groups it reads and writes
(:func:`codesign.hyper.graph_ops.layer_ops`), so that the search process can
price a candidate without converting it. Runs in the evaluation child.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tf_keras as keras

from codesign.errors import TrialFailure
from codesign.hyper.graph_ops import layer_ops
from codesign.hyper.opgraph import GraphOp

L = keras.layers
PASS_THROUGH = (
    L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Dropout, L.SpatialDropout2D, L.GaussianNoise,
    L.MaxPooling2D, L.AveragePooling2D, L.GlobalAveragePooling2D, L.GlobalMaxPooling2D,
    L.ZeroPadding2D, L.Cropping2D, L.UpSampling2D, L.ActivityRegularization,
)
ELEMENTWISE = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
PRECISION_KINDS = {L.Conv2D: "conv", L.DepthwiseConv2D: "depthwise", L.Dense: "dense"}


@dataclass(frozen=True)
class Layout:
    """How a tensor's channels are made of groups.

    Attributes:
        segments: ``(group, channels)`` side by side along the last axis.
        repeat: How many times the segments repeat (after ``Flatten``: once
            per pixel, channels fastest).
    """

    segments: tuple[tuple[int, int], ...]
    repeat: int = 1

    @property
    def channels(self) -> int:
        """Length of the last axis."""
        return self.repeat * sum(n for _, n in self.segments)


@dataclass
class Group:
    """One channel group.

    Attributes:
        name: Named after its first producing layer.
        size: Channels.
        producers: Conv2D / Dense layers whose outputs are these channels.
        prunable: False if the group is frozen or has one channel.
        frozen_by: Why it is frozen: which layer, and what it does.
    """

    name: str
    size: int
    producers: list[str] = field(default_factory=list)
    prunable: bool = True
    frozen_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChannelGraph:
    """The groups of a model and what each weighted layer reads and writes.

    Attributes:
        groups: Group by name, in the model's order.
        inputs: Per layer with weights: its input's layout (group names).
        outputs: Per Conv2D / Dense layer: the group it produces.
        precision_layers: ``(layer, kind)`` of every conv, depthwise and dense layer.
        ops: Every op the converted model runs, in model order
            (:func:`codesign.hyper.graph_ops.layer_ops`).
    """

    groups: dict[str, Group]
    inputs: dict[str, tuple[tuple[tuple[str, int], ...], int]]
    outputs: dict[str, str]
    precision_layers: tuple[tuple[str, str], ...]
    ops: tuple[GraphOp, ...] = ()

    def describe(self) -> dict[str, Any]:
        """Plain data for the search process (see ``codesign.hyper.suggest.suggest_genes``)."""
        return {
            "groups": [{"name": g.name, "size": g.size, "producers": g.producers,
                        "prunable": g.prunable, "frozen_by": list(g.frozen_by)}
                       for g in self.groups.values()],
            "layers": [{"name": n, "kind": k} for n, k in self.precision_layers],
            "ops": [op.to_json() for op in self.ops],
        }


class _Vars:
    """Union-find over channel-group variables, with sizes and a frozen flag."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.frozen: list[bool] = []
        self.producers: list[list[str]] = []
        self.reasons: list[list[str]] = []

    def new(self, size: int, producer: str | None = None, frozen: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(int(size))
        self.frozen.append(frozen)
        self.producers.append([producer] if producer else [])
        self.reasons.append([])
        return len(self.parent) - 1

    def find(self, v: int) -> int:
        while self.parent[v] != v:
            self.parent[v] = self.parent[self.parent[v]]
            v = self.parent[v]
        return v

    def union(self, a: int, b: int, why: str = "") -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] != self.size[rb]:
            self.freeze(ra, f"{why} ties it to a group of another size")
            self.freeze(rb, f"{why} ties it to a group of another size")
            return
        lo, hi = min(ra, rb), max(ra, rb)  # the earlier variable stays the root (naming)
        self.parent[hi] = lo
        self.frozen[lo] = self.frozen[lo] or self.frozen[hi]
        self.producers[lo] += self.producers[hi]
        self.reasons[lo] += self.reasons[hi]

    def freeze(self, v: int, why: str = "") -> None:
        root = self.find(v)
        self.frozen[root] = True
        if why and why not in self.reasons[root]:
            self.reasons[root].append(why)


def channel_graph(model: keras.Model) -> ChannelGraph:
    """Analyse a functional (or Sequential with an input) tf_keras model.

    Raises:
        TrialFailure: If the model is not a graph of layers (a subclassed model).
    """
    if not getattr(model, "_is_graph_network", False):
        raise TrialFailure("the model is not functional: build it with keras.Input(...) and "
                           "layers (keras.Model(inputs, outputs) or a Sequential with an Input)")
    uf = _Vars()
    layouts: dict[tuple[str, int, int], Layout] = {}
    weighted_in: dict[str, Layout] = {}
    produced: dict[str, int] = {}
    precision_layers: list[tuple[str, str]] = []
    network = model._network_nodes  # noqa: SLF001 (which nodes belong to this model)
    for layer in model.layers:
        nodes = [(i, n) for i, n in enumerate(layer._inbound_nodes)  # noqa: SLF001
                 if f"{layer.name}_ib-{i}" in network]
        kind = PRECISION_KINDS.get(type(layer))
        if kind is not None:
            precision_layers.append((layer.name, kind))
        for index, node in nodes:
            ins = [layouts.get((src.name, ni, ti)) for src, ni, ti, _ in node.iterate_inbound()]
            outs = _flat(node.outputs)
            out = None if len(nodes) > 1 else _propagate(layer, node, ins, uf, weighted_in,
                                                        produced)
            if out is None:  # unknown or shared layer: freeze what it reads and writes
                why = (f"{layer.name} ({type(layer).__name__}) "
                       f"{'is shared' if len(nodes) > 1 else 'cannot be followed'}")
                for lay in ins:
                    for g, _ in (lay.segments if lay else ()):
                        uf.freeze(g, why)
                for t, tensor in enumerate(outs):
                    layouts[(layer.name, index, t)] = Layout(
                        ((uf.new(_last_dim(tensor), frozen=True), _last_dim(tensor)),))
                weighted_in.pop(layer.name, None)
                continue
            layouts[(layer.name, index, 0)] = out
    for tensor in model.outputs:
        history = tensor._keras_history  # noqa: SLF001
        lay = layouts.get((history.layer.name, history.node_index, history.tensor_index))
        for g, _ in (lay.segments if lay else ()):
            uf.freeze(g, f"reaches the model's output ({history.layer.name})")
    namer = _namer(uf, produced)
    graph = _resolve(uf, weighted_in, produced, tuple(precision_layers), namer)
    return ChannelGraph(graph.groups, graph.inputs, graph.outputs, graph.precision_layers,
                        tuple(layer_ops(model, layouts, namer)))


def _propagate(
    layer: Any, node: Any, ins: list[Layout | None], uf: _Vars, weighted_in: dict[str, Layout],
    produced: dict[str, int],
) -> Layout | None:
    """The output layout of one layer call, or None if codesign cannot follow it."""
    if node.is_input:
        c = _last_dim(_flat(node.outputs)[0])
        return Layout(((uf.new(c, frozen=True), c),))
    if not ins or any(lay is None for lay in ins):
        return None
    first = ins[0]
    assert first is not None
    t = type(layer)
    if t in (L.Conv2D, L.Dense) and len(ins) == 1:
        if t is L.Conv2D and (layer.groups != 1 or first.repeat != 1):
            return None
        units = layer.filters if t is L.Conv2D else layer.units
        weighted_in[layer.name] = first
        produced[layer.name] = uf.new(units, producer=layer.name)
        return Layout(((produced[layer.name], units),))
    if t is L.DepthwiseConv2D and layer.depth_multiplier == 1 and first.repeat == 1:
        weighted_in[layer.name] = first
        return first
    rank = len(layer.input_shape) if not isinstance(layer.input_shape, list) else 0
    if t is L.BatchNormalization and _last_axis(layer.axis, rank) and first.repeat == 1:
        weighted_in[layer.name] = first
        return first
    if isinstance(layer, PASS_THROUGH) and not layer.weights and len(ins) == 1:
        return first
    if t is L.Rescaling and _scalar(layer.scale) and _scalar(layer.offset) and len(ins) == 1:
        return first
    if t is L.Flatten and first.repeat == 1:
        spatial = layer.input_shape[1:-1]
        if any(d is None for d in spatial):
            return None
        return Layout(first.segments, math.prod(spatial))
    flat = all(lay.repeat == 1 for lay in ins)
    if t is L.Concatenate and _last_axis(layer.axis, len(layer.input_shape[0])) and flat:
        return Layout(tuple(s for lay in ins for s in lay.segments))
    if isinstance(layer, ELEMENTWISE):
        shapes = {tuple(n for _, n in lay.segments) + (lay.repeat,) for lay in ins}
        if len(shapes) != 1:
            return None
        for lay in ins[1:]:
            for (a, _), (b, _) in zip(first.segments, lay.segments, strict=True):
                uf.union(a, b, f"{layer.name} ({type(layer).__name__})")
        return first
    return None


def _namer(uf: _Vars, produced: dict[str, int]) -> Callable[[int], str]:
    """A group variable's name: its first producing layer's, else ``_frozen<root>``."""
    names: dict[int, str] = {}
    for layer, var in produced.items():  # in model order: the first producer names the group
        names.setdefault(uf.find(var), layer)

    def name(var: int) -> str:
        root = uf.find(var)
        return names.get(root, f"_frozen{root}")

    return name


def _resolve(uf: _Vars, weighted_in: dict[str, Layout], produced: dict[str, int],
             precision_layers: tuple[tuple[str, str], ...], name: Callable[[int], str]
             ) -> ChannelGraph:
    groups: dict[str, Group] = {}
    for var in produced.values():
        root = uf.find(var)
        if name(root) not in groups:
            why = tuple(uf.reasons[root]) if uf.frozen[root] else ()
            if not why and uf.size[root] < 2:
                why = ("has one channel",)
            groups[name(root)] = Group(name(root), uf.size[root], list(uf.producers[root]),
                                       not uf.frozen[root] and uf.size[root] >= 2, why)

    inputs = {
        layer: (tuple((name(g), n) for g, n in lay.segments), lay.repeat)
        for layer, lay in weighted_in.items()
    }
    outputs = {layer: name(var) for layer, var in produced.items()}
    return ChannelGraph(groups, inputs, outputs, precision_layers)


def _flat(outputs: Any) -> list[Any]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _last_dim(tensor: Any) -> int:
    return int(tensor.shape[-1]) if tensor.shape[-1] is not None else 1


def _scalar(value: Any) -> bool:
    """Whether a ``Rescaling`` scale or offset is one number for every channel."""
    return int(np.size(value)) == 1


def _last_axis(axis: Any, rank: int) -> bool:
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return axes in ([-1], [rank - 1])
