#!/usr/bin/env python3
"""How repeatable is a latency on this machine? Two timings of the same networks, compared.

Times N random default-space candidates twice, a moment apart, two ways side by
side: codesign's timer (rounds interleaved across a batch, the fastest
undisturbed round, re-timing; ``codesign/hardware/timing.py``) and the plain
way (warm-up, then the median of the profile's runs in one go). Prints, for
each way, the share of networks whose two timings agree within 5 % and 10 %
and the 95th percentile of their difference, and how disturbed the machine
was (the reference network's slow-down). A latency model cannot be checked
more closely than its measurements repeat.

    .venv/bin/python tools/bench_timing.py --n 100 --profile xnnpack-1t
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import codesign  # noqa: F401  (tf_keras before TensorFlow, for the conversions)
from codesign.hardware import litert
from codesign.hardware.profile import load_profile
from codesign.hardware.timing import Timer, TimingSettings
from codesign.latency.measure import LOCAL_BATCH, converted
from codesign.latency.sampling import reference_network, whole_networks


def timer_pass(timer: Timer, blobs: list[bytes], samples: list[np.ndarray]) -> np.ndarray:
    out: list[float] = []
    for i in range(0, len(blobs), LOCAL_BATCH):
        got = timer.time(blobs[i:i + LOCAL_BATCH], samples[i:i + LOCAL_BATCH])
        out += [s.median if not isinstance(s, str) else np.nan for s in got.stats]
    return np.array(out)


def plain_pass(blobs: list[bytes], samples: list[np.ndarray], s: TimingSettings) -> np.ndarray:
    out = []
    for blob, x in zip(blobs, samples, strict=True):
        interp = litert.make_interpreter(blob, s.threads, s.resolver)
        inp = interp.get_input_details()[0]  # type: ignore[attr-defined]
        interp.allocate_tensors()  # type: ignore[attr-defined]
        interp.set_tensor(inp["index"], litert.to_input_dtype(x, inp))  # type: ignore
        litert.warm_up(interp, s.warmup)
        times = []
        for _ in range(s.runs):
            t0 = time.perf_counter_ns()
            interp.invoke()  # type: ignore[attr-defined]
            times.append((time.perf_counter_ns() - t0) / 1e6)
        out.append(float(np.median(times)))
    return np.array(out)


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    ok = np.isfinite(a) & np.isfinite(b)
    rel = np.abs(a[ok] - b[ok]) / np.minimum(a[ok], b[ok])
    return (f"{np.mean(rel <= 0.05):5.0%} {np.mean(rel <= 0.10):6.0%} "
            f"{np.percentile(rel, 95):8.1%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--profile", default="xnnpack-1t")
    ap.add_argument("--seed", type=int, default=2_000_003)
    args = ap.parse_args(argv)
    profile = load_profile(args.profile)
    if profile.remote:
        print("bench_timing times on this machine: give a local profile", file=sys.stderr)
        return 2
    samples_ = whole_networks(args.n, args.seed, profile.precisions)
    print(f"converting {args.n} networks (cached under $CODESIGN_HOME)...", flush=True)
    blobs = [converted(s).read_bytes() for s in samples_]
    inputs = [litert.random_sample(b) for b in blobs]
    settings = TimingSettings(profile.threads, profile.resolver, profile.warmup_runs,
                              profile.runs)
    timer = Timer(settings, reference=converted(reference_network()).read_bytes())
    t0 = time.perf_counter()
    a = timer_pass(timer, blobs, inputs)
    t1 = time.perf_counter()
    plain_a = plain_pass(blobs, inputs, settings)
    t2 = time.perf_counter()
    b = timer_pass(timer, blobs, inputs)
    plain_b = plain_pass(blobs, inputs, settings)
    print(f"{args.n} networks on {profile.name}, timed twice a moment apart")
    print(f"{'way':<28} {'≤5 %':>5} {'≤10 %':>6} {'p95 diff':>8}  seconds per pass")
    print(f"{'codesign timer':<28} {agreement(a, b)}  {t1 - t0:.1f}")
    print(f"{'plain median of the runs':<28} {agreement(plain_a, plain_b)}  {t2 - t1:.1f}")
    print(f"re-timed: {timer.retimed_total} rounds, {timer.runs_retimed_total} runs; quietest "
          f"reference round {timer.quietest_ms * 1000:.1f} us" if timer.quietest_ms else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
