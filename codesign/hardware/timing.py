"""Timing models on this machine when it is not idle: see disturbance, re-time, say so.

A user's machine is rarely quiet, and a virtual machine's cores slow down in
bursts of milliseconds to seconds that the guest cannot see (measured here:
1.4 to 1.7x, on a third of 100-run windows, with nothing else running).
Three kinds of disturbance spoil a latency:

- *preemption*: another process shares the measuring core. Linux counts how
  often the measuring thread was switched out and how long it waited
  (``/proc/thread-self/schedstat``); the runs that absorbed a switch are
  re-timed, and a round that waited for its core is disturbed.
- *bursts*: the core is slower for a while. The timed runs of every model
  are split into rounds, interleaved across the models of a batch. A
  disturbance only ever slows a round down, so a model's latency is its
  fastest round that was not preempted (two timings of 100 networks a minute
  apart agreed within 5 % on 98 % of them this way, against 87 % for the
  median of the agreeing rounds and 59 % for rounds scaled by a reference);
  it needs a second round within the tolerance of that one, else it gets
  more rounds, after a short pause, on the core that was idlest meanwhile.
- *drift*: the machine is slower for minutes. Each round is paired with a
  short round of a reference network timed just before it; if the reference
  rounds paired with the rounds the batch's figures came from typically
  (their median) ran slower than the quietest seen in the process (beyond
  twice the tolerance), the whole batch is timed again after a pause, up to
  twice; if it stays slow, it is marked disturbed and its slow-down
  reported (``reference_ratio``).

One-thread timing is pinned to the idlest core. Only numpy and the LiteRT
interpreter are used here.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware import litert

PREEMPTED_SHARE = 0.25  # a round switched out in more of its runs than this is preempted
WAIT_SHARE = 0.10  # ... or one that waited for its core longer than this share of its time
MIN_ROUND_RUNS = 10
ABS_TOLERANCE_MS = 0.0005  # round medians within half a microsecond agree, whatever the ratio
MIN_ROUND_S = 0.004  # a model's round lasts at least this long, so it spans scheduler ticks
REFERENCE_ROUND_S = 0.001  # the reference's round before each model round
# A batch timed while the machine ran slow throughout is timed again after each pause (slow
# phases of this VM last from milliseconds to seconds; seen here: 1.4-1.6x on one batch in
# three right after TensorFlow had trained, whether it waited 0, 0.3, 1 or 3 s first).
BATCH_PAUSES_S = (0.05, 0.25)


@dataclass(frozen=True)
class TimingSettings:
    """How a batch is timed.

    Attributes:
        threads: Interpreter threads (one-thread timing is pinned to a core).
        resolver: Op resolver (see :func:`codesign.hardware.litert.make_interpreter`).
        warmup: Untimed runs first (more until steady).
        runs: Timed runs per model, split over the rounds.
        rounds: Rounds of runs per model.
        tolerance: Round medians within this fraction of each other agree; a
            round whose reference ran twice this much slower than its quietest
            is disturbed.
        extra_rounds: Most extra rounds for a model without two agreeing
            undisturbed rounds (each on the core that was idlest meanwhile).
        pause_s: Pause before an extra round (a burst may pass).
        batch_pauses_s: Pauses after which a batch that ran slow throughout is
            timed again as a whole (empty: never; a latency-model build has
            its own second pass instead).
    """

    threads: int = 1
    resolver: str = "auto"
    warmup: int = 20
    runs: int = 100
    rounds: int = 3
    tolerance: float = 0.04
    extra_rounds: int = 8
    pause_s: float = 0.02
    batch_pauses_s: tuple[float, ...] = BATCH_PAUSES_S


@dataclass
class _Entry:
    """One model being timed: its interpreter and the rounds so far."""

    interp: Any
    warmup: int
    host_rss_growth_mb: float | None
    rounds: list[np.ndarray] = field(default_factory=list)
    preempted: list[bool] = field(default_factory=list)
    slowdown: list[float] = field(default_factory=list)  # its reference's, per round

    def medians(self) -> list[float]:
        return [float(np.median(r)) for r in self.rounds]

    def quiet(self, tolerance: float) -> list[int]:
        """Rounds not preempted and within the tolerance of the fastest of them.

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
        retimed: Extra rounds timed because rounds were disturbed.
        runs_retimed: Single runs timed again because the thread was switched out.
        reference_ratio: How slow the reference ran just before the rounds
            the figures came from (the median over the models), against the
            quietest seen in this process (None without a reference).
        disturbed: True if some model never got two agreeing rounds, or the
            machine typically ran slow when the figures were taken.
        core: The core one-thread timing ran on (None: not pinned).
    """

    stats: list[litert.LatencyStats | str]
    retimed: int
    runs_retimed: int
    reference_ratio: float | None
    disturbed: bool
    core: int | None


class Timer:
    """Times models through LiteRT; remembers the quietest reference round seen.

    Args:
        settings: How to time.
        reference: A reference network's bytes (None: no reference rounds).
    """

    def __init__(self, settings: TimingSettings, reference: bytes | None = None) -> None:
        self.settings = settings
        self.reference = reference
        self.quietest_ms: float | None = None
        self.retimed_total = 0
        self.runs_retimed_total = 0
        self.measured_total = 0
        self._ref: _Entry | None = None

    def calibrate(self, tries: int = 5) -> float | None:
        """Time the reference alone a few times, apart, to learn its quiet median."""
        if self.reference is None:
            return None
        ref = self._reference_entry()
        runs = _runs_for(ref, REFERENCE_ROUND_S)
        for i in range(tries):
            if i:
                time.sleep(self.settings.pause_s * 5)
            _round(ref, runs)
        meds = sorted(ref.medians()[-tries:])
        value = meds[min(1, len(meds) - 1)]  # the second quietest: one lucky round is no rule
        self.quietest_ms = min(self.quietest_ms or math.inf, value)
        return self.quietest_ms

    def time(self, models: list[bytes], samples: list[np.ndarray]) -> BatchTiming:
        """Time a batch of models (one input sample each), re-timing what was disturbed."""
        if self.reference is not None and self.quietest_ms is None:
            self.calibrate()
        got = self._attempt(models, samples)
        self.retimed_total += got.retimed
        self.runs_retimed_total += got.runs_retimed
        self.measured_total += len(models)
        return got

    def _reference_entry(self) -> _Entry:
        """The reference's interpreter, made once (its allocation stays put)."""
        if self._ref is None:
            assert self.reference is not None
            self._ref = _prepare(self.reference, litert.random_sample(self.reference),
                                 self.settings)
        return self._ref

    def _attempt(self, models: list[bytes], samples: list[np.ndarray]) -> BatchTiming:
        s = self.settings
        pinned = _Pinning(s.threads)
        try:
            entries: list[_Entry | str] = []
            for blob, x in zip(models, samples, strict=True):
                try:
                    entries.append(_prepare(blob, x, s))
                except TrialFailure as exc:
                    entries.append(str(exc))
            live = [e for e in entries if isinstance(e, _Entry)]
            ref = self._reference_entry() if self.reference is not None else None
            per_round = _runs_per_round(live, s)
            ref_runs = _runs_for(ref, REFERENCE_ROUND_S) if ref is not None else 0
            runs_retimed = 0
            for _ in range(s.rounds):
                for e in live:
                    runs_retimed += self._paired_round(e, ref, per_round, ref_runs)
            retimed = 0
            for pause in (0.0, *s.batch_pauses_s):
                if pause:  # slow throughout: the whole batch again, after a pause
                    if not _slow(_drift(live, s.tolerance), s.tolerance):
                        break
                    time.sleep(pause)
                    pinned.repin()
                    for _ in range(s.rounds):
                        for e in live:
                            runs_retimed += self._paired_round(e, ref, per_round, ref_runs)
                            retimed += 1
                got = self._agree(live, ref, per_round, ref_runs, pinned)
                retimed += got[0]
                runs_retimed += got[1]
            disturbed = any(len(e.quiet(s.tolerance)) < 2 for e in live)
            stats: list[litert.LatencyStats | str] = [
                _stats(e, s.tolerance) if isinstance(e, _Entry) else e for e in entries]
            ratio = _drift(live, s.tolerance)
            if _slow(ratio, s.tolerance):
                disturbed = True  # slow throughout, even after the pauses: say so
            return BatchTiming(stats, retimed, runs_retimed, ratio, disturbed, pinned.core)
        finally:
            pinned.restore()

    def _agree(self, live: list[_Entry], ref: _Entry | None, per_round: int, ref_runs: int,
               pinned: _Pinning) -> tuple[int, int]:
        """Extra rounds for the models without two agreeing rounds; rounds and runs re-timed."""
        s = self.settings
        retimed = runs_retimed = 0
        for _ in range(s.extra_rounds):
            todo = [e for e in live if len(e.quiet(s.tolerance)) < 2]
            if not todo:
                break
            time.sleep(s.pause_s)
            pinned.repin()
            for e in todo:
                runs_retimed += self._paired_round(e, ref, per_round, ref_runs)
                retimed += 1
        return retimed, runs_retimed

    def _paired_round(self, e: _Entry, ref: _Entry | None, runs: int, ref_runs: int) -> int:
        """A round of the reference, then one of ``e``; note how slow the reference ran."""
        retimed = 0
        slowdown = 1.0
        if ref is not None:
            retimed += _round(ref, ref_runs)
            now = ref.medians()[-1] if not ref.preempted[-1] else math.inf
            if self.quietest_ms is None or now < self.quietest_ms:
                self.quietest_ms = min(now, self.quietest_ms or math.inf)
            slowdown = now / self.quietest_ms if math.isfinite(now) else math.inf
            del ref.rounds[:-20], ref.preempted[:-20]  # keep the reference's history short
        retimed += _round(e, runs)
        e.slowdown.append(slowdown)
        return retimed


