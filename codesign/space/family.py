"""The built-in network family: MobileNetV2-style inverted-residual stages.

A :class:`SpaceSpec` describes the maximal network and the choices of the
search. Channels are pruned per *channel group*: layers whose outputs meet in
a residual addition (the projections of one stage) share one group and are
pruned together. Groups are named after the layers that produce them:
``stem_conv``, ``s2b1_expand``, ``s2_project`` (every ``s2b*_project``),
``head_conv``. A :class:`SubnetSpec` is one concrete sub-network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from codesign.errors import CodesignError
from codesign.space.candidate import Candidate

CHANNEL_DIVISOR = 4
LAYER_KINDS = ("conv", "depthwise", "dense")


@dataclass(frozen=True)
class StageSpec:
    """One stage of inverted-residual blocks.

    Attributes:
        channels: Output channels of the maximal network.
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
        kernels: Depthwise kernel size per block of the maximal network
            (block name -> size; a block the sub-network skips keeps one too).
    """

    resolution: int
    depths: tuple[int, ...]
    channels: dict[str, int]
    precision: dict[str, str]
    kernels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SpaceSpec:
    """A search space of the built-in family.

    Attributes:
        name: Preset name.
        stem_channels: Channels of the stem convolution.
        stem_stride: Stride of the stem convolution.
        stages: The stages, in order.
        head_channels: Channels of the last 1x1 convolution.
        kernels: Depthwise kernel sizes a block may use (one choice per block;
            the supernet holds the largest, a smaller one is its centre).
        resolutions: Input resolutions the search may choose.
        prune_ratios: Fractions of a group's channels the search may remove.
        precisions: Per-layer precisions the search may choose (a profile may
            offer fewer).
    """

    name: str
    stem_channels: int
    stem_stride: int
    stages: tuple[StageSpec, ...]
    head_channels: int
    kernels: tuple[int, ...]
    resolutions: tuple[int, ...]
    prune_ratios: tuple[float, ...]
    precisions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable description (used to detect changed settings)."""
        d = asdict(self)
        d["stages"] = [asdict(s) for s in self.stages]
        if len(self.kernels) == 1:  # the form of spaces made before kernels were elastic
            d = {("kernel" if k == "kernels" else k): (self.kernels[0] if k == "kernels" else v)
                 for k, v in d.items()}
        return d

    @property
    def elastic_kernel(self) -> bool:
        """Whether a candidate chooses a depthwise kernel per block (more than one choice)."""
        return len(self.kernels) > 1

    def kernel_genes(self, size: int | Mapping[str, int]) -> dict[str, int] | None:
        """A candidate's kernel genes: ``size`` for every block, or per block (None: one choice).

        Args:
            size: One kernel size for every block, or a size per block name.
        """
        if not self.elastic_kernel:
            return None
        if isinstance(size, int):
            return {bp.name: size for bp in self.blocks()}
        return dict(size)

    def kernel_map(self, cand: Candidate) -> dict[str, int]:
        """The depthwise kernel of every block of the maximal network for ``cand``."""
        if cand.kernel is None:
            return {bp.name: max(self.kernels) for bp in self.blocks()}
        return cand.kernel_map

    # --- structure -----------------------------------------------------------------

    def blocks(self) -> list[BlockPlan]:
        """Return every block of the maximal network, in order."""
        plans: list[BlockPlan] = []
        prev = "stem_conv"
        for s, st in enumerate(self.stages, start=1):
            out = f"s{s}_project"
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
        """Return the channel count of every channel group of the maximal network."""
        sizes: dict[str, int] = {"stem_conv": self.stem_channels}
        prev = self.stem_channels
        for s, st in enumerate(self.stages, start=1):
            for b in range(1, st.max_depth + 1):
                cin = prev if b == 1 else st.channels
                if st.expand > 1:
                    sizes[f"s{s}b{b}_expand"] = cin * st.expand
            sizes[f"s{s}_project"] = st.channels
            prev = st.channels
        sizes["head_conv"] = self.head_channels
        return sizes

    def group_layers(self) -> dict[str, list[str]]:
        """Return the layers whose output channels each group holds (tied layers together)."""
        out: dict[str, list[str]] = {g: [] for g in self.group_sizes()}
        out["stem_conv"].append("stem_conv")
        for bp in self.blocks():
            if bp.expand > 1:
                out[bp.hidden_group].append(f"{bp.name}_expand")
            out[bp.out_group].append(f"{bp.name}_project")
        out["head_conv"].append("head_conv")
        return out

    def layer_kinds(self, depths: tuple[int, ...] | None = None) -> dict[str, str]:
        """Return ``layer name -> kind`` (conv, depthwise, dense) in network order."""
        depths = depths or tuple(st.max_depth for st in self.stages)
        kinds = {"stem_conv": "conv"}
        for bp in self.blocks():
            if bp.index > depths[bp.stage - 1]:
                continue
            if bp.expand > 1:
                kinds[f"{bp.name}_expand"] = "conv"
            kinds[f"{bp.name}_dw"] = "depthwise"
            kinds[f"{bp.name}_project"] = "conv"
        kinds["head_conv"] = "conv"
        kinds["classifier"] = "dense"
        return kinds

    def layer_names(self, depths: tuple[int, ...] | None = None) -> list[str]:
        """Return the names of the weighted layers (conv, depthwise, dense) in order."""
        return list(self.layer_kinds(depths))

    # --- sub-networks --------------------------------------------------------------

    def subnet(self, cand: Candidate) -> SubnetSpec:
        """Translate a candidate into the sub-network it describes.

        Raises:
            CodesignError: If the candidate does not belong to this space.
        """
        self.check(cand)
        ratios = cand.prune_map
        channels = {g: kept_channels(c, ratios[g]) for g, c in self.group_sizes().items()}
        prec = cand.precision_map
        precision = {name: prec[name] for name in self.layer_names(cand.depths)}
        return SubnetSpec(cand.resolution, tuple(cand.depths), channels, precision,
                          self.kernel_map(cand))

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
        problems += _mapping_problems(
            "prune groups", "prune ratios", cand.prune_map, self.group_sizes(), self.prune_ratios
        )
        problems += _mapping_problems(
            "precision layers", "precisions", cand.precision_map, self.layer_names(),
            self.precisions,
        )
        if cand.kernel is not None or self.elastic_kernel:
            problems += _mapping_problems("kernel blocks", "kernels", cand.kernel_map,
                                          [bp.name for bp in self.blocks()], self.kernels)
        if problems:
            raise CodesignError(f"candidate not in space {self.name!r}: {'; '.join(problems)}")

    def uniform(self, resolution: int, depths: tuple[int, ...], ratio: float,
                precision: str, kernel: int | None = None) -> Candidate:
        """A candidate with one prune ratio, precision and kernel (default: the largest)."""
        return Candidate.make(
            resolution,
            depths,
            {g: ratio for g in self.group_sizes()},
            {n: precision for n in self.layer_names()},
            self.kernel_genes(max(self.kernels) if kernel is None else kernel),
        )

    def max_candidate(self, precision: str = "float32") -> Candidate:
        """Return the maximal network (every block, no pruning, largest kernel) at one precision."""
        return self.uniform(
            max(self.resolutions), tuple(st.max_depth for st in self.stages), 0.0, precision
        )

    def min_candidate(self) -> Candidate:
        """Return the smallest network of the space (float32, smallest kernel)."""
        return self.uniform(
            min(self.resolutions),
            tuple(st.min_depth for st in self.stages),
            max(self.prune_ratios),
            "float32",
            min(self.kernels),
        )

    def random_kernels(self, rng: np.random.Generator) -> dict[str, int] | None:
        """A kernel per block drawn uniformly (None when the space offers one)."""
        if not self.elastic_kernel:
            return None
        return {bp.name: int(rng.choice(self.kernels)) for bp in self.blocks()}

    def random_candidate(
        self, rng: np.random.Generator, precisions: Mapping[str, tuple[str, ...]] | None = None
    ) -> Candidate:
        """Draw a candidate uniformly (float32 unless per-layer choices are given)."""
        precisions = precisions or {}
        return Candidate.make(
            int(rng.choice(self.resolutions)),
            tuple(int(rng.integers(st.min_depth, st.max_depth + 1)) for st in self.stages),
            {g: float(rng.choice(self.prune_ratios)) for g in self.group_sizes()},
            {n: str(rng.choice(precisions.get(n, ("float32",)))) for n in self.layer_names()},
            self.random_kernels(rng),
        )

    def spread_candidates(self, rng: np.random.Generator, n: int) -> list[Candidate]:
        """Draw ``n`` float32 candidates spread from the widest to the narrowest.

        Candidate ``i`` prunes every group around one level of
        :attr:`prune_ratios` (cycling through the levels), each group moving
        one level up or down at random; depths and resolution are uniform.
        Uniform per-group draws all land near the average width; a spread
        sample is what a ranking test needs.
        """
        out = []
        levels = len(self.prune_ratios)
        for i in range(n):
            base = i % levels
            prune = {}
            for g in self.group_sizes():
                j = int(np.clip(base + rng.integers(-1, 2), 0, levels - 1))
                prune[g] = float(self.prune_ratios[j])
            out.append(
                Candidate.make(
                    int(rng.choice(self.resolutions)),
                    tuple(int(rng.integers(st.min_depth, st.max_depth + 1)) for st in self.stages),
                    prune,
                    {name: "float32" for name in self.layer_names()},
                    self.random_kernels(rng),
                )
            )
        return out


