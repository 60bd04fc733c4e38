"""The trained-model search: the user's model, pruned per channel group and quantized per layer.

:class:`CompressPlan` is the third :class:`~codesign.engine.plan.SearchPlan`:
the job, the loop and the front are every search's. Set-up measures the
original model in float32 and all-int8 (the run's references; the float32 one
anchors ``--max-accuracy-drop``); each trial asks the trial for a prune ratio
per group and a precision per layer (:class:`~codesign.compress.space.TrainedSpace`),
and the child prunes, recalibrates, converts, measures and times it
(:class:`CompressTrial`) on the inherited weights. The front (and the layer
under it) is then fine-tuned with the user's data, distilled from the original
model, quantized per layer and measured again. This process never imports
TensorFlow.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
from tqdm import tqdm

from codesign.child import EvalChild
from codesign.compress.settings import CompressConfig, CompressSettings, validation_note
from codesign.compress.space import TrainedSpace
from codesign.config import SearchConfig, reference_runs
from codesign.engine.device import retry_when_back
from codesign.engine.measured import ChildTrial, Requests, measure, measure_trial
from codesign.engine.plan import JobContext, Prepared, SearchPlan
from codesign.engine.screen import Screen, pricing
from codesign.engine.stages import priced
from codesign.engine.workers import joinable
from codesign.errors import TrialFailure
from codesign.hyper.space import layer_choices
from codesign.report.manifest import brief
from codesign.report.stats import kendall_tau
from codesign.report.table import Column
from codesign.report.table import front_table as table_of
from codesign.run.directory import RunDir
from codesign.run.files import write_atomic
from codesign.run.info import package_versions, profile_summary
from codesign.run.measurement import Measurement
from codesign.space.candidate import Candidate

PACKAGES = ("tensorflow", "tf_keras", "keras", "optuna", "ai-edge-litert", "ai-edge-quantizer",
            "numpy", "codesign")
REFERENCE_DROPS = ("io", "params", "times")
SOURCE = "trained"  # the model source's name in the child


def run_compress_search(cfg: CompressConfig, out: TextIO = sys.stdout) -> Any:
    """Run (or resume) a trained-model search and write the measured front.

    Returns:
        The result (:class:`codesign.engine.front.Published`).
    """
    from codesign.engine.job import run_search

    return run_search(CompressPlan(cfg), out)


class CompressPlan(SearchPlan):
    """The user's trained model, pruned and quantized per candidate in the child.

    Args:
        cfg: The trained-model search's settings (the model checked).
    """

    source = SOURCE
    tune_front = True  # the front is fine-tuned, distilled from the original model

    def __init__(self, cfg: CompressConfig) -> None:
        self.trained = cfg
        self.cfg = cfg.search
        self.min_accuracy: float | None = None
        self.run: RunDir | None = None

    @classmethod
    def joined(cls, saved: dict[str, Any], cfg: SearchConfig) -> CompressPlan:
        """The plan of a worker joining a trained-model study (see :meth:`joinable`)."""
        t = saved["trained"]
        s = t["settings"]
        settings = CompressSettings(**{**s, "prune_ratios": tuple(s["prune_ratios"])})
        return cls(CompressConfig(t["model"], cfg, settings, t["facts"]))

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must match (the model's bytes included)."""
        return self.trained.identity()

    def joinable(self) -> dict[str, Any]:
        """The common settings, the model and what its check found."""
        t = self.trained
        return {**joinable(self.cfg), "trained": {"model": t.model,
                                                  "settings": t.settings.to_dict(),
                                                  "facts": t.facts}}

    def _space(self) -> TrainedSpace:
        f = self.trained.facts
        return TrainedSpace(f["graph"], int(f["input_shape"][0]),
                            layer_choices(self.cfg.profile_spec),
                            self.trained.settings.prune_ratios, Path(self.trained.model).name,
                            f.get("resolutions") or ())

    def start(self, study: optuna.Study, out: TextIO) -> None:
        """Seed a new study: uniform pruning at every ratio, in float32 and in int8.

        Uniform channel pruning then int8 is the baseline a user would try by
        hand (AMC's); seeded, the front holds it at least. Without the 0.5
        int8 seed, 12 trials on ``tools/bench_compress.py``'s ResNet-style
        model found no point as fast as it; without the 0.75 seeds, 30 trials
        found none faster than uniform 0.5 (the sampler's independent draws
        average to the middle ratios).
        """
        if study.get_trials(deepcopy=False):
            return
        space = self._space()
        ratios = sorted(r for r in space.prune_ratios if r > 0)
        groups = [g["name"] for g in space.graph["groups"] if g["prunable"]]
        seeds = [(r, p) for p in ("float32", "int8") for r in ratios]
        for ratio, precision in seeds if groups else [(0.0, "int8")]:
            if not all(precision in c for c in space.choices.values()):
                continue
            params: dict[str, Any] = {f"prune/{g}": ratio for g in groups}
            if len(space.resolutions) > 1:
                params["resolution"] = space.resolution
            params.update({f"precision/{n}": p
                           for n, p in space.uniform(precision).precision})
            study.enqueue_trial(params, user_attrs={"anchor": f"uniform {ratio:g} {precision}"})

    def prepare(self, ctx: JobContext) -> Prepared:
        """The references (once per run), the budget they anchor, the space and the trial."""
        t, s = self.trained, self.cfg
        print(f"compressing {Path(t.model).name}: {s.trials} trials on {ctx.data.name} "
              f"(validation: {ctx.data.validation}), profile {s.profile_spec.name}",
              file=ctx.out, flush=True)
        note = validation_note(ctx.data.validation)
        if note:
            print(note, file=ctx.out)
        space = self._space()
        self.run = ctx.run
        trial = CompressTrial(ctx.child, s, ctx.run, t.child_ctx(), self._screen(ctx))
        with ctx.coord.file_lock("references", "waiting for another worker to measure the "
                                 "original model"):
            refs = references(trial, space, ctx.out)
        drop = t.settings.max_accuracy_drop
        base = next((r for r in refs if r["name"] == "original-float32"), None)
        if drop is not None and base is not None:
            floor = base["val_accuracy"] - drop
            self.min_accuracy = max(floor, s.min_accuracy or 0.0)
            self.cfg = replace(s, min_accuracy=self.min_accuracy)
            trial.cfg = self.cfg
            when = ("the fine-tuned front's points need" if s.finetune_epochs > 0
                    else "candidates need")
            print(f"--max-accuracy-drop {drop:g}: {when} validation accuracy >= "
                  f"{self.min_accuracy:.4f} (the original float32 .tflite scores "
                  f"{base['val_accuracy']:.4f})", file=ctx.out)
        return Prepared(space, trial, references=refs)

    def _screen(self, ctx: JobContext) -> Screen | None:
        """The model's latency screen in a hybrid search (None: every candidate timed).

        The candidates are priced from the run's description of the model; a
        run described before descriptions listed their ops cannot be, and is
        timed in full (said in one line).
        """
        from codesign.latency import trained

        t, s = self.trained, self.cfg
        if s.latency != "hybrid":
            return None
        graph = t.facts["graph"]
        model = trained.load(s.profile_spec, t.model)
        if not graph.get("ops") or model is None:
            why = ("its stored description of the model lists no ops (written by an older "
                   "codesign)" if model is not None else "the model's latency model is gone")
            print(f"latency: measured, every candidate timed: {why}", file=ctx.out)
            self.cfg = replace(s, latency="measured")
            return None
        return priced(self.cfg, model, trained.fidelity(s.profile_spec, t.model),
                      lambda cand: trained.chain(graph, cand.to_dict()), ctx.child, ctx.out,
                      f"the model of {Path(t.model).name} on {s.profile_spec.name}")

    def source_ctx(self) -> dict[str, Any]:
        """What the child's ``trained`` requests carry."""
        return self.trained.child_ctx()

    def finetune(self, child: EvalChild, candidate: dict[str, Any], model_path: str,
                 epochs: int) -> dict[str, Any]:
        """Fine-tune a front candidate with the original model as the teacher; measure it."""
        return child.call("trained_finetune", ctx=self.trained.child_ctx(), candidate=candidate,
                          model_path=model_path, epochs=epochs)

    def describe_data(self, info: dict[str, Any]) -> dict[str, Any]:
        """The data as the model is fed: its own preprocessing or the flags."""
        model_input = self.trained.facts.get("input", {})
        return {**info, "preprocessing": {**info["preprocessing"],
                                          "formula": model_input.get("formula"),
                                          "model_input": model_input.get("source")}}

    def run_info(self, trials: list[Any]) -> dict[str, Any]:
        """What ``pareto.json`` records of the run."""
        t, s = self.trained, self.cfg
        f = t.facts
        return {
            "data": s.data, "val_data": s.val_data, "validation": f["validation"],
            "validation_note": validation_note(f["validation"]),
            "profile": profile_summary(s.profile_spec),
            "space": f"trained model {Path(t.model).name}",
            "model": {"path": t.model, "format": f["format"], "translated": f["translated"],
                      "input_shape": f["input_shape"], "classes": f["classes"],
                      "resolutions": f.get("resolutions"), "fixed_size": f.get("fixed_size"),
                      "output": f["output"], "preprocessing": f["preprocessing"],
                      "input": f["input"], "notes": f["notes"],
                      "groups": [{k: g[k] for k in ("name", "size", "producers", "prunable")}
                                 for g in f["graph"]["groups"]],
                      "frozen": [{"group": g["name"], "size": g["size"], "by": g["frozen_by"]}
                                 for g in f["graph"]["groups"] if not g["prunable"]]},
            "compress": t.settings.to_dict(),
            "min_accuracy": self.min_accuracy if self.min_accuracy is not None else s.min_accuracy,
            "inherited_vs_finetuned": fidelity(self.run, trials),
            "sampler": s.sampler, "seed": s.seed, "trials": len(trials),
            "latency": s.latency, "accuracy": "measured",
            "package_versions": package_versions(PACKAGES),
        }

    def table(self, doc: dict[str, Any]) -> str:
        """The front with the references below it, each point's speed-up, the score's fidelity."""
        f = doc["run"].get("inherited_vs_finetuned") or {}
        if f.get("kendall_tau") is None:
            return front_table(doc)
        images = (doc["run"].get("compress") or {}).get("trial_finetune_images") or 0
        scores = (f"scores after one pass over {images} training images" if images
                  else "inherited-weight scores")
        return (front_table(doc) + f"\nthe search's {scores} rank the fine-tuned ones with "
                f"Kendall tau {f['kendall_tau']:.2f} over the {f['n']} fine-tuned candidates")


