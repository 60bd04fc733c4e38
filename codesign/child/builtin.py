"""What the evaluation child does: supernet, sub-models, conversion, measurement.

Runs only inside the child process (see :mod:`codesign.child`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from codesign.child.convert import checked_tflite, measure_and_write
from codesign.child.files import read_model
from codesign.child.source import Built, ModelSource, evaluate
from codesign.child.timing import DeviceTiming
from codesign.data import Dataset, load_dataset, resize_bilinear
from codesign.errors import TrialFailure
from codesign.hardware import litert
from codesign.hardware.devicelock import device_lock, host_work
from codesign.hardware.profile import Profile, load_profile
from codesign.hardware.timing import Timer
from codesign.nn import supernet_cache
from codesign.report.manifest import brief
from codesign.run.files import write_atomic
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec, SubnetSpec
from codesign.space.files import space_of

BN_CALIBRATION_IMAGES = 512
SUPERNET_FILE = "supernet.npz"
SUPERNET_META = "supernet.json"
QUALITY_FILE = "supernet_quality.json"


class BuiltinHandlers(ModelSource):
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
        self.timing = DeviceTiming()
        self._evaluator: Any = None

    # --- set-up ------------------------------------------------------------------------

    def do_setup(
        self, run_dir: str, data: str, seed: int, space: str | dict[str, Any], profile: str,
        train: dict[str, Any]
    ) -> dict[str, Any]:
        """Load data, profile and space (a name or a ``to_dict()``), then the run's supernet."""
        from codesign.nn.train import TrainSettings

        self._evaluator = None
        self.space = space_of(space)
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
        cached = supernet_cache.key(meta, data, seed)
        how = "loaded"
        if not (weights_path.is_file() and meta_path.is_file()) and supernet_cache.fetch(
                cached, weights_path, meta_path):
            how = "cached"
        if weights_path.is_file() and meta_path.is_file():
            saved = json.loads(meta_path.read_text())
            if saved.get("fingerprint") == meta:
                net.load(weights_path)
                self.weights = net.weights()
                self._prime_runtime()
                return {"supernet": how, "train_seconds": saved.get("train_seconds", 0.0),
                        "cache": str(supernet_cache.cache_dir() / cached)}
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
        write_atomic(meta_path, json.dumps({"fingerprint": meta, "train_seconds": seconds},
                                           indent=1))
        supernet_cache.store(cached, weights_path, meta_path)
        self.weights = net.weights()
        self._prime_runtime()
        return {"supernet": "trained", "train_seconds": seconds}

    def _prime_runtime(self) -> None:
        """Run one throwaway model first.

        One-time runtime costs (loading the delegate) are then not counted in
        the first candidate's latency or peak memory.
        """
        import tf_keras as keras

        from codesign.tflite.convert import convert_float

        assert self.profile is not None
        inp = keras.Input((4, 4, 1))
        out = keras.layers.Dense(2)(keras.layers.Flatten()(inp))
        blob = convert_float(keras.Model(inp, out))
        p = self.profile
        litert.time_latency(blob, np.zeros((1, 4, 4, 1), np.float32), p.threads, p.resolver, 5, 5,
                           spread_s=0.0)

    def _masked(self) -> Any:
        """The masked-supernet evaluator over the run's weights (made once)."""
        if self._evaluator is None:
            from codesign.nn.maskeval import MaskedEvaluator

            assert self.weights is not None
            net = self._new_supernet()
            net.set_weights(self.weights)
            self._evaluator = MaskedEvaluator(net)
        return self._evaluator

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

    def _ready(self) -> tuple[SpaceSpec, Dataset, Profile, dict[str, list[np.ndarray]]]:
        if self.weights is None or self.space is None or self.data is None:
            raise TrialFailure("evaluation process is not set up")
        assert self.profile is not None
        return self.space, self.data, self.profile, self.weights

    def _calibration(self, resolution: int, seed: int) -> np.ndarray:
        """Images for BN recalibration and quantization: the first ones, or a seeded draw."""
        if seed == 0:
            return self._images("train", resolution)
        assert self.data is not None
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(self.data.x_train), BN_CALIBRATION_IMAGES, replace=False)
        return resize_bilinear(self.data.x_train[np.sort(pick)], resolution)

    def _inherited(self, sub: SubnetSpec, times: dict[str, float], calib_seed: int = 0) -> Any:
        """The sub-network's float model: inherited weights, recalibrated batch norm."""
        from codesign.nn.bn import recalibrate_bn
        from codesign.nn.submodel import build_submodel, inherit_weights

        space, data, _, weights = self._ready()
        t0 = time.perf_counter()
        model = build_submodel(space, sub, data.num_classes, data.channels)
        inherit_weights(model, weights)
        t1 = time.perf_counter()
        recalibrate_bn(model, self._calibration(sub.resolution, calib_seed))
        times["build"] = round(t1 - t0, 4)
        times["bn_recalibration"] = round(time.perf_counter() - t1, 4)
        return model

    def _tflite(self, model: Any, sub: SubnetSpec, times: dict[str, float],
                calib_seed: int = 0) -> bytes:
        """Convert with each layer's precision and check the file holds exactly that."""
        profile = self._ready()[2]
        return checked_tflite(model, sub.precision, self._calibration(sub.resolution, calib_seed),
                              profile, times)

    def _measure(
        self, blob: bytes, sub: SubnetSpec, model_path: str, times: dict[str, float],
        timing: bool = True,
    ) -> dict[str, Any]:
        """Accuracy and latency of a file on the profile's runtime; write the file.

        With ``timing`` False, latency is left to the caller (``latency_ms`` None).
        """
        _, data, p, _ = self._ready()
        r = sub.resolution
        out = Path(model_path)
        facts = measure_and_write(blob, p, ((self._images("val", r), data.y_val),
                                            (self._images("test", r), data.y_test)), out, times)
        latency = None
        if timing:
            t1 = time.perf_counter()
            latency = self._time(blob, out, self._images("val", r)[:1])
            times["latency"] = round(time.perf_counter() - t1, 4)
        layers = self._layers(sub)
        return {
            **facts,
            "latency_ms": latency,
            "layers": layers,
            "times": times,
        }

    def _layers(self, sub: SubnetSpec) -> list[dict[str, Any]]:
        """Per layer of the sub-network: name, kind, output channels and precision."""
        space, data, _, _ = self._ready()
        kinds = space.layer_kinds(sub.depths)
        return [
            {
                "name": name,
                "kind": kinds[name],
                "channels": _out_channels(space, sub, name, data.num_classes),
                "precision": sub.precision[name],
            }
            for name in space.layer_names(sub.depths)
        ]

    def _time(self, blob: bytes, path: Path, sample: np.ndarray) -> dict[str, Any]:
        """Latency figures of a model on the profile's device (exclusive use of it)."""
        assert self.profile is not None
        return self.timing.time(self.profile, blob, path, sample)

    def _local_timer(self) -> Timer:
        """This child's timer for the profile (made once per profile)."""
        assert self.profile is not None
        return self.timing.local(self.profile)

    def prepare(self, ctx: dict[str, Any]) -> Profile:
        """The profile of the run set up (``setup``: the supernet is a run's first stage)."""
        return self._ready()[2]

    def build(self, candidate: dict[str, Any], times: dict[str, float]) -> Built:
        """The candidate's sub-model with inherited weights and recalibrated batch norm."""
        data = self._ready()[1]
        sub = self._ready()[0].subnet(Candidate.from_dict(candidate))  # once a request
        model = self._inherited(sub, times)
        r = sub.resolution
        return Built(model, sub.precision, self._calibration(r, 0),
                     ((self._images("val", r), data.y_val), (self._images("test", r), data.y_test)),
                     self._layers(sub), {"params": int(model.count_params())})

    def do_evaluate(
        self, candidate: dict[str, Any], model_path: str, timing: bool = True
    ) -> dict[str, Any]:
        """Build, recalibrate, convert and measure one candidate; write its ``.tflite``.

        With ``timing`` False the latency is not measured (``source_time`` does it).
        """
        cand = Candidate.from_dict(candidate)  # a malformed candidate is a user error here
        _, _, profile, _ = self._ready()
        result, blob = evaluate(self, candidate, profile, Path(model_path))
        if timing:
            t0 = time.perf_counter()
            result["latency_ms"] = self._time(blob, Path(model_path),
                                              self._images("val", cand.resolution)[:1])
            result["times"]["latency"] = round(time.perf_counter() - t0, 4)
        return result

    def do_accuracy_samples(
        self, candidates: list[dict[str, Any]], quantized: bool, calib_seed: int = 0,
        rounded: bool = False,
    ) -> list[dict[str, Any]]:
        """Validation accuracy of many candidates, for the accuracy predictor.

        Float: the sub-network after BN recalibration, through the masked
        supernet (no model built, no conversion; it computes what the inherited
        sub-model computes). Quantized: the converted file with each layer's precision,
        in the interpreter. Each result also holds the accuracy on the even and
        the odd validation images (``halves``): how well two halves agree tells
        how much of a measured accuracy is the validation set's own sampling
        noise. ``calib_seed`` other than 0 recalibrates (and
        calibrates quantization) on another draw of training images: the same
        candidates evaluated twice that way give the evaluation's own noise.
        ``rounded`` (with ``quantized`` False) screens the candidate's
        precisions cheaply: the masked supernet with each layer's folded
        weights rounded as its precision stores them, activations in float.
        """
        _, data, p, _ = self._ready()
        out = []
        for i, c in enumerate(candidates):
            cand = Candidate.from_dict(c)
            times: dict[str, float] = {}
            try:
                x = self._images("val", cand.resolution)
                with host_work():  # off the cores while a local timing runs
                    if quantized:
                        sub = self._ready()[0].subnet(cand)
                        model = self._inherited(sub, times, calib_seed)
                        blob = self._tflite(model, sub, times, calib_seed)
                        logits = litert.predict(blob, x, p.threads, p.resolver)
                        right = np.argmax(logits, axis=-1) == data.y_val
                    else:
                        right = self._masked().correct(
                            cand, self._calibration(cand.resolution, calib_seed), x, data.y_val,
                            rounded=rounded)
                out.append({"val_accuracy": float(np.mean(right)),
                            "halves": [float(np.mean(right[0::2])), float(np.mean(right[1::2]))]})
            except (TrialFailure, ValueError, RuntimeError) as exc:
                out.append({"error": str(exc)[:300]})
            self.progress({"stage": "predictor", "done": i + 1, "total": len(candidates)})
        return out

    def time(self, ctx: dict[str, Any], model_path: str) -> dict[str, Any]:
        """Latency figures of a written candidate file on the profile's device (no context)."""
        self._ready()
        blob = read_model(model_path)
        resolution = litert.io_details(blob)["input"]["shape"][1]
        return self._time(blob, Path(model_path), self._images("val", resolution)[:1])

    def time_together(self, ctx: dict[str, Any], model_paths: list[str]
                      ) -> list[dict[str, Any] | str]:
        """Latency figures of written candidate files timed as one batch (rounds interleaved)."""
        self._ready()
        assert self.profile is not None
        blobs = [read_model(p) for p in model_paths]
        samples = [self._images("val", litert.io_details(b)["input"]["shape"][1])[:1]
                   for b in blobs]
        return self.timing.time_together(self.profile, blobs, [Path(p) for p in model_paths],
                                         samples)

    def do_finetune(
        self, candidate: dict[str, Any], model_path: str, epochs: int, seed: int
    ) -> dict[str, Any]:
        """Fine-tune a candidate in float, quantize it, and measure it.

        When every layer is int8, quantization-aware training (TFMOT) is
        tried as well and kept if its validation accuracy is higher (chosen on
        validation, never on test). Both results are returned.
        """
        from codesign.nn.finetune import fine_tune

        _, data, _, _ = self._ready()
        sub = self._ready()[0].subnet(Candidate.from_dict(candidate))  # once a request
        x_train = resize_bilinear(data.x_train, sub.resolution)
        times: dict[str, float] = {}
        with host_work():  # training keeps off a local timing's cores
            model = self._inherited(sub, times)
            t0 = time.perf_counter()
            fine_tune(model, x_train, data.y_train, epochs, seed=seed)
            times["fine_tune"] = round(time.perf_counter() - t0, 4)
            blob = self._tflite(model, sub, times)
        ptq_path = str(Path(model_path).with_suffix(".ptq.tflite"))
        ptq = self._measure(blob, sub, ptq_path, times)
        summary = {"float_then_quantize": brief(ptq), "qat": None}
        best, best_path = ptq, ptq_path
        if set(sub.precision.values()) == {"int8"}:
            try:
                qat_path = str(Path(model_path).with_suffix(".qat.tflite"))
                qat = self._qat(model, sub, epochs, seed, qat_path)
                summary["qat"] = brief(qat)
                if qat["val_accuracy"] > ptq["val_accuracy"]:
                    best, best_path = qat, str(Path(model_path).with_suffix(".qat.tflite"))
            except (TrialFailure, ValueError, RuntimeError, TypeError) as exc:
                summary["qat"] = {"error": str(exc).splitlines()[0][:300]}
        Path(best_path).replace(model_path)
        best["finetune"] = {
            **summary,
            "method": "qat" if best is not ptq else "float_then_quantize",
            "epochs": epochs,
        }
        return best

    def _qat(self, tuned: Any, sub: SubnetSpec, epochs: int, seed: int, path: str
             ) -> dict[str, Any]:
        """Quantization-aware training (TFMOT) of the float-tuned model, then conversion.

        QAT goes on from the float fine-tuning's weights for :func:`qat_epochs`
        epochs (a third) at a tenth of its learning rate, as TFMOT's guide
        fine-tunes a trained model. On the demo's front this took its
        fine-tuning from 194 to 162 s and beat post-training quantization on
        all four points (QAT from the inherited weights for all the epochs:
        on one).
        """
        from codesign.nn.finetune import LEARNING_RATE, fine_tune
        from codesign.nn.qat import convert_qat, qat_epochs, qat_model

        data = self._ready()[1]
        times: dict[str, float] = {}
        with host_work():  # training keeps off a local timing's cores
            t0 = time.perf_counter()
            wrapped = qat_model(tuned)
            x_train = resize_bilinear(data.x_train, sub.resolution)
            fine_tune(wrapped, x_train, data.y_train, qat_epochs(epochs),
                      learning_rate=LEARNING_RATE / 10, seed=seed)
            times["fine_tune"] = round(time.perf_counter() - t0, 4)
            t1 = time.perf_counter()
            blob = convert_qat(wrapped)
        from codesign.tflite.inspect import mismatches

        problems = mismatches(blob, sub.precision)
        if problems:
            raise TrialFailure("QAT file does not hold the intended precisions: " + problems[0])
        times["conversion"] = round(time.perf_counter() - t1, 4)
        return self._measure(blob, sub, path, times)

    def do_noise_floor(self, path: str, repeats: int = 5) -> dict[str, Any]:
        """Coefficient of variation of the median latency over repeated measurements."""
        _, data, p, _ = self._ready()
        blob = read_model(path)
        sample = litert.random_sample(blob)
        medians = [self._time(blob, Path(path), sample)["median"] for _ in range(repeats)]
        cv = float(np.std(medians) / np.mean(medians))
        return {"model": path, "repeats": repeats, "medians_ms": medians, "cv": cv}

    def do_quality(self, run_dir: str, samples: int, epochs: int, seed: int) -> dict[str, Any]:
        """The supernet quality report (cached in the run directory)."""
        from codesign.nn.quality import supernet_quality

        space, data, _, weights = self._ready()
        path = Path(run_dir) / QUALITY_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("samples") == samples and saved.get("finetune_epochs") == epochs:
                return saved
        with host_work():  # training keeps off a local timing's cores
            report = supernet_quality(
                space, data, weights, samples, epochs, seed,
                progress=lambda i, n: self.progress({"stage": "quality", "done": i, "total": n}),
            )
        write_atomic(path, json.dumps(report, indent=1))
        return report

    def do_latency_measure(
        self, samples: list[dict[str, Any]], profile: str, out: str, repeats: int = 1,
        budget_s: float | None = None,
    ) -> dict[str, Any]:
        """Convert sampled networks and time them on a profile (see codesign.latency).

        Returns:
            ``{"records", "timing"}`` (see :func:`codesign.latency.measure.measure_samples`).
        """
        from codesign.latency.measure import measure_samples

        return measure_samples(
            samples, load_profile(profile), Path(out),
            lambda done, total: self.progress({"stage": "latency", "done": done,
                                               "total": total}),
            repeats, budget_s,
        )


    def do_reference(self, profile: str) -> dict[str, Any]:
        """The reference network's quiet median on a local profile now (the speed factor's)."""
        self.profile = load_profile(profile)
        with device_lock(self.profile.device, exclusive=True):
            timer = self._local_timer()
            timer.quietest_ms = None
            return {"reference_ms": timer.calibrate()}


def _out_channels(space: SpaceSpec, sub: Any, layer: str, num_classes: int) -> int:
    """Output channels of a layer of a sub-network."""
    if layer == "classifier":
        return num_classes
    for group, layers in space.group_layers().items():
        if layer in layers:
            return sub.channels[group]
    block = layer.rsplit("_", 1)[0]  # depthwise: the channels of the block's hidden group
    plan = next(bp for bp in space.blocks() if bp.name == block)
    return sub.channels[plan.hidden_group]
