#!/usr/bin/env python3
"""How repeatable is a latency on this machine? Two timings of the same networks, compared.

Times N random default-space candidates twice (the second pass in other
batches), four ways side by side, alternating so that each meets the machine
as the others do: codesign's timer (2 ms windows cycled across a batch, the
second fastest undisturbed window, re-timing; ``codesign/hardware/timing.py``)
as a latency-model build uses it (batches of 16 spread over 2 s), in batches
of 8 over 1 s, as a search uses it (1 s, ending early once the machine was
seen calm), and the plain way (warm-up, then the median of the profile's runs
in one go). Prints, for each way, the share of networks whose two timings
agree within 5 % and 10 %, the 95th percentile of their difference and the
seconds a pass took. A latency model cannot be checked more closely than its
measurements repeat.

    .venv/bin/python tools/bench_timing.py --n 100 --profile xnnpack-1t
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np

import codesign  # noqa: F401  (tf_keras before TensorFlow, for the conversions)
from codesign.hardware import litert
from codesign.hardware.profile import load_profile
from codesign.hardware.timing import Timer, TimingSettings
from codesign.latency.measure import BUILD_SPREAD_S, LOCAL_BATCH, converted
from codesign.latency.sampling import reference_network, whole_networks


def timer_pass(timer: Timer, batch: int, blobs: list[bytes], samples: list[np.ndarray],
               order: np.ndarray) -> np.ndarray:
    """One timing of every network, in batches of ``batch`` in the given order."""
    out = np.full(len(blobs), np.nan)
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        got = timer.time([blobs[j] for j in idx], [samples[j] for j in idx])
        for j, st in zip(idx, got.stats, strict=True):
            out[j] = st.median if not isinstance(st, str) else np.nan
    return out


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
    full = replace(settings, settle_s=None, batch_pauses_s=())
    ways = {  # name: (batch size, settings)
        f"build: {LOCAL_BATCH} over {BUILD_SPREAD_S:g} s": (
            LOCAL_BATCH, replace(full, spread_s=BUILD_SPREAD_S)),
        "8 over 1 s": (8, replace(full, spread_s=1.0)),
        f"search: {LOCAL_BATCH}, {settings.spread_s:g} s, may settle": (LOCAL_BATCH, settings),
    }
    ref = converted(reference_network()).read_bytes()
    timers = {name: Timer(s, reference=ref) for name, (_, s) in ways.items()}
    orders = (np.arange(args.n), np.random.default_rng(1).permutation(args.n))
    got: dict[str, list[np.ndarray]] = {name: [] for name in [*ways, "plain"]}
    took: dict[str, float] = dict.fromkeys(got, 0.0)
    for order in orders:  # the ways alternate, so each meets the machine as the others do
        for name, (batch, _) in ways.items():
            t0 = time.perf_counter()
            got[name].append(timer_pass(timers[name], batch, blobs, inputs, order))
            took[name] += (time.perf_counter() - t0) / len(orders)
        t0 = time.perf_counter()
        got["plain"].append(plain_pass(blobs, inputs, settings))
        took["plain"] += (time.perf_counter() - t0) / len(orders)
    print(f"{args.n} networks on {profile.name}, each way timed twice (the second pass in "
          "other batches)")
    print(f"{'way (batch size, spread)':<32} {'≤5 %':>5} {'≤10 %':>6} {'p95 diff':>8}  "
          "seconds per pass")
    for name, (a, b) in got.items():
        label = "plain median of the runs" if name == "plain" else name
        print(f"{label:<32} {agreement(a, b)}  {took[name]:.1f}")
    build = timers[next(iter(ways))]
    print(f"re-timed by the build's way: {build.retimed_total} windows, "
          f"{build.runs_retimed_total} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
