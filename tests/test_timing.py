"""Timing on a machine that is not idle: disturbance is seen, re-timed and reported."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from codesign.hardware import litert
from codesign.hardware.pinning import HOP_IDLE_SHARE, idle_ticks
from codesign.hardware.timing import BATCH_PAUSES_S, Timer, TimingSettings
from codesign.latency.measure import converted
from codesign.latency.sampling import reference_network, whole_networks

BUSY = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass\n"


@pytest.fixture(scope="module")
def models() -> tuple[bytes, list[bytes]]:
    """The reference network and four default-space candidates, converted for real."""
    ref = converted(reference_network()).read_bytes()
    nets = [converted(s).read_bytes() for s in whole_networks(4, 7, ("float32", "int8"))]
    return ref, nets


def _samples(blobs: list[bytes]) -> list[np.ndarray]:
    return [litert.random_sample(b) for b in blobs]


def _idle_shares(seconds: float = 0.5) -> dict[int, float]:
    """Each allowed core's idle share over ``seconds`` while this test waits."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, before = time.monotonic(), idle_ticks()
    time.sleep(seconds)
    t1, after = time.monotonic(), idle_ticks()
    return {c: (after.get(c, 0) - before.get(c, 0)) / ((t1 - t0) * hz)
            for c in os.sched_getaffinity(0)}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to move between")
def test_a_busy_process_on_the_measuring_core_is_seen_and_retimed(
        models: tuple[bytes, list[bytes]]) -> None:
    ref, nets = models
    settings = TimingSettings(threads=1, resolver="auto", warmup=20, runs=1500)
    quiet = Timer(settings, reference=ref).time(nets, _samples(nets))
    idle = _idle_shares()  # what else the machine runs (make test beside a busy process)
    timer = Timer(settings, reference=ref)
    timer.calibrate()
    me = threading.get_native_id()
    started: list[subprocess.Popen] = []
    loaded: list[int] = []

    def disturb() -> None:
        # wait until the timer has pinned this thread to a core, then load exactly that core
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cores = os.sched_getaffinity(me)
            if len(cores) == 1:
                time.sleep(0.05)  # mid-batch
                core = next(iter(cores))
                loaded.append(core)
                started.append(subprocess.Popen([sys.executable, "-c", BUSY, str(core)]))
                return
            time.sleep(0.002)

    helper = threading.Thread(target=disturb)
    helper.start()
    try:
        busy = timer.time(nets, _samples(nets))
    finally:
        helper.join()
        for p in started:
            p.kill()
            p.wait()
    assert started, "the timer never pinned the measuring thread to one core"
    assert busy.retimed > 0, "the disturbance went unseen"  # windows timed again ...
    # ... on another core where one was idle; where every other core ran something else
    # too, the timer may stay, dropping the preempted windows (the figures are checked below)
    assert busy.core is not None
    if any(share >= HOP_IDLE_SHARE for c, share in idle.items() if c != loaded[0]):
        assert busy.core != loaded[0] or busy.disturbed, idle
    assert timer.retimed_total >= busy.retimed
    for a, b in zip(quiet.stats, busy.stats, strict=True):
        assert not isinstance(a, str) and not isinstance(b, str)
    slower = [b.median >= 1.3 * a.median for a, b in zip(quiet.stats, busy.stats, strict=True)]
    inflated = []
    if any(slower):
        # the same models timed quiet again afterwards: a host whose speed changed by itself
        # meanwhile (CI's VM once timed one model 1.4 then 2.1 ms with the reference unmoved)
        # is not the busy process's doing
        after = Timer(settings, reference=ref).time(nets, _samples(nets))
        for a, b, c, s in zip(quiet.stats, busy.stats, after.stats, slower, strict=True):
            assert not isinstance(c, str)
            if s and b.median >= 1.3 * c.median:
                inflated.append((a.median, b.median, c.median))
    # the busy process did not inflate the figures; where the other core ran slow too
    # (a host that is busy itself slows every core of a virtual machine), the batch
    # says it was disturbed instead of passing its figures off as quiet
    assert not inflated or busy.disturbed, (inflated, busy.reference_ratio)


