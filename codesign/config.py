"""The run configuration: frozen, validated before any heavy import."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codesign.data import validate_data_name
from codesign.errors import CodesignError
from codesign.hardware.profile import DEFAULT_PROFILE, Profile, load_profile
from codesign.space.family import SpaceSpec, get_space
from codesign.tflite.support import layer_choices
from codesign.tflite.support import lookup as lookup_support_entry

SAMPLERS = ("nsga2",)


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one ``codesign search`` run.

    Attributes:
        out: The run directory.
        data: Data set name.
        trials: Number of COMPLETE trials wanted.
        seed: Seed of the data split, supernet training and sampler.
        profile: Hardware profile name or path.
        space: Search-space preset.
        sampler: Optuna sampler.
        epochs: Supernet training epochs.
        timeout_s: Longest one candidate's evaluation may take.
        quality_samples: Sub-networks in the supernet quality report (0: none).
        finetune_epochs: Epochs of fine-tuning for the front and the quality report.
    """

    out: Path
    data: str = "digits"
    trials: int = 20
    seed: int = 0
    profile: str = DEFAULT_PROFILE
    space: str = "default"
    sampler: str = "nsga2"
    epochs: int = 40
    timeout_s: float = 600.0
    quality_samples: int = 20
    finetune_epochs: int = 3
    _profile: Profile | None = field(default=None, repr=False, compare=False)

    def validate(self) -> SearchConfig:
        """Check every setting and return a copy with the profile loaded.

        Raises:
            CodesignError: On the first invalid setting, naming it.
        """
        _positive_int("--trials", self.trials, 1, 100_000)
        _positive_int("--seed", self.seed, 0, 2**31 - 1)
        _positive_int("--epochs", self.epochs, 1, 10_000)
        if not self.timeout_s > 0:
            raise CodesignError(f"--timeout must be positive, got {self.timeout_s}")
        if self.sampler not in SAMPLERS:
            raise CodesignError(f"unknown --sampler {self.sampler!r}; use one of: {SAMPLERS}")
        validate_data_name(self.data)
        _positive_int("--quality-samples", self.quality_samples, 0, 1000)
        _positive_int("--finetune-epochs", self.finetune_epochs, 0, 1000)
        space = get_space(self.space)
        profile = load_profile(self.profile)
        layer_choices(space, lookup_support(profile), profile.precisions)
        if self.out.exists() and not self.out.is_dir():
            raise CodesignError(f"--out {self.out} is a file; give a directory")
        return replace(self, _profile=profile)

    @property
    def space_spec(self) -> SpaceSpec:
        """The search space."""
        return get_space(self.space)

    @property
    def profile_spec(self) -> Profile:
        """The loaded hardware profile."""
        return self._profile if self._profile is not None else load_profile(self.profile)

    def layer_choices(self) -> dict[str, tuple[str, ...]]:
        """Precisions offered to each layer on this profile's runtime."""
        prof = self.profile_spec
        return layer_choices(self.space_spec, lookup_support(prof), prof.precisions)

    def identity(self) -> dict[str, Any]:
        """Settings that must not change when a run is resumed."""
        return {
            "data": self.data,
            "seed": self.seed,
            "space": self.space_spec.to_dict(),
            "profile": self.profile_spec.identity(),
            "sampler": self.sampler,
            "epochs": self.epochs,
        }

    def train_settings(self) -> dict[str, Any]:
        """Supernet training settings for the evaluation child."""
        return {"epochs": self.epochs, "seed": self.seed}


def lookup_support(profile: Profile) -> Any:
    """The op-support entry of a profile's runtime, version and resolver."""
    return lookup_support_entry(profile.runtime, profile.runtime_version, profile.resolver)


def _positive_int(flag: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CodesignError(f"{flag} must be an integer from {low} to {high}, got {value!r}")
