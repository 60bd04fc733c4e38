"""Convert sampled networks and time them on a profile's device (evaluation child only).

Conversions are cached per network (they do not depend on the profile), and
every measurement is appended to a JSON-lines file as soon as it is taken, so
an interrupted build goes on where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware import litert
from codesign.hardware.devicelock import device_lock
from codesign.hardware.profile import Profile
from codesign.hardware.runner import BenchSettings, CommandRunner, stats_of
from codesign.hardware.timing import BatchTiming, Timer, TimingSettings
from codesign.latency.model import latency_dir
from codesign.latency.sampling import reference_network, space_from_dict
from codesign.run.files import write_atomic
from codesign.space.candidate import Candidate

BATCH = 16  # models per copy-and-run on a remote device
LOCAL_BATCH = 16  # models timed together here, their windows interleaved
# A build's or check's batch spreads its windows over this long (searches: the timer's 0.5 s).
# Batches of 16 over 2 s and of 8 over 1 s cost the same and repeat about as well here
# (tools/bench_timing.py: 81 and 100 % within ±10 %, against 94 and 100 %, in two runs); the
# longer spread reaches further past a slow stretch of the machine.
BUILD_SPREAD_S = 2.0
# Here, every network is timed in a second pass, in other company and minutes later: a burst
# of the host can slow a whole batch (every model of one batch by 1.35-1.6x, seen in a check
# of 100 networks) without slowing the reference network between its rounds, and a
# disturbance only ever slows a timing down, so the faster of the two passes counts.
LOCAL_PASSES = 2


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


def converted_path(sample: dict[str, Any]) -> Path:
    """Where the sample's converted ``.tflite`` is cached (shared by every profile)."""
    return latency_dir() / "models" / f"{sample['id']}.tflite"


def converted(sample: dict[str, Any]) -> Path:
    """The sample's ``.tflite`` (random weights, its per-layer precisions), converted once."""
    path = converted_path(sample)
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
    write_atomic(path, blob)
    return path


def local_timer(profile: Profile, batch_retries: bool = True) -> Timer:
    """A timer for the profile's runtime settings on this machine, with the reference network.

    Every local timing batch also times :func:`reference_network`, so drift of
    the machine's speed is seen and re-timed (see :mod:`codesign.hardware.timing`).

    Args:
        profile: The profile.
        batch_retries: Time a batch that ran slow throughout again, after
            pauses (a build has its deferred batches and second pass instead:
            with both, a quiet build took 12 instead of 7.5 minutes and was no
            better).
    """
    settings = TimingSettings(profile.threads, profile.resolver, profile.warmup_runs,
                              profile.runs)
    if not batch_retries:  # a build spreads every batch in full, and has a second pass
        settings = replace(settings, batch_pauses_s=(), settle_s=None, spread_s=BUILD_SPREAD_S)
    return Timer(settings, reference=converted(reference_network()).read_bytes())


