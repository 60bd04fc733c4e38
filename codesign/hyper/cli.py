"""``codesign search --hypermodel``: from parsed arguments to a hypermodel search."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from codesign.errors import CodesignError

if TYPE_CHECKING:
    from codesign.config import SearchConfig
    from codesign.hyper.load import HyperSpec
    from codesign.hyper.settings import HyperConfig

INCOMPATIBLE = (  # flag, attribute, value that means "not given"
    ("--accuracy", "accuracy", "measured"),
    ("--space", "space", "default"),
)


def hyper_config(args: argparse.Namespace) -> HyperConfig:
    """The validated :class:`codesign.hyper.settings.HyperConfig` of ``codesign search``.

    Raises:
        CodesignError: On a flag a hypermodel search does not take, or a bad setting.
    """
    from codesign.hyper.load import parse_spec
    from codesign.hyper.settings import HyperConfig, HyperSettings
    from codesign.preflight import preflight

    common = measured_search(args, "--hypermodel", INCOMPATIBLE, ("measured", "hybrid"))
    spec = parse_spec(args.hypermodel, Path.cwd())
    search = with_latency(preflight(replace(common, latency="measured")), spec, common.latency)
    settings = HyperSettings(epochs=args.candidate_epochs,
                             finetune_epochs=min(search.finetune_epochs, 1000)).validate()
    return HyperConfig(hypermodel=spec, search=search, settings=settings)


def with_latency(cfg: SearchConfig, spec: HyperSpec, asked: str | None,
                 out: TextIO = sys.stdout) -> SearchConfig:
    """``cfg`` with the latency mode of a search of ``spec`` (said in a line when not hybrid).

    Raises:
        CodesignError: On ``--latency hybrid`` without a checked latency model of
            the HyperModel meeting its target (one line with the figure or the
            commands), and on ``predicted``.
    """
    from codesign.latency import hypermodel

    mode, note = hypermodel.search_mode(asked, cfg.profile_spec,
                                        hypermodel.reference(cfg.profile_spec, spec, cfg.data))
    if note:
        print(note, file=out)
    return replace(cfg, latency=mode)


def measured_search(args: argparse.Namespace, what: str,
                    incompatible: tuple[tuple[str, str, Any], ...],
                    latency: tuple[str, ...] = ("measured",)) -> SearchConfig:
    """The common settings of a search that measures every candidate (not yet pre-flighted).

    Args:
        args: ``codesign search``'s parsed arguments.
        what: The flag that chose the search (``--hypermodel``, ``--model``).
        incompatible: ``(flag, attribute, value meaning "not given")`` it refuses.
        latency: The ``--latency`` modes it takes (beyond ``measured``, the source
            resolves them once its model is known; not given: the source's default).

    Raises:
        CodesignError: On a flag such a search does not take.
    """
    from codesign.config import DEFAULT_SAMPLER, SearchConfig

    for flag, attr, default in incompatible:
        if getattr(args, attr, default) != default:
            raise CodesignError(f"{flag} does not apply to {what} searches (every candidate "
                                "measured, in its own space); drop it")
    if getattr(args, "no_references", False):
        raise CodesignError(f"--no-references applies to searches of the built-in space (its "
                            f"maximal network); drop it for {what} searches")
    if args.latency not in (None, *latency):
        raise CodesignError(f"{what} searches time every candidate: drop --latency "
                            f"{args.latency}" if latency == ("measured",) else
                            f"--latency {args.latency} does not apply to {what} searches; use "
                            f"one of: {', '.join(latency)}")
    return SearchConfig(
        out=args.out, data=args.data, trials=args.trials, seed=args.seed, profile=args.profile,
        sampler=args.sampler or DEFAULT_SAMPLER, timeout_s=args.timeout, quality_samples=0,
        finetune_epochs=args.finetune_epochs,
        objectives=tuple(o.strip() for o in args.objectives.split(",")),
        max_latency_ms=args.max_latency_ms, max_size_kb=args.max_size_kb,
        max_ram_kb=args.max_ram_kb, max_flash_kb=args.max_flash_kb,
        min_accuracy=args.min_accuracy,
        latency="measured" if latency == ("measured",) else args.latency,
        accuracy="measured", time_budget_min=args.time_budget_min, workers=args.workers,
        storage=args.storage, study=args.study, val_data=getattr(args, "val_data", None),
    )


def search_hypermodel(args: argparse.Namespace) -> None:
    """Run ``codesign search --hypermodel`` (the caller writes the report)."""
    from codesign.hyper.search import run_hyper_search

    run_hyper_search(hyper_config(args))
