#!/usr/bin/env python3
"""Measure TFLite models on this machine and print one JSON document.

Standalone on purpose: it needs only numpy and a TFLite runtime
(``ai_edge_litert``, else ``tflite_runtime``, else ``tensorflow.lite``), so it
can be copied to a board and run there, and it shares no code with codesign
(it is the independent check of codesign's own measurements).

    python device_bench.py model_a.tflite model_b.tflite --threads 1 --runs 100
    python device_bench.py            # no model: only the runtime and machine facts

Runs under Python 3.8 and later, numpy 1.x or 2.x, tflite-runtime 2.x or
ai-edge-litert. A model that cannot load or run here is reported with its
error; the others are still measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


def load_runtime():
    """Return ``(name, version, Interpreter class, resolver enum or None)``."""
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter as mod

        version = getattr(ai_edge_litert, "__version__", None)
        if version is None:
            from importlib.metadata import version as dist_version

            version = dist_version("ai-edge-litert")
        return "ai-edge-litert", version, mod.Interpreter, getattr(mod, "OpResolverType", None)
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as mod

        return ("tflite-runtime", getattr(tflite_runtime, "__version__", "?"), mod.Interpreter,
                getattr(mod, "OpResolverType", None))
    except ImportError:
        pass
    import tensorflow as tf

    return "tensorflow", tf.__version__, tf.lite.Interpreter, tf.lite.experimental.OpResolverType


RESOLVER_NAMES = {
    "auto": "AUTO",
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
    "reference": "BUILTIN_REF",
}


def measure(path, interpreter_cls, resolver_enum, args):
    """Time one model; return a dict of figures or of the error."""
    import numpy as np

    kwargs = {"model_path": path, "num_threads": args.threads}
    if resolver_enum is not None:
        kwargs["experimental_op_resolver_type"] = getattr(
            resolver_enum, RESOLVER_NAMES[args.resolver]
        )
    elif args.resolver != "auto":
        return {"model": path, "error": "this runtime cannot choose an op resolver"}
    base = reset_peak_rss()
    peak = None
    try:
        interp = interpreter_cls(**kwargs)
        detail = interp.get_input_details()[0]
        shape = [1, *[int(v) for v in detail["shape"][1:]]]
        interp.resize_tensor_input(detail["index"], shape)
        interp.allocate_tensors()
        dtype = np.dtype(detail["dtype"])
        rng = np.random.default_rng(0)
        if dtype.kind == "f":
            data = rng.random(shape, dtype=np.float32).astype(dtype)
        else:
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        interp.set_tensor(detail["index"], data)
        for other in interp.get_input_details()[1:]:
            interp.set_tensor(other["index"], np.zeros(other["shape"], other["dtype"]))
        warm = warm_up(interp, args.warmup, args.max_warmup)
        peak = status_kb("VmHWM")
        threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            interp.invoke()
            times.append((time.perf_counter() - start) * 1000.0)
    except Exception as exc:  # report, do not die: other models may still run
        return {"model": path, "error": f"{type(exc).__name__}: {exc}"}
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return {
        "model": path,
        "median_ms": statistics.median(times),
        "p90_ms": p90,
        "mean_ms": statistics.fmean(times),
        "std_ms": statistics.pstdev(times),
        "min_ms": times[0],
        "runs": len(times),
        "warmup_runs": warm,
        "peak_memory_mb": None if base is None or peak is None else max(0.0, (peak - base) / 1024),
        "process_threads": threads,
    }


def measure_all(paths, interpreter_cls, resolver_enum, args):
    """Time every model ``--repeats`` times, in turns; keep each one's quietest repeat.

    A machine that is busy now and then slows some repeats; the fastest median
    is the closest to what the model takes on a quiet machine, and the spread
    of the repeats (``medians_ms``) shows how disturbed the machine was. With
    ``--pause`` the turns are that many seconds apart, so that the repeats of a
    small model do not all fall into one slow phase of the machine (a virtual
    machine's cores run 1.5x slow in bursts of 50-300 ms, seen here).
    """
    rounds = []
    for turn in range(args.repeats):
        if turn and args.pause > 0:
            time.sleep(args.pause)
        rounds.append([measure(p, interpreter_cls, resolver_enum, args) for p in paths])
    out = []
    for i in range(len(paths)):
        tries = [r[i] for r in rounds]
        good = [t for t in tries if "error" not in t]
        if not good:
            out.append(tries[0])
            continue
        best = dict(min(good, key=lambda t: t["median_ms"]))
        if args.repeats > 1:
            best["medians_ms"] = [t["median_ms"] for t in good]
        out.append(best)
    return out


def status_kb(field):
    """A ``/proc/self/status`` figure in KiB, or None where the system has none."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss():
    """Reset the kernel's peak-RSS mark (Linux) and return the resident KiB now."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return None
    return status_kb("VmRSS")


def warm_up(interp, minimum, maximum):
    """Invoke until two successive windows of 10 runs agree within 5 %; return runs used."""
    done = 0
    previous = None
    while done < maximum:
        window = []
        for _ in range(10):
            start = time.perf_counter()
            interp.invoke()
            window.append(time.perf_counter() - start)
        done += 10
        current = statistics.median(window)
        if done >= minimum and previous is not None and abs(current - previous) <= 0.05 * previous:
            break
        previous = current
    return done


def machine_facts():
    """What the system tells about this machine (governor and temperature if exposed)."""
    facts = {"machine": platform.machine(), "system": platform.system(),
             "python": platform.python_version(), "cpu_count": os.cpu_count(),
             "cpu_model": cpu_model()}
    for key, path in (
        ("cpu_governor", "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        ("temperature_millicelsius", "/sys/class/thermal/thermal_zone0/temp"),
    ):
        try:
            with open(path) as fh:
                facts[key] = fh.read().strip()
        except OSError:
            facts[key] = None
    return facts


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def main(argv=None):
    """Parse arguments, measure every model and print the JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=".tflite files (none: only print the facts)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resolver", choices=sorted(RESOLVER_NAMES), default="auto")
    ap.add_argument("--warmup", type=int, default=20, help="fewest warm-up runs")
    ap.add_argument("--max-warmup", type=int, default=500, help="most warm-up runs")
    ap.add_argument("--runs", type=int, default=100, help="timed runs per model")
    ap.add_argument("--repeats", type=int, default=1,
                    help="measure every model this many times, the models taking turns; the "
                         "quietest repeat is reported, with every repeat's median")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds between the turns of --repeats")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.warmup < 0 or args.repeats < 1:
        ap.error("--threads, --runs and --repeats must be at least 1, --warmup at least 0")
    name, version, interpreter_cls, resolver_enum = load_runtime()
    import numpy as np

    doc = {
        "runtime": {"name": name, "version": version, "numpy": np.__version__},
        "threads": args.threads,
        "resolver": args.resolver,
        **machine_facts(),
        "models": measure_all(args.models, interpreter_cls, resolver_enum, args),
    }
    try:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
