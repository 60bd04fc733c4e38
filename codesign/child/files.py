"""Requests of the evaluation child on written ``.tflite`` files (export, evaluate, benchmark).

They need no model source: a file, a data set or a profile is all they take.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from codesign.child.convert import ram_record
from codesign.child.timing import DeviceTiming
from codesign.data import load_dataset, resize_bilinear
from codesign.errors import CodesignError
from codesign.hardware import litert
from codesign.hardware.profile import Profile, load_profile


class FileHandlers:
    """Request handlers on written model files (methods ``do_<request>``).

    Args:
        progress: Sends a progress record to the search process (unused: they are quick).
    """

    def __init__(self, progress: Callable[[dict[str, Any]], None]) -> None:
        self.progress = progress
        self.profile: Profile | None = None
        self.timing = DeviceTiming()

    def do_accuracy_file(self, path: str, data: str, seed: int, split: str) -> dict[str, Any]:
        """Accuracy of a ``.tflite`` file on a split of a data set."""
        blob = read_model(path)
        dataset = load_dataset(data, seed)
        io = litert.io_details(blob)
        shape = io["input"]["shape"]
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != dataset.channels:
            raise CodesignError(
                f"{path}: input shape {shape} does not fit {data} "
                f"({dataset.channels}-channel square images)"
            )
        x, y = dataset.split(split)
        acc = litert.accuracy(blob, resize_bilinear(x, shape[1]), y)
        return {"accuracy": acc, "images": len(y), "resolution": shape[1]}

    def do_change_io(self, src: str, dst: str, io_type: str) -> dict[str, Any]:
        """Write ``src`` with ``io_type`` inputs and outputs to ``dst``."""
        from codesign.tflite.interface import change_io_type

        blob = change_io_type(read_model(src), io_type)
        Path(dst).write_bytes(blob)
        return {"io": litert.io_details(blob), "size_bytes": len(blob)}

    def do_benchmark_file(self, path: str, profile: str) -> dict[str, Any]:
        """Latency of a ``.tflite`` file on a profile's runtime settings."""
        blob = read_model(path)
        self.profile = load_profile(profile)
        sample = litert.random_sample(blob)
        stats = self.timing.time(self.profile, blob, Path(path), sample)
        return {"latency_ms": stats, "profile": self.profile.name, "size_bytes": len(blob),
                "ram": ram_record(blob, self.profile)}


def read_model(path: str) -> bytes:
    """The bytes of a model file.

    Raises:
        CodesignError: If it cannot be read (one line).
    """
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CodesignError(f"cannot read model {path}: {exc.strerror}") from None
