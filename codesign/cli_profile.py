"""``codesign profiles`` and ``codesign profile build|check``: hardware profiles and their models.

A LiteRT profile's ``build`` fits a latency model and ``check`` compares it with
measured candidates; a TFLM profile has no latency model (its host latency is
a stand-in measured for every candidate), and its ``check`` validates the RAM
estimates against TFLM's arena instead.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from codesign.errors import CodesignError
from codesign.hardware.profile import Profile


def profiles() -> int:
    """``codesign profiles``: the shipped profiles and their latency models here."""
    from codesign.hardware.profile import DEFAULT_PROFILE, EXAMPLE_DIR, list_profiles
    from codesign.report.table import format_table
    from codesign.tflite.support import lookup

    rows = []
    every = [*list_profiles(), *list_profiles(EXAMPLE_DIR)]
    for p in every:
        try:
            delegated = ",".join(lookup(p.runtime, p.runtime_version, p.resolver).delegated)
        except CodesignError:
            delegated = "(no op-support entry)"
        name = f"{p.name} (default)" if p.name == DEFAULT_PROFILE else p.name
        if Path(p.path).parent == EXAMPLE_DIR:
            name = f"examples/{Path(p.path).name}"
        device = "this machine" if not p.remote else f"{p.device} ({p.runner.shell[0]})"
        rows.append((name, f"{p.runtime} {p.runtime_version}", p.resolver, p.threads,
                     ",".join(p.precisions), delegated or "-", device, _model_status(p)))
    headers = ("name", "runtime", "resolver", "threads", "precisions", "delegate takes",
               "device", "latency model here")
    print(format_table(headers, rows))
    source_rows = _source_models(every)
    if source_rows:
        print("\nlatency models of fitted spaces, trained models and HyperModels here (codesign "
              "profile build NAME --data DATA [--model PATH|--hypermodel FILE.py:NAME]):")
        print(format_table(("profile", "model", "latency model here"), source_rows))
    print("examples (under hw_profiles/examples/) reach a board or phone: copy one, edit the "
          "address, and pass its path to --profile")
    print("a latency model lets searches skip timing candidates that cannot win: codesign "
          "profile build NAME, then codesign profile check NAME")
    return 0


def _model_status(profile: Profile) -> str:
    """A profile's latency model on this machine and its measured fidelity, in a few words."""
    from codesign.latency import build as latency

    if profile.micro:
        return "none (host stand-in; profile check validates RAM)"
    if not latency.model_path(profile).is_file():
        return "none"
    model = latency.load_model(profile)
    if model is None:
        return "outdated: rebuild it"
    known = latency.fidelity(profile, model)
    return known.describe() if known is not None else "built, fidelity unknown"


def _source_models(profiles: list[Profile]) -> list[tuple[str, str, str]]:
    """Per profile, the trained models and HyperModels with a latency model here, and its figure."""
    from codesign.latency import build as latency
    from codesign.latency import sources
    from codesign.latency.model import latency_dir
    from codesign.latency.spaces import profile_key

    rows = []
    for p in profiles:
        if p.micro:
            continue
        for kind in ("model", "hypermodel", "space"):
            prefix = f"{profile_key(p)}.{kind}-"
            for path in sorted(latency_dir().glob(f"{prefix}*.json")):
                if not re.fullmatch(r"[0-9a-f]+\.json", path.name[len(prefix):]):
                    continue  # the model's check, measurements, drawn candidates...
                model = latency.load_model(p, path)
                if model is None:
                    rows.append((p.name, path.name, "outdated: rebuild it"))
                    continue
                known = (latency.fidelity(p, model, path) if kind == "space"  # the 95 % target
                         else sources.file_fidelity(p, path, model))
                rows.append((p.name, _source_name(p, kind, path, model.meta),
                             known.describe() if known is not None else "built, fidelity unknown"))
    return rows


def _source_name(profile: Profile, kind: str, path: Path, meta: dict[str, Any]) -> str:
    """What a source's latency model is of, flagged when its file is gone or changed since."""
    from codesign.latency import hypermodel, trained

    if kind == "space":
        channels = meta.get("channels", 1)
        return f"space {meta.get('space', {}).get('name', '?')} ({channels}-channel inputs)"
    if kind == "model":
        source = str(meta.get("model", {}).get("path", ""))
        file, now = source, trained.model_file(profile, source) if source else None
    else:
        hm = meta.get("hypermodel", {})
        source, file = str(hm.get("spec", "")), str(hm.get("file", ""))
        now = None
        if file and Path(file).is_file():
            from codesign.hyper.load import HyperSpec

            name = str(hm.get("name") or source.rsplit(":", 1)[-1])
            now = hypermodel.model_file(profile, HyperSpec(source, file, None, name, ""),
                                        str(hm.get("shape", "")))
        source = f"HyperModel {source}"
    if not file:
        return f"{path.name} (of a model it does not name)"
    if not Path(file).exists():
        return f"{source} (no longer there)"
    return source if now == path else f"{source} (changed since: build again)"