def latency_record(stats: litert.LatencyStats, batch: BatchTiming, profile: Profile
                   ) -> dict[str, Any]:
    """A local timing as the ``latency_ms`` record of a trial (with what disturbed it)."""
    return {**stats.to_dict(), "device": profile.device,
            "runtime": f"{profile.runtime} {profile.runtime_version}",
            "retimed": batch.retimed, "runs_retimed": batch.runs_retimed,
            "reference_ratio": batch.reference_ratio, "disturbed": batch.disturbed}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def measure_samples(
    samples: list[dict[str, Any]], profile: Profile, out: Path,
    progress: Callable[[int, int], None], repeats: int = 1, budget_s: float | None = None,
    convert: Callable[[dict[str, Any]], Path] | None = None,
) -> dict[str, Any]:
    """Measure every sample not yet in ``out``; return all their records and a summary.

    Locally, samples are timed in batches with the reference network (see
    :mod:`codesign.hardware.timing`); a batch the machine was disturbed in is
    put back and timed once more at the end, and (with one repeat) every
    network is timed again in a second pass, in batches of other networks; the
    faster pass counts (:data:`LOCAL_PASSES`). Each record keeps the latency
    (``median_ms``: the second fastest undisturbed window median; ``quiet_ms``, what
    a latency model learns, is the same), the machine's slow-down against its
    quietest (``reference_ratio``) and how many windows and runs were re-timed.

    Args:
        samples: Networks from :mod:`codesign.latency.sampling`.
        profile: Where and how to time.
        out: JSON-lines file of measurements (appended to).
        progress: Called with (done, total).
        repeats: Measurements per network (more than one: its spread is recorded).
        budget_s: Stop starting new batches after this many seconds (the rest
            is measured by the next call).
        convert: A sample's converted file (None: :func:`converted`, a network of
            the built-in family; a trained model's candidates bring their own).

    Returns:
        ``{"records": {id: record}, "timing": TimingSummary as a dict}``.

    Raises:
        DeviceUnavailable: The device dropped out (what was measured is kept).
    """
    convert = convert or converted
    done = read_records(out)
    todo = [s for s in samples if s["id"] not in done]
    passes = LOCAL_PASSES if repeats == 1 and not profile.remote else 1
    total = len(samples) * passes
    count = len(samples) - len(todo) + sum(
        1 for s in samples if done.get(s["id"], {}).get("passes", 1) >= passes > 1)
    progress(count, total)
    runner = timer = None
    if profile.remote:
        settings = BenchSettings(profile.threads, profile.resolver, profile.warmup_runs,
                                 profile.runs)
        runner = CommandRunner(profile.runner, settings)
    else:
        timer = local_timer(profile, batch_retries=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = TimingSummary()
    start = time.monotonic()
    queue = [(batch, False) for batch in _chunks(todo, BATCH if runner else LOCAL_BATCH)]
    with out.open("a") as fh:
        while queue:
            batch, again = queue.pop(0)
            if budget_s is not None and time.monotonic() - start > budget_s:
                break
            paths, records = [], []
            for s in batch:
                try:
                    paths.append(convert(s))
                    records.append({"id": s["id"]})
                except (TrialFailure, ValueError, RuntimeError) as exc:
                    fh.write(json.dumps({"id": s["id"], "error": str(exc)[:300]}) + "\n")
            timed = [_time(paths, profile, runner, timer) for _ in range(repeats)]
            summary.add(timed)
            if not again and any(t.disturbed for t in timed) and runner is None:
                queue.append((batch, True))  # the machine was busy: try once more later
                summary.deferred += 1
                continue
            for i, rec in enumerate(records):
                _fill(rec, [t.entries[i] for t in timed], timed)
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                done[rec["id"]] = rec
            count += len(batch)
            progress(count, total)
        if passes > 1 and timer is not None and (
                budget_s is None or time.monotonic() - start <= budget_s):
            count = _second_pass(samples, done, fh, (profile, timer, summary, convert),
                                 (count, total, progress), (start, budget_s))
    if timer is not None:  # the same measure as a later use takes (see build.drift)
        timer.quietest_ms = None
        summary.reference_ms = timer.calibrate()
    return {"records": {s["id"]: done[s["id"]] for s in samples if s["id"] in done},
            "timing": asdict(summary)}


def _second_pass(samples: list[dict[str, Any]], done: dict[str, dict[str, Any]], fh: Any,
                 timing: tuple[Profile, Timer, TimingSummary, Callable[[dict[str, Any]], Path]],
                 shown: tuple[int, int, Callable[[int, int], None]],
                 clock: tuple[float, float | None]) -> int:
    """Time every measured network once more, in other batches; keep the faster timing.

    The batches are the networks in another order (a fixed shuffle), so no
    network meets the same neighbours, and they come after the whole first
    pass. An updated record is appended (the last line of an id counts).

    Returns:
        Networks counted as done, for the progress display.
    """
    profile, timer, summary, convert = timing
    count, total, progress = shown
    start, budget_s = clock
    todo = [s for s in samples if "median_ms" in done.get(s["id"], {})
            and done[s["id"]].get("passes", 1) < LOCAL_PASSES]
    order = np.random.default_rng(len(todo)).permutation(len(todo))
    todo = [todo[i] for i in order]
    for batch in _chunks(todo, LOCAL_BATCH):
        if budget_s is not None and time.monotonic() - start > budget_s:
            break
        timed = _time([convert(s) for s in batch], profile, None, timer)
        summary.add([timed])
        for s, entry in zip(batch, timed.entries, strict=True):
            rec = dict(done[s["id"]])
            if not isinstance(entry, str):
                rec["medians_ms"] = [*rec.get("medians_ms", [rec["median_ms"]]), float(entry)]
                rec["median_ms"] = rec["quiet_ms"] = min(rec["medians_ms"])
                rec["retimed"] = rec.get("retimed", 0) + timed.retimed
                rec["runs_retimed"] = rec.get("runs_retimed", 0) + timed.runs_retimed
            rec["passes"] = LOCAL_PASSES
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[s["id"]] = rec
        count += len(batch)
        progress(count, total)
    return count


@dataclass
class TimingSummary:
    """How a measurement of many networks went.

    Attributes:
        batches: Batches timed (a deferred one counts twice).
        retimed: Rounds re-timed because a burst or drift disturbed them.
        runs_retimed: Single runs re-timed because the thread was switched out.
        disturbed: Batches the machine stayed disturbed in.
        deferred: Batches put back to be timed again at the end.
        worst_ratio: The largest reference ratio seen (how much slower the machine ran).
        reference_lost: Batches in which no window of the reference network ran
            undisturbed (the machine too busy to say how slow it ran).
        reference_ms: The reference network's quiet median after the measuring, taken
            as a later use takes it (second quietest of five rounds; None: remote).
    """

    batches: int = 0
    retimed: int = 0
    runs_retimed: int = 0
    disturbed: int = 0
    deferred: int = 0
    worst_ratio: float = 1.0
    reference_lost: int = 0
    reference_ms: float | None = None

    def add(self, timed: list[_Timed]) -> None:
        """Count one batch's timings."""
        self.batches += 1
        self.retimed += sum(t.retimed for t in timed)
        self.runs_retimed += sum(t.runs_retimed for t in timed)
        self.disturbed += any(t.disturbed for t in timed)
        ratios = [t.reference_ratio for t in timed if t.reference_ratio is not None]
        self.reference_lost += any(not math.isfinite(r) for r in ratios)
        self.worst_ratio = max([self.worst_ratio, *(r for r in ratios if math.isfinite(r))])


@dataclass
class _Timed:
    """One timing of a batch: per model its median or error, and what disturbed it."""

    entries: list[float | str]
    reference_ratio: float | None = None
    retimed: int = 0
    runs_retimed: int = 0
    disturbed: bool = False


def _fill(rec: dict[str, Any], entries: list[float | str], timed: list[_Timed]) -> None:
    """Write one network's medians (or error) and the batch's disturbance into its record."""
    errors = [e for e in entries if isinstance(e, str)]
    if errors:
        rec["error"] = errors[0]
        return
    meds = [float(e) for e in entries]
    ratios = [t.reference_ratio for t in timed if t.reference_ratio is not None]
    ratio = float(np.median(ratios)) if ratios else 1.0
    rec["median_ms"] = float(np.median(meds))
    rec["medians_ms"] = meds
    rec["quiet_ms"] = rec["median_ms"]  # the fastest undisturbed round (older records: raw)
    rec["reference_ratio"] = ratio
    rec["retimed"] = sum(t.retimed for t in timed)
    rec["runs_retimed"] = sum(t.runs_retimed for t in timed)
    rec["disturbed"] = any(t.disturbed for t in timed)


def _time(paths: list[Path], profile: Profile, runner: CommandRunner | None,
          timer: Timer | None) -> _Timed:
    """Median latency of each model, or its error, and how the batch was disturbed."""
    with device_lock(profile.device, exclusive=True):
        if runner is not None:
            _, entries = runner.measure(paths)
            out: list[float | str] = []
            for e in entries:
                try:
                    out.append(float(stats_of(e)["median"]))
                except TrialFailure as exc:
                    out.append(str(exc))
            return _Timed(out)
        assert timer is not None
        blobs = [p.read_bytes() for p in paths]
        got = timer.time(blobs, [litert.random_sample(b) for b in blobs])
        return _Timed([s if isinstance(s, str) else s.median for s in got.stats],
                      got.reference_ratio, got.retimed, got.runs_retimed, got.disturbed)
