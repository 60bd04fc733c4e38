"""The child's one path from a model to a measured file, for every model source.

A source builds a tf_keras model with its weights; then, alike for all:
convert with each layer's precision (:func:`checked_tflite`: refused precisions
and a file that does not hold what was asked fail the trial), measure accuracy
on the profile's runtime and write the file atomically (:func:`measure_and_write`).
Every file also gets its RAM figure (:func:`ram_record`): on a TFLM profile the
arena TensorFlow Lite Micro itself allocated, elsewhere the arena estimated from
the file (:mod:`codesign.tflite.memplan`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware import litert
from codesign.hardware.profile import Profile
from codesign.run.files import write_atomic

Split = tuple[np.ndarray, np.ndarray]  # images at the model's resolution, integer labels


def checked_tflite(model: Any, precision: dict[str, str], calibration: np.ndarray,
                   profile: Profile, times: dict[str, float]) -> bytes:
    """Convert ``model`` with each layer's precision and check the file holds exactly that.

    Raises:
        TrialFailure: If the profile cannot run a precision, or the file's layers
            hold other types than asked.
    """
    from codesign.tflite.convert import convert
    from codesign.tflite.inspect import mismatches

    refused = sorted({p for p in precision.values() if p not in profile.runnable})
    if refused:
        raise TrialFailure(f"profile {profile.name} cannot run {refused}")
    t0 = time.perf_counter()
    blob = convert(model, precision, calibration)
    problems = mismatches(blob, precision)
    if problems:
        raise TrialFailure("the file does not hold the intended precisions: " + problems[0])
    times["conversion"] = round(time.perf_counter() - t0, 4)
    return blob


def measure_and_write(blob: bytes, profile: Profile, splits: tuple[Split, Split],
                      model_path: Path, times: dict[str, float]) -> dict[str, Any]:
    """Validation and test accuracy of ``blob`` on the profile's runtime; write the file.

    On a TFLM profile the arena is measured first: a model TFLM cannot run
    fails here, naming the op, before any accuracy work.

    Returns:
        ``val_accuracy``, ``test_accuracy``, ``ram`` (see :func:`ram_record`) and
        the file's facts (sizes, I/O).

    Raises:
        TrialFailure: If the runtime cannot run the model.
    """
    t0 = time.perf_counter()
    ram = ram_record(blob, profile)
    times["ram"] = round(time.perf_counter() - t0, 4)
    t0 = time.perf_counter()
    (xv, yv), (xt, yt) = splits
    if profile.micro:
        from codesign.hardware import tflm

        val_acc = tflm.accuracy(blob, xv, yv, ram["bytes"])
        test_acc = tflm.accuracy(blob, xt, yt, ram["bytes"])
    else:
        val_acc = litert.accuracy(blob, xv, yv, profile.threads, profile.resolver)
        test_acc = litert.accuracy(blob, xt, yt, profile.threads, profile.resolver)
    times["accuracy"] = round(time.perf_counter() - t0, 4)
    write_atomic(model_path, blob)
    return {"val_accuracy": val_acc, "test_accuracy": test_acc, "ram": ram,
            **litert.file_facts(blob)}


def ram_record(blob: bytes, profile: Profile) -> dict[str, Any]:
    """The RAM a TFLM firmware reserves for ``blob``: its tensor arena, head and tail.

    On a TFLM profile the figures are TFLM's (``source`` ``tflm``): ``bytes`` the
    smallest arena TFLM prepares and runs the model in (its temporary
    allocations while preparing can exceed what stays allocated),
    ``recorded_bytes`` the recording allocator's total, ``head_bytes`` and
    ``tail_bytes`` its parts. On other profiles they are estimated from the
    file (``estimate``: the head as TFLM's greedy planner packs the
    activations, the tail roughly; ``bytes`` their sum).
    A file the estimate cannot read (several subgraphs) has ``bytes`` None.

    Raises:
        TrialFailure: On a TFLM profile, if TFLM cannot prepare or run the model.
    """
    if profile.micro:
        from codesign.hardware import tflm

        facts = tflm.arena(blob)
        return {"bytes": tflm.needed_arena(blob, facts), "recorded_bytes": facts.total_bytes,
                "head_bytes": facts.head_bytes, "tail_bytes": facts.tail_bytes,
                "source": "tflm"}
    from codesign.tflite import memplan

    try:
        plan = memplan.plan(blob)
    except TrialFailure as exc:
        return {"bytes": None, "head_bytes": None, "tail_bytes": None, "source": "estimate",
                "error": str(exc)[:300]}
    return {"bytes": plan.head_bytes + plan.tail_bytes, "head_bytes": plan.head_bytes,
            "tail_bytes": plan.tail_bytes, "source": "estimate"}
