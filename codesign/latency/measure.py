"""Convert sampled networks and time them on a profile's device (evaluation child only).

Conversions are cached per network (they do not depend on the profile), and
every measurement is appended to a JSON-lines file as soon as it is taken, so
an interrupted build goes on where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware import litert
from codesign.hardware.devicelock import device_lock
from codesign.hardware.profile import Profile
from codesign.hardware.runner import BenchSettings, CommandRunner, stats_of
from codesign.latency.model import latency_dir
from codesign.latency.sampling import space_from_dict
from codesign.space.candidate import Candidate

BATCH = 16  # models per copy-and-run on a remote device


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Measurements already in a JSON-lines file, by sample id (a torn last line is skipped)."""
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                out[rec["id"]] = rec
    return out


def converted(sample: dict[str, Any]) -> Path:
    """The sample's ``.tflite`` (random weights, its per-layer precisions), converted once."""
    path = latency_dir() / "models" / f"{sample['id']}.tflite"
    if path.is_file():
        return path
    from codesign.nn.bn import recalibrate_bn
    from codesign.nn.submodel import build_submodel
    from codesign.tflite.convert import convert

    space = space_from_dict(sample["space"])
    sub = space.subnet(Candidate.from_dict(sample["candidate"]))
    model = build_submodel(space, sub, sample["num_classes"], sample["channels"])
    rng = np.random.default_rng(0)
    calib = rng.random((64, sub.resolution, sub.resolution, sample["channels"]), np.float32)
    recalibrate_bn(model, calib)  # activations in a trained network's ranges
    blob = convert(model, sub.precision, calib)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return path


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def measure_samples(
    samples: list[dict[str, Any]], profile: Profile, out: Path,
    progress: Callable[[int, int], None], repeats: int = 1, budget_s: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Measure every sample not yet in ``out``; return all records of the samples.

    Args:
        samples: Networks from :mod:`codesign.latency.sampling`.
        profile: Where and how to time.
        out: JSON-lines file of measurements (appended to).
        progress: Called with (done, total).
        repeats: Measurements per network (more than one: its spread is recorded).
        budget_s: Stop starting new batches after this many seconds (the rest
            is measured by the next call).

    Raises:
        DeviceUnavailable: The device dropped out (what was measured is kept).
    """
    done = read_records(out)
    todo = [s for s in samples if s["id"] not in done]
    total, count = len(samples), len(samples) - len(todo)
    progress(count, total)
    runner = None
    if profile.remote:
        settings = BenchSettings(profile.threads, profile.resolver, profile.warmup_runs,
                                 profile.runs)
        runner = CommandRunner(profile.runner, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with out.open("a") as fh:
        for batch in _chunks(todo, BATCH if runner else 1):
            if budget_s is not None and time.monotonic() - start > budget_s:
                break
            paths, records = [], []
            for s in batch:
                try:
                    paths.append(converted(s))
                    records.append({"id": s["id"]})
                except (TrialFailure, ValueError, RuntimeError) as exc:
                    fh.write(json.dumps({"id": s["id"], "error": str(exc)[:300]}) + "\n")
            medians: list[list[float | None]] = [[] for _ in paths]
            errors: list[str | None] = [None] * len(paths)
            for _ in range(repeats):
                for i, res in enumerate(_time(paths, profile, runner)):
                    if isinstance(res, str):
                        errors[i] = res
                    else:
                        medians[i].append(res)
            for rec, meds, err in zip(records, medians, errors, strict=True):
                if err is not None:
                    rec["error"] = err
                else:
                    rec["median_ms"] = float(np.median(meds))
                    rec["medians_ms"] = meds
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                done[rec["id"]] = rec
            count += len(batch)
            progress(count, total)
    return {s["id"]: done[s["id"]] for s in samples if s["id"] in done}


def _time(paths: list[Path], profile: Profile, runner: CommandRunner | None
          ) -> list[float | str]:
    """Median latency of each model, or its error."""
    with device_lock(profile.device, exclusive=True):
        if runner is not None:
            _, entries = runner.measure(paths)
            out: list[float | str] = []
            for e in entries:
                try:
                    out.append(float(stats_of(e)["median"]))
                except TrialFailure as exc:
                    out.append(str(exc))
            return out
        results: list[float | str] = []
        for path in paths:
            blob = path.read_bytes()
            try:
                stats = litert.time_latency(blob, litert.random_sample(blob), profile.threads,
                                            profile.resolver, profile.warmup_runs, profile.runs)
                results.append(stats.median)
            except TrialFailure as exc:
                results.append(str(exc))
        return results

