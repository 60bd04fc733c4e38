"""Settings of a trained-model search: frozen, validated, the model checked before any work.

:func:`compress_config` validates the settings, pre-flights the common ones,
and asks a short-lived evaluation child to load the user's model and check it
against the data (:meth:`codesign.compress.source.TrainedHandlers.do_trained_check`):
a bad file, classes that differ from the data's or a model that scores near
chance stop here with one line, before a run directory exists.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from codesign.config import TRAINED_FINETUNE_EPOCHS, SearchConfig
from codesign.data import CARVED, data_fingerprint
from codesign.errors import CodesignError
from codesign.hyper.settings import DEFAULT_PRUNE_RATIOS, check_prune_ratios
from codesign.preflight import preflight

TRIAL_FINETUNE_IMAGES = 0
"""Images a pruned candidate is fine-tuned on before it is scored (0: scored on its
inherited, recalibrated weights). One pass over 2,048 images raised the search's
scores of uniform 25/50 % pruning from 0.64/0.35 to 0.95/0.87 on
``tools/bench_compress.py``'s MobileNetV2-style model, for 6-7 s a trial, but did
not rank the fine-tuned front better (Kendall tau 0.39 and -0.04 in two runs,
against 0.81 and 0.19 on inherited weights); README."""
PRUNE_CRITERIA = ("l1", "bn")  # codesign.hyper.prune.CRITERIA (that module imports tf_keras)


@dataclass(frozen=True)
class CompressSettings:
    """How the user's model is compressed and fed.

    Attributes:
        prune_ratios: Fractions of a channel group the search may remove.
        max_accuracy_drop: Most validation accuracy a candidate may lose against
            the original model's float32 ``.tflite`` (a fraction; None: no limit).
        input_scale: Model input = raw pixels * this + ``input_offset``, for a
            model without its own ``Rescaling``/``Normalization`` (None: [0, 1]).
        input_offset: See ``input_scale``.
        search_resolution: Search the input resolution too, where the model
            allows it (fully convolutional up to global pooling).
        prune_criterion: Which channels a pruned group keeps: ``bn`` (the
            batch-norm scale after each producer, L1 where there is none) or
            ``l1`` (the filters' L1 norm).
        trial_finetune_images: Training images a pruned candidate is fine-tuned
            on (one pass, distilled from the original) before the search scores
            it (0: scored on its inherited weights).
    """

    prune_ratios: tuple[float, ...] = DEFAULT_PRUNE_RATIOS
    max_accuracy_drop: float | None = None
    input_scale: float | None = None
    input_offset: float | None = None
    search_resolution: bool = False
    prune_criterion: str = "bn"  # measured: tools/bench_prune_criterion.py (README)
    trial_finetune_images: int = TRIAL_FINETUNE_IMAGES

    def validate(self) -> CompressSettings:
        """Return ``self`` if every setting is in range.

        Raises:
            CodesignError: Naming the first bad setting.
        """
        check_prune_ratios(self.prune_ratios)
        d = self.max_accuracy_drop
        if d is not None and not 0.0 <= d <= 1.0:
            raise CodesignError(f"--max-accuracy-drop is a fraction from 0 to 1 (0.01 = one "
                                f"point), got {d}")
        for flag, v in (("--input-scale", self.input_scale),
                        ("--input-offset", self.input_offset)):
            if v is not None and not math.isfinite(v):
                raise CodesignError(f"{flag} must be a finite number, got {v}")
        if self.prune_criterion not in PRUNE_CRITERIA:
            raise CodesignError(f"--prune-criterion is {self.prune_criterion!r}; use one of: "
                                f"{', '.join(PRUNE_CRITERIA)}")
        if not 0 <= self.trial_finetune_images <= 10_000_000:
            raise CodesignError("--trial-finetune-images is a count of images from 0 "
                                f"(scores on inherited weights), got {self.trial_finetune_images}")
        if self.input_scale == 0.0:
            raise CodesignError("--input-scale must not be 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        d = asdict(self)
        d["prune_ratios"] = list(self.prune_ratios)
        return d


@dataclass(frozen=True)
class CompressConfig:
    """A trained-model search: the model, the common settings, compression, the model's facts.

    Attributes:
        model: The model's path (resolved).
        search: The validated common settings.
        settings: Compression settings.
        facts: What the child's check found (graph, input shape, preprocessing...).
    """

    model: str
    search: SearchConfig
    settings: CompressSettings = field(default_factory=CompressSettings)
    facts: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """Settings a resumed run must match (the model's bytes included)."""
        cfg = self.search
        return {
            "model": data_fingerprint(self.model),
            "data": data_fingerprint(cfg.data),
            "val_data": None if cfg.val_data is None else data_fingerprint(cfg.val_data),
            "seed": cfg.seed,
            "profile": cfg.profile_spec.identity(),
            "sampler": cfg.sampler,
            "objectives": list(cfg.objectives),
            "budgets": cfg.budgets(),
            "compress": _compress_identity(self.settings),
        }

    def child_ctx(self) -> dict[str, Any]:
        """What every ``trained_*`` request carries."""
        s = self.search
        return {"model": self.model, "data": s.data, "seed": s.seed, "val_data": s.val_data,
                "profile": s.profile_spec.path,
                "input": [self.settings.input_scale, self.settings.input_offset],
                "criterion": self.settings.prune_criterion,
                "search_resolution": self.settings.search_resolution,
                "trial_finetune_images": self.settings.trial_finetune_images}


def _compress_identity(settings: CompressSettings) -> dict[str, Any]:
    """The compression settings a resume must match.

    A setting newer than a run, at the value that run had without it, is left
    out, so runs made before it still resume.
    """
    d = settings.to_dict()
    if not d["trial_finetune_images"]:
        del d["trial_finetune_images"]
    return d


def compress_config(model: str | Path, settings: SearchConfig,
                    compress: CompressSettings | None = None,
                    out: TextIO = sys.stdout) -> CompressConfig:
    """Validate, pre-flight and check a trained-model search before any work.

    Args:
        model: A ``.keras`` file, an ``.h5`` file or a SavedModel directory.
        settings: The common settings (``accuracy`` measured; ``latency`` measured,
            hybrid or None: see :func:`codesign.latency.trained.search_mode`).
        compress: Compression settings (None: defaults).
        out: Where the check's one-line summary goes.

    Raises:
        CodesignError: One line, on a bad setting, bad data or a model that
            does not fit the data.
    """
    if settings.accuracy != "measured":
        raise CodesignError("a --model search measures every candidate's accuracy: use "
                            "--accuracy measured (the estimators are for the built-in space)")
    compress = (compress or CompressSettings()).validate()
    path = Path(model)
    if not path.exists():
        raise CodesignError(f"--model {model}: no such file or directory: give a .keras file, "
                            "an .h5 file or a SavedModel directory")
    tune = TRAINED_FINETUNE_EPOCHS if settings.finetune_epochs is None else settings.finetune_epochs
    cfg = preflight(replace(settings, latency="measured", quality_samples=0,
                            finetune_epochs=tune))
    from codesign.latency.trained import search_mode

    latency, note = search_mode(settings.latency, cfg.profile_spec, path.resolve(), cfg.data)
    cfg = replace(cfg, latency=latency)
    base = CompressConfig(str(path.resolve()), cfg, compress)
    from codesign.child import EvalChild

    with EvalChild(timeout_s=cfg.timeout_s) as child:
        facts = child.call("trained_check", ctx=base.child_ctx())
    say_model(facts, out)
    if note:
        print(note, file=out)
    return replace(base, facts=facts)


def say_model(facts: dict[str, Any], out: TextIO) -> None:
    """The model's facts in a few lines: shape, groups, frozen groups and why."""
    groups = facts["graph"]["groups"]
    prunable = [g for g in groups if g["prunable"]]
    h, w, c = facts["input_shape"]
    print(f"model: {facts['format']}{' (translated to tf_keras)' if facts['translated'] else ''}"
          f", input {h}x{w}x{c}, {facts['classes']} classes ({facts['output']}), "
          f"{facts['params']:,} parameters, {len(facts['graph']['layers'])} conv/dense layers, "
          f"{len(prunable)} of {len(groups)} channel groups prunable; {facts['input']['formula']}"
          f"; Keras validation accuracy {facts['keras_val_accuracy']:.3f}", file=out)
    for g in groups:
        if not g["prunable"]:
            print(f"  frozen {g['name']} ({g['size']} channels): "
                  f"{'; '.join(g['frozen_by']) or 'not prunable'}", file=out)
    sizes = facts.get("resolutions") or [h]
    if len(sizes) > 1:
        print(f"input resolutions searched: {', '.join(map(str, sizes))}", file=out)
    elif facts.get("fixed_size"):
        print(f"the input resolution stays {h}x{w}: the model does not run "
              f"{facts['fixed_size']}", file=out)
    if not prunable:
        print("nothing can be pruned (every channel group is frozen, see above): a "
              "precision-only search", file=out)


def validation_note(validation: str) -> str | None:
    """The one-line warning for a validation split carved from the training images."""
    if validation != CARVED:
        return None
    return ("note: the validation split is carved from the training images, which the model "
            "may have seen in training, so its scores may be too kind; give x_val/y_val in the "
            "npz or --val-data")
