"""``codesign profile build`` and ``codesign profile check``: fit and test a latency model."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from codesign.errors import CodesignError, TrialFailure
from codesign.hardware.profile import Profile
from codesign.latency import spaces
from codesign.latency.convert_pool import convert_missing, workers
from codesign.latency.drift import ratio_now
from codesign.latency.features import Kernel, features, kernels
from codesign.latency.model import (
    DETAILS,
    LatencyModel,
    at_detail,
    errors,
    fit,
    latency_dir,
    repeatability,
)
from codesign.latency.sampling import space_from_dict
from codesign.latency.spaces import model_path
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec
from codesign.tflite.support import lookup

FOLDS = 5  # the build's figure: each whole network predicted by a fit without it
WHOLE_WEIGHT = 20.0  # whole networks are what is predicted; block networks widen the coverage
CONVERT_S = 0.8  # converting one sampled network, here (one process per core)
TIME_S = 0.35  # timing one converted network in spread windows, in two passes
# ... and its runs, by arithmetic: 0.23 ms per million MACs over 400 networks of default-96px on
# xnnpack-1t here (without it, that build said 5.0 min and took 9.2; with it, 9.1)
RUN_MS_PER_MMAC = 0.23
TARGET_WITHIN_10PCT = 0.95  # a latency model is trusted at this share within ±10 %
CHECK_SEED = 2_000_003  # check networks differ from every build network
MIN_NETWORKS = 20  # a model is fitted on at least this many measured networks


def delegated(profile: Profile) -> tuple[str, ...]:
    """Precisions the profile's delegate takes (none without a known delegate)."""
    if profile.resolver != "auto":
        return ()
    try:
        return lookup(profile.runtime, profile.runtime_version, profile.resolver).delegated
    except CodesignError:
        return ()


def network_kernels(sample: dict[str, Any]) -> list[Kernel]:
    """The kernel chain of one sampled network."""
    return kernels(space_from_dict(sample["space"]), Candidate.from_dict(sample["candidate"]),
                   sample["num_classes"], sample["channels"])


def network_features(sample: dict[str, Any], delegate: tuple[str, ...]) -> dict[str, float]:
    """Features of one sampled network."""
    return features(network_kernels(sample), delegate)


def load_model(profile: Profile, path: Path | None = None) -> LatencyModel | None:
    """The profile's latency model on this machine, if one was built for its settings.

    A model of an older schema is treated as absent (``codesign profiles`` says
    to rebuild it).

    Args:
        profile: The profile.
        path: The model's file (None: the profile's own, of the built-in family).
    """
    path = path or model_path(profile)
    if not path.is_file():
        return None
    try:
        model = LatencyModel.load(path)
    except CodesignError:
        return None
    if model.profile != json.loads(json.dumps(profile.identity())):
        return None
    return model


@dataclass(frozen=True)
class Target:
    """What a latency model is of, and how its networks are measured.

    Attributes:
        path: The model's file.
        request: The child request that converts and times its samples.
        args: That request's arguments besides the samples, file, repeats and budget.
        what: Its candidates in a few words (``random default-space candidates``).
    """

    path: Path
    request: str
    args: dict[str, Any]
    what: str

    def beside(self, suffix: str) -> Path:
        """A file kept beside the model (``.check.json``, ``.check.jsonl``...)."""
        return self.path.with_suffix(suffix)


def builtin_target(profile: Profile, space: SpaceSpec | None = None) -> Target:
    """The built-in family's model that prices ``space`` (None: the profile's own)."""
    return Target(model_path(profile, space), "latency_measure", {"profile": profile.path},
                  spaces.what(space))