def _runs_for(e: _Entry | None, seconds: float) -> int:
    """Runs of ``e`` that last about ``seconds`` (at least :data:`MIN_ROUND_RUNS`)."""
    if e is None:
        return 0
    t0 = time.perf_counter()
    e.interp.invoke()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(MIN_ROUND_RUNS, min(1000, math.ceil(seconds / once)))


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


def _candidates(e: _Entry, tolerance: float) -> list[int]:
    """The rounds a figure is taken from: the agreeing ones, else any not preempted, else all."""
    return e.quiet(tolerance) or [i for i, p in enumerate(e.preempted) if not p] or list(
        range(len(e.rounds)))


def _stats(e: _Entry, tolerance: float) -> litert.LatencyStats:
    """The fastest round's median, with spread figures over the rounds that agree with it."""
    keep = e.quiet(tolerance)
    rounds = _candidates(e, tolerance)
    meds = [e.medians()[i] for i in rounds]
    times = np.concatenate([e.rounds[i] for i in rounds])
    return litert.LatencyStats(
        median=float(min(meds)), p90=float(np.percentile(times, 90)),
        mean=float(times.mean()), std=float(times.std()), min=float(times.min()),
        runs=int(times.size), warmup=e.warmup, host_rss_growth_mb=e.host_rss_growth_mb,
        rounds=len(e.rounds), quiet_rounds=len(keep),
        spread=float(max(meds) / min(meds) - 1) if meds else 0.0)


