"""The built-in source's set-up stages: supernet, quality report, references, noise floor.

Each runs once per run (the first worker makes it under a file lock, the
others load it) and says before it starts what it is expected to take.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from tqdm import tqdm

from codesign.child import EvalChild
from codesign.config import SearchConfig, reference_runs
from codesign.engine import estimates
from codesign.engine.device import retry_when_back
from codesign.engine.estimates import DataShape
from codesign.engine.screen import Chain, Screen, builtin_chain
from codesign.errors import CodesignError, TrialFailure
from codesign.latency.build import Fidelity, fidelity, load_model
from codesign.latency.drift import drift, drift_note
from codesign.latency.model import LatencyModel
from codesign.latency.spaces import build_command, covered, model_path
from codesign.report.manifest import brief
from codesign.run.directory import RunDir
from codesign.run.files import write_atomic
from codesign.run.measurement import Measurement

QUALITY_FILE = "supernet_quality.json"
REFERENCE_DROPS = ("io", "params", "times")  # what references.json leaves out of a measurement


class Bar:
    """A tqdm bar driven by progress records of one stage."""

    def __init__(self, stage: str, desc: str, unit: str, out: TextIO) -> None:
        self.stage, self.desc, self.unit, self.out = stage, desc, unit, out
        self.bar: tqdm | None = None

    def __call__(self, info: dict[str, Any]) -> None:
        """Show one progress record (records of other stages are ignored)."""
        if info.get("stage") != self.stage:
            return
        done = info.get("epoch", info.get("done", 0))
        total = info.get("epochs", info.get("total", 0))
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=self.out)
        self.bar.update(done - self.bar.n)
        if "loss" in info:
            self.bar.set_postfix(loss=f"{info['loss']:.3f}")

    def close(self) -> None:
        """Close the bar, if one was shown."""
        if self.bar is not None:
            self.bar.close()


def setup_supernet(worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO,
           shape: DataShape) -> float:
    """Load or train the supernet; return the seconds its training took."""
    if not (run.root / "supernet.npz").is_file():
        expect = estimates.supernet_s(cfg.space_spec, shape, cfg.epochs)
        print(f"supernet: {cfg.epochs} epochs on {shape.images} images, expected about "
              f"{estimates.duration(expect)} on 2 cores", file=out, flush=True)
    bar = Bar("supernet", "supernet", "epoch", out)
    try:
        result = worker.setup(
            progress=bar,
            run_dir=str(run.root),
            data=cfg.data,
            seed=cfg.seed,
            space=cfg.space_spec.to_dict(),
            profile=cfg.profile_spec.path,
            train=cfg.train_settings(),
        )
    except TrialFailure as exc:
        raise CodesignError(f"supernet could not be trained or loaded: {exc}") from None
    finally:
        bar.close()
    if result["supernet"] == "loaded":
        print(f"supernet: reused {run.root / 'supernet.npz'}", file=out)
    elif result["supernet"] == "cached":
        print(f"supernet: taken from this machine's cache ({result['cache']}): trained for an "
              "earlier run with the same data, space, seed and training settings "
              "(CODESIGN_SUPERNET_CACHE=0 trains anew)", file=out)
    return float(result.get("train_seconds") or 0.0)


def quality_report(worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO,
             shape: DataShape, train_s: float) -> dict[str, Any]:
    """The supernet quality report: computed once per run, printed every time."""
    epochs = max(1, cfg.finetune_epochs)
    each = estimates.quality_sample_s(cfg.space_spec, shape, epochs) * estimates.pace(
        train_s, cfg.space_spec, shape, cfg.epochs)
    samples = estimates.quality_samples(cfg.quality_samples, cfg.trials, train_s, each,
                                        cfg.time_budget_min)
    if samples < 2:
        if cfg.quality_samples is None:
            why = (f"{cfg.trials} trials" if cfg.trials < estimates.QUALITY_MIN_TRIALS
                   else f"a {cfg.time_budget_min:g}-minute budget")
            print(f"supernet quality report: skipped for {why} (--quality-samples "
                  f"{estimates.QUALITY_MAX} makes one)", file=out)
        return {}
    if not (run.root / QUALITY_FILE).is_file():
        print(f"supernet quality report: {samples} sub-networks, each fine-tuned twice, "
              f"expected about {estimates.duration(samples * each)} (--quality-samples N sets "
              "the count)", file=out, flush=True)
    bar = Bar("quality", "supernet quality", "subnet", out)
    try:
        report = worker.call(
            "quality", progress=bar, timeout_s=None, run_dir=str(run.root),
            samples=samples, epochs=epochs, seed=cfg.seed,
        )
    except TrialFailure as exc:
        print(f"supernet quality report failed: {exc}", file=out)
        return {}
    finally:
        bar.close()
    print(
        f"supernet quality: Kendall tau {report['kendall_tau']:.2f} between inherited and "
        f"fine-tuned accuracy over {report['samples']} sub-networks (noise ceiling "
        f"{report['noise_ceiling_tau']:.2f}: fine-tuned vs fine-tuned again); narrowest "
        f"{report['narrowest_accuracy']:.3f}, largest {report['largest_accuracy']:.3f} "
        f"(validation, inherited weights); {run.root / 'supernet_quality.json'}",
        file=out,
    )
    return report


def measure_references(
    worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO, shape: DataShape,
    train_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Measure the maximal network in float32 and int8 once per run (fine-tuned like the front).

    ``train_s`` (the supernet's training time, 0 if unknown) paces the estimate.
    """
    if run.references_file.is_file():
        return json.loads(run.references_file.read_text())
    if not cfg.references:
        print("references: none measured (--no-references), nor the noise floor", file=out)
        return []
    expect = estimates.references_s(cfg.space_spec, shape, cfg.finetune_epochs) * estimates.pace(
        train_s, cfg.space_spec, shape, cfg.epochs)
    print(f"references: the maximal network in float32 and int8, measured and fine-tuned, then "
          f"the noise floor, expected about {estimates.duration(expect)}", file=out, flush=True)
    refs = []
    space = cfg.space_spec
    for precision in ("float32", "int8"):
        if not reference_runs(cfg.profile_spec, precision):
            continue
        cand = space.max_candidate(precision)
        name = f"max-{precision}"
        path = run.cache / f"reference-{name}.tflite"
        try:
            search = retry_when_back(
                lambda c=cand, p=path: worker.call("evaluate", candidate=c.to_dict(),
                                                   model_path=str(p)), cfg.profile_spec, out)
            final = search
            if cfg.finetune_epochs > 0:
                final = retry_when_back(
                    lambda c=cand, p=path: worker.call(
                        "finetune", candidate=c.to_dict(), model_path=str(p),
                        epochs=cfg.finetune_epochs, seed=cfg.seed), cfg.profile_spec, out)
        except TrialFailure as exc:
            print(f"reference {name} could not be measured: {exc}", file=out)
            continue
        measured = {k: v for k, v in Measurement.from_attrs(final).to_attrs().items()
                    if k not in REFERENCE_DROPS}
        ref = {"name": name, "candidate": cand.to_dict(), **measured,
               "model": f"cache/{path.name}", "search": brief(search)}
        if "finetune" in final:
            ref["finetune"] = final["finetune"]
        refs.append(ref)
    write_atomic(run.references_file, json.dumps(refs, indent=1))
    return refs