@dataclass
class CompressTrial(ChildTrial):
    """Evaluates a compression of the user's model for the loop (the child's ``trained_*``).

    Attributes:
        screen: The model's latency screen in a hybrid search (None: every candidate timed).
    """

    screen: Screen | None = None

    def __call__(self, trial: optuna.Trial, cand: Candidate,
                 bar: tqdm) -> tuple[float, ...]:
        """Prune, recalibrate, convert and measure ``cand``; time or price it; its objectives."""
        trial.set_user_attr("candidate", cand.to_dict())
        budgets = self.cfg.budgets()
        if self.cfg.finetune_epochs > 0:  # the accuracy floor holds after fine-tuning
            budgets.pop("min_accuracy", None)
        m = measure_trial(trial, self.child, self.cfg, Requests(SOURCE, self.ctx, budgets=budgets),
                          cand, str(self.run.trial_model(trial.number)),
                          pricing(self.screen, trial, cand, self.cfg))
        return m.objective_values(self.cfg.objectives)

    def measure(self, cand: Candidate, path: Path) -> Measurement:
        """Measure a candidate outside a trial (a reference)."""
        return measure(self.child, Requests(SOURCE, self.ctx), cand, str(path),
                       self.cfg.profile_spec.remote)


def references(trial: CompressTrial, space: TrainedSpace, out: TextIO) -> list[dict[str, Any]]:
    """The original model in float32 and all-int8, measured once per run."""
    run = trial.run
    if run.references_file.is_file():
        return json.loads(run.references_file.read_text())
    refs = []
    for precision in ("float32", "int8"):
        if not (all(precision in c for c in space.choices.values())
                or reference_runs(trial.cfg.profile_spec, precision)):
            continue
        cand = space.uniform(precision)
        name = f"original-{precision}"
        path = run.cache / f"reference-{name}.tflite"
        try:
            m = retry_when_back(lambda c=cand, p=path: trial.measure(c, p),
                                trial.cfg.profile_spec, out)
        except TrialFailure as exc:
            print(f"reference {name} could not be measured: {exc}", file=out)
            continue
        attrs = {k: v for k, v in m.to_attrs().items() if k not in REFERENCE_DROPS}
        refs.append({"name": name, "candidate": cand.to_dict(), **attrs,
                     "model": f"cache/{path.name}", "search": brief(attrs)})
        print(f"reference {name}: validation {m.val_accuracy:.4f}, test {m.test_accuracy:.4f}, "
              f"{m.latency_median * 1000:.1f} us, {m.size_bytes / 1024:.1f} KB", file=out)
    write_atomic(run.references_file, json.dumps(refs, indent=1))
    return refs


