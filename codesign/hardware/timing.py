"""Timing models on this machine when it is not idle: see disturbance, re-time, say so.

A user's machine is rarely quiet, and a virtual machine's cores slow down in
bursts that the guest cannot see. Measured here with nothing else running
(``tools/core_noise.py``: four models in 2 ms windows for 8 s per core): a
core ran 1.3 to 2x slow on 13 to 99 % of the windows, in stretches of tens of
milliseconds to seconds, unevenly (a memory-bound model slowed more than a
compute-bound one), and each core on its own. No reference network can
scale that away, but the fast phase comes back: the fastest windows of a
model spread over a second or two agree within 1-2 % from one timing to the
next. So every model of a batch is timed in short *windows* (about 2 ms of
runs), cycled round-robin across the batch for at least
:attr:`TimingSettings.spread_s`, and its latency is the second fastest window
median (one lucky window is no rule). Three kinds of disturbance are handled:

- *preemption*: another process shares the measuring core. Linux counts how
  often the measuring thread was switched out and how long it waited
  (``/proc/thread-self/schedstat``); the runs that absorbed a switch are
  re-timed, a window that waited for its core is dropped, and the timing
  moves to the core that was idlest meanwhile.
- *bursts*: a core is slower for a while. One-thread timing hops to the
  other core whenever that one is idle, so a slow stretch of one core does
  not hold a whole batch. A model whose figure is not confirmed by
  :attr:`TimingSettings.confirm` windows within the tolerance gets more
  windows (counted as re-timed).
- *drift*: the machine is slower for longer than a batch. A small reference
  network is timed in every cycle; if its figure over the batch is slower
  than the quietest seen in this process (beyond twice the tolerance), the
  batch is timed again after each pause, and if it stays slow, it is marked
  disturbed and its slow-down reported (``reference_ratio``).

One-thread timing is pinned to one core at a time. Only numpy and the LiteRT
interpreter are used here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware import litert
from codesign.hardware.pinning import Pinning

PREEMPTED_SHARE = 0.25  # a window switched out in more of its runs than this is preempted
WAIT_SHARE = 0.10  # ... or one that waited for its core longer than this share of its time
MIN_WINDOW_RUNS = 3
WINDOW_S = 0.002  # a model's window lasts about this long (at least MIN_WINDOW_RUNS runs)
REFERENCE_WINDOW_S = 0.001  # the reference's window in every cycle
ABS_TOLERANCE_MS = 0.0005  # window medians within half a microsecond agree, whatever the ratio
HOP_S = 0.25  # one-thread timing considers moving to an idle core this often
# A batch timed while the machine ran slow throughout is timed again after each pause.
BATCH_PAUSES_S = (0.05, 0.25)


@dataclass(frozen=True)
class TimingSettings:
    """How a batch is timed.

    Attributes:
        threads: Interpreter threads (one-thread timing is pinned to a core).
        resolver: Op resolver (see :func:`codesign.hardware.litert.make_interpreter`).
        warmup: Untimed runs first (more until steady).
        runs: Timed runs per model, at least (over its windows).
        spread_s: A batch's windows are spread over at least this many seconds.
        min_windows: Windows per model, at least.
        confirm: Windows that must agree with a model's figure (within the
            tolerance) before it stands; a model with fewer gets more windows.
        tolerance: Window medians within this fraction of each other agree; a
            batch whose reference ran twice this much slower than its
            quietest is slow throughout.
        extend_s: Most extra seconds for models whose figure is not confirmed.
        settle_s: A batch may end after this many seconds, before ``spread_s``,
            once every model's figure is confirmed by two windows timed while
            the reference ran at its quietest (None: never; latency-model
            builds and checks spread in full).
        batch_pauses_s: Pauses after which a batch that ran slow throughout is
            timed again as a whole (empty: never).
    """

    threads: int = 1
    resolver: str = "auto"
    warmup: int = 20
    runs: int = 100
    spread_s: float = 0.5
    min_windows: int = 8
    confirm: int = 3
    tolerance: float = 0.04
    extend_s: float = 0.5
    settle_s: float | None = 0.1
    batch_pauses_s: tuple[float, ...] = BATCH_PAUSES_S


@dataclass
class _Entry:
    """One model being timed: its interpreter and its windows so far."""

    interp: Any
    warmup: int
    host_rss_growth_mb: float | None
    window_runs: int = MIN_WINDOW_RUNS
    windows: list[np.ndarray] = field(default_factory=list)
    preempted: list[bool] = field(default_factory=list)
    calm: list[bool] = field(default_factory=list)  # the reference ran at its quietest then
    meds: list[float] = field(default_factory=list)  # each window's median, kept as it lands

    def add(self, times: np.ndarray, preempted: bool) -> None:
        """Keep one window's runs (its median computed once: it is read every cycle)."""
        self.windows.append(times)
        self.meds.append(float(np.median(times)))
        self.preempted.append(preempted)

    def reset(self) -> None:
        """Forget the windows (the reference starts each batch afresh)."""
        self.windows.clear()
        self.meds.clear()
        self.preempted.clear()
        self.calm.clear()

    def medians(self) -> list[float]:
        return self.meds

    def timed_runs(self) -> int:
        return sum(w.size for w in self.windows)

    def figure(self) -> float | None:
        """The second fastest undisturbed window's median (the fastest if it is alone)."""
        meds = sorted(m for m, p in zip(self.medians(), self.preempted, strict=True) if not p)
        return meds[min(1, len(meds) - 1)] if meds else None

    def quiet(self, tolerance: float) -> list[int]:
        """Windows not preempted and within the tolerance of the figure.

        The tolerance is relative, with a floor of :data:`ABS_TOLERANCE_MS`: a
        model of a few microseconds jitters by a fraction of one.
        """
        best = self.figure()
        if best is None:
            return []
        limit = best + max(best * tolerance, ABS_TOLERANCE_MS)
        return [i for i, (m, p) in enumerate(zip(self.medians(), self.preempted, strict=True))
                if not p and m <= limit]

    def settled(self, tolerance: float) -> bool:
        """Whether two windows agreeing with the figure were timed while the machine was calm."""
        return sum(1 for i in self.quiet(tolerance) if i < len(self.calm) and self.calm[i]) >= 2


