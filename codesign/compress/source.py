"""The trained-model source in the evaluation child, with its ``trained_*`` requests.

Registered by name (``trained``) in :data:`codesign.child.source.SOURCES`; a
candidate is evaluated and timed by the requests every source shares
(``source_evaluate``, ``source_time``).

The user's model is loaded once per context (:func:`codesign.models.load.load_user_model`),
its channel groups analysed (:func:`codesign.hyper.graph.channel_graph`) and the
data mapped to its input units (:mod:`codesign.compress.inputs`). A candidate
keeps each group's most important channels by L1 norm
(:func:`codesign.hyper.prune.prune_model`), then batch norm is recalibrated on
training images; the one evaluation path (:func:`codesign.child.source.evaluate`)
converts it with its per-layer precisions, reads it back and measures it.
Every request carries its context, so a restarted child needs no set-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codesign.child.source import Built, ModelSource, evaluate
from codesign.child.timing import DeviceTiming
from codesign.compress.inputs import InputMap, diagnose, input_map, near_chance
from codesign.compress.resolution import Variant, at_resolution, resolutions
from codesign.data import load_dataset, resize_bilinear
from codesign.errors import CodesignError
from codesign.hardware.profile import Profile, load_profile

CALIBRATION_IMAGES = 128
BN_IMAGES = 512
TIMINGS = 3  # timings of one file at most, while the machine stays disturbed
FINETUNE_LR = 5e-4
FINETUNE_PATIENCE = 2
FINETUNE_BATCH = 64
DISTILLATION = "targets: half the label, half the original's outputs softened at T=2"
Split = tuple[np.ndarray, np.ndarray]


@dataclass
class Loaded:
    """A context's model, graph, profile and data in the model's input units.

    Attributes:
        user: The :class:`codesign.models.load.UserModel`.
        graph: Its channel groups.
        profile: The hardware profile.
        inputs: How codesign's images become the model's input.
        train: Training images (for calibration and batch-norm statistics) and labels.
        val: Validation split.
        test: Test split.
        validation: Where the validation split came from.
        data: The data set (codesign's [0, 1] images).
        teacher: The original model's outputs on the training images (once needed).
        variants: The model at other input resolutions, as they are asked for.
    """

    user: Any
    graph: Any
    profile: Profile
    inputs: InputMap
    train: Split
    val: Split
    test: Split
    validation: str
    data: Any = None
    teacher: np.ndarray | None = None
    variants: dict[int, Variant] = field(default_factory=dict)


class TrainedHandlers(ModelSource):
    """Request handlers of the trained-model source (methods ``do_<request>``).

    Args:
        progress: Sends a progress record to the search process (unused: no training).
    """

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self._ctx: dict[str, Any] | None = None
        self._loaded: Loaded | None = None
        self._timing = DeviceTiming()

    def _prepare(self, ctx: dict[str, Any]) -> Loaded:
        if ctx != self._ctx or self._loaded is None:
            self._loaded = _load(ctx)
            self._ctx = ctx
        return self._loaded

    def do_trained_check(self, ctx: dict[str, Any]) -> dict[str, Any]:
        """Load and check the model against the data; describe it for the search process.

        Raises:
            CodesignError: If the model is not one codesign can compress, its
                classes or channels differ from the data's, or it scores near
                chance on the validation split (naming the likely cause).
        """
        got = self._prepare(ctx)
        user, (xv, yv) = got.user, got.val
        pred = np.argmax(np.asarray(user.model.predict(xv, batch_size=256, verbose=0)), axis=-1)
        sizes, why = [user.input_shape[0]], ""
        if ctx.get("search_resolution"):
            sizes, why = resolutions(user.model, user.input_shape, user.num_classes)
        acc = float(np.mean(pred == yv))
        if near_chance(acc, yv):
            raise CodesignError(diagnose(pred, yv, got.inputs, user.num_classes))
        return {"graph": got.graph.describe(), "input_shape": list(user.input_shape),
                "classes": user.num_classes, "output": user.output, "format": user.format,
                "translated": user.translated, "notes": list(user.notes),
                "preprocessing": [p.layer for p in user.preprocessing],
                "input": {"formula": got.inputs.formula, "source": got.inputs.source},
                "keras_val_accuracy": acc, "params": int(user.model.count_params()),
                "validation": got.validation, "resolutions": sizes, "fixed_size": why}

    def prepare(self, ctx: dict[str, Any]) -> Profile:
        """Load and analyse the context's model and data (once per context)."""
        return self._prepare(ctx).profile

    def time(self, ctx: dict[str, Any], model_path: str) -> dict[str, Any]:
        """Latency figures of a written candidate on the profile's device (exclusive)."""
        got = self._prepare(ctx)
        return self._time(got, Path(model_path).read_bytes(), Path(model_path))

    def _time(self, got: Loaded, blob: bytes, path: Path) -> dict[str, Any]:
        """Time ``blob``; again while the machine was disturbed (drift); the fastest is kept."""
        from codesign.hardware import litert

        size = litert.io_details(blob)["input"]["shape"][1:3]
        sample = resize_bilinear(got.val[0][:1], (int(size[0]), int(size[1])))
        best: dict[str, Any] | None = None
        for _ in range(TIMINGS):
            record = self._timing.time(got.profile, blob, path, sample)
            if best is None or record["median"] < best["median"]:
                best = record
            if not record.get("disturbed"):
                break
        assert best is not None
        return best

    def convert_drawn(self, sample: dict[str, Any]) -> Path:
        """A sampled candidate's ``.tflite`` in the latency cache, converted once."""
        from codesign.child.convert import checked_tflite
        from codesign.latency.measure import converted_path
        from codesign.run.files import write_atomic

        path = converted_path(sample)
        if not path.is_file():
            assert self._loaded is not None
            built = self.build(sample["candidate"], {}, recover=False)
            write_atomic(path, checked_tflite(built.model, built.precision, built.calibration,
                                              self._loaded.profile, {}))
        return path

    def do_trained_finetune(self, ctx: dict[str, Any], candidate: dict[str, Any],
                            model_path: str, epochs: int) -> dict[str, Any]:
        """Prune, fine-tune distilled from the original model, convert, measure and time.

        Returns:
            The measurement with its latency and a ``finetune`` record.
        """
        got = self._prepare(ctx)
        cand = {"prune": candidate["prune"], "precision": candidate["precision"],
                "resolution": candidate.get("resolution"), "finetune_epochs": int(epochs)}
        m, blob = evaluate(self, cand, got.profile, Path(model_path))
        m["latency_ms"] = self._time(got, blob, Path(model_path))
        trained = m.pop("training", {})
        m["finetune"] = {"method": "distillation", "epochs": int(epochs),
                         "epochs_run": trained.get("epochs"),
                         "keras_val_accuracy": trained.get("val_accuracy"),
                         "teacher": trained.get("teacher"),
                         "distillation": trained.get("distillation")}
        return m

    def build(self, candidate: dict[str, Any], times: dict[str, float],
              recover: bool = True) -> Built:
        """The user's model with each group's most important channels kept, BN recalibrated.

        A pruned trial is then fine-tuned briefly (the context's
        ``trial_finetune_images``), and a front model for its epochs; ``recover``
        False skips the brief one (a latency sample: weights change no op).
        """
        import time

        from codesign.hyper.prune import prune_model
        from codesign.nn.bn import recalibrate_bn

        assert self._loaded is not None
        got = self._loaded
        t0 = time.perf_counter()
        v = at_resolution(got, int(candidate.get("resolution") or got.user.input_shape[0]),
                          got.variants)
        narrow, counts = prune_model(v.model, v.graph, candidate["prune"],
                                     str(self._ctx.get("criterion", "bn")) if self._ctx else "bn")
        if narrow is not v.model:
            recalibrate_bn(narrow, v.train[0][:BN_IMAGES])
        times["prune"] = round(time.perf_counter() - t0, 4)
        made: dict[str, Any] = {}
        images = int(self._ctx.get("trial_finetune_images", 0)) if self._ctx else 0
        if candidate.get("finetune_epochs"):
            t1 = time.perf_counter()
            if narrow is v.model:  # the user's own (or cached) weights stay untouched
                narrow = clone_with_weights(narrow)
            made["training"] = self._distill(narrow, int(candidate["finetune_epochs"]), v)
            times["fine_tune"] = round(time.perf_counter() - t1, 4)
        elif images > 0 and narrow is not v.model and recover:
            t1 = time.perf_counter()  # a pruned trial, scored after a short recovery
            made["training"] = {**self._distill(narrow, 1, v, images),
                                "purpose": "scored after a short recovery"}
            times["fine_tune"] = round(time.perf_counter() - t1, 4)
        precision = candidate["precision"]
        layers = [
            {"name": name, "kind": kind, "channels": int(narrow.get_layer(name).output_shape[-1]),
             "precision": precision[name]}
            for name, kind in v.graph.precision_layers
        ]
        channels = {g: counts[g] for g, grp in v.graph.groups.items() if grp.prunable}
        return Built(narrow, precision, v.train[0][:CALIBRATION_IMAGES], (v.val, v.test),
                     layers, {"params": int(narrow.count_params()), "channels": channels, **made})

    def _distill(self, model: Any, epochs: int, v: Variant,
                 images: int | None = None) -> dict[str, Any]:
        """Fine-tune ``model`` on the training images toward labels and the original's outputs.

        Args:
            model: The pruned model, trained in place.
            epochs: Passes over the images.
            v: The model's variant (its resolution's images).
            images: Train on this many training images (None: all), a random
                sample drawn from the run's seed: the same for every candidate.
        """
        import tf_keras as keras

        from codesign.nn.finetune import Schedule, distill_targets, train

        assert self._loaded is not None and self._ctx is not None
        got = self._loaded
        if got.teacher is None:
            got.teacher = np.asarray(got.user.model.predict(got.train[0], batch_size=256,
                                                            verbose=0))
        targets = distill_targets(got.train[1], got.teacher, got.user.output != "logits")
        seed = int(self._ctx["seed"])
        pick = np.arange(len(v.train[1]))
        if images is not None and images < len(pick):
            pick = np.sort(np.random.default_rng(seed).permutation(len(pick))[:images])
        info = train(model, (v.train[0][pick], v.train[1][pick]), v.val,
                     Schedule(epochs, FINETUNE_PATIENCE, FINETUNE_BATCH, seed),
                     keras.optimizers.Adam(FINETUNE_LR), None, targets[pick])
        return {**info, "images": int(len(pick)), "teacher": "original model",
                "distillation": DISTILLATION}


def _load(ctx: dict[str, Any]) -> Loaded:
    """Read the model, data and profile of a context; check they fit together.

    Raises:
        CodesignError: If the model cannot be used or does not fit the data.
    """
    import codesign  # noqa: F401  (tf_keras before TensorFlow loads)
    from codesign.hyper.graph import channel_graph
    from codesign.models.load import load_user_model

    data = load_dataset(ctx["data"], ctx["seed"], ctx.get("val_data"))
    user = load_user_model(ctx["model"])
    h, w, c = user.input_shape
    if user.num_classes != data.num_classes:
        raise CodesignError(
            f"{ctx['model']} has {user.num_classes} outputs but the data has "
            f"{data.num_classes} classes ({', '.join(data.labels[:6])}"
            f"{'...' if data.num_classes > 6 else ''}): give the data the model was trained for")
    if c != data.channels:
        raise CodesignError(f"{ctx['model']} takes {c}-channel images but the data's have "
                            f"{data.channels}: give images with {c} channel(s)")
    pre = data.preprocessing
    inputs = input_map(float(pre["scale"]), float(pre["offset"]),
                       [p.layer for p in user.preprocessing], tuple(ctx["input"]))
    try:
        graph = channel_graph(user.model)
    except Exception as exc:  # TrialFailure or Keras: the model's graph is not followable
        raise CodesignError(f"{ctx['model']}: codesign cannot follow its graph ({exc})") from None

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return inputs(resize_bilinear(x, (h, w))), y

    return Loaded(user, graph, load_profile(ctx["profile"]), inputs,
                  split(data.x_train, data.y_train), split(data.x_val, data.y_val),
                  split(data.x_test, data.y_test), data.validation, data)


def clone_with_weights(model: Any) -> Any:
    """A copy of a tf_keras model with its weights (training it leaves ``model`` alone)."""
    import tf_keras as keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
