"""The child's one path from a model to a measured file, for every model source.

A source builds a tf_keras model with its weights; then, alike for all:
convert with each layer's precision (:func:`checked_tflite`: refused precisions
and a file that does not hold what was asked fail the trial), measure accuracy
on the profile's runtime and write the file atomically (:func:`measure_and_write`).
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

    refused = sorted({p for p in precision.values() if p not in profile.precisions})
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

    Returns:
        ``val_accuracy``, ``test_accuracy`` and the file's facts (sizes, I/O).
    """
    t0 = time.perf_counter()
    (xv, yv), (xt, yt) = splits
    val_acc = litert.accuracy(blob, xv, yv, profile.threads, profile.resolver)
    test_acc = litert.accuracy(blob, xt, yt, profile.threads, profile.resolver)
    times["accuracy"] = round(time.perf_counter() - t0, 4)
    write_atomic(model_path, blob)
    return {"val_accuracy": val_acc, "test_accuracy": test_acc, **litert.file_facts(blob)}