def profile_command(args: argparse.Namespace) -> int:
    """``codesign profile build|check``."""
    from codesign.config import check_runtime_version
    from codesign.hardware.profile import load_profile
    from codesign.latency import build as latency
    from codesign.latency.drift import drift_note

    profile = load_profile(args.profile)
    check_runtime_version(profile)
    if profile.micro:
        return _micro_profile(args, profile)
    if args.model is not None or args.hypermodel is not None:
        return _source_model(args, profile)
    space, channels, flags = _builtin_space(args)
    path = latency.model_path(profile, space)
    if args.action == "build":
        for flag, value, low in (("--blocks", args.blocks, 10), ("--whole", args.whole, 0)):
            if not low <= value <= 100000:
                raise CodesignError(f"{flag} must be from {low} to 100000, got {value}")
        if args.blocks + args.whole < latency.MIN_NETWORKS:
            raise CodesignError(f"--blocks and --whole add up to {args.blocks + args.whole}; a "
                                f"model needs at least {latency.MIN_NETWORKS} networks")
        if not args.budget_min > 0:
            raise CodesignError(f"--budget-min must be positive, got {args.budget_min}")
        model = latency.build(profile, args.blocks, args.whole, args.seed, args.budget_min,
                              space=space, channels=channels)
        meta, hold = model.meta, model.meta.get("holdout", {})
        held = (f"; held-out whole networks: {hold['within_10pct']:.0%} within ±10 %, "
                f"MAPE {hold['mape']:.1%}" if hold else "")
        measured = meta["networks"]["block"] + meta["networks"]["whole"]
        print(f"latency model of {profile.name}: {meta['networks']['block']} block and "
              f"{meta['networks']['whole']} whole networks measured on {meta['runtime']} "
              f"in {meta['seconds']:.0f} s{held}; saved to {path}")
        print(f"timing: {latency.disturbance_line(meta.get('timing', {}), measured)}")
        _flag_fidelity(latency.fidelity(profile, model, path))
        return 0
    if not 2 <= args.n <= 100000:
        raise CodesignError(f"--n must be from 2 to 100000, got {args.n}")
    f = latency.check(profile, args.n, space=space, channels=channels, build_hint=flags)
    print(f"{profile.name}: {_figures_line(f, f['candidates'])}; "
          f"{drift_note(f['drift'], profile)})")
    print(f"timing: {latency.disturbance_line(f['timing'], f['n'])}")
    _flag_fidelity(latency.fidelity(profile, path=path))
    _flag_noise(f, latency.TARGET_WITHIN_10PCT)
    return 0


def _builtin_space(args: argparse.Namespace) -> tuple[Any, int, str]:
    """The space a built-in model is of (``--space``, fitted to ``--data`` as a search fits it).

    Returns:
        The space (None: the default space, the profile's own model), the
        input channels of its candidates (the data's; 1 without data) and the
        flags that name it (for messages).
    """
    if args.space is None and args.data is None:
        return None, 1, ""
    from codesign.data import load_dataset, validate_data_name
    from codesign.space.files import resolve_space
    from codesign.space.fit import for_images

    text = args.space or "default"
    space = resolve_space(text)
    channels = 1
    if args.data is not None:
        validate_data_name(args.data)
        loaded = load_dataset(args.data, 0)
        channels = loaded.channels
        space = for_images(text, space, *loaded.x_train.shape[1:3])  # as a search fits it
    flags = (f" --space {args.space}" if args.space else "") + (
        f" --data {args.data}" if args.data else "")
    return space, channels, flags