@dataclass(frozen=True)
class BatchTiming:
    """What timing a batch found.

    Attributes:
        stats: Per model, its figures, or the error that stopped it.
        retimed: Windows timed again because windows were disturbed (preempted,
            not yet confirming a figure, or the whole batch slow).
        runs_retimed: Single runs timed again because the thread was switched out.
        reference_ratio: How slow the reference ran over the batch (its
            figure) against the quietest seen in this process (None without a
            reference).
        disturbed: True if fewer than two windows agree with some model's figure, or the
            machine ran slow throughout.
        core: The core one-thread timing ended on (None: not pinned).
    """

    stats: list[litert.LatencyStats | str]
    retimed: int
    runs_retimed: int
    reference_ratio: float | None
    disturbed: bool
    core: int | None


class Timer:
    """Times models through LiteRT; remembers the quietest reference figure seen.

    Args:
        settings: How to time.
        reference: A reference network's bytes (None: no reference).
    """

    def __init__(self, settings: TimingSettings, reference: bytes | None = None) -> None:
        self.settings = settings
        self.reference = reference
        self.quietest_ms: float | None = None
        self.retimed_total = 0
        self.runs_retimed_total = 0
        self.measured_total = 0
        self._ref: _Entry | None = None

    def calibrate(self) -> float | None:
        """Time the reference alone, spread like a batch, to learn its quiet figure."""
        if self.reference is None:
            return None
        ref = self._reference_entry()
        pinned = Pinning(self.settings.threads)
        try:
            ref.reset()
            _Cycler(self.settings, pinned, None).spread([ref], self.settings.spread_s)
        finally:
            pinned.restore()
        value = ref.figure()
        if value is not None:
            self.quietest_ms = min(self.quietest_ms or math.inf, value)
        return value

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
            self._ref.window_runs = _runs_for(self._ref, REFERENCE_WINDOW_S)
        return self._ref

    def _attempt(self, models: list[bytes], samples: list[np.ndarray]) -> BatchTiming:
        s = self.settings
        pinned = Pinning(s.threads)
        try:
            entries: list[_Entry | str] = []
            for blob, x in zip(models, samples, strict=True):
                try:
                    entries.append(_prepare(blob, x, s))
                except TrialFailure as exc:
                    entries.append(str(exc))
            live = [e for e in entries if isinstance(e, _Entry)]
            for e in live:
                e.window_runs = _runs_for(e, WINDOW_S)
            ref = self._reference_entry() if self.reference is not None else None
            if ref is not None:
                ref.reset()
            cycler = _Cycler(s, pinned, self.quietest_ms)
            together = [*([ref] if ref is not None else []), *live]
            cycler.spread(together, s.spread_s, settle=s.settle_s)
            for pause in s.batch_pauses_s:  # slow throughout: the whole batch again
                if not _slow(self._ratio(ref), s.tolerance):
                    break
                time.sleep(pause)
                pinned.repin()
                cycler.spread(together, s.spread_s, retime=True)  # in full
            cycler.confirm(live, ref)
            ratio = self._ratio(ref)
            disturbed = _slow(ratio, s.tolerance) or any(
                len(e.quiet(s.tolerance)) < 2 for e in live)
            stats: list[litert.LatencyStats | str] = [
                _stats(e, s.tolerance) if isinstance(e, _Entry) else e for e in entries]
            return BatchTiming(stats, cycler.retimed, cycler.runs_retimed, ratio, disturbed,
                               pinned.core)
        finally:
            pinned.restore()

    def _ratio(self, ref: _Entry | None) -> float | None:
        """The reference's figure over this batch against the quietest seen (None: no reference)."""
        if ref is None:
            return None
        now = ref.figure()
        if now is None:
            return math.inf
        self.quietest_ms = min(self.quietest_ms or math.inf, now)
        return now / self.quietest_ms


