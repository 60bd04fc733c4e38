"""``codesign profile build`` and ``codesign profile check``: fit and test a latency model."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from codesign.errors import CodesignError, DeviceUnavailable, TrialFailure
from codesign.hardware.profile import Profile
from codesign.latency.features import features, kernels
from codesign.latency.model import LatencyModel, errors, fit, latency_dir
from codesign.latency.sampling import block_networks, space_from_dict, whole_networks
from codesign.space.candidate import Candidate
from codesign.tflite.support import lookup

HOLDOUT = 0.2  # share of whole networks kept out of the fit to report its error
WHOLE_WEIGHT = 5.0  # whole networks are what is predicted; block networks widen the coverage
ANCHORS = 12  # whole networks re-measured before each use of the model (speed factor)
CHECK_SEED = 2_000_003  # check networks differ from every build network


def profile_key(profile: Profile) -> str:
    """A short hash of what the profile measures with (its files are named by it)."""
    text = json.dumps(profile.identity(), sort_keys=True)
    return f"{profile.name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def model_path(profile: Profile) -> Path:
    """Where the profile's latency model is kept on this machine."""
    return latency_dir() / f"{profile_key(profile)}.json"


def delegated(profile: Profile) -> tuple[str, ...]:
    """Precisions the profile's delegate takes (none without a known delegate)."""
    if profile.resolver != "auto":
        return ()
    try:
        return lookup(profile.runtime, profile.runtime_version, profile.resolver).delegated
    except CodesignError:
        return ()


def network_features(sample: dict[str, Any], delegate: tuple[str, ...]) -> dict[str, float]:
    """Features of one sampled network."""
    space = space_from_dict(sample["space"])
    cand = Candidate.from_dict(sample["candidate"])
    return features(kernels(space, cand, sample["num_classes"], sample["channels"]), delegate)


def load_model(profile: Profile) -> LatencyModel | None:
    """The profile's latency model on this machine, if one was built for its settings."""
    path = model_path(profile)
    if not path.is_file():
        return None
    model = LatencyModel.load(path)
    if model.profile != json.loads(json.dumps(profile.identity())):
        return None
    return model


def _measure(profile: Profile, samples: list[dict[str, Any]], out: Path, desc: str,
             stream: TextIO, repeats: int = 1, budget_s: float | None = None,
             worker: Any = None) -> dict[str, dict[str, Any]]:
    """Measure samples in an evaluation child (``worker``, else a new one), with progress."""
    from codesign.worker import EvalWorker

    bar = tqdm(total=len(samples), desc=desc, unit="net", file=stream)

    def progress(info: dict[str, Any]) -> None:
        bar.total = info["total"]
        bar.update(info["done"] - bar.n)

    kwargs = {"samples": samples, "profile": profile.path, "out": str(out),
              "repeats": repeats, "budget_s": budget_s}
    try:
        if worker is not None:
            return worker.call("latency_measure", progress=progress, timeout_s=None, **kwargs)
        with EvalWorker(log_path=str(latency_dir() / "logs" / "worker.log")) as own:
            return own.call("latency_measure", progress=progress, timeout_s=None, **kwargs)
    except TrialFailure as exc:
        if worker is not None and isinstance(exc, DeviceUnavailable):
            raise  # a search waits for the device
        raise CodesignError(f"measuring on {profile.name} failed: {exc}; rerun to go on "
                            "(what was measured is kept)") from None
    finally:
        bar.close()


