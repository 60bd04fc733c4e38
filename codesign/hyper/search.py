"""The hypermodel search: the user's HyperModel, codesign's per-layer genes, the measured front.

:class:`HyperPlan` is the HyperModel's :class:`~codesign.engine.plan.SearchPlan`:
the job, the loop and the front are the built-in search's. Each trial: the
child builds the HyperModel, asking this process for every active
hyperparameter (:class:`codesign.hyper.space.HyperModelSpace`); this process
then asks the trial for a prune ratio per channel group and a precision per
layer of the built model; the child trains the model briefly, prunes it to a
narrower graph, fine-tunes, converts with the per-layer precisions, measures
accuracy, and times the file alone on the profile's device
(:class:`HyperTrial`). With ``--latency hybrid`` (the default where the
HyperModel's latency model passed its check) a candidate that could not
enter the front keeps its predicted latency instead of being timed. This
process never imports TensorFlow or the user's file.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
from tqdm import tqdm

from codesign.config import SearchConfig
from codesign.engine.measured import ChildTrial, Requests, measure_trial
from codesign.engine.plan import JobContext, Prepared, SearchPlan
from codesign.engine.screen import Screen, pricing
from codesign.engine.stages import priced
from codesign.engine.workers import joinable
from codesign.hyper.encoding import EVALUATIONS_FILE
from codesign.hyper.load import HyperSpec
from codesign.hyper.settings import HyperConfig, HyperSettings
from codesign.hyper.space import HyperModelSpace, layer_choices
from codesign.report.table import Column
from codesign.report.table import front_table as table_of
from codesign.run.directory import RunDir
from codesign.run.info import package_versions, profile_summary
from codesign.run.measurement import Measurement
from codesign.space.candidate import Candidate

PACKAGES = ("tensorflow", "tf_keras", "keras-tuner", "optuna", "ai-edge-litert",
            "ai-edge-quantizer", "numpy", "codesign")


def run_hyper_search(cfg: HyperConfig, out: TextIO = sys.stdout) -> Any:
    """Run (or resume) a hypermodel search and write the measured front.

    Args:
        cfg: Validated settings (see :func:`codesign.hyper.settings.HyperConfig`).
        out: Where progress and the table go.

    Returns:
        The result (:class:`codesign.engine.front.Published`).

    Raises:
        CodesignError: On a user error (the HyperModel cannot be imported, returns a
            Keras 3 model...) or when too many candidates fail.
    """
    from codesign.engine.job import run_search

    return run_search(HyperPlan(cfg), out)


class HyperPlan(SearchPlan):
    """A keras-tuner HyperModel, each candidate built, trained and pruned in the child.

    Args:
        cfg: The hypermodel search's settings.
    """

    source = "hypermodel"
    tune_front = False  # each candidate was trained already
    user_errors_stop = True  # the user's build runs in the child

    def __init__(self, cfg: HyperConfig) -> None:
        self.hyper = cfg
        self.cfg = cfg.search
        self._child_ctx: dict[str, Any] = {}

    @classmethod
    def joined(cls, saved: dict[str, Any], cfg: SearchConfig) -> HyperPlan:
        """The plan of a worker joining a hypermodel study (see :meth:`joinable`)."""
        spec = dict(saved["hypermodel"])
        if spec.get("pickled") is not None:
            spec["pickled"] = base64.b64decode(spec["pickled"])
        return cls(HyperConfig(HyperSpec(**spec), cfg, HyperSettings(
            **{**saved["training"], "prune_ratios": tuple(saved["training"]["prune_ratios"])})))

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must match (the HyperModel's file included)."""
        return self.hyper.identity()

    def joinable(self) -> dict[str, Any]:
        """The search's settings, the HyperModel's place and its training settings."""
        spec = self.hyper.hypermodel.to_dict()
        if spec["pickled"] is not None:
            spec["pickled"] = base64.b64encode(spec["pickled"]).decode()
        return {**joinable(self.cfg), "hypermodel": spec,
                "training": self.hyper.settings.to_dict()}

    def start(self, study: optuna.Study, out: TextIO) -> None:
        """Record the HyperModel in the study."""
        study.set_user_attr("hypermodel", self.hyper.hypermodel.text)

    def prepare(self, ctx: JobContext) -> Prepared:
        """The HyperModel's space (built through the child) and the evaluation of a trial."""
        h, s = self.hyper, self.cfg
        print(f"hypermodel {h.hypermodel.text}: {s.trials} trials, each trained up to "
              f"{h.settings.epochs} epochs (early stopping), on {ctx.data.name}, profile "
              f"{s.profile_spec.name}", file=ctx.out, flush=True)
        child_ctx = {"spec": h.hypermodel.to_dict(), "data": s.data, "seed": s.seed,
                     "profile": s.profile_spec.path, "train": h.settings.to_dict()}
        self._child_ctx = child_ctx
        space = HyperModelSpace(
            lambda answers: ctx.child.call("hyper_build", ctx=child_ctx, answers=answers),
            layer_choices(s.profile_spec), h.settings.prune_ratios, h.hypermodel.text)
        return Prepared(space, HyperTrial(ctx.child, s, ctx.run, child_ctx,
                                          self._screen(ctx, space)))

    def _screen(self, ctx: JobContext, space: HyperModelSpace) -> Screen | None:
        """The HyperModel's latency screen in a hybrid search (None: every candidate timed).

        A candidate is priced from the description of the model the child
        built for it, before it is trained.
        """
        from codesign.latency import hypermodel
        from codesign.latency.trained import chain

        s = self.cfg
        if s.latency != "hybrid":
            return None
        ref = hypermodel.reference(s.profile_spec, self.hyper.hypermodel, s.data, s.seed)
        model = hypermodel.load(s.profile_spec, ref)
        if model is None:
            print("latency: measured, every candidate timed: the HyperModel's latency model "
                  "is gone", file=ctx.out)
            self.cfg = replace(s, latency="measured")
            return None
        return priced(s, model, hypermodel.fidelity(s.profile_spec, ref),
                      lambda cand: chain(space.graph_of(cand), cand.to_dict()), ctx.child,
                      ctx.out, f"the model of {self.hyper.hypermodel.text} on "
                      f"{s.profile_spec.name}")

    def source_ctx(self) -> dict[str, Any]:
        """What the child's ``hypermodel`` requests carry."""
        return self._child_ctx

    def run_info(self, trials: list[Any]) -> dict[str, Any]:
        """What ``pareto.json`` records of the run."""
        return _run_info(self.hyper, self.cfg, len(trials))

    def table(self, doc: dict[str, Any]) -> str:
        """The front as a terminal table (with the hyperparameters)."""
        return front_table(doc)


