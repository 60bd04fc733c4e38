"""A preset fitted to the data: input resolutions and strides that follow the images' size.

A preset's resolutions suit small images (the default's 24-32 px for the 8 px
digits, upsampled). For images from 33 px up, :func:`fit_space` offers
resolutions from about half the native side to the full side (at most 224
px), in steps of 8, 16 or 32 px (the smallest step that gives at most
:data:`MAX_CHOICES`; every choice a multiple of 8, so stride-2 layers halve
it evenly), and adds stride-2 layers so that the last feature map stays a
few pixels wide (about :data:`LAST_MAP` px at the middle resolution): first
the stem, then stages of stride 1 from the last one back. A non-square image
is resized to a square; its shorter side is the native side. Inputs of 32 px
or less keep the preset as it is. A space file is never fitted: it says what
it searches.
"""

from __future__ import annotations

import math
from dataclasses import replace

from codesign.space.family import SpaceSpec

SMALL = 32  # inputs up to this side keep the preset
MAX_SIDE = 224  # the largest resolution offered
MAX_CHOICES = 5
STEPS = (8, 16, 32)
LAST_MAP = 5  # px of the last feature map the strides aim at (middle resolution)


def fitted_resolutions(side: int) -> tuple[int, ...]:
    """Resolutions from about ``side / 2`` to ``side`` (capped at 224), multiples of 8."""
    high = min(side, MAX_SIDE) // 8 * 8
    low = max(8, high // 2)
    for step in STEPS:
        choices = tuple(range(high, low - 1, -step))
        if len(choices) <= MAX_CHOICES:
            break
    return tuple(sorted(r for r in choices if r >= 8))


def total_stride(space: SpaceSpec) -> int:
    """How much the network shrinks its input: the stem's stride times every stage's."""
    return space.stem_stride * math.prod(st.stride for st in space.stages)


def with_strides(space: SpaceSpec, wanted: int) -> SpaceSpec:
    """``space`` with stride-2 layers added until its total stride is at least ``wanted``.

    The stem first, then stages of stride 1 from the last one back, while any is left.
    """
    stem, stages = space.stem_stride, list(space.stages)
    while stem * math.prod(st.stride for st in stages) < wanted:
        if stem == 1:
            stem = 2
            continue
        ones = [i for i, st in enumerate(stages) if st.stride == 1]
        if not ones:
            break
        stages[ones[-1]] = replace(stages[ones[-1]], stride=2)
    return replace(space, stem_stride=stem, stages=tuple(stages))


def fit_space(space: SpaceSpec, height: int, width: int) -> SpaceSpec:
    """The preset ``space`` fitted to images of ``height`` x ``width`` pixels.

    Returns:
        ``space`` itself for images of 32 px or less (on the shorter side);
        else a copy named ``<preset>-<largest resolution>px`` with the
        resolutions of :func:`fitted_resolutions` and the strides that make
        the last feature map about :data:`LAST_MAP` px wide.
    """
    side = min(height, width)
    if side <= SMALL:
        return space
    resolutions = fitted_resolutions(side)
    middle = math.sqrt(resolutions[0] * resolutions[-1])
    wanted = 2 ** round(math.log2(max(1.0, middle / LAST_MAP)))
    fitted = with_strides(space, wanted)
    return replace(fitted, name=f"{space.name}-{resolutions[-1]}px", resolutions=resolutions)


def for_images(text: str, space: SpaceSpec, height: int, width: int) -> SpaceSpec:
    """The space ``--space text`` searches on images of ``height`` x ``width`` pixels.

    A preset is fitted to them (:func:`fit_space`); a space file's space is
    taken as written.
    """
    from codesign.space.files import is_space_file

    return space if is_space_file(text) else fit_space(space, height, width)


def last_map(space: SpaceSpec, resolution: int) -> int:
    """The side of the last feature map at ``resolution`` (``same`` padding rounds up)."""
    side = resolution
    for stride in (space.stem_stride, *(st.stride for st in space.stages)):
        side = math.ceil(side / stride)
    return side