def _source_model(args: argparse.Namespace, profile: Profile) -> int:
    """``profile build|check --model PATH|--hypermodel SPEC --data DATA``: a source's own model."""
    from codesign.data import validate_data_name
    from codesign.latency import build as latency
    from codesign.latency import sources
    from codesign.latency.drift import drift_note

    if args.model is not None and args.hypermodel is not None:
        raise CodesignError("give --model or --hypermodel, not both: each gets its own latency "
                            "model")
    if args.space is not None:
        raise CodesignError("--space names a space of the built-in family: leave it out with "
                            "--model or --hypermodel")
    if args.data is None or (args.model is None and args.hypermodel is None):
        raise CodesignError("a model's latency model needs --model PATH (a trained model) or "
                            "--hypermodel FILE.py:NAME, and --data DATA (the data it is "
                            "searched on)")
    count, flag = (args.candidates, "--candidates") if args.action == "build" else (args.n, "--n")
    if not 2 <= count <= 100000:
        raise CodesignError(f"{flag} must be from 2 to 100000, got {count}")
    if args.action == "build" and not args.budget_min > 0:
        raise CodesignError(f"--budget-min must be positive, got {args.budget_min}")
    validate_data_name(args.data)
    if args.model is not None:
        from codesign.latency import trained as source

        opened = source.open_model(profile, args.model, args.data)
        ref: Any = opened
        name, path = Path(opened.path).name, source.model_file(profile, opened.path)
    else:
        from codesign.hyper.load import parse_spec
        from codesign.latency import hypermodel as source  # type: ignore[no-redef]

        ref = source.reference(profile, parse_spec(args.hypermodel, Path.cwd()), args.data)
        name, path = ref.name, source.path_of(profile, ref)
    if args.action == "build":
        fitted = source.build(profile, ref, count, args.seed, args.budget_min)
        meta, hold = fitted.meta, fitted.meta.get("holdout", {})
        held = (f"; held-out candidates: {hold['within_10pct']:.0%} within ±10 %, MAPE "
                f"{hold['mape']:.1%} ({hold['detail']} detail)" if hold else "")
        print(f"latency model of {name} on {profile.name}: {meta['networks']['whole']} "
              f"candidates measured in {meta['seconds']:.0f} s{held}; saved to {path}")
        measured = meta["networks"]["whole"]
        print(f"timing: {latency.disturbance_line(meta.get('timing', {}), measured)}")
    else:
        f = source.check(profile, ref, count)
        print(f"{profile.name}, {name}: {_figures_line(f, 'random candidates of the model')}; "
              f"{drift_note(f['drift'], profile)})")
        print(f"timing: {latency.disturbance_line(f['timing'], f['n'])}")
        _flag_noise(f, sources.TARGET_WITHIN_10PCT)
    known = sources.file_fidelity(profile, path)
    if known is not None and not known.meets_target:
        print(f"note: {known.within_10pct:.0%} within ±10 % ({known.source}) is below the "
              f"{sources.TARGET_WITHIN_10PCT:.0%} a search needs to price candidates "
              "(--latency hybrid)")
    return 0


def _figures_line(f: dict[str, Any], what: str) -> str:
    """A check's figures in one phrase."""
    noise = f"{f['noise_floor_cv']:.1%}" if f["noise_floor_cv"] is not None else "unknown"
    return (f"{f['within_10pct']:.0%} of {f['n']} {what} within ±10 % of measured, MAPE "
            f"{f['mape']:.1%}, 95th percentile error {f['p95_abs_rel_error']:.1%}, Kendall tau "
            f"{f['kendall_tau']:.3f}, noise floor {noise} (measured "
            f"{f['measured_ms']['min']:.3f}-{f['measured_ms']['max']:.3f} ms")


def _micro_profile(args: argparse.Namespace, profile: Profile) -> int:
    """``profile build|check`` of a TFLM profile: no latency model; check validates RAM."""
    if args.action == "build":
        raise CodesignError(
            f"profile {profile.name} has no latency model to build: its host latency is a "
            "relative stand-in, measured for every candidate; codesign profile check "
            f"{profile.name} validates the RAM estimates instead")
    from codesign.ramcheck import check_ram, report_lines

    if not 2 <= args.n <= 100000:
        raise CodesignError(f"--n must be from 2 to 100000, got {args.n}")
    for line in report_lines(check_ram(profile, args.n)):
        print(line)
    return 0


def _flag_fidelity(known: object) -> None:
    """Say so when a latency model misses its fidelity target (searches flag it too)."""
    from codesign.latency.build import TARGET_WITHIN_10PCT

    if known is not None and not known.meets_target:  # type: ignore[attr-defined]
        print(f"note: this model is below its target of {TARGET_WITHIN_10PCT:.0%} within "
              "±10 %; hybrid searches widen their margin to its 95th-percentile error")


def _flag_noise(f: dict[str, Any], target: float) -> None:
    """Say so when a check below its target was timed on a device that does not repeat itself.

    A network is timed in two passes and the faster counts. Where the passes
    themselves agree within ±10 % for fewer than ``target`` of the networks,
    the check's shortfall is the device's as much as the model's. A model can
    still meet the target then (the faster pass is steadier than either:
    ``xnnpack-1t`` here checked 95 % with its passes agreeing on 70 %), so a
    check that meets it says nothing.
    """
    share = f.get("repeatable_10pct")
    if share is not None and share < target and f["within_10pct"] < target:
        print(f"note: this device repeated its own timings within ±10 % for only {share:.0%} of "
              f"the {f['n']} networks (two passes each), below the {target:.0%} asked of the "
              "model: its timings bound this check as much as the model; use fewer threads or "
              "a quieter device")