def noise_floor(
    worker: EvalChild, run: RunDir, references: list[dict[str, Any]], profile: Any, out: TextIO
) -> None:
    """Measure the profile's noise floor once per run on the first reference model."""
    path = run.root / "noise_floor.json"
    if path.is_file() or not references:
        return
    try:
        res = retry_when_back(
            lambda: worker.call("noise_floor", path=str(run.root / references[0]["model"]),
                                repeats=estimates.NOISE_REPEATS),
            profile, out)
    except TrialFailure as exc:
        print(f"noise floor not measured: {exc}", file=out)
        return
    res["reference"] = references[0]["name"]
    path.write_text(json.dumps(res, indent=1))
    print(
        f"noise floor: latency median varies by {res['cv']:.1%} (coefficient of variation) over "
        f"{res['repeats']} measurements of {res['reference']} (target 3 % or less)",
        file=out,
    )


def latency_screen(cfg: SearchConfig, data: Any, worker: EvalChild, out: TextIO) -> Screen | None:
    """The latency predictor of the run (None when the profile has no model of its space here)."""
    path = model_path(cfg.profile_spec, cfg.space_spec)
    model = load_model(cfg.profile_spec, path)
    if model is None:
        if not covered(cfg.space_spec):
            command = build_command(cfg.profile_spec, cfg.space_spec, cfg.space, cfg.data)
            print(f"latency: every candidate is timed; `{command}` would build a latency model "
                  f"of space {cfg.space_spec.name} that prices them", file=out)
        return None
    return priced(cfg, model, fidelity(cfg.profile_spec, model, path),
                  builtin_chain(cfg.space_spec, data.num_classes, data.channels), worker, out,
                  f"the model of {cfg.profile_spec.name}")


def priced(cfg: SearchConfig, model: LatencyModel, known: Fidelity | None, chain: Chain,
           worker: EvalChild, out: TextIO, whose: str) -> Screen:
    """A screen of ``model`` over ``chain``; says what the search prices with and the drift.

    Args:
        cfg: The search's settings (its latency mode).
        model: The latency model.
        known: Its last measured fidelity (its margin is the 95th percentile).
        chain: A candidate's kernels as the model prices them.
        worker: The evaluation child (times the reference network for the drift).
        out: Where the line goes.
        whose: The model in a few words (``the model of xnnpack-1t``).
    """
    if cfg.latency != "measured":
        ratio = retry_when_back(lambda: drift(cfg.profile_spec, model, worker),
                                cfg.profile_spec, out)
        print(f"latency: {cfg.latency}, with {whose} ({drift_note(ratio, cfg.profile_spec)}; "
              f"{known.describe() if known else 'fidelity unknown'})", file=out)
    return Screen(model, chain, cfg.profile_spec, known.p95 if known is not None else None)
