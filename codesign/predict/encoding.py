"""A candidate as features for an accuracy predictor: channels kept and precision per layer.

The built-in family's candidate is a fixed-length vector (:func:`encode`); a
HyperModel's evaluations are named features (:mod:`codesign.hyper.encoding`)
whose genes are named here too (:func:`gene_features`), so both encodings call
a layer's kept fraction ``kept/<name>`` and its precision ``<precision>/<layer>``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from codesign.space.candidate import PRECISIONS, Candidate
from codesign.space.family import SpaceSpec


def kept_feature(name: str) -> str:
    """The feature of the fraction of channels a layer or group keeps."""
    return f"kept/{name}"


def precision_feature(precision: str, layer: str) -> str:
    """The one-hot feature of a layer's precision."""
    return f"{precision}/{layer}"


def gene_features(kept: Mapping[str, float], precision: Mapping[str, str]) -> dict[str, float]:
    """Named features of a candidate's genes: the fraction kept, a one-hot precision per layer.

    Args:
        kept: Fraction of channels kept, per layer or channel group.
        precision: Precision per layer.
    """
    out = {kept_feature(name): float(value) for name, value in kept.items()}
    out.update({precision_feature(p, layer): 1.0 for layer, p in precision.items()})
    return out


def feature_names(space: SpaceSpec) -> list[str]:
    """Names of the encoding's entries, in order."""
    names = ["resolution"] + [f"depth/s{i}" for i in range(1, len(space.stages) + 1)]
    for layer in space.layer_names():
        names.append(kept_feature(layer))
        names += [precision_feature(p, layer) for p in PRECISIONS]
    if space.elastic_kernel:
        names += [f"kernel/{bp.name}" for bp in space.blocks()]
    return names


def encode(space: SpaceSpec, cand: Candidate) -> np.ndarray:
    """The candidate's vector.

    Resolution and depths are scaled to [0, 1]. Each layer of the maximal
    network gets the fraction of its output channels kept and a one-hot
    precision; a layer the candidate does not have (a shallower stage) is all
    zeros. An elastic-kernel space adds each block's kernel side over the
    largest (0 for a block the candidate skips).
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
    if space.elastic_kernel:  # the kernel's side over the largest's; 0 for a block skipped
        top = max(space.kernels)
        vec += [sub.kernels[bp.name] / top if bp.index <= cand.depths[bp.stage - 1] else 0.0
                for bp in space.blocks()]
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
