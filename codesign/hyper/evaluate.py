"""The HyperModel source in the evaluation child, with its ``hyper_build`` request.

Registered by name (``hypermodel``) in :data:`codesign.child.source.SOURCES`;
a candidate is evaluated and timed by the requests every source shares
(``source_evaluate``, ``source_time``). Every request carries its context
(HyperModel, data, seed, profile, training settings) and the child loads what
it does not hold yet, so a child restarted after a crash needs no separate
set-up.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from codesign.child.source import Built, ModelSource
from codesign.child.timing import DeviceTiming
from codesign.data import Dataset, load_dataset, resize_bilinear
from codesign.errors import CodesignError, TrialFailure
from codesign.hardware import litert
from codesign.hardware.profile import Profile, load_profile

CALIBRATION_IMAGES = 128
TRAINED_CACHE = 4  # architectures whose trained weights are kept (prune / precision variants)


class HyperHandlers(ModelSource):
    """Request handlers of the hypermodel search (methods ``do_<request>``).

    Args:
        progress: Sends a progress record to the search process.
    """

    def __init__(self, progress: Callable[[dict[str, Any]], None]) -> None:
        self.progress = progress
        self._ctx: dict[str, Any] | None = None
        self._data: Dataset | None = None
        self._profile: Profile | None = None
        self._build_fn: Any = None
        self._last: tuple[str, Any, Any] | None = None
        self._trained: OrderedDict[str, tuple[list[np.ndarray], dict[str, Any]]] = OrderedDict()
        self._timing = DeviceTiming()

    # --- context -----------------------------------------------------------------------

    def _prepare(self, ctx: dict[str, Any]) -> tuple[Dataset, Profile]:
        if ctx != self._ctx:
            import codesign  # noqa: F401  (tf_keras before keras_tuner imports TensorFlow)
            from codesign.hyper.load import load_build

            self._data = load_dataset(ctx["data"], ctx["seed"])
            self._profile = load_profile(ctx["profile"])
            self._build_fn = load_build(ctx["spec"], self._data.num_classes, self._data.channels)
            self._last = None
            self._trained.clear()
            self._ctx = ctx
        assert self._data is not None and self._profile is not None
        return self._data, self._profile

    def _seed(self, key: str) -> int:
        assert self._ctx is not None
        return (int(self._ctx["seed"]) * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)

    # --- requests ----------------------------------------------------------------------

    def do_hyper_build(self, ctx: dict[str, Any], answers: dict[str, Any],
                       draw_seed: int | None = None) -> dict[str, Any]:
        """Build with the values given; ask for the first missing one, else describe the model.

        Args:
            ctx: The search's context.
            answers: The values given so far.
            draw_seed: Draw every missing value here instead, at random with this
                seed (:class:`codesign.latency.sources.RandomTrial`): one build
                per candidate, for a latency build's random candidates.

        Returns:
            ``{"need": spec}``, or ``{"graph", "hp", "input_shape", "params",
            "answers"}`` (``answers``: every value used, drawn ones included).
        """
        from codesign.hyper.graph import channel_graph
        from codesign.hyper.hp import NeedValue

        self._prepare(ctx)
        try:
            model, hp = self._build(answers, _drawer(draw_seed))
        except NeedValue as need:
            return {"need": need.spec}
        graph = channel_graph(model)
        self._last = (_key(hp.answers), model, graph)
        return {"graph": graph.describe(), "hp": _plain(hp.values),
                "input_shape": [int(d) for d in model.input_shape[1:]],
                "params": int(model.count_params()), "answers": _plain(hp.answers)}

    def _build(self, answers: dict[str, Any],
               draw: Callable[[dict[str, Any]], Any] | None = None) -> tuple[Any, Any]:
        import tf_keras as keras

        from codesign.hyper.hp import TrialHyperParameters
        from codesign.hyper.load import user_message

        assert self._ctx is not None
        keras.backend.clear_session()  # layer names restart, so genes are named alike per trial
        keras.utils.set_random_seed(self._seed(_key(answers)))
        hp = TrialHyperParameters(answers, draw)
        try:
            model = self._build_fn(hp)
        except (CodesignError, TrialFailure):
            raise
        except Exception as exc:
            raise TrialFailure(f"build failed: {user_message(exc, self._ctx['spec']['file'])}"
                               ) from None
        self._check(model)
        return model, hp

    def _check(self, model: Any) -> None:
        import tf_keras as keras

        assert self._ctx is not None and self._data is not None
        spec = self._ctx["spec"]
        if not isinstance(model, keras.Model):
            kind = f"{type(model).__module__}.{type(model).__name__}"
            if type(model).__module__.split(".")[0] == "keras":
                raise CodesignError(
                    f"{spec['text']} returned a Keras 3 model ({type(model).__name__}); codesign "
                    f"needs tf_keras: write `import tf_keras as keras` instead of `import keras` "
                    f"in {Path(spec['file']).name}")
            raise CodesignError(f"{spec['text']} returned {kind}, not a tf_keras model; return "
                                "keras.Model(inputs, outputs), with `import tf_keras as keras`")
        c, k = self._data.channels, self._data.num_classes
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise TrialFailure("the model must have one input and one output")
        shape = tuple(model.input_shape[1:])
        if len(shape) != 3 or shape[0] != shape[1] or shape[0] is None or shape[2] != c:
            raise TrialFailure(f"the model's input is {shape}; codesign feeds square images with "
                               f"{c} channel(s): use keras.Input((S, S, {c}))")
        if tuple(model.output_shape[1:]) != (k,):
            raise TrialFailure(f"the model's output is {tuple(model.output_shape[1:])}; the data "
                               f"has {k} classes: end with keras.layers.Dense({k})")

    def prepare(self, ctx: dict[str, Any]) -> Profile:
        """Load the context's data, profile and HyperModel (once per context)."""
        return self._prepare(ctx)[1]

    def build(self, candidate: dict[str, Any], times: dict[str, float]) -> Built:
        """Build the HyperModel with the candidate's answers, train, prune and fine-tune it.

        The candidate is the record with the replay's ``answers``
        (:meth:`codesign.space.candidate.Candidate.request`).
        """
        from codesign.hyper.prune import prune_model
        from codesign.nn.bn import recalibrate_bn
        from codesign.nn.finetune import BN_IMAGES, Schedule, fresh_optimizer, train

        assert self._ctx is not None and self._data is not None
        data, settings = self._data, self._ctx["train"]
        answers, prune, precision = (candidate["answers"], candidate["prune"],
                                     candidate["precision"])
        key = _key(answers)
        t0 = time.perf_counter()
        model, graph = self._built(answers)
        res = model.input_shape[1]
        train_xy = (resize_bilinear(data.x_train, res), data.y_train)
        val_xy = (resize_bilinear(data.x_val, res), data.y_val)
        info = self._trained_weights(model, key, train_xy, val_xy)
        times["train"] = round(time.perf_counter() - t0, 4)
        t1 = time.perf_counter()
        narrow, counts = prune_model(model, graph, prune)
        tuned = None
        if narrow is not model and settings["finetune_epochs"] > 0:
            tuned = train(narrow, train_xy, val_xy,
                          Schedule(settings["finetune_epochs"], settings["patience"],
                                   settings["batch_size"], self._seed(key) + 1),
                          fresh_optimizer(model, 5e-4), self._epoch_progress("finetune"))
        elif narrow is not model:
            recalibrate_bn(narrow, train_xy[0][:BN_IMAGES])
        times["prune"] = round(time.perf_counter() - t1, 4)
        layers = [
            {"name": name, "kind": kind, "channels": int(narrow.get_layer(name).output_shape[-1]),
             "precision": precision[name]}
            for name, kind in graph.precision_layers
        ]
        return Built(narrow, precision, train_xy[0][:CALIBRATION_IMAGES],
                     (val_xy, (resize_bilinear(data.x_test, res), data.y_test)), layers,
                     {"params": int(narrow.count_params()),
                      "channels": {g: counts[g] for g, grp in graph.groups.items()
                                   if grp.prunable},
                      "training": {"train": info, "finetune": tuned}})

    def _built(self, answers: dict[str, Any]) -> tuple[Any, Any]:
        """The model built with ``answers`` (the last build is reused) and its channel graph."""
        from codesign.hyper.graph import channel_graph

        key = _key(answers)
        if self._last is None or self._last[0] != key:
            model, _ = self._build(answers)
            self._last = (key, model, channel_graph(model))
        return self._last[1], self._last[2]

    def _trained_weights(self, model: Any, key: str, train_xy: Any, val_xy: Any
                         ) -> dict[str, Any]:
        """Train ``model`` (or load the weights this architecture was trained to before)."""
        from codesign.nn.finetune import Schedule, fresh_optimizer, train

        assert self._ctx is not None
        settings = self._ctx["train"]
        cached = self._trained.get(key)
        if cached is not None:
            model.set_weights(cached[0])
            self._trained.move_to_end(key)
            return {**cached[1], "reused": True}
        info = train(model, train_xy, val_xy,
                     Schedule(settings["epochs"], settings["patience"],
                              settings["batch_size"], self._seed(key)),
                     fresh_optimizer(model, 1e-3), self._epoch_progress("train"))
        self._trained[key] = ([w.copy() for w in model.get_weights()], info)
        while len(self._trained) > TRAINED_CACHE:
            self._trained.popitem(last=False)
        return info

    def time(self, ctx: dict[str, Any], model_path: str) -> dict[str, Any]:
        """Latency figures of a written candidate on the profile's device (exclusive)."""
        data, p = self._prepare(ctx)
        blob = Path(model_path).read_bytes()
        res = litert.io_details(blob)["input"]["shape"][1]
        return self._timing.time(p, blob, Path(model_path), resize_bilinear(data.x_val[:1], res))

    def convert_drawn(self, sample: dict[str, Any]) -> Path:
        """A drawn candidate's ``.tflite`` in the latency cache, converted once."""
        from codesign.child.convert import checked_tflite
        from codesign.hyper.prune import prune_model
        from codesign.latency.measure import converted_path
        from codesign.run.files import write_atomic

        path = converted_path(sample)
        if not path.is_file():
            assert self._data is not None and self._profile is not None
            cand = sample["candidate"]
            model, graph = self._built(cand["answers"])
            narrow, _ = prune_model(model, graph, cand["prune"])
            calibration = resize_bilinear(self._data.x_train[:CALIBRATION_IMAGES],
                                          model.input_shape[1])
            write_atomic(path, checked_tflite(narrow, cand["precision"], calibration,
                                              self._profile, {}))
        return path

    def _epoch_progress(self, stage: str) -> Callable[[int, int, float], None]:
        def report(epoch: int, epochs: int, val_accuracy: float) -> None:
            self.progress({"stage": stage, "epoch": epoch, "epochs": epochs,
                           "val_accuracy": val_accuracy})
        return report


def _drawer(seed: int | None) -> Callable[[dict[str, Any]], Any] | None:
    """Draws a hyperparameter's value at random from its spec (None: no seed, no drawing)."""
    if seed is None:
        return None
    from codesign.hyper.suggest import suggest_hp
    from codesign.latency.sources import RandomTrial

    trial = RandomTrial(np.random.default_rng(seed))
    return lambda spec: suggest_hp(trial, spec)


def _key(answers: dict[str, Any]) -> str:
    return json.dumps(answers, sort_keys=True, default=str)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameter values as JSON-friendly Python scalars."""
    out = {}
    for k, v in values.items():
        out[k] = v.item() if isinstance(v, np.generic) else v
    return out
