#!/usr/bin/env python3
"""How steady is each core? Four networks timed in 2 ms windows for some seconds per core.

Pins itself to each allowed core in turn and times the reference network and
three default-space candidates round-robin, in windows of about 2 ms, for
``--seconds``. Prints, per core and network, the fastest window's median and
the share of windows more than 10 % and 30 % slower than it: how often this
machine runs slow with whatever else is running now. This is what the timer
of ``codesign/hardware/timing.py`` works against (the README's figures of
1.3-2x slow on 13-99 % of windows came from its prototype: the same method
on four cached check networks).

    .venv/bin/python tools/core_noise.py --seconds 8
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import codesign  # noqa: F401  (tf_keras before TensorFlow, for the conversions)
from codesign.hardware import litert
from codesign.latency.measure import converted
from codesign.latency.sampling import reference_network, whole_networks

WINDOW_S = 0.002


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per core")
    args = ap.parse_args(argv)
    if not hasattr(os, "sched_setaffinity"):
        print("core_noise needs Linux (sched_setaffinity)", file=sys.stderr)
        return 2
    samples = [reference_network(), *whole_networks(3, 11, ("float32", "int8"))]
    nets = []
    for s in samples:
        blob = converted(s).read_bytes()
        interp = litert.make_interpreter(blob, 1, "auto")
        inp = interp.get_input_details()[0]  # type: ignore[attr-defined]
        interp.allocate_tensors()  # type: ignore[attr-defined]
        interp.set_tensor(inp["index"], litert.to_input_dtype(  # type: ignore[attr-defined]
            litert.random_sample(blob), inp))
        litert.warm_up(interp, 20)
        t0 = time.perf_counter()
        interp.invoke()  # type: ignore[attr-defined]
        nets.append((interp, max(3, int(WINDOW_S / max(time.perf_counter() - t0, 1e-7)))))
    cores = sorted(os.sched_getaffinity(0))
    print(f"{'core':>4} {'network':>8} {'fastest window':>15} {'>1.1x':>6} {'>1.3x':>6}")
    for core in cores:
        os.sched_setaffinity(0, {core})
        meds: list[list[float]] = [[] for _ in nets]
        end = time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            for (interp, runs), out in zip(nets, meds, strict=True):
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter_ns()
                    interp.invoke()  # type: ignore[attr-defined]
                    times.append(time.perf_counter_ns() - t0)
                out.append(float(np.median(times)) / 1e3)
        for i, m in enumerate(meds):
            r = np.array(m) / min(m)
            name = "ref" if i == 0 else f"net {i}"
            print(f"{core:>4} {name:>8} {min(m):>12.1f} us {np.mean(r > 1.1):>6.0%} "
                  f"{np.mean(r > 1.3):>6.0%}")
    os.sched_setaffinity(0, set(cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
