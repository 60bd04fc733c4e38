"""A candidate as a fixed-length vector: architecture, channels kept per layer, precision."""

from __future__ import annotations

import numpy as np

from codesign.space.candidate import PRECISIONS, Candidate
from codesign.space.family import SpaceSpec


def feature_names(space: SpaceSpec) -> list[str]:
    """Names of the encoding's entries, in order."""
    names = ["resolution"] + [f"depth/s{i}" for i in range(1, len(space.stages) + 1)]
    for layer in space.layer_names():
        names.append(f"kept/{layer}")
        names += [f"{p}/{layer}" for p in PRECISIONS]
    return names


def encode(space: SpaceSpec, cand: Candidate) -> np.ndarray:
    """The candidate's vector.

    Resolution and depths are scaled to [0, 1]. Each layer of the maximal
    network gets the fraction of its output channels kept and a one-hot
    precision; a layer the candidate does not have (a shallower stage) is all
    zeros.
    """
    sub = space.subnet(cand)
    lo, hi = min(space.resolutions), max(space.resolutions)
    vec = [(cand.resolution - lo) / (hi - lo) if hi > lo else 1.0]
    vec += [d / st.max_depth for d, st in zip(cand.depths, space.stages, strict=True)]
    sizes = space.group_sizes()
    owner = _layer_groups(space)
    for layer in space.layer_names():
        if layer not in sub.precision:
            vec += [0.0] * (1 + len(PRECISIONS))
            continue
        group = owner.get(layer)
        vec.append(sub.channels[group] / sizes[group] if group else 1.0)
        vec += [1.0 if sub.precision[layer] == p else 0.0 for p in PRECISIONS]
    return np.asarray(vec, dtype=np.float32)


def encode_many(space: SpaceSpec, cands: list[Candidate]) -> np.ndarray:
    """Vectors of many candidates, one row each."""
    return np.stack([encode(space, c) for c in cands]) if cands else np.zeros(
        (0, len(feature_names(space))), np.float32)


def _layer_groups(space: SpaceSpec) -> dict[str, str]:
    """Layer -> the channel group that sets its output channels (depthwise: its hidden group)."""
    owner = {layer: g for g, layers in space.group_layers().items() for layer in layers}
    for bp in space.blocks():
        owner[f"{bp.name}_dw"] = bp.hidden_group
    return owner
