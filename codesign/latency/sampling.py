"""Networks to measure for a latency model: small block networks and whole candidates.

A *block network* is a stem, one or two sampled inverted-residual blocks and a
head: its kernel, channels in / hidden / out, stride, resolution and the
precision of every layer are drawn at random over ranges that cover the
built-in spaces. *Whole candidates* are random points of the default space.
Each sample is a JSON-able record: ``{"id", "space", "candidate",
"num_classes", "channels"}``, reproducible from its seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import numpy as np

from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec, StageSpec, get_space
from codesign.space.files import space_from_dict as _checked_space

NUM_CLASSES = 10
KERNELS = (3, 5, 7)
BLOCK_RESOLUTIONS = (8, 12, 16, 20, 24, 28, 32)  # the built-in presets' inputs, unfitted


def space_from_dict(d: dict[str, Any]) -> SpaceSpec:
    """Rebuild a sample's :class:`SpaceSpec` from :meth:`SpaceSpec.to_dict` (checked)."""
    return _checked_space(d, "a latency sample")


def sample_id(space: SpaceSpec, cand: Candidate, num_classes: int, channels: int) -> str:
    """A stable name of one network (its conversion is cached under it)."""
    text = json.dumps([space.to_dict(), cand.to_dict(), num_classes, channels], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _record(space: SpaceSpec, cand: Candidate, channels: int = 1,
            num_classes: int = NUM_CLASSES) -> dict[str, Any]:
    return {"id": sample_id(space, cand, num_classes, channels), "space": space.to_dict(),
            "candidate": cand.to_dict(), "num_classes": num_classes, "channels": channels}


def _precisions(rng: np.random.Generator, names: list[str], allowed: tuple[str, ...]
                ) -> dict[str, str]:
    """Per-layer precisions: half the time one precision with a few changes, else mixed."""
    if rng.random() < 0.5:
        base = str(rng.choice(allowed))
        out = {n: base for n in names}
        for n in rng.choice(names, size=int(rng.integers(0, 3)), replace=False):
            out[str(n)] = str(rng.choice(allowed))
        return out
    return {n: str(rng.choice(allowed)) for n in names}


def block_networks(n: int, seed: int, allowed: tuple[str, ...],
                   resolutions: tuple[int, ...] = BLOCK_RESOLUTIONS) -> list[dict[str, Any]]:
    """``n`` small networks of one stage (one or two blocks) with sampled shapes.

    Args:
        n: Networks.
        seed: Their seed.
        allowed: Precisions of their layers.
        resolutions: Input sides to draw from (a space fitted to larger images
            adds its own, :func:`codesign.latency.fitted.samples`).
    """
    rng = np.random.default_rng(seed)
    widths = np.arange(4, 132, 4)
    out = []
    for _ in range(n):
        expand = int(rng.choice([1, 2, 4, 6]))
        depth = int(rng.integers(1, 3))
        space = SpaceSpec(
            name="block", stem_channels=int(rng.choice(widths[:16])),
            stem_stride=int(rng.choice([1, 2])),
            stages=(StageSpec(channels=int(rng.choice(widths[:24])), min_depth=depth,
                              max_depth=depth, stride=int(rng.choice([1, 2])), expand=expand),),
            head_channels=int(rng.choice(widths)), kernels=KERNELS,
            resolutions=(int(rng.choice(resolutions)),),
            prune_ratios=(0.0, 0.25, 0.5, 0.75),
            precisions=("float32", *(p for p in allowed if p != "float32")),
        )
        cand = Candidate.make(
            space.resolutions[0], (depth,),
            {g: float(rng.choice(space.prune_ratios)) for g in space.group_sizes()},
            _precisions(rng, space.layer_names(), allowed),
            space.random_kernels(rng),
        )
        out.append(_record(space, cand, channels=int(rng.choice([1, 3]))))
    return out


def whole_networks(n: int, seed: int, allowed: tuple[str, ...],
                   space: str | SpaceSpec = "default", channels: int = 1) -> list[dict[str, Any]]:
    """``n`` random candidates of a space (structured and mixed precisions).

    Args:
        n: Candidates.
        seed: Their seed.
        allowed: Precisions of their layers.
        space: A preset's name, or the space itself (a fitted one, a file's).
        channels: Input channels.
    """
    rng = np.random.default_rng(seed)
    space = get_space(space) if isinstance(space, str) else space
    out = []
    for _ in range(n):
        cand = space.random_candidate(rng)
        prec = _precisions(rng, space.layer_names(), allowed)
        cand = cand.with_precisions(prec)
        out.append(_record(space, cand, channels))
    return out


def reference_network(precision: str = "float32") -> dict[str, Any]:
    """The network every local timing batch also times, to see how fast the machine runs now.

    A small default-space network (about 20 us on XNNPACK here): cheap enough
    to time beside every candidate, big enough that a slower machine shows in it.
    """
    space = replace(get_space("default"), kernels=(3,))  # as before kernels were elastic
    depths = tuple(st.min_depth for st in space.stages)
    cand = space.uniform(min(space.resolutions), depths, 0.5, precision)
    return _record(space, cand, channels=3)