@dataclass
class HyperTrial(ChildTrial):
    """Evaluates a HyperModel candidate for the loop (the child's ``hyper_*`` requests).

    Attributes:
        screen: The HyperModel's latency screen in a hybrid search (None: every
            candidate timed).
    """

    screen: Screen | None = None

    def __call__(self, trial: optuna.Trial, cand: Candidate,
                 bar: tqdm) -> tuple[float, ...]:
        """Train, prune, convert and measure ``cand``; time or price it; its objective values."""
        trial.set_user_attr("candidate", cand.to_dict())

        def progress(info: dict[str, Any]) -> None:
            if "epoch" in info:
                bar.set_postfix_str(f"trial {trial.number} {info['stage']} {info['epoch']}/"
                                    f"{info['epochs']} val {info['val_accuracy']:.3f}")

        req = Requests("hypermodel", self.ctx, progress, {"build": cand.build_s})
        m = measure_trial(trial, self.child, self.cfg, req, cand,
                          str(self.run.trial_model(trial.number)),
                          pricing(self.screen, trial, cand, self.cfg))
        _record(self.run, trial.number, cand, m)
        return m.objective_values(self.cfg.objectives)


def _record(run: RunDir, number: int, cand: Candidate, m: Measurement) -> None:
    """Append the evaluation to ``hyper_evaluations.jsonl`` (what an accuracy predictor learns)."""
    rec = {"trial": number, "hp": cand.hp_map, "resolution": cand.resolution,
           "prune": cand.prune_map, "precision": cand.precision_map,
           "channels": m.channels, "params": m.params,
           "val_accuracy": m.val_accuracy, "test_accuracy": m.test_accuracy,
           "latency_ms": m.latency_median, "size_bytes": m.size_bytes}
    with (run.root / EVALUATIONS_FILE).open("a") as fh:
        fh.write(json.dumps(rec) + "\n")


def front_table(doc: dict[str, Any]) -> str:
    """The front of a hypermodel run as a terminal table (with the hyperparameters)."""
    hps = Column("hyperparameters", lambda p: " ".join(
        f"{k}={_short(v)}" for k, v in p["candidate"]["hp"].items()))
    return table_of(doc, ("val acc", "test acc", "latency us", "RAM KB", "flash KB", "res",
                          "pruned", "precisions", hps))


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _run_info(cfg: HyperConfig, s: SearchConfig, completed: int) -> dict[str, Any]:
    """What ``pareto.json`` records of a hypermodel run (``s``: its settings as run)."""
    return {
        "data": s.data,
        "profile": profile_summary(s.profile_spec),
        "space": f"hypermodel {cfg.hypermodel.text}",
        "hypermodel": {"spec": cfg.hypermodel.text, "file": str(Path(cfg.hypermodel.file)),
                       "sha256": cfg.hypermodel.digest()},
        "sampler": s.sampler,
        "seed": s.seed,
        "trials": completed,
        "training": cfg.settings.to_dict(),
        "finetune_epochs": cfg.settings.finetune_epochs,
        "latency": s.latency,
        "accuracy": "measured",
        "package_versions": package_versions(PACKAGES),
    }
