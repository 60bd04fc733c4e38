"""What the evaluation child does: supernet, sub-models, conversion, measurement.

Runs only inside the child process (see :mod:`codesign.worker`).
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from codesign.data import Dataset, load_dataset, resize_bilinear
from codesign.errors import CodesignError, TrialFailure
from codesign.hardware import litert
from codesign.hardware.profile import Profile, load_profile
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec, get_space

BN_CALIBRATION_IMAGES = 512
SUPERNET_FILE = "supernet.npz"
SUPERNET_META = "supernet.json"


class Pipeline:
    """Stateful request handlers of the child (methods ``do_<request>``).

    Args:
        progress: Sends a progress record to the search process.
    """

    def __init__(self, progress: Callable[[dict[str, Any]], None]) -> None:
        self.progress = progress
        self.space: SpaceSpec | None = None
        self.data: Dataset | None = None
        self.profile: Profile | None = None
        self.weights: dict[str, list[np.ndarray]] | None = None
        self._resized: dict[tuple[str, int], np.ndarray] = {}

    # --- set-up ------------------------------------------------------------------------

    def do_setup(
        self, run_dir: str, data: str, seed: int, space: str, profile: str, train: dict[str, Any]
    ) -> dict[str, Any]:
        """Load data and profile, then load the run's supernet or train it."""
        from codesign.nn.train import TrainSettings

        self.space = get_space(space)
        self.data = load_dataset(data, seed)
        self.profile = load_profile(profile)
        settings = TrainSettings(**train)
        meta = json.loads(  # through JSON, so it compares equal to the saved copy
            json.dumps(
                {
                    "space": self.space.to_dict(),
                    "data": data,
                    "num_classes": self.data.num_classes,
                    "channels": self.data.channels,
                    "train": asdict(settings),
                }
            )
        )
        run = Path(run_dir)
        weights_path, meta_path = run / SUPERNET_FILE, run / SUPERNET_META
        net = self._new_supernet()
        if weights_path.is_file() and meta_path.is_file():
            saved = json.loads(meta_path.read_text())
            if saved.get("fingerprint") == meta:
                net.load(weights_path)
                self.weights = net.weights()
                return {"supernet": "loaded", "train_seconds": saved.get("train_seconds", 0.0)}
        from codesign.nn.train import train_supernet

        t0 = time.perf_counter()
        net = train_supernet(
            self.space,
            self.data,
            settings,
            progress=lambda e, n, loss: self.progress(
                {"stage": "supernet", "epoch": e, "epochs": n, "loss": loss}
            ),
        )
        seconds = time.perf_counter() - t0
        net.save(weights_path)
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fingerprint": meta, "train_seconds": seconds}, indent=1))
        tmp.replace(meta_path)
        self.weights = net.weights()
        return {"supernet": "trained", "train_seconds": seconds}

    def _new_supernet(self) -> Any:
        from codesign.nn.supernet import Supernet

        assert self.space is not None and self.data is not None
        return Supernet(self.space, self.data.num_classes, self.data.channels)

    def _images(self, split: str, resolution: int) -> np.ndarray:
        assert self.data is not None
        key = (split, resolution)
        if key not in self._resized:
            x, _ = self.data.split(split)
            if split == "train":
                x = x[:BN_CALIBRATION_IMAGES]
            self._resized[key] = resize_bilinear(x, resolution)
        return self._resized[key]

    # --- candidates --------------------------------------------------------------------

    def do_evaluate(self, candidate: dict[str, Any], model_path: str) -> dict[str, Any]:
        """Build, recalibrate, convert and measure one candidate; write its ``.tflite``."""
        if self.weights is None or self.space is None or self.data is None:
            raise TrialFailure("evaluation process is not set up")
        assert self.profile is not None
        from codesign.nn.bn import recalibrate_bn
        from codesign.nn.submodel import build_submodel, inherit_weights, kept_channels
        from codesign.tflite.convert import convert

        cand = Candidate.from_dict(candidate)
        if cand.precision not in self.profile.precisions:
            raise TrialFailure(
                f"profile {self.profile.name} cannot run precision {cand.precision}"
            )
        times: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            times[stage] = round(now - clock, 4)
            clock = now

        sub = self.space.subnet(cand)
        model = build_submodel(self.space, sub, self.data.num_classes, self.data.channels)
        inherit_weights(model, self.weights)
        lap("build")
        calib = self._images("train", cand.resolution)
        recalibrate_bn(model, calib)
        lap("bn_recalibration")
        blob = convert(model, cand.precision, calib)
        lap("conversion")
        p = self.profile
        val_acc = litert.accuracy(
            blob, self._images("val", cand.resolution), self.data.y_val, p.threads, p.resolver
        )
        test_acc = litert.accuracy(
            blob, self._images("test", cand.resolution), self.data.y_test, p.threads, p.resolver
        )
        lap("accuracy")
        sample = self._images("val", cand.resolution)[:1]
        latency = litert.time_latency(blob, sample, p.threads, p.resolver, p.warmup_runs, p.runs)
        lap("latency")
        out = Path(model_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(out)
        channels = kept_channels(model)
        layers = [
            {"name": name, "channels": channels[name], "precision": sub.precision[name]}
            for name in self.space.layer_names(cand.depths)
        ]
        return {
            "val_accuracy": val_acc,
            "test_accuracy": test_acc,
            "latency_ms": latency.to_dict(),
            "size_bytes": len(blob),
            "size_gzip_bytes": len(gzip.compress(blob, compresslevel=9)),
            "params": int(model.count_params()),
            "layers": layers,
            "io": litert.io_details(blob),
            "times": times,
        }

    # --- files -------------------------------------------------------------------------

    def do_accuracy_file(self, path: str, data: str, seed: int, split: str) -> dict[str, Any]:
        """Accuracy of a ``.tflite`` file on a split of a data set."""
        blob = _read_model(path)
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

    def do_benchmark_file(self, path: str, profile: str) -> dict[str, Any]:
        """Latency of a ``.tflite`` file on a profile's runtime settings."""
        blob = _read_model(path)
        prof = load_profile(profile)
        shape = litert.io_details(blob)["input"]["shape"]
        sample = np.random.default_rng(0).random([1, *shape[1:]], dtype=np.float32)
        stats = litert.time_latency(
            blob, sample, prof.threads, prof.resolver, prof.warmup_runs, prof.runs
        )
        return {"latency_ms": stats.to_dict(), "profile": prof.name, "size_bytes": len(blob)}


def _read_model(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CodesignError(f"cannot read model {path}: {exc.strerror}") from None