def test_windows_are_recorded_spread_and_agree_on_a_steady_model(
        models: tuple[bytes, list[bytes]]) -> None:
    ref, nets = models
    settings = TimingSettings(runs=60, spread_s=0.5)
    start = time.perf_counter()
    got = Timer(settings, reference=ref).time(nets[:2], _samples(nets[:2]))
    assert time.perf_counter() - start >= settings.spread_s  # spread over time, not one burst
    for s in got.stats:
        assert not isinstance(s, str)
        assert s.rounds >= settings.min_windows and s.quiet_rounds <= s.rounds
        # the figure is confirmed by agreeing windows (``confirm`` of them, or two timed beside
        # a calm reference when the batch settled early), or (on a host busy enough that fewer
        # agree even after the extra windows) the batch says so
        assert s.quiet_rounds >= 2 or got.disturbed, s
        # the spread figures are of the agreeing windows (3 runs each at least)
        assert s.runs >= 3 * max(1, s.quiet_rounds), s
        assert s.median > 0 and s.min <= s.median <= s.p90
    assert got.reference_ratio is not None and got.reference_ratio >= 1.0


def test_the_figure_is_a_quiet_window_not_a_slow_stretch(
        models: tuple[bytes, list[bytes]]) -> None:
    """Two timings of the same models, in other company, agree closely: the fast phase."""
    ref, nets = models
    timer = Timer(TimingSettings(runs=30, spread_s=1.0, settle_s=None), reference=ref)
    first = timer.time(nets, _samples(nets))
    second = timer.time(nets[::-1], _samples(nets[::-1]))
    ratios = [b.median / a.median for a, b in zip(first.stats, second.stats[::-1], strict=True)
              if not isinstance(a, str) and not isinstance(b, str)]
    assert len(ratios) == len(nets)
    if not (first.disturbed or second.disturbed):  # three of four at least: a plain median
        assert sum(abs(r - 1) <= 0.10 for r in ratios) >= 3, ratios  # repeats far worse here


def test_a_batch_may_end_early_only_once_its_figures_were_seen_with_the_machine_calm(
        models: tuple[bytes, list[bytes]]) -> None:
    ref, nets = models
    full = TimingSettings(runs=30, spread_s=1.5, settle_s=None)
    start = time.perf_counter()
    Timer(full, reference=ref).time(nets[:1], _samples(nets[:1]))
    assert time.perf_counter() - start >= full.spread_s  # no settling: spread in full
    early = TimingSettings(runs=30, spread_s=1.5, settle_s=0.1)
    timer = Timer(early, reference=ref)
    timer.calibrate()
    start = time.perf_counter()
    got = timer.time(nets[:1], _samples(nets[:1]))
    took = time.perf_counter() - start
    (s,) = got.stats
    assert not isinstance(s, str)
    if took < early.spread_s:  # it settled: two agreeing windows beside a calm reference
        assert s.quiet_rounds >= 2 and got.reference_ratio is not None
        assert got.reference_ratio <= 1 + early.tolerance


def test_a_model_that_cannot_run_is_reported_not_raised(
        models: tuple[bytes, list[bytes]]) -> None:
    ref, nets = models
    got = Timer(TimingSettings(runs=30), reference=ref).time(
        [b"not a model", nets[0]], [np.zeros((1, 4, 4, 1), np.float32), *_samples(nets[:1])])
    assert isinstance(got.stats[0], str) and "cannot load" in got.stats[0]
    assert not isinstance(got.stats[1], str)


def test_a_batch_slow_throughout_is_timed_again_after_pauses_then_reported(
        models: tuple[bytes, list[bytes]]) -> None:
    ref, nets = models
    settings = TimingSettings(runs=30, spread_s=0.3)
    timer = Timer(settings, reference=ref)
    quiet = timer.calibrate()
    assert quiet is not None
    timer.quietest_ms = quiet / 3  # as if the machine had once run 3x as fast: all is slow now
    got = timer.time(nets[:2], _samples(nets[:2]))
    assert got.disturbed and got.reference_ratio is not None and got.reference_ratio > 1.5
    for s in got.stats:  # the first windows, then the whole batch again after each pause
        assert not isinstance(s, str), s
        assert s.rounds >= settings.min_windows * (1 + len(BATCH_PAUSES_S)), s
    assert got.retimed >= 2 * settings.min_windows * len(BATCH_PAUSES_S)
