"""Pre-flight: load what validated settings name, before a search starts any work.

:meth:`codesign.config.SearchConfig.validate` checks values only; this step
reads the data set (bad data is refused here, with the file and the problem),
reads the profile and checks its runtime (a remote device is reached and asked
what it runs), resolves the latency mode from the latency models on this
machine, and sizes the supernet's epochs to the data. Opening the study's
storage is the search's first step (:func:`codesign.engine.job.run_search`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from codesign.config import (
    FINETUNE_EPOCHS,
    SearchConfig,
    check_runtime_version,
    lookup_support,
)
from codesign.data import load_dataset
from codesign.errors import CodesignError
from codesign.hardware.profile import Profile, load_profile
from codesign.space.family import SpaceSpec
from codesign.space.fit import fit_space, for_images
from codesign.tflite.support import layer_choices


def preflight(cfg: SearchConfig, builtin: bool = False) -> SearchConfig:
    """Validate ``cfg`` and load what it names; return it ready to search.

    Args:
        cfg: The settings.
        builtin: A search of the built-in space: a ``--max-ram-kb`` that even
            its smallest candidate cannot meet is refused here.

    Returns:
        A copy with the data path resolved, the profile and space loaded, the
        latency mode chosen and the epochs set.

    Raises:
        CodesignError: On an invalid setting, bad data, a profile this machine
            (or its device) cannot run, or a mode without its latency model.
    """
    cfg.validate()
    data = _data_path(cfg.data)
    val = str(Path(cfg.val_data).resolve()) if cfg.val_data is not None else None
    loaded = load_dataset(data, cfg.seed, val)
    profile = load_profile(cfg.profile)
    check_runtime_version(profile)
    space = cfg.space_spec
    if builtin and cfg._space is None:  # not a resumed run's space
        space = for_images(cfg.space, space, *loaded.x_train.shape[1:3])
    choices = layer_choices(space, lookup_support(profile), profile.precisions)
    if builtin and cfg.max_ram_kb is not None:
        from codesign.engine.ramscreen import RamScreen, check_budget

        check_budget(RamScreen(space, cfg.max_ram_kb, loaded.num_classes, loaded.channels),
                     choices)
    latency = _latency_mode(cfg, profile, space if builtin else None)
    _check_accuracy_mode(cfg, profile, space if builtin else None)
    if cfg.out.exists() and not cfg.out.is_dir():
        raise CodesignError(f"--out {cfg.out} is a file; give a directory")
    epochs = cfg.epochs
    if epochs is None:
        from codesign.engine.estimates import DataShape, auto_epochs

        shape = DataShape(len(loaded.y_train), loaded.channels, loaded.num_classes)
        epochs = auto_epochs(space, shape, cfg.time_budget_min)
    tune = FINETUNE_EPOCHS if cfg.finetune_epochs is None else cfg.finetune_epochs
    return replace(cfg, data=data, epochs=epochs, latency=latency, val_data=val,
                   finetune_epochs=tune, _profile=profile, _space=space)


def _data_path(data: str) -> str:
    """``--data`` as loaded: a file or folder by its absolute path, a name as it is."""
    return str(Path(data).resolve()) if Path(data).exists() and data != "digits" else data


def data_fit(data: str, seed: int) -> Callable[[SpaceSpec], SpaceSpec]:
    """Fits a preset to the images of ``data`` (:func:`codesign.space.fit.fit_space`).

    The data is loaded when the fit is first asked for (the search loads it
    again from the same cache); bad data is refused then, in one line.
    """
    def fit(space: SpaceSpec) -> SpaceSpec:
        return fit_space(space, *load_dataset(_data_path(data), seed).x_train.shape[1:3])
    return fit


def _latency_mode(cfg: SearchConfig, profile: Profile, space: SpaceSpec | None) -> str:
    """The latency mode: as asked, or hybrid when a latency model of the space exists."""
    if cfg.latency is None:
        return "hybrid" if _has_model(profile, space) else "measured"
    if cfg.latency != "measured" and not _has_model(profile, space):
        raise CodesignError(
            f"--latency {cfg.latency} needs a latency model of {_of(space)} on profile "
            f"{profile.name} on this machine: run {_build_command(cfg, profile, space)}, or use "
            "--latency measured"
        )
    return cfg.latency


def _check_accuracy_mode(cfg: SearchConfig, profile: Profile, space: SpaceSpec | None) -> None:
    if cfg.accuracy != "measured" and not _has_model(profile, space):
        raise CodesignError(
            f"--accuracy {cfg.accuracy} searches on predicted latency too: run "
            f"{_build_command(cfg, profile, space)} first, or use --accuracy measured"
        )


def _has_model(profile: Profile, space: SpaceSpec | None) -> bool:
    """Whether the latency model that prices ``space`` (None: the default) is built here."""
    from codesign.latency.build import load_model
    from codesign.latency.spaces import model_path

    return load_model(profile, model_path(profile, space)) is not None


def _of(space: SpaceSpec | None) -> str:
    from codesign.latency.spaces import covered

    return "the default space" if covered(space) else f"space {space.name}"  # type: ignore


def _build_command(cfg: SearchConfig, profile: Profile, space: SpaceSpec | None) -> str:
    """The command that builds the model of ``space`` (latency imported only when asked)."""
    from codesign.latency.spaces import build_command

    return build_command(profile, space, cfg.space, cfg.data)