def _mapping_problems(
    keys_name: str, values_name: str, mapping: Mapping[str, Any], keys: Any, allowed: tuple
) -> list[str]:
    """What is wrong with a per-group or per-layer mapping: its keys, then its values."""
    problems = []
    wanted = set(keys)
    if set(mapping) != wanted:
        problems.append(f"{keys_name} {sorted(set(mapping) ^ wanted)} missing or unknown")
    bad = sorted(k for k, v in mapping.items() if v not in allowed)
    if bad:
        problems.append(f"{values_name} of {bad} not in {allowed}")
    return problems


def kept_channels(channels: int, ratio: float) -> int:
    """Channels left after removing ``ratio`` of them: a multiple of 4, at least 4."""
    scaled = int(channels * (1.0 - ratio) / CHANNEL_DIVISOR + 0.5) * CHANNEL_DIVISOR
    return int(min(channels, max(CHANNEL_DIVISOR, scaled)))


def get_space(name: str) -> SpaceSpec:
    """Return the shipped preset called ``name`` (``codesign/space/presets/NAME.toml``).

    Raises:
        CodesignError: If there is no such preset.
    """
    from codesign.space.files import preset

    return preset(name)


def __getattr__(name: str) -> Any:
    """``PRESETS``: the shipped presets by name, read from :mod:`codesign.space.files`."""
    if name == "PRESETS":
        from codesign.space.files import PRESETS

        return PRESETS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