def fidelity(run: RunDir | None, trials: list[Any]) -> dict[str, Any]:
    """How well the search's scores (inherited, recalibrated weights) rank fine-tuned accuracy.

    Over the candidates the front fine-tuned (the front and the layer under
    it): Kendall tau of validation accuracy before and after fine-tuning (the
    ``.tflite``'s both times), as the supernet quality report does for sub-networks.
    """
    pairs = []
    for t in trials:
        record = run.root / "finetune" / f"trial-{t.number}.json" if run else None
        if record is not None and record.is_file():
            tuned = json.loads(record.read_text())
            pairs.append((t.user_attrs["val_accuracy"], tuned["val_accuracy"]))
    tau = kendall_tau([a for a, _ in pairs], [b for _, b in pairs]) if len(pairs) >= 3 else None
    return {"kendall_tau": tau, "n": len(pairs)}


def front_table(doc: dict[str, Any]) -> str:
    """A trained-model front as a terminal table, references below it."""
    refs = {r["name"]: r for r in doc["references"]}
    base = refs.get("original-float32")
    speed = Column("speed-up", lambda p: (base["latency_ms"]["median"] / p["latency_ms"]["median"]
                                          if base else 0.0), ".2f")
    return table_of(doc, ("val acc", "test acc", "latency us", speed, "RAM KB", "flash KB",
                          "pruned", "precisions"))
