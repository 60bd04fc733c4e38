"""The built-in network family: MobileNetV2-style inverted-residual stages.

A :class:`SpaceSpec` describes the maximal network and the choices of the
search. A :class:`SubnetSpec` is one concrete sub-network of it: resolution,
depth of every stage and channels kept in every channel group. Layers whose
outputs meet in a residual addition share one channel group (pruned together).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from codesign.errors import CodesignError
from codesign.space.candidate import Candidate

CHANNEL_DIVISOR = 4


@dataclass(frozen=True)
class StageSpec:
    """One stage of inverted-residual blocks.

    Attributes:
        channels: Output channels at full width.
        min_depth: Fewest blocks the search may use.
        max_depth: Most blocks (the maximal network has this many).
        stride: Stride of the first block.
        expand: Expansion ratio of the blocks' hidden layer (1 = no expand conv).
    """

    channels: int
    min_depth: int
    max_depth: int
    stride: int
    expand: int


@dataclass(frozen=True)
class BlockPlan:
    """Where one block of the maximal network sits and which groups it uses."""

    stage: int
    index: int
    name: str
    in_group: str
    hidden_group: str
    out_group: str
    stride: int
    expand: int
    residual: bool


@dataclass(frozen=True)
class SubnetSpec:
    """A concrete sub-network: what the model builder needs.

    Attributes:
        resolution: Input size in pixels.
        depths: Blocks used per stage.
        channels: Channels kept per channel group (group name -> count).
        precision: Precision per layer name (only layers the sub-network has).
    """

    resolution: int
    depths: tuple[int, ...]
    channels: dict[str, int]
    precision: dict[str, str]


@dataclass(frozen=True)
class SpaceSpec:
    """A search space of the built-in family.

    Attributes:
        name: Preset name.
        stem_channels: Channels of the stem convolution at full width.
        stem_stride: Stride of the stem convolution.
        stages: The stages, in order.
        head_channels: Channels of the last 1x1 convolution at full width.
        kernel: Depthwise kernel size.
        resolutions: Input resolutions the search may choose.
        widths: Global width multipliers the search may choose.
        precisions: Whole-network precisions the search may choose.
    """

    name: str
    stem_channels: int
    stem_stride: int
    stages: tuple[StageSpec, ...]
    head_channels: int
    kernel: int
    resolutions: tuple[int, ...]
    widths: tuple[float, ...]
    precisions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable description (used to detect changed settings)."""
        d = asdict(self)
        d["stages"] = [asdict(s) for s in self.stages]
        return d

    # --- structure -----------------------------------------------------------------

    def blocks(self) -> list[BlockPlan]:
        """Return every block of the maximal network, in order."""
        plans: list[BlockPlan] = []
        prev = "stem"
        for s, st in enumerate(self.stages, start=1):
            out = f"s{s}"
            for b in range(1, st.max_depth + 1):
                name = f"s{s}b{b}"
                in_group = prev if b == 1 else out
                hidden = f"{name}_expand" if st.expand > 1 else in_group
                plans.append(
                    BlockPlan(
                        stage=s,
                        index=b,
                        name=name,
                        in_group=in_group,
                        hidden_group=hidden,
                        out_group=out,
                        stride=st.stride if b == 1 else 1,
                        expand=st.expand,
                        residual=b > 1,
                    )
                )
            prev = out
        return plans

    def group_sizes(self) -> dict[str, int]:
        """Return the full-width channel count of every channel group, in order."""
        sizes: dict[str, int] = {"stem": self.stem_channels}
        prev = self.stem_channels
        for s, st in enumerate(self.stages, start=1):
            for b in range(1, st.max_depth + 1):
                cin = prev if b == 1 else st.channels
                if st.expand > 1:
                    sizes[f"s{s}b{b}_expand"] = cin * st.expand
            sizes[f"s{s}"] = st.channels
            prev = st.channels
        sizes["head"] = self.head_channels
        return sizes

    def layer_names(self, depths: tuple[int, ...] | None = None) -> list[str]:
        """Return the names of the weighted layers (conv, depthwise, dense) in order."""
        depths = depths or tuple(st.max_depth for st in self.stages)
        names = ["stem_conv"]
        for bp in self.blocks():
            if bp.index > depths[bp.stage - 1]:
                continue
            if bp.expand > 1:
                names.append(f"{bp.name}_expand")
            names += [f"{bp.name}_dw", f"{bp.name}_project"]
        names += ["head_conv", "classifier"]
        return names

    # --- sub-networks --------------------------------------------------------------

    def subnet(self, cand: Candidate) -> SubnetSpec:
        """Translate a candidate into the sub-network it describes.

        Raises:
            CodesignError: If the candidate does not belong to this space.
        """
        self.check(cand)
        channels = {g: scale_channels(c, cand.width) for g, c in self.group_sizes().items()}
        precision = {name: cand.precision for name in self.layer_names(cand.depths)}
        return SubnetSpec(cand.resolution, tuple(cand.depths), channels, precision)

    def check(self, cand: Candidate) -> None:
        """Raise CodesignError if ``cand`` is not a point of this space."""
        problems = []
        if cand.resolution not in self.resolutions:
            problems.append(f"resolution {cand.resolution} not in {self.resolutions}")
        if len(cand.depths) != len(self.stages):
            problems.append(f"{len(cand.depths)} depths for {len(self.stages)} stages")
        else:
            for s, (d, st) in enumerate(zip(cand.depths, self.stages, strict=True), start=1):
                if not st.min_depth <= d <= st.max_depth:
                    problems.append(f"stage {s} depth {d} not in {st.min_depth}..{st.max_depth}")
        if cand.width not in self.widths:
            problems.append(f"width {cand.width} not in {self.widths}")
        if cand.precision not in self.precisions:
            problems.append(f"precision {cand.precision!r} not in {self.precisions}")
        if problems:
            raise CodesignError(f"candidate not in space {self.name!r}: {'; '.join(problems)}")

    def max_candidate(self, precision: str = "float32") -> Candidate:
        """Return the maximal network (every block, full width) at ``precision``."""
        return Candidate(
            resolution=max(self.resolutions),
            depths=tuple(st.max_depth for st in self.stages),
            width=max(self.widths),
            precision=precision,
        )

    def min_candidate(self) -> Candidate:
        """Return the smallest network of the space (float32)."""
        return Candidate(
            resolution=min(self.resolutions),
            depths=tuple(st.min_depth for st in self.stages),
            width=min(self.widths),
            precision="float32",
        )

    def random_candidate(self, rng: np.random.Generator) -> Candidate:
        """Draw a float32 candidate uniformly (used by supernet training)."""
        return Candidate(
            resolution=int(rng.choice(self.resolutions)),
            depths=tuple(int(rng.integers(st.min_depth, st.max_depth + 1)) for st in self.stages),
            width=float(rng.choice(self.widths)),
            precision="float32",
        )


