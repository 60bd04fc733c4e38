"""Running and timing a TFLite model in the LiteRT interpreter.

Only numpy and ``ai_edge_litert`` are imported here: no TensorFlow.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from codesign.errors import TrialFailure

RESOLVERS = ("auto", "builtin", "reference")


@dataclass(frozen=True)
class LatencyStats:
    """Latency of batch-1 inference over repeated runs, in milliseconds.

    Attributes:
        median: Median of the timed runs.
        p90: 90th percentile.
        mean: Mean.
        std: Standard deviation.
        min: Fastest run.
        runs: Number of timed runs.
        warmup: Number of untimed warm-up runs (until steady, at least the asked number).
        host_rss_growth_mb: Growth of the measuring process's peak resident
            memory while the interpreter was created, allocated and invoked
            (None where the system cannot tell): the host process's, which
            rounds to zero for small models; a model's RAM is its tensor arena
            (the measurement's ``ram`` record).
        rounds: Windows the runs were split into (see :mod:`codesign.hardware.timing`;
            TFLM: rounds).
        quiet_rounds: Windows kept (not preempted, agreeing with the figure).
        spread: Largest kept window median over the smallest, less one.
    """

    median: float
    p90: float
    mean: float
    std: float
    min: float
    runs: int
    warmup: int
    host_rss_growth_mb: float | None = None
    rounds: int = 1
    quiet_rounds: int = 1
    spread: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        """Return the figures as a dict."""
        return asdict(self)


def make_interpreter(model: bytes, threads: int = 1, resolver: str = "auto") -> object:
    """Load ``model`` into a LiteRT interpreter (tensors not yet allocated).

    Args:
        model: Flatbuffer bytes.
        threads: CPU threads.
        resolver: ``auto`` (built-in kernels with the XNNPACK delegate),
            ``builtin`` (built-in kernels, no delegate) or ``reference``.

    Raises:
        TrialFailure: If the runtime cannot load the model.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kinds = {
        "auto": OpResolverType.AUTO,
        "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "reference": OpResolverType.BUILTIN_REF,
    }
    try:
        return Interpreter(
            model_content=model, num_threads=threads, experimental_op_resolver_type=kinds[resolver]
        )
    except (ValueError, RuntimeError) as exc:
        raise TrialFailure(f"the runtime cannot load the model: {exc}") from exc


def predict(model: bytes, x: np.ndarray, threads: int = 1, resolver: str = "auto") -> np.ndarray:
    """Return the model's outputs for a batch of inputs ``x`` (float32, NHWC).

    The interpreter is resized to the batch; if the model refuses a batch it is
    run one image at a time.
    """
    interp = make_interpreter(model, threads, resolver)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    x = to_input_dtype(x, inp)
    try:
        interp.resize_tensor_input(inp["index"], list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return _from_output_dtype(interp.get_tensor(out["index"]), out)
    except (ValueError, RuntimeError):
        pass
    interp = make_interpreter(model, threads, resolver)
    try:
        interp.allocate_tensors()
        rows = []
        for i in range(len(x)):
            interp.set_tensor(inp["index"], x[i : i + 1])
            interp.invoke()
            rows.append(_from_output_dtype(interp.get_tensor(out["index"]), out))
    except (ValueError, RuntimeError) as exc:
        raise TrialFailure(f"the runtime failed to run the model: {exc}") from exc
    return np.concatenate(rows)


def accuracy(
    model: bytes, x: np.ndarray, y: np.ndarray, threads: int = 1, resolver: str = "auto"
) -> float:
    """Return top-1 accuracy (a fraction) of ``model`` on ``(x, y)``."""
    logits = predict(model, x, threads, resolver)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def time_latency(
    model: bytes,
    sample: np.ndarray,
    threads: int = 1,
    resolver: str = "auto",
    warmup: int = 10,
    runs: int = 50,
    spread_s: float = 1.0,
) -> LatencyStats:
    """Time batch-1 inference: warm-up runs, then ``runs`` timed ones in windows.

    Disturbed windows are re-timed (see :class:`codesign.hardware.timing.Timer`);
    for a batch of models with a reference network, use the timer itself.

    Args:
        model: Flatbuffer bytes.
        sample: One input image, shape ``(1, H, W, C)``.
        threads: CPU threads.
        resolver: Op resolver (see :func:`make_interpreter`).
        warmup: Untimed runs first.
        runs: Timed runs.
        spread_s: Seconds the windows are spread over, at least.

    Raises:
        TrialFailure: If the model cannot be prepared or run.
    """
    from codesign.hardware.timing import Timer, TimingSettings

    settings = TimingSettings(threads, resolver, warmup, runs, spread_s=spread_s)
    timed = Timer(settings).time([model], [sample])
    stats = timed.stats[0]
    if isinstance(stats, str):
        raise TrialFailure(stats)
    return stats


def warm_up(interp: object, minimum: int, window: int = 10, limit: int = 1000) -> int:
    """Invoke until two successive windows' medians agree within 5 %; return runs used."""
    done, previous = 0, None
    while done < limit:
        times = []
        for _ in range(window):
            t0 = time.perf_counter_ns()
            interp.invoke()  # type: ignore[attr-defined]
            times.append(time.perf_counter_ns() - t0)
        done += window
        current = float(np.median(times))
        if done >= minimum and previous is not None and abs(current - previous) <= 0.05 * previous:
            break
        previous = current
    return done


def _status_kb(field: str) -> float | None:
    try:
        for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> float | None:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in KiB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


def peak_rss() -> float | None:
    """The process's peak resident memory in KiB since the last reset (Linux), if known."""
    return _status_kb("VmHWM")


def file_facts(model: bytes) -> dict[str, Any]:
    """What a measurement record says of the file: its size, gzipped size and I/O."""
    return {"size_bytes": len(model),
            "size_gzip_bytes": len(gzip.compress(model, compresslevel=9)),
            "io": io_details(model)}


def io_details(model: bytes) -> dict[str, dict]:
    """Return shape, dtype and quantization (scale, zero point) of input and output."""
    interp = make_interpreter(model)

    def describe(d: dict) -> dict:
        scale, zero = d["quantization"]
        return {
            "name": d["name"],
            "shape": [int(v) for v in d["shape_signature"]],
            "dtype": np.dtype(d["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero)},
        }

    return {
        "input": describe(interp.get_input_details()[0]),
        "output": describe(interp.get_output_details()[0]),
    }


def random_sample(model: bytes) -> np.ndarray:
    """One seeded float input image of the model's input shape (batch 1), for timing."""
    shape = io_details(model)["input"]["shape"]
    return np.random.default_rng(0).random([1, *shape[1:]], dtype=np.float32)


def to_input_dtype(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float images in the input's type (quantized with its scale and zero point if integer)."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return np.ascontiguousarray(x, dtype=np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero)
    return np.clip(q, info.min, info.max).astype(dtype)


def _from_output_dtype(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return y.copy()
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale
