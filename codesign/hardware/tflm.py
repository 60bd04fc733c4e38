"""Running a TFLite model in TensorFlow Lite Micro (TFLM) and reading its arena.

Only numpy and ``tflite_micro`` are imported here: no TensorFlow. TFLM's
Python interpreter uses its reference kernels and a recording allocator. Its
diagnostics (why an op failed to prepare, how large the arena is) go to the C
library's standard error, so they are read by pointing file descriptor 2 at a
temporary file for the duration of a call; anything else the process writes
to standard error meanwhile is captured too (and shown again afterwards).

The arena has two ends: the *head* holds the planned activations (non-persistent
tensors and kernels' scratch buffers, overlaid by the greedy memory planner),
the *tail* what lives as long as the interpreter (tensor and node structs,
kernels' per-op data such as per-channel multipliers).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware.litert import LatencyStats

DEFAULT_ARENA = 4 << 20  # bytes offered first; grown when TFLM says more is missing
MAX_ARENA = 256 << 20
ARENA_STEP = 16  # TFLM aligns its buffers to 16 bytes: arenas are sized in these steps
MIN_ARENA = 1024  # TFLM segfaults below about 500 bytes (its allocator's own structs do not fit)
_TOTALS = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_PREPARE = re.compile(r"Node (\S+) \(number (\d+)\) failed to (prepare|invoke)")
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([^']+)'")
_MISSING_BYTES = re.compile(
    r"Failed to (?:resize buffer|allocate [a-z ]*memory)[^\n]*missing: (\d+)")


class ArenaTooSmall(TrialFailure):
    """The arena offered to TFLM cannot hold the model."""


@dataclass(frozen=True)
class ArenaFacts:
    """How much of its arena TFLM used for one model (on this host: 64-bit structs).

    Attributes:
        total_bytes: Head plus tail: the smallest arena that runs the model here.
        head_bytes: The planned non-persistent memory (activations, scratch buffers).
        tail_bytes: Persistent allocations (tensor and node structs, per-op data).
    """

    total_bytes: int
    head_bytes: int
    tail_bytes: int

    def to_dict(self) -> dict[str, int]:
        """Return the figures as a dict."""
        return asdict(self)


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Point file descriptor 2 at a temporary file; the list gets its text on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    text: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode(errors="replace"))


def _echo(text: str) -> None:
    """Give back to standard error what a call that succeeded wrote there."""
    if text:
        sys.stderr.write(text)


@contextmanager
def _running(model: bytes) -> Iterator[None]:
    """Capture standard error around a batch of invokes (once, not per invoke).

    Raises:
        TrialFailure: If an invoke fails; the message says what TFLM wrote.
    """
    error: BaseException | None = None
    with captured_stderr() as err:
        try:
            yield
        except (RuntimeError, ValueError) as exc:
            error = exc
    if error is not None:
        raise failure(model, err[0], error) from error
    _echo(err[0])


def load(model: bytes, arena_size: int | None = None) -> Any:
    """Load ``model`` into a TFLM interpreter (tensors allocated).

    Args:
        model: Flatbuffer bytes.
        arena_size: Arena bytes; by default :data:`DEFAULT_ARENA`, grown (up to
            :data:`MAX_ARENA`) while TFLM reports memory missing.

    Raises:
        TrialFailure: If TFLM cannot prepare the model: the message names the
            op and what TFLM said (:class:`ArenaTooSmall` for a given arena
            that is too small).
    """
    from tflite_micro.python.tflite_micro import runtime

    size = DEFAULT_ARENA if arena_size is None else int(arena_size)
    if size < MIN_ARENA:
        raise ArenaTooSmall(f"the TFLM arena is too small ({size} bytes; at least {MIN_ARENA})")
    while True:
        with captured_stderr() as err:
            try:
                interp = runtime.Interpreter.from_bytes(bytes(model), arena_size=size)
            except Exception as exc:  # also struct.error, IndexError: the wrapper parses in Python
                interp, error = None, exc
        if interp is not None:
            _echo(err[0])
            return interp
        said = err[0]
        missing = _MISSING_BYTES.search(said)
        if missing is None or arena_size is not None or size >= MAX_ARENA:
            raise failure(model, said, error)
        size = min(MAX_ARENA, max(2 * size, size + 2 * int(missing.group(1))))


def failure(model: bytes, said: str, exc: BaseException | None = None) -> TrialFailure:
    """A :class:`TrialFailure` naming what TFLM could not do, from what it wrote to stderr."""
    lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
    if (m := _MISSING_OP.search(said)) is not None:
        return TrialFailure(f"TFLM has no kernel for {m.group(1)}")
    if (m := _MISSING_BYTES.search(said)) is not None:
        first = next(ln for ln in lines if "missing:" in ln)
        return ArenaTooSmall(f"the TFLM arena is too small ({first})")
    nodes = [(i, m) for i, ln in enumerate(lines) if (m := _PREPARE.search(ln)) is not None]
    if nodes:
        node, m = nodes[0]
        op, index, stage = m.group(1), int(m.group(2)), m.group(3)
        types = _input_types(model, index)
        of = f" of {', '.join(types)}" if types else ""
        # the kernel's own complaint comes just before the node line; drop its source path
        why = re.sub(r"[^ ]*/(?=[^/ ]+:[0-9]+ )", "", lines[node - 1]) if node else ""
        return TrialFailure(f"TFLM cannot {stage} {op} (op #{index}){of}{': ' if why else ''}"
                            f"{why[:300]}")
    if lines:
        return TrialFailure(f"TFLM failed: {lines[-1][:300]}")
    kind = type(exc).__name__ if exc is not None else "no message"
    return TrialFailure(f"TFLM cannot read the model ({kind}: {str(exc)[:300]})")


def _input_types(model: bytes, index: int) -> list[str]:
    """Types of op ``index``'s inputs in subgraph 0 (``FLOAT16 weights`` for constants)."""
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

        root = schema.Model.GetRootAsModel(bytearray(model), 0)
        sg = root.Subgraphs(0)
        op = sg.Operators(index)
        names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        out = []
        for i in range(op.InputsLength()):
            t = op.Inputs(i)
            if t < 0:
                continue
            tensor = sg.Tensors(t)
            constant = root.Buffers(tensor.Buffer()).DataLength() > 0
            kind = "weights" if constant else "tensor"
            out.append(f"{names.get(tensor.Type(), tensor.Type())} {kind}")
        return out
    except Exception:  # a description only; never hide the real failure behind it
        return []


def arena(model: bytes, arena_size: int | None = None) -> ArenaFacts:
    """Run ``model`` once in TFLM on a zero input and return what its arena held.

    Args:
        model: Flatbuffer bytes.
        arena_size: The arena to offer (by default one large enough, see :func:`load`);
            the figures do not depend on it as long as it suffices.

    Raises:
        TrialFailure: If TFLM cannot prepare or run the model.
    """
    interp = load(model, arena_size)
    detail = interp.get_input_details(0)
    interp.set_input(np.zeros(detail["shape"], dtype=detail["dtype"]), 0)
    with _running(model):
        interp.invoke()
    with captured_stderr() as err:
        interp.print_allocations()
    found = {k: int(v) for k, v in _TOTALS.findall(err[0])}
    if set(found) != {"total", "head", "tail"}:
        raise TrialFailure(f"TFLM reported no arena allocation: {err[0].strip()[:200]!r}")
    return ArenaFacts(found["total"], found["head"], found["tail"])


def needed_arena(model: bytes, facts: ArenaFacts | None = None) -> int:
    """The smallest arena (in 16-byte steps) in which TFLM prepares and runs ``model``.

    The recording allocator's total counts what stays allocated; preparing the
    model also borrows temporary memory from the arena (and the memory
    planner's own scratch), so a firmware may need a little more. Measured, not
    guessed: from the recorded total up, by bisection on whether TFLM itself
    loads and invokes the model in that arena.

    Raises:
        TrialFailure: If TFLM cannot run the model at all.
    """
    facts = facts if facts is not None else arena(model)
    low = facts.total_bytes
    if _runs_in(model, low):
        return low
    step = max(1024, low // 8)
    high = low + step
    while not _runs_in(model, high):
        if high >= MAX_ARENA:
            raise TrialFailure(f"TFLM cannot run the model in {MAX_ARENA} bytes of arena")
        low, step = high, 2 * step
        high = min(MAX_ARENA, high + step)
    while high - low > ARENA_STEP:
        mid = (low + high) // 2 // ARENA_STEP * ARENA_STEP
        if mid <= low:
            break
        if _runs_in(model, mid):
            high = mid
        else:
            low = mid
    return high


def _runs_in(model: bytes, size: int) -> bool:
    """Whether TFLM loads ``model`` into an arena of ``size`` bytes and invokes it."""
    try:
        interp = load(model, size)
        detail = interp.get_input_details(0)
        interp.set_input(np.zeros(detail["shape"], dtype=detail["dtype"]), 0)
        with _running(model):
            interp.invoke()
    except TrialFailure:
        return False
    return True


def io_details(model: bytes, interp: Any = None) -> dict[str, dict]:
    """Shape (batch 1), dtype and quantization (scale, zero point) of input and output."""
    interp = load(model) if interp is None else interp

    def describe(d: dict) -> dict:
        q = d["quantization_parameters"]
        scales, zeros = q["scales"], q["zero_points"]
        return {
            "shape": [int(v) for v in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "quantization": {"scale": float(scales[0]) if len(scales) else 0.0,
                             "zero_point": int(zeros[0]) if len(zeros) else 0},
        }

    return {"input": describe(interp.get_input_details(0)),
            "output": describe(interp.get_output_details(0))}


def predict(model: bytes, x: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """The model's (float) outputs for a batch ``x`` (float32, NHWC), one image at a time.

    Integer inputs and outputs are quantized and dequantized with the model's
    scale and zero point.

    Raises:
        TrialFailure: If TFLM cannot prepare or run the model.
    """
    interp = load(model, arena_size)
    io = io_details(model, interp)
    rows = []
    with _running(model):
        for i in range(len(x)):
            interp.set_input(_to_input(x[i : i + 1], io["input"]), 0)
            interp.invoke()
            rows.append(_from_output(interp.get_output(0), io["output"]))
    return np.concatenate(rows) if rows else np.empty((0, *io["output"]["shape"][1:]))


def accuracy(model: bytes, x: np.ndarray, y: np.ndarray, arena_size: int | None = None
             ) -> float:
    """Top-1 accuracy (a fraction) of ``model`` on ``(x, y)`` in TFLM."""
    logits = predict(model, x, arena_size)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def time_latency(model: bytes, sample: np.ndarray, warmup: int = 3, runs: int = 20,
                 arena_size: int | None = None, rounds: int = 3) -> LatencyStats:
    """Time batch-1 inference on the host's TFLM: ``warmup`` untimed runs, then ``runs``.

    These are host times of TFLM's reference kernels: a relative figure, not a
    microcontroller's latency. The runs are split into ``rounds``; a disturbance
    only slows a round down, so the median is the fastest round's.

    Raises:
        TrialFailure: If TFLM cannot prepare or run the model.
    """
    interp = load(model, arena_size)
    io = io_details(model, interp)
    interp.set_input(_to_input(sample[:1], io["input"]), 0)
    rounds = max(1, min(rounds, runs))
    times = np.empty(runs, dtype=np.float64)
    with _running(model):
        for _ in range(warmup):
            interp.invoke()
        for i in range(runs):
            t0 = time.perf_counter_ns()
            interp.invoke()
            times[i] = (time.perf_counter_ns() - t0) / 1e6
    medians = np.array([np.median(r) for r in np.array_split(times, rounds)])
    best = float(medians.min())
    kept = medians[medians <= best * 1.04]
    return LatencyStats(
        median=best, p90=float(np.percentile(times, 90)),
        mean=float(times.mean()), std=float(times.std()), min=float(times.min()),
        runs=runs, warmup=warmup, rounds=rounds, quiet_rounds=int(kept.size),
        spread=float(kept.max() / best - 1.0),
    )


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=dtype)
    scale, zero = detail["quantization"]["scale"], detail["quantization"]["zero_point"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return np.array(y, dtype=np.float32)
    scale, zero = detail["quantization"]["scale"], detail["quantization"]["zero_point"]
    return (np.asarray(y, dtype=np.float32) - zero) * scale
