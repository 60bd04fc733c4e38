"""The run configuration: frozen, validated before any heavy import."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesign.data import data_fingerprint, validate_data_name
from codesign.errors import CodesignError
from codesign.hardware.profile import DEFAULT_PROFILE, Profile, load_profile
from codesign.space.family import SpaceSpec
from codesign.space.files import resolve_space
from codesign.tflite.support import layer_choices
from codesign.tflite.support import lookup as lookup_support_entry

SAMPLERS = ("nsga2", "tpe", "random")
SCREEN_SAMPLES = 600  # default quantized samples the predictor screens unconverted
OBJECTIVES = (("accuracy", "latency"), ("accuracy", "latency", "size"), ("accuracy", "ram"),
              ("accuracy", "latency", "ram"), ("accuracy", "ram", "flash"))
DEFAULT_SAMPLER = "nsga2"
FINETUNE_EPOCHS = 3
"""Fine-tuning epochs of a front model of the supernet or of a HyperModel (their
weights were trained with the candidate's shape in the space)."""
TRAINED_FINETUNE_EPOCHS = 30
"""Most fine-tuning epochs of a front model of a trained model (early stopping
ends most sooner): its pruned channels are recovered by fine-tuning alone. On
``tools/bench_compress.py``'s MobileNetV2-style model, uniform 75 % pruning
scored 0.949 after 10 epochs and 0.992 after 30, improving to the last (README)."""


LATENCY_MODES = ("measured", "predicted", "hybrid")
ACCURACY_MODES = ("measured", "predicted", "hybrid")


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one ``codesign search`` run.

    Attributes:
        out: The run directory.
        data: Data set name.
        trials: Number of COMPLETE trials wanted.
        seed: Seed of the data split, supernet training and sampler.
        profile: Hardware profile name or path.
        space: Search-space preset name, or a space file (``FILE.toml``; see
            :mod:`codesign.space.files`).
        sampler: Optuna sampler.
        epochs: Supernet training epochs (None: sized to the data, see
            :func:`codesign.engine.estimates.auto_epochs`).
        timeout_s: Longest one candidate's evaluation may take.
        quality_samples: Sub-networks in the supernet quality report (0: none;
            None: sized to the supernet's training time and the trials asked).
        finetune_epochs: Epochs of fine-tuning for the front and the quality report
            (None: :data:`FINETUNE_EPOCHS`, or :data:`TRAINED_FINETUNE_EPOCHS` for
            a trained model, whose pruned channels are recovered by fine-tuning alone).
        objectives: ``("accuracy", "latency")`` or with ``"size"`` as a third.
        max_latency_ms: Budget on the latency median (None: no budget).
        max_size_kb: Budget on the file size.
        max_ram_kb: Budget on the tensor arena (KB): measured by TFLM on a TFLM
            profile, estimated from the file elsewhere.
        max_flash_kb: Budget on the bytes a firmware embeds (the ``.tflite``, KB).
        min_accuracy: Floor on validation accuracy (a fraction).
        latency: ``measured`` (time every candidate), ``predicted`` (the
            profile's latency model; only the front is timed) or ``hybrid``
            (predict, and time the candidates that could enter the front).
            None: hybrid when the profile has a latency model here, else measured.
        accuracy: ``measured`` (the sampler proposes, every trial is evaluated),
            ``predicted`` (an inner study on the accuracy predictor and the
            latency model proposes the trials, once) or ``hybrid`` (it proposes
            in rounds, the predictor learning from each round's evaluations).
        predictor_float_samples: Float sub-networks that train the predictor.
        predictor_quant_samples: Quantized candidates that transfer it.
        predictor_screen_samples: Quantized candidates screened unconverted
            (weights rounded as each layer's precision stores them) that it
            learns quantization from before the converted ones.
        inner_trials: Trials of each inner study.
        time_budget_min: Stop starting trials after this many minutes from the
            start of the command (None: run until ``trials``).
        workers: Local worker processes sharing the study (1: this process alone).
        storage: Database server URL of the study (None: in the run directory).
        study: The study's name on the server.
        references: Whether the maximal network is measured as the run's references
            (and the noise floor on it).
        val_data: An npz whose ``x_val``/``y_val`` are the validation split
            (None: the data's own ``x_val``/``y_val``, else carved from training).
        _space: The space already resolved (a resumed run's own; None: read
            from ``space``).
    """

    out: Path
    data: str = "digits"
    trials: int = 20
    seed: int = 0
    profile: str = DEFAULT_PROFILE
    space: str = "default"
    sampler: str = DEFAULT_SAMPLER
    epochs: int | None = None
    timeout_s: float = 600.0
    quality_samples: int | None = None
    finetune_epochs: int | None = None
    objectives: tuple[str, ...] = ("accuracy", "latency")
    max_latency_ms: float | None = None
    max_size_kb: float | None = None
    max_ram_kb: float | None = None
    max_flash_kb: float | None = None
    min_accuracy: float | None = None
    latency: str | None = None
    accuracy: str = "measured"
    predictor_float_samples: int = 1000
    predictor_quant_samples: int = 100
    predictor_screen_samples: int = SCREEN_SAMPLES
    inner_trials: int = 3000
    time_budget_min: float | None = None
    workers: int = 1
    storage: str | None = None
    study: str = "codesign"
    references: bool = True
    val_data: str | None = None
    _profile: Profile | None = field(default=None, repr=False, compare=False)
    _space: SpaceSpec | None = field(default=None, repr=False, compare=False)

    def validate(self) -> SearchConfig:
        """Check every setting's value (no file, data set, device or database is touched).

        :func:`codesign.preflight.preflight` then loads what the values name.

        Returns:
            This configuration.

        Raises:
            CodesignError: On the first invalid setting, naming it.
        """
        _positive_int("--trials", self.trials, 1, 100_000)
        _positive_int("--seed", self.seed, 0, 2**31 - 1)
        if self.epochs is not None:
            _positive_int("--epochs", self.epochs, 1, 10_000)
        if not self.timeout_s > 0:
            raise CodesignError(f"--timeout must be positive, got {self.timeout_s}")
        if self.sampler not in SAMPLERS:
            raise CodesignError(
                f"unknown --sampler {self.sampler!r}; use one of: {', '.join(SAMPLERS)}"
            )
        if tuple(self.objectives) not in OBJECTIVES:
            allowed = " or ".join(",".join(o) for o in OBJECTIVES)
            raise CodesignError(f"--objectives {','.join(self.objectives)!r}: use {allowed}")
        for flag, value in (("--max-latency-ms", self.max_latency_ms),
                            ("--max-size-kb", self.max_size_kb),
                            ("--max-ram-kb", self.max_ram_kb),
                            ("--max-flash-kb", self.max_flash_kb)):
            if value is not None and not value > 0:
                raise CodesignError(f"{flag} must be positive, got {value}")
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise CodesignError(
                f"--min-accuracy is a fraction from 0 to 1, got {self.min_accuracy}"
            )
        validate_data_name(self.data)
        if self.val_data is not None and not (Path(self.val_data).is_file()
                                              and Path(self.val_data).suffix == ".npz"):
            raise CodesignError(f"--val-data {self.val_data}: not an .npz file (it needs x_val "
                                "and y_val)")
        if self.quality_samples is not None:
            _positive_int("--quality-samples", self.quality_samples, 0, 1000)
        if self.finetune_epochs is not None:
            _positive_int("--finetune-epochs", self.finetune_epochs, 0, 1000)
        if self._space is None:
            resolve_space(self.space)
        if self.time_budget_min is not None and not self.time_budget_min > 0:
            raise CodesignError(f"--time-budget-min must be positive, got {self.time_budget_min}")
        self._check_workers()
        self._check_modes()
        return self

    def _check_workers(self) -> None:
        from codesign.run.storage import check_server_url, check_study_name

        _positive_int("--workers", self.workers, 1, 64)
        if self.storage is not None:
            check_server_url(self.storage)
        check_study_name(self.study)

    def _check_modes(self) -> None:
        if self.latency not in (None, *LATENCY_MODES):
            raise CodesignError(
                f"--latency is {self.latency!r}; use one of: {', '.join(LATENCY_MODES)}"
            )
        if self.accuracy not in ACCURACY_MODES:
            raise CodesignError(
                f"--accuracy is {self.accuracy!r}; use one of: {', '.join(ACCURACY_MODES)}"
            )
        _positive_int("--predictor-float-samples", self.predictor_float_samples, 10, 100000)
        _positive_int("--predictor-quant-samples", self.predictor_quant_samples, 5, 100000)
        _positive_int("--predictor-screen-samples", self.predictor_screen_samples, 0, 100000)
        _positive_int("--inner-trials", self.inner_trials, 100, 10_000_000)

    @property
    def space_spec(self) -> SpaceSpec:
        """The search space."""
        return self._space if self._space is not None else resolve_space(self.space)

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
        extra = {} if self.val_data is None else {"val_data": data_fingerprint(self.val_data)}
        return {
            **extra,
            "data": data_fingerprint(self.data),
            "seed": self.seed,
            "space": self.space_spec.to_dict(),
            "profile": self.profile_spec.identity(),
            "sampler": self.sampler,
            "epochs": self.epochs,
            "objectives": list(self.objectives),
            "budgets": self.budgets(),
        }

    def budgets(self) -> dict[str, float]:
        """The budgets that are set, by name."""
        named = {
            "max_latency_ms": self.max_latency_ms,
            "max_size_kb": self.max_size_kb,
            "max_ram_kb": self.max_ram_kb,
            "max_flash_kb": self.max_flash_kb,
            "min_accuracy": self.min_accuracy,
        }
        return {k: float(v) for k, v in named.items() if v is not None}

    def train_settings(self) -> dict[str, Any]:
        """Supernet training settings for the evaluation child."""
        return {"epochs": self.epochs, "seed": self.seed}


def check_runtime_version(profile: Profile) -> None:
    """Refuse a profile whose runtime version is not the one installed here.

    Every model is measured, and enters the front, only after running on the
    profile's runtime; a different version could run it differently.

    Raises:
        CodesignError: If the versions differ or the runtime is missing.
    """
    from importlib import metadata

    if profile.remote:
        check_device(profile)
        return
    try:
        installed = metadata.version(profile.runtime)
    except metadata.PackageNotFoundError:
        raise CodesignError(
            f"profile {profile.name} needs {profile.runtime}, which is not installed: "
            f"pip install {profile.runtime}=={profile.runtime_version}"
        ) from None
    if installed != profile.runtime_version:
        raise CodesignError(
            f"profile {profile.name} is for {profile.runtime} {profile.runtime_version} but "
            f"{installed} is installed; install that version or write a profile for {installed}"
        )


def check_device(profile: Profile) -> dict[str, Any]:
    """Reach a remote profile's device and check it runs the profile's runtime version.

    Returns:
        The device's facts (runtime, machine).

    Raises:
        CodesignError: If the device cannot be reached or runs another runtime.
    """
    from codesign.errors import DeviceUnavailable, TrialFailure
    from codesign.hardware.runner import BenchSettings, CommandRunner

    runner = CommandRunner(profile.runner, BenchSettings(profile.threads, profile.resolver,
                                                         profile.warmup_runs, profile.runs))
    try:
        facts = runner.probe()
    except (DeviceUnavailable, TrialFailure) as exc:
        raise CodesignError(f"{exc}; check the device and profile {profile.path}, then rerun "
                            "(a run resumes where it stopped)") from None
    found = facts["runtime"]
    if (found.get("name"), found.get("version")) != (profile.runtime, profile.runtime_version):
        raise CodesignError(
            f"device {profile.device} runs {found.get('name')} {found.get('version')}, but profile "
            f"{profile.name} is for {profile.runtime} {profile.runtime_version}; "
            "install that on the device or write a profile for what it runs"
        )
    return facts


def lookup_support(profile: Profile) -> Any:
    """The op-support entry of a profile's runtime, version and resolver."""
    return lookup_support_entry(profile.runtime, profile.runtime_version, profile.resolver)


def reference_runs(profile: Profile, precision: str) -> bool:
    """Whether a reference network of one ``precision`` throughout runs on the profile.

    References may use the profile's reference-only precisions (float32 on TFLM)
    as well as those the search offers.
    """
    runs = lookup_support(profile).runs
    return precision in profile.runnable and all(precision in r for r in runs.values())


def _positive_int(flag: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CodesignError(f"{flag} must be an integer from {low} to {high}, got {value!r}")