def measure_networks(profile: Profile, samples: list[dict[str, Any]], out: Path, desc: str,
                     stream: TextIO, repeats: int = 1, budget_s: float | None = None,
                     target: Target | None = None
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Measure samples in a new evaluation child, with progress.

    The samples are ``target``'s (None: the profile's built-in family); what
    is measured goes to ``out`` as it is, so a rerun goes on.

    Returns:
        The records by sample id, and the timing summary (re-timings, disturbance).
    """
    from codesign.child import EvalChild

    bar = tqdm(total=len(samples), desc=desc, unit="net", file=stream)

    def progress(info: dict[str, Any]) -> None:
        bar.total = info["total"]
        bar.update(info["done"] - bar.n)

    target = target or builtin_target(profile)
    kwargs = {"samples": samples, **target.args, "out": str(out), "repeats": repeats,
              "budget_s": budget_s}
    try:
        with EvalChild(log_path=str(latency_dir() / "logs" / "worker.log")) as own:
            res = own.call(target.request, progress=progress, timeout_s=None, **kwargs)
    except TrialFailure as exc:
        raise CodesignError(f"measuring on {profile.name} failed: {exc}; rerun to go on "
                            "(what was measured is kept)") from None
    finally:
        bar.close()
    return res["records"], res["timing"]


def expected_duration(profile: Profile, samples: list[dict[str, Any]], done_file: Path) -> str:
    """What measuring the samples is expected to take.

    Conversions (cached ones don't count), a fixed cost per network timed, and
    the runs of each pass (two here, one on a remote device) by its arithmetic.
    """
    from codesign.latency.measure import LOCAL_PASSES, converted_path, read_records

    done = read_records(done_file)
    todo = [s for s in samples if s["id"] not in done]
    fresh = sum(1 for s in todo if not converted_path(s).is_file())
    mmacs = sum(k.macs for s in todo for k in network_kernels(s)) / 1e6
    passes = 1 if profile.remote else LOCAL_PASSES
    runs = passes * (profile.warmup_runs + profile.runs) * mmacs * RUN_MS_PER_MMAC / 1e3
    seconds = fresh * CONVERT_S / workers() + len(todo) * TIME_S + runs
    if not todo:
        return "all measured already"
    return (f"{len(samples) - len(todo)} measured already, {fresh} to convert: expected about "
            f"{seconds / 60:.1f} min")


def disturbance_line(timing: dict[str, Any], measured: int) -> str:
    """How disturbed the machine was while measuring, in one line."""
    worst = timing.get("worst_ratio", 1.0)
    lost = timing.get("reference_lost", 0)
    busiest = f"; in {lost} batches the reference could not be timed undisturbed" if lost else ""
    return (f"re-timed {timing.get('retimed', 0)} windows and {timing.get('runs_retimed', 0)} "
            f"runs of {measured} networks (machine up to {max(0.0, worst - 1):.0%} slower than "
            f"its quietest{busiest}; {timing.get('disturbed', 0)} of "
            f"{timing.get('batches', 0)} batches stayed disturbed after re-timing)")


def quiet_ms(rec: dict[str, Any]) -> float:
    """A record's latency as the machine gives it when quiet (older records: the median)."""
    return float(rec.get("quiet_ms", rec["median_ms"]))


def build(profile: Profile, blocks: int = 300, whole: int = 100, seed: int = 0,
          budget_min: float = 30.0, stream: TextIO = sys.stdout, space: SpaceSpec | None = None,
          channels: int = 1) -> LatencyModel:
    """Measure sampled networks on the profile's device and fit a latency model.

    Args:
        profile: The hardware profile.
        blocks: Block networks to measure.
        whole: Whole candidates of the space to measure.
        seed: Sampling seed.
        budget_min: Measuring stops after this many minutes (rerun to measure the rest).
        stream: Where progress goes.
        space: The space to price (None: the profile's own model, of the
            default space; see :mod:`codesign.latency.spaces`).
        channels: Input channels of a space's whole candidates (the data's).

    Returns:
        The saved model.
    """
    t0 = time.perf_counter()
    samples = spaces.samples(profile, space, blocks, whole, seed, channels)
    target = builtin_target(profile, space)
    meas = target.beside(".measurements.jsonl")
    print(f"latency model of {profile.name} ({target.what}): {len(samples)} networks to "
          f"measure, {expected_duration(profile, samples, meas)} on 2 cores", file=stream,
          flush=True)
    began = time.monotonic()
    convert_missing(samples, stream, budget_min * 60)
    left = max(0.0, budget_min * 60 - (time.monotonic() - began))
    records, timing = measure_networks(profile, samples, meas, f"measuring on {profile.name}",
                                       stream, budget_s=left, target=target)
    delegate = delegated(profile)
    rows, lat, is_whole = [], [], []
    n_blocks = len(samples) - whole
    for i, s in enumerate(samples):
        rec = records.get(s["id"])
        if rec is None or "median_ms" not in rec:
            continue
        rows.append(network_features(s, delegate))
        lat.append(quiet_ms(rec))
        is_whole.append(i >= n_blocks)
    weight = [WHOLE_WEIGHT if w else 1.0 for w in is_whole]
    if len(rows) < MIN_NETWORKS:
        raise CodesignError(f"only {len(rows)} networks measured on {profile.name}; rerun "
                            "codesign profile build to measure more")
    model = fitted(profile, rows, lat, weight, is_whole, seed, {
        "networks": {"block": sum(not w for w in is_whole), "whole": sum(is_whole)},
        "failed": sum(1 for r in records.values() if "error" in r),
        "reference_calibrated_ms": timing.get("reference_ms"),
        "timing": timing,
        "seconds": round(time.perf_counter() - t0, 1),
        **({} if spaces.covered(space) else {"space": space.to_dict(), "channels": channels}),
    })
    model.save(target.path)
    return model


def fitted(profile: Profile, rows: list[dict[str, float]], lat: list[float],
           weight: list[float], is_whole: list[bool], seed: int, meta: dict[str, Any]
           ) -> LatencyModel:
    """A model fitted at the detail that predicts held-out whole networks better.

    Both details of :data:`DETAILS` are cross-validated (:func:`cross_validate`);
    the better one is fitted on every network. ``meta`` (sample counts,
    timing, seconds) is stored with the fit's own figures.
    """
    held = {d: cross_validate(rows, lat, weight, is_whole, d, seed) for d in DETAILS}
    detail = max(DETAILS, key=lambda d: (held[d].get("within_10pct", 0.0),
                                         -held[d].get("mape", math.inf)))
    holdout = {**held[detail], "detail": detail, "folds": FOLDS} if held[detail] else {}
    chosen = [at_detail(r, detail) for r in rows]
    return LatencyModel(
        profile=json.loads(json.dumps(profile.identity())),
        coef=fit(chosen, lat, weight),
        meta={
            "detail": detail,
            "holdout_other": {d: held[d] for d in DETAILS if d != detail},
            "runtime": f"{profile.runtime} {profile.runtime_version}",
            "device": profile.device,
            "codesign": _version("codesign"),
            "ai-edge-quantizer": _version("ai-edge-quantizer"),
            "features": sorted({k for r in chosen for k in r}),
            "holdout": holdout,
            "floor_ms": 0.5 * min(lat),
            **meta,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def cross_validate(rows: list[dict[str, float]], lat: list[float], weight: list[float],
                   is_whole: list[bool], detail: str, seed: int) -> dict[str, float]:
    """The error on whole networks, each predicted by a fit that did not see it.

    The whole networks are split into :data:`FOLDS` folds; each fold is
    predicted by a fit on every other network (block networks always
    included). Every whole network is held out once, so the figure rests on
    all of them, not on a fifth (which drifted up to 10 points from a later
    check).

    Returns:
        :func:`codesign.latency.model.errors` of those predictions (empty with
        fewer than two whole networks).
    """
    whole = [i for i, w in enumerate(is_whole) if w]
    if len(whole) < 2:
        return {}
    feats = [at_detail(r, detail) for r in rows]
    order = np.random.default_rng(seed).permutation(whole)
    pred, real = [], []
    for k in range(min(FOLDS, len(whole))):
        out = {int(i) for i in order[k::FOLDS]}
        keep = [i for i in range(len(rows)) if i not in out]
        probe = LatencyModel({}, fit([feats[i] for i in keep], [lat[i] for i in keep],
                                     [weight[i] for i in keep]), {"detail": "fine"})
        pred += [probe.predict(feats[i]) for i in sorted(out)]
        real += [lat[i] for i in sorted(out)]
    return errors(pred, real)


def check(profile: Profile, n: int = 100, seed: int = CHECK_SEED, stream: TextIO = sys.stdout,
          space: SpaceSpec | None = None, channels: int = 1, build_hint: str = ""
          ) -> dict[str, Any]:
    """Measure ``n`` random candidates of the space and compare them with its model.

    Args:
        profile: The profile.
        n: Candidates.
        seed: Their seed.
        stream: Where progress goes.
        space: The space (None: the default space, the profile's own model).
        channels: Input channels of the space's candidates.
        build_hint: The flags that built the space's model (for the message).

    Returns:
        Agreement figures and the profile's noise floor (saved beside the model).

    Raises:
        CodesignError: If the space has no latency model on this machine.
    """
    target = builtin_target(profile, space)
    model = load_model(profile, target.path)
    if model is None:
        raise CodesignError(f"profile {profile.name} has no latency model of {target.what} on "
                            f"this machine for its settings; run: codesign profile build "
                            f"{profile.name}{build_hint}")
    samples = spaces.checked(profile, space, n, seed, channels)
    convert_missing(samples, stream)
    delegate = delegated(profile)
    return compare(profile, model, target, samples,
                   lambda s: model.predict(network_features(s, delegate)), stream)


def compare(profile: Profile, model: LatencyModel, target: Target, samples: list[dict[str, Any]],
            predict: Callable[[dict[str, Any]], float], stream: TextIO) -> dict[str, Any]:
    """Time the samples now, compare them with the model's predictions; save the figures.

    The noise floor is the median, over the checked networks, of the spread
    between each network's two timing passes (no timing of its own: five more
    timings of three networks took a minute of a check on a busy machine).
    The figures go beside the model
    (``.check.json``), where :func:`fidelity` reads them.

    Returns:
        :func:`codesign.latency.model.errors` with the drift, the timing, the
        noise floor, the measured range and the model's file.
    """
    meas = target.beside(".check.jsonl")
    meas.unlink(missing_ok=True)  # a check measures now, as a search would
    records, timing = measure_networks(profile, samples, meas, f"checking on {profile.name}",
                                       stream, target=target)
    # the measuring ends by timing the reference as the build's did: no second child for it
    ratio = ratio_now(profile, model, timing.get("reference_ms"))
    pred, real, medians, timed = [], [], [], []
    for s in samples:
        rec = records.get(s["id"], {})
        if "median_ms" in rec:
            pred.append(predict(s))
            real.append(quiet_ms(rec))
            medians.append(float(rec["median_ms"]))
            timed.append(s)
    if len(real) < 2:
        raise CodesignError(f"fewer than 2 of {len(samples)} networks could be measured on "
                            f"{profile.name}")
    figures = errors(pred, real)
    noise, repeat = repeatability([records[s["id"]] for s in timed])
    figures.update({
        "profile": profile.name,
        "drift": ratio,
        "against_unscaled_medians": errors(pred, medians),
        "timing": timing,
        "noise_floor_cv": noise,
        "repeatable_10pct": repeat,
        "measured_ms": {"min": float(min(real)), "median": float(np.median(real)),
                        "max": float(max(real))},
        "model": str(target.path),
        "candidates": target.what,
        "checked": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    target.beside(".check.json").write_text(json.dumps(figures, indent=1))
    return figures


@dataclass(frozen=True)
class Fidelity:
    """What is known of a latency model's error on this machine.

    Attributes:
        within_10pct: Share of networks within ±10 % (the last check, else the build's held-out).
        p95: 95th percentile of the absolute relative error (None: unknown).
        n: Networks it was measured on.
        source: ``check`` or ``held-out``.
        target: The share within ±10 % the model is held to (a trained model's: 90 %).
    """

    within_10pct: float
    p95: float | None
    n: int
    source: str
    target: float = TARGET_WITHIN_10PCT

    @property
    def meets_target(self) -> bool:
        """Whether at least :attr:`target` of the networks were within ±10 %."""
        return self.within_10pct >= self.target

    def describe(self) -> str:
        """``96 % within ±10 % (check, n=100)``, flagged when below the target."""
        text = f"{self.within_10pct:.0%} within ±10 % ({self.source}, n={self.n})"
        if not self.meets_target:
            text += f", below the {self.target:.0%} target"
        return text


def fidelity(profile: Profile, model: LatencyModel | None = None, path: Path | None = None
             ) -> Fidelity | None:
    """The model's latest measured fidelity: its last check, else its build's held-out figure.

    Args:
        profile: The profile.
        model: The model (None: loaded from ``path``).
        path: The model's file (None: the profile's own, of the built-in family).
    """
    path = path or model_path(profile)
    model = model or load_model(profile, path)
    if model is None:
        return None
    check_file = path.with_suffix(".check.json")
    if check_file.is_file():
        try:
            f = json.loads(check_file.read_text())
            if f.get("checked", "") >= model.meta.get("created", ""):
                return Fidelity(float(f["within_10pct"]), f.get("p95_abs_rel_error"),
                                int(f["n"]), "check")
        except (OSError, ValueError, KeyError, TypeError):
            pass
    hold = model.meta.get("holdout") or {}
    if "within_10pct" not in hold:
        return None
    return Fidelity(float(hold["within_10pct"]), hold.get("p95_abs_rel_error"),
                    int(hold.get("n", 0)), "held-out")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None