class _Cycler:
    """Times windows of a batch's models round-robin, hopping cores, counting re-timings."""

    def __init__(self, settings: TimingSettings, pinned: Pinning,
                 quietest_ms: float | None) -> None:
        self.settings = settings
        self.pinned = pinned
        self.quietest_ms = quietest_ms
        self.retimed = 0
        self.runs_retimed = 0
        self._hop_at = time.perf_counter() + HOP_S

    def spread(self, entries: list[_Entry], seconds: float, retime: bool = False,
               settle: float | None = None) -> None:
        """Cycle over ``entries`` for ``seconds``, and until each has its windows and runs.

        With ``settle`` (and a reference first in ``entries``), stop as soon as
        that long has passed and every model is :meth:`_Entry.settled`.
        """
        s = self.settings
        start = time.perf_counter()
        first = {id(e): len(e.windows) for e in entries}
        models = entries[1:] if self.quietest_ms is not None else []
        while True:
            self._cycle(entries, count=retime)
            elapsed = time.perf_counter() - start
            enough = all(e.timed_runs() >= s.runs for e in entries)
            if (settle is not None and models and elapsed >= settle and enough
                    and all(e.settled(s.tolerance) for e in models)):
                return
            if elapsed >= seconds and enough and all(
                    len(e.windows) - first[id(e)] >= s.min_windows for e in entries):
                return

    def confirm(self, live: list[_Entry], ref: _Entry | None) -> None:
        """More windows for models whose figure too few windows agree with (within extend_s)."""
        s = self.settings
        deadline = time.perf_counter() + s.extend_s
        while time.perf_counter() < deadline:
            todo = [e for e in live if len(e.quiet(s.tolerance)) < s.confirm
                    and not e.settled(s.tolerance)]
            if not todo:
                return
            self._cycle([*([ref] if ref is not None else []), *todo], count=True)

    def _cycle(self, entries: list[_Entry], count: bool) -> None:
        """One window of each entry; preempted windows move the timing to another core.

        The first entry is the reference when there is one: each model's window
        notes whether the reference just ran within the tolerance of its quietest.
        """
        preempted = False
        calm = False
        for i, e in enumerate(entries):
            self.runs_retimed += _window(e)
            preempted = preempted or e.preempted[-1]
            self.retimed += int(count or e.preempted[-1])
            if i == 0 and self.quietest_ms is not None:
                calm = not e.preempted[-1] and e.meds[-1] <= (
                    self.quietest_ms * (1 + self.settings.tolerance))
            e.calm.append(calm)
        now = time.perf_counter()
        if preempted:
            self.pinned.repin()
            self._hop_at = time.perf_counter() + HOP_S
        elif now >= self._hop_at:
            self.pinned.hop()
            self._hop_at = now + HOP_S


def _runs_for(e: _Entry, seconds: float) -> int:
    """Runs of ``e`` that last about ``seconds`` (at least :data:`MIN_WINDOW_RUNS`)."""
    t0 = time.perf_counter()
    e.interp.invoke()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(MIN_WINDOW_RUNS, min(1000, math.ceil(seconds / once)))


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


def _window(e: _Entry) -> int:
    """Time one window of ``e``, re-timing the runs the thread was switched out in.

    Each time the measuring thread is switched out, one invocation absorbs the
    wait: of a stretch in which it was switched out ``k`` times, the ``k``
    slowest runs are dropped and ``k`` more are timed. A window that keeps
    being switched out (more than :data:`PREEMPTED_SHARE` of its runs), or
    that waited for its core more than :data:`WAIT_SHARE` of its time (sharing
    a core slows every run, seen here: 1.5x), is marked preempted.

    Returns:
        The runs re-timed.
    """
    runs = e.window_runs
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
    e.add(np.concatenate(kept) if have else _timed(e, runs)[0],
          have < runs or waited > WAIT_SHARE * wall)
    return retimed


def _stats(e: _Entry, tolerance: float) -> litert.LatencyStats:
    """The figure, with spread figures over the windows that agree with it."""
    keep = e.quiet(tolerance)
    use = keep or [i for i, p in enumerate(e.preempted) if not p] or list(range(len(e.windows)))
    meds = e.medians()
    times = np.concatenate([e.windows[i] for i in use])
    figure = e.figure()
    kept = [meds[i] for i in use]
    return litert.LatencyStats(
        median=float(figure if figure is not None else min(kept)),
        p90=float(np.percentile(times, 90)), mean=float(times.mean()), std=float(times.std()),
        min=float(times.min()), runs=int(times.size), warmup=e.warmup,
        host_rss_growth_mb=e.host_rss_growth_mb, rounds=len(e.windows), quiet_rounds=len(keep),
        spread=float(max(kept) / min(kept) - 1) if kept else 0.0)


def _slow(ratio: float | None, tolerance: float) -> bool:
    """Whether a reference ratio says the machine ran slow (beyond twice the tolerance)."""
    return ratio is not None and ratio > 1 + 2 * tolerance


def _schedstat() -> tuple[int, int] | None:
    """This thread's run-queue wait (ns) and times it was scheduled in (Linux), if known."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            parts = fh.read().split()
        return int(parts[1]), int(parts[2])
    except (OSError, IndexError, ValueError):
        return None
