"""Timing models on this machine when it is not idle: see disturbance, re-time, say so.

A user's machine is rarely quiet. Three kinds of disturbance spoil a latency:

- *preemption*: another process shares the measuring core. Linux counts how
  often the measuring thread was switched out (``/proc/thread-self/schedstat``);
  the runs that absorbed those waits are dropped, and a round switched out
  too often is disturbed.
- *bursts*: a slow-down of some milliseconds (another process's cache and
  memory traffic, the hypervisor). The timed runs of every model are split
  into rounds, interleaved across the models of a batch, so a burst spoils a
  round, not a model. Each model needs two rounds that agree within the
  tolerance; a model without them gets more rounds, on the
  core that was idlest meanwhile.
- *drift*: the whole machine is slower for minutes. A reference network is
  timed in every round; the ratio of its median to the quietest it was seen
  in this process says how much slower the batch ran, and a batch more than
  the tolerance slower is timed again after a pause (the best attempt is kept).

One-thread timing is pinned to the core that was idlest over the last
moment, and moved when that core gets busy. Only numpy and the LiteRT
interpreter are used here.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware import litert

PREEMPTED_SHARE = 0.25  # a round switched out in more of its runs than this is preempted
WAIT_SHARE = 0.10  # ... or one that waited for its core longer than this share of its time
MIN_ROUND_RUNS = 10
ABS_TOLERANCE_MS = 0.0005  # round medians within half a microsecond agree, whatever the ratio
MIN_ROUND_S = 0.004  # a round lasts at least this long, so it spans scheduler ticks


@dataclass(frozen=True)
class TimingSettings:
    """How a batch is timed.

    Attributes:
        threads: Interpreter threads (one-thread timing is pinned to a core).
        resolver: Op resolver (see :func:`codesign.hardware.litert.make_interpreter`).
        warmup: Untimed runs first (more until steady).
        runs: Timed runs per model, split over the rounds.
        rounds: Rounds of runs per model.
        tolerance: Round medians within this fraction of each other agree.
        extra_rounds: Most extra rounds for a model whose rounds disagree (each
            on the core that was idlest meanwhile).
        batch_attempts: Most times a whole batch is timed while the reference
            says the machine is slower than the tolerance (then the figures are
            scaled by the reference's slow-down).
        pause_s: Pause before a re-timing (doubles with each attempt).
    """

    threads: int = 1
    resolver: str = "auto"
    warmup: int = 20
    runs: int = 100
    rounds: int = 3
    tolerance: float = 0.04
    extra_rounds: int = 6
    batch_attempts: int = 4
    pause_s: float = 0.125


@dataclass
class _Entry:
    """One model being timed: its interpreter and the rounds so far."""

    interp: Any
    warmup: int
    peak_memory_mb: float | None
    rounds: list[np.ndarray] = field(default_factory=list)
    preempted: list[bool] = field(default_factory=list)

    def medians(self) -> list[float]:
        return [float(np.median(r)) for r in self.rounds]

    def quiet(self, tolerance: float) -> list[int]:
        """Rounds not preempted and within the tolerance of the fastest such round.

        The tolerance is relative, with a floor of :data:`ABS_TOLERANCE_MS`: a
        model of a few microseconds jitters by a fraction of one.
        """
        ok = [i for i, p in enumerate(self.preempted) if not p]
        if not ok:
            return []
        meds = self.medians()
        best = min(meds[i] for i in ok)
        return [i for i in ok if meds[i] <= best + max(best * tolerance, ABS_TOLERANCE_MS)]


@dataclass(frozen=True)
class BatchTiming:
    """What timing a batch found.

    Attributes:
        stats: Per model, its figures, or the error that stopped it.
        retimed: Rounds timed again because a round or the batch was disturbed.
        runs_retimed: Single runs timed again because the thread was switched out.
        reference_ratio: The batch's reference median over the quietest seen in
            this process (None without a reference).
        disturbed: True if some model never got two agreeing quiet rounds, or
            the reference stayed slower than the tolerance: the figures are the
            best this machine gave now.
        core: The core one-thread timing ran on (None: not pinned).
        scaled: The machine stayed slower than the tolerance through every
            attempt, so the figures were divided by the reference ratio (what
            it does at its quietest, as far as the reference network tells).
    """

    stats: list[litert.LatencyStats | str]
    retimed: int
    runs_retimed: int
    reference_ratio: float | None
    disturbed: bool
    core: int | None
    scaled: bool = False


class Timer:
    """Times models through LiteRT; remembers the quietest reference time seen.

    Args:
        settings: How to time.
        reference: A reference network's bytes (None: no drift check).
    """

    def __init__(self, settings: TimingSettings, reference: bytes | None = None) -> None:
        self.settings = settings
        self.reference = reference
        self.quietest_ms: float | None = None
        self.retimed_total = 0
        self.runs_retimed_total = 0
        self.scaled_total = 0
        self.measured_total = 0

    def calibrate(self, tries: int = 3) -> float | None:
        """Time the reference alone a few times, apart, to learn its quiet median."""
        if self.reference is None:
            return None
        sample = litert.random_sample(self.reference)
        keep, self.reference = self.reference, None
        try:
            for i in range(tries):
                if i:
                    time.sleep(self.settings.pause_s)
                got = self._attempt([keep], [sample]).stats[0]
                if isinstance(got, str):
                    raise TrialFailure(f"the reference network failed to run: {got}")
                self.quietest_ms = min(self.quietest_ms or math.inf, got.median)
        finally:
            self.reference = keep
        return self.quietest_ms

    def time(self, models: list[bytes], samples: list[np.ndarray]) -> BatchTiming:
        """Time a batch of models (one input sample each), re-timing what was disturbed."""
        s = self.settings
        if self.reference is not None and self.quietest_ms is None:
            self.calibrate()
        best: BatchTiming | None = None
        retimed = runs_retimed = 0
        for attempt in range(s.batch_attempts):
            if attempt:
                time.sleep(s.pause_s * 2**attempt)
            got = self._attempt(models, samples)
            retimed += got.retimed + (len(models) * s.rounds if attempt else 0)
            runs_retimed += got.runs_retimed
            if best is None or _ratio(got) < _ratio(best):
                best = got
            if not self._slow(got.reference_ratio):
                break
        assert best is not None
        self.retimed_total += retimed
        self.runs_retimed_total += runs_retimed
        self.measured_total += len(models)
        ratio = best.reference_ratio
        if not self._slow(ratio):
            return replace(best, retimed=retimed, runs_retimed=runs_retimed)
        # the machine stayed slow: report what it does at its quietest, scaled by the reference
        self.scaled_total += len(models)
        stats = [x if isinstance(x, str) else _scaled(x, 1.0 / ratio) for x in best.stats]
        return replace(best, stats=stats, retimed=retimed, runs_retimed=runs_retimed,
                       disturbed=True, scaled=True)

    def _slow(self, ratio: float | None) -> bool:
        """Whether a batch's reference ratio says the machine ran slower than the tolerance."""
        if ratio is None or self.quietest_ms is None:
            return False
        floor = ABS_TOLERANCE_MS / self.quietest_ms  # a tiny reference jitters by a fraction
        return ratio > 1 + max(self.settings.tolerance, floor)

    def _attempt(self, models: list[bytes], samples: list[np.ndarray]) -> BatchTiming:
        s = self.settings
        pinned = _Pinning(s.threads)
        try:
            entries: list[_Entry | str] = []
            blobs = list(models)
            inputs = list(samples)
            if self.reference is not None:
                blobs.insert(0, self.reference)
                inputs.insert(0, litert.random_sample(self.reference))
            for blob, x in zip(blobs, inputs, strict=True):
                try:
                    entries.append(_prepare(blob, x, s))
                except TrialFailure as exc:
                    entries.append(str(exc))
            live = [e for e in entries if isinstance(e, _Entry)]
            per_round = _runs_per_round(live, s)
            runs_retimed = 0
            for _ in range(s.rounds):
                for e in live:
                    runs_retimed += _round(e, per_round)
            retimed, disturbed = 0, False
            for _ in range(s.extra_rounds):
                todo = [e for e in live if len(e.quiet(s.tolerance)) < 2]
                if not todo:
                    break
                pinned.repin()
                for e in todo:
                    runs_retimed += _round(e, per_round)
                    retimed += 1
            else:
                disturbed = any(len(e.quiet(s.tolerance)) < 2 for e in live)
            stats: list[litert.LatencyStats | str] = [
                _stats(e, s.tolerance) if isinstance(e, _Entry) else e for e in entries]
            ratio = None
            if self.reference is not None:
                ref = stats.pop(0)
                if isinstance(ref, str):
                    raise TrialFailure(f"the reference network failed to run: {ref}")
                self.quietest_ms = min(self.quietest_ms or math.inf, ref.median)
                ratio = ref.median / self.quietest_ms
            return BatchTiming(stats, retimed, runs_retimed, ratio, disturbed, pinned.core)
        finally:
            pinned.restore()


def _scaled(x: litert.LatencyStats, factor: float) -> litert.LatencyStats:
    return replace(x, median=x.median * factor, p90=x.p90 * factor, mean=x.mean * factor,
                   std=x.std * factor, min=x.min * factor)


def _ratio(b: BatchTiming) -> float:
    return b.reference_ratio if b.reference_ratio is not None else 1.0


def _prepare(blob: bytes, x: np.ndarray, s: TimingSettings) -> _Entry:
    """An allocated interpreter with its input set, warmed up until steady."""
    base = litert.reset_peak_rss()
    interp = litert.make_interpreter(blob, s.threads, s.resolver)
    inp = interp.get_input_details()[0]  # type: ignore[attr-defined]
    try:
        interp.resize_tensor_input(inp["index"], [1, *x.shape[1:]])  # type: ignore[attr-defined]
        interp.allocate_tensors()  # type: ignore[attr-defined]
        interp.set_tensor(inp["index"], litert.to_input_dtype(x[:1], inp))  # type: ignore
        warm = litert.warm_up(interp, s.warmup)
    except (ValueError, RuntimeError) as exc:
        raise TrialFailure(f"the runtime failed to run the model: {exc}") from exc
    peak = litert.peak_rss()
    growth = None if base is None or peak is None else max(0.0, (peak - base) / 1024)
    return _Entry(interp, warm, growth)


def _runs_per_round(entries: list[_Entry], s: TimingSettings) -> int:
    """Runs per round: the asked runs split over the rounds, and long enough to span ticks."""
    per = max(MIN_ROUND_RUNS, math.ceil(s.runs / s.rounds))
    slowest = 0.0
    for e in entries:
        t0 = time.perf_counter()
        e.interp.invoke()
        slowest = max(slowest, time.perf_counter() - t0)
    if slowest > 0:
        per = max(per, min(10 * per, math.ceil(MIN_ROUND_S / slowest)))
    return per


def _timed(e: _Entry, runs: int) -> tuple[np.ndarray, int, int]:
    """``runs`` timed invocations, how often the thread was switched out, and its wait (ns)."""
    times = np.empty(runs, dtype=np.float64)
    before = _schedstat()
    for i in range(runs):
        t0 = time.perf_counter_ns()
        e.interp.invoke()
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    after = _schedstat()
    if before is None or after is None:
        return times, 0, 0
    return times, max(0, after[1] - before[1]), max(0, after[0] - before[0])


def _round(e: _Entry, runs: int) -> int:
    """Time a round of ``runs`` invocations, re-timing those the thread was switched out in.

    Each time the measuring thread is switched out, one invocation absorbs the
    wait: of a stretch in which it was switched out ``k`` times, the ``k``
    slowest runs are dropped and ``k`` more are timed. A round that keeps being
    switched out (more than :data:`PREEMPTED_SHARE` of its runs) is marked
    preempted.

    Returns:
        The runs re-timed.

    Sharing a core slows every run of a round (seen here: 1.5x on a core shared
    with one busy process, though each run was switched out at most once), so
    a round that waited for its core more than :data:`WAIT_SHARE` of its time
    is preempted too, and is timed again on another core.
    """
    kept: list[np.ndarray] = []
    have = retimed = switched_all = waited = 0
    want = runs
    start = time.perf_counter_ns()
    while have < runs and switched_all <= PREEMPTED_SHARE * runs:
        times, switched, wait = _timed(e, want)
        if switched:
            times = np.sort(times)[: max(0, want - switched)]
        kept.append(times)
        have += times.size
        retimed += switched
        switched_all += switched
        waited += wait
        want = runs - have
    wall = max(1, time.perf_counter_ns() - start)
    e.rounds.append(np.concatenate(kept) if have else _timed(e, runs)[0])
    # sharing the core slows every run of the round, not only the ones switched out in
    e.preempted.append(have < runs or waited > WAIT_SHARE * wall)
    return retimed


def _stats(e: _Entry, tolerance: float) -> litert.LatencyStats:
    """Figures over the quiet rounds (over every round if none was quiet)."""
    keep = e.quiet(tolerance) or list(range(len(e.rounds)))
    times = np.concatenate([e.rounds[i] for i in keep])
    meds = [e.medians()[i] for i in keep]
    return litert.LatencyStats(
        median=float(np.median(times)), p90=float(np.percentile(times, 90)),
        mean=float(times.mean()), std=float(times.std()), min=float(times.min()),
        runs=int(times.size), warmup=e.warmup, peak_memory_mb=e.peak_memory_mb,
        rounds=len(e.rounds), quiet_rounds=len(keep),
        spread=float(max(meds) / min(meds) - 1) if meds else 0.0)


def _schedstat() -> tuple[int, int] | None:
    """This thread's run-queue wait (ns) and times it was scheduled in (Linux), if known."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            parts = fh.read().split()
        return int(parts[1]), int(parts[2])
    except (OSError, IndexError, ValueError):
        return None


def _idle_ticks() -> dict[int, int]:
    """Idle plus iowait jiffies per core, from /proc/stat."""
    out: dict[int, int] = {}
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("cpu") and line[3:4].isdigit():
                    parts = line.split()
                    out[int(parts[0][3:])] = int(parts[4]) + int(parts[5])
    except (OSError, ValueError, IndexError):
        return {}
    return out


class _Pinning:
    """Pins one-thread timing to the idlest allowed core; restores the affinity after."""

    SAMPLE_S = 0.05

    def __init__(self, threads: int) -> None:
        self.core: int | None = None
        self._old: set[int] | None = None
        if threads != 1 or not hasattr(os, "sched_setaffinity"):
            return
        self._old = os.sched_getaffinity(0)
        if len(self._old) > 1:
            self.repin()

    def repin(self) -> None:
        """Move to the core that was idlest over a short sample."""
        if self._old is None or len(self._old) < 2:
            return
        a = _idle_ticks()
        time.sleep(self.SAMPLE_S)
        b = _idle_ticks()
        allowed = sorted(self._old)
        idle = {c: b.get(c, 0) - a.get(c, 0) for c in allowed}
        if self.core is not None:
            idle[self.core] = idle.get(self.core, 0) + 1  # on a tie, stay
        core = max(allowed, key=lambda c: idle.get(c, 0))
        os.sched_setaffinity(0, {core})
        self.core = core

    def restore(self) -> None:
        if self._old is not None and self.core is not None:
            os.sched_setaffinity(0, self._old)
