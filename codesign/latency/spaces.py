"""Which latency model of the built-in family a space is priced by, and what it measures.

The profile's own model (``codesign profile build NAME``) measures block
networks at 8-32 px and whole candidates of the default space. It covers the
presets as they are and any space whose inputs are at most 32 px. A space with
larger inputs (the default fitted to 96x96 images, ``default-96px``, or a
space file's) runs its stages on feature maps that model never measured, so it
gets a model of its own (``codesign profile build NAME --data DATA``, or
``--space FILE.toml``): its block networks are drawn at the space's
resolutions too, and its whole networks are the space's own candidates at the
data's channels. A search uses the model of its space, and times every
candidate when there is none.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from codesign.hardware.profile import Profile
from codesign.latency.model import latency_dir
from codesign.latency.sampling import BLOCK_RESOLUTIONS, block_networks, whole_networks
from codesign.space.family import SpaceSpec
from codesign.space.files import is_space_file


def profile_key(profile: Profile) -> str:
    """A short hash of what the profile measures with (its files are named by it)."""
    text = json.dumps(profile.identity(), sort_keys=True)
    return f"{profile.name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def covered(space: SpaceSpec | None) -> bool:
    """Whether the profile's own model covers ``space`` (None: the default space)."""
    return space is None or max(space.resolutions) <= max(BLOCK_RESOLUTIONS)


def space_key(space: SpaceSpec) -> str:
    """A short hash of a space's description (its model's file is named by it)."""
    text = json.dumps(space.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def model_path(profile: Profile, space: SpaceSpec | None = None) -> Path:
    """Where the latency model that prices ``space`` on the profile is kept on this machine.

    Args:
        profile: The profile.
        space: The search's space (None: the default space); spaces the profile's
            own model covers (:func:`covered`) share its file.
    """
    if covered(space):
        return latency_dir() / f"{profile_key(profile)}.json"
    assert space is not None
    return latency_dir() / f"{profile_key(profile)}.space-{space_key(space)}.json"


def samples(profile: Profile, space: SpaceSpec | None, blocks: int, whole: int, seed: int,
            channels: int = 1) -> list[dict[str, Any]]:
    """The networks a build of ``space``'s model measures: blocks first, then whole candidates.

    Args:
        profile: The profile (its precisions).
        space: The space (None, or one :func:`covered`: the profile's own model).
        blocks: Block networks.
        whole: Whole candidates.
        seed: Sampling seed.
        channels: Input channels of the whole candidates (the data's).
    """
    if covered(space):
        return (block_networks(blocks, seed, profile.precisions)
                + whole_networks(whole, seed + 1, profile.precisions))
    assert space is not None
    sides = tuple(sorted({*BLOCK_RESOLUTIONS, *space.resolutions}))
    return (block_networks(blocks, seed, profile.precisions, sides)
            + whole_networks(whole, seed + 1, profile.precisions, space, channels))


def checked(profile: Profile, space: SpaceSpec | None, n: int, seed: int, channels: int = 1
            ) -> list[dict[str, Any]]:
    """``n`` whole candidates of ``space`` to check its model with (the default space's: None)."""
    if covered(space):
        return whole_networks(n, seed, profile.precisions)
    assert space is not None
    return whole_networks(n, seed, profile.precisions, space, channels)


def what(space: SpaceSpec | None) -> str:
    """The candidates a model prices, in a few words."""
    return ("random default-space candidates" if covered(space)
            else f"random candidates of space {space.name}")  # type: ignore[union-attr]


def build_command(profile: Profile, space: SpaceSpec | None, space_arg: str, data: str) -> str:
    """The command that builds the model pricing ``space`` (searched as ``--space space_arg``)."""
    if covered(space):
        return f"codesign profile build {profile.name}"
    if is_space_file(space_arg):
        return f"codesign profile build {profile.name} --space {space_arg} --data {data}"
    return f"codesign profile build {profile.name} --data {data}"