def _slow(ratio: float | None, tolerance: float) -> bool:
    """Whether a drift ratio says the machine ran slow (beyond twice the tolerance)."""
    return ratio is not None and ratio > 1 + 2 * tolerance


def _drift(live: list[_Entry], tolerance: float) -> float | None:
    """How slow the machine ran when the batch's figures were taken, against its quietest.

    A model's figure is its fastest agreeing round; the reference round timed
    just before that round says how slow the machine was then. The batch's
    drift is the median of those over its models. Not the quietest reference
    round of the batch: a machine that slowed down right after the batch
    began (a busy neighbour on the host, a process on another core) would
    pass for quiet on the strength of one early round. Not the median of all
    its reference rounds either: a virtual machine's cores run slow in bursts
    even when nothing else runs (see the module's notes), so most batches of
    a quiet machine had some slow rounds, and their figures, taken from the
    fast rounds, were good (a quiet build flagged 112 of its 147 batches that
    way). None without a reference.
    """
    slow = []
    for e in live:
        if not e.slowdown:
            continue
        meds = e.medians()
        best = min(_candidates(e, tolerance), key=lambda i: meds[i])
        if math.isfinite(e.slowdown[best]):  # rounds and slow-downs are appended in pairs
            slow.append(e.slowdown[best])
    return float(np.median(slow)) if slow else None


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