def build(profile: Profile, blocks: int = 300, whole: int = 100, seed: int = 0,
          budget_min: float = 30.0, stream: TextIO = sys.stdout) -> LatencyModel:
    """Measure sampled networks on the profile's device and fit its latency model.

    Args:
        profile: The hardware profile.
        blocks: Block networks to measure.
        whole: Whole candidates of the default space to measure.
        seed: Sampling seed.
        budget_min: Measuring stops after this many minutes (rerun to measure the rest).
        stream: Where progress goes.

    Returns:
        The saved model.
    """
    t0 = time.perf_counter()
    samples = (block_networks(blocks, seed, profile.precisions)
               + whole_networks(whole, seed + 1, profile.precisions))
    meas = latency_dir() / f"{profile_key(profile)}.measurements.jsonl"
    records = _measure(profile, samples, meas, f"measuring on {profile.name}", stream,
                       budget_s=budget_min * 60)
    delegate = delegated(profile)
    rows, lat, is_whole, kept = [], [], [], []
    n_blocks = len(samples) - whole
    for i, s in enumerate(samples):
        rec = records.get(s["id"])
        if rec is None or "median_ms" not in rec:
            continue
        rows.append(network_features(s, delegate))
        lat.append(rec["median_ms"])
        is_whole.append(i >= n_blocks)
        kept.append(s)
    weight = [WHOLE_WEIGHT if w else 1.0 for w in is_whole]
    if len(rows) < 20:
        raise CodesignError(f"only {len(rows)} networks measured on {profile.name}; rerun "
                            "codesign profile build to measure more")
    rng = np.random.default_rng(seed)
    held = {i for i in np.flatnonzero(is_whole) if rng.random() < HOLDOUT}
    train = [i for i in range(len(rows)) if i not in held]
    coef = fit([rows[i] for i in train], [lat[i] for i in train], [weight[i] for i in train])
    probe = LatencyModel(profile.identity(), coef)
    holdout = errors([probe.predict(rows[i]) for i in sorted(held)],
                     [lat[i] for i in sorted(held)]) if len(held) > 1 else {}
    model = LatencyModel(
        profile=json.loads(json.dumps(profile.identity())),
        coef=fit(rows, lat, weight),
        meta={
            "runtime": f"{profile.runtime} {profile.runtime_version}",
            "device": profile.device,
            "codesign": _version("codesign"),
            "ai-edge-quantizer": _version("ai-edge-quantizer"),
            "networks": {"block": sum(not w for w in is_whole), "whole": sum(is_whole)},
            "failed": sum(1 for r in records.values() if "error" in r),
            "features": sorted({k for r in rows for k in r}),
            "holdout": holdout,
            "anchors": _anchors(kept, lat, is_whole),
            "seconds": round(time.perf_counter() - t0, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    model.save(model_path(profile))
    return model


def _anchors(samples: list[dict[str, Any]], lat: list[float], is_whole: list[bool]
             ) -> list[dict[str, Any]]:
    """Whole networks across the latency range, with their latency when the model was built."""
    idx = [i for i, w in enumerate(is_whole) if w] or list(range(len(samples)))
    idx.sort(key=lambda i: lat[i])
    picks = sorted({idx[round(q * (len(idx) - 1))] for q in np.linspace(0, 1, ANCHORS)})
    return [{"sample": samples[i], "median_ms": lat[i]} for i in picks]


def speed_factor(profile: Profile, model: LatencyModel, stream: TextIO = sys.stdout,
                 worker: Any = None) -> float:
    """How fast the device runs now against when the model was built.

    A shared or throttled machine drifts by a few percent between runs (seen
    here: 4 % between two measurements of the same 100 networks minutes
    apart, while repeats within one run agree to 1 %). The model's anchor
    networks are measured again and the median ratio scales every prediction.

    Returns:
        Median of now / then over the anchors (1.0 without anchors), within [0.5, 2].
    """
    anchors = model.meta.get("anchors") or []
    if not anchors:
        return 1.0
    out = latency_dir() / "logs" / f"anchors-{profile_key(profile)}-{time.time_ns()}.jsonl"
    try:
        now = _measure(profile, [a["sample"] for a in anchors], out, "speed factor", stream,
                       worker=worker)
    finally:
        out.unlink(missing_ok=True)
    ratios = [now[a["sample"]["id"]]["median_ms"] / a["median_ms"] for a in anchors
              if "median_ms" in now.get(a["sample"]["id"], {})]
    return float(np.clip(np.median(ratios), 0.5, 2.0)) if ratios else 1.0


def check(profile: Profile, n: int = 100, seed: int = CHECK_SEED, stream: TextIO = sys.stdout
          ) -> dict[str, Any]:
    """Measure ``n`` random default-space candidates and compare them with the model.

    Returns:
        Agreement figures and the profile's noise floor (saved beside the model).

    Raises:
        CodesignError: If the profile has no latency model on this machine.
    """
    model = load_model(profile)
    if model is None:
        raise CodesignError(f"profile {profile.name} has no latency model on this machine for "
                            f"its settings; run: codesign profile build {profile.name}")
    samples = whole_networks(n, seed, profile.precisions)
    meas = latency_dir() / f"{profile_key(profile)}.check.jsonl"
    meas.unlink(missing_ok=True)  # a check measures now, as a search would
    speed = speed_factor(profile, model, stream)
    records = _measure(profile, samples, meas, f"checking on {profile.name}", stream)
    delegate = delegated(profile)
    pred, real, raw = [], [], []
    for s in samples:
        rec = records.get(s["id"], {})
        if "median_ms" in rec:
            feats = network_features(s, delegate)
            pred.append(model.predict(feats, speed))
            raw.append(model.predict(feats))
            real.append(rec["median_ms"])
    if len(real) < 2:
        raise CodesignError(f"fewer than 2 of {n} networks could be measured on {profile.name}")
    figures = errors(pred, real)
    order = np.argsort(real)
    picks = [samples[i] for i in (order[0], order[len(order) // 2], order[-1])]
    noise_file = latency_dir() / f"{profile_key(profile)}.noise.jsonl"
    noise_file.unlink(missing_ok=True)
    noise = _measure(profile, picks, noise_file, "noise floor", stream, repeats=5)
    cvs = [float(np.std(r["medians_ms"]) / np.mean(r["medians_ms"]))
           for r in noise.values() if "medians_ms" in r]
    figures.update({
        "profile": profile.name,
        "speed_factor": speed,
        "without_speed_factor": errors(raw, real),
        "noise_floor_cv": float(np.median(cvs)) if cvs else None,
        "measured_ms": {"min": float(min(real)), "median": float(np.median(real)),
                        "max": float(max(real))},
        "model": str(model_path(profile)),
    })
    out = model_path(profile).with_suffix(".check.json")
    out.write_text(json.dumps(figures, indent=1))
    return figures


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None