def scale_channels(channels: int, width: float) -> int:
    """Scale a channel count by ``width``, rounded to a multiple of 4, at least 4."""
    scaled = int(round(channels * width / CHANNEL_DIVISOR)) * CHANNEL_DIVISOR
    return int(min(channels, max(CHANNEL_DIVISOR, scaled)))


PRESETS: dict[str, SpaceSpec] = {
    "default": SpaceSpec(
        name="default",
        stem_channels=16,
        stem_stride=1,
        stages=(
            StageSpec(channels=16, min_depth=1, max_depth=2, stride=2, expand=1),
            StageSpec(channels=24, min_depth=1, max_depth=3, stride=2, expand=4),
            StageSpec(channels=40, min_depth=1, max_depth=3, stride=2, expand=4),
            StageSpec(channels=64, min_depth=1, max_depth=3, stride=1, expand=4),
        ),
        head_channels=128,
        kernel=3,
        resolutions=(24, 28, 32),
        widths=(0.25, 0.5, 0.75, 1.0),
        precisions=("float32", "int8"),
    ),
    "tiny": SpaceSpec(
        name="tiny",
        stem_channels=8,
        stem_stride=2,
        stages=(
            StageSpec(channels=8, min_depth=1, max_depth=1, stride=1, expand=1),
            StageSpec(channels=16, min_depth=1, max_depth=2, stride=2, expand=2),
            StageSpec(channels=24, min_depth=1, max_depth=2, stride=2, expand=2),
        ),
        head_channels=32,
        kernel=3,
        resolutions=(16, 24),
        widths=(0.5, 1.0),
        precisions=("float32", "int8"),
    ),
}


def get_space(name: str) -> SpaceSpec:
    """Return the preset called ``name``.

    Raises:
        CodesignError: If there is no such preset.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise CodesignError(
            f"unknown space {name!r}; use one of: {', '.join(PRESETS)}"
        ) from None
