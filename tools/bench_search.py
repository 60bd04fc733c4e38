#!/usr/bin/env python3
"""Joint search against baselines, same data, profile and wall-clock budget per method.

Methods, each given ``--budget-min`` of wall time per seed (the supernet of each
seed is trained once beforehand and shared; everything after counts, set-up
included):

- ``codesign-predictor``: ``codesign search --accuracy hybrid --latency hybrid``
  (predictor training counts against its budget);
- ``codesign-measured``: ``codesign search`` with NSGA-II, every trial measured;
- ``random``: ``codesign search --sampler random``;
- ``sequential``: what a TFMOT user does by hand (Deep Compression's order):
  take the architecture (the maximal one, at each resolution), prune every
  layer by one ratio, quantize the whole network to int8;
- ``keras-tuner``: keras-tuner's Bayesian optimization oracle over the same
  parameters, accuracy and latency folded into one score (their sum, latency
  negated and scaled by the maximal float32 network's, as keras-tuner's
  multi-objective support sums objectives).

Every candidate is evaluated by the same code (inherited weights, BN
recalibration, conversion, LiteRT; no fine-tuning). Prints hypervolume (test
accuracy against latency, reference at zero accuracy and the maximal float32
network's latency) and the best test accuracy under latency budgets of 0.2,
0.35 and 0.5 of that latency (the point chosen on validation accuracy), mean
and spread over seeds; saves a plot.

    python tools/bench_search.py --budget-min 4 --seeds 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("codesign-predictor", "codesign-measured", "random", "sequential", "keras-tuner")
BUDGETS = (0.2, 0.35, 0.5)
Point = tuple[float, float, float]  # (val accuracy, test accuracy, latency ms)


def run_codesign(run: Path, args: argparse.Namespace, seed: int, extra: list[str],
                 budget: bool = True) -> list[Point]:
    """A codesign search under the time budget (else one trial); its measured trials."""
    limit = ["--trials", "100000", "--time-budget-min", str(args.budget_min)] if budget else [
        "--trials", "1"]
    cmd = [sys.executable, "-m", "codesign.cli", "search", "--data", args.data, "--profile",
           args.profile, "--space", args.space, "--seed", str(seed), "--epochs",
           str(args.epochs), *limit, "--quality-samples", "0", "--finetune-epochs", "0",
           "--out", str(run), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0 and "no candidate could be evaluated" in proc.stderr:
        print(f"  ({' '.join(extra)}: no trial within the budget)", flush=True)
        return []
    if proc.returncode != 0:
        sys.exit(f"bench_search: {' '.join(extra)} failed: {proc.stderr.strip()[-600:]}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run / 'study.db'}")
    return [(t.user_attrs["val_accuracy"], t.user_attrs["test_accuracy"],
             t.user_attrs["latency_ms"]["median"]) for t in study.trials
            if t.state.name == "COMPLETE" and t.user_attrs["latency_ms"].get("source")
            != "predicted"]


class Evaluator:
    """The search's own evaluation child, set up on a run directory's supernet."""

    def __init__(self, run: Path, args: argparse.Namespace, seed: int) -> None:
        from codesign.child import EvalChild
        from codesign.config import SearchConfig
        from codesign.preflight import preflight

        self.cfg = SearchConfig(out=run, data=args.data, seed=seed, profile=args.profile,
                                space=args.space, epochs=args.epochs, latency="measured")
        self.cfg = preflight(self.cfg)
        self.run = run
        self.worker = EvalChild(timeout_s=600)
        self.worker.__enter__()
        self.worker.setup(run_dir=str(run), data=self.cfg.data, seed=seed, space=args.space,
                          profile=self.cfg.profile_spec.path, train=self.cfg.train_settings())
        self.count = 0

    def __call__(self, cand: object) -> Point | None:
        from codesign.errors import TrialFailure

        self.count += 1
        try:
            r = self.worker.call("evaluate", candidate=cand.to_dict(),  # type: ignore[attr-defined]
                                 model_path=str(self.run / "cache" / f"b{self.count}.tflite"))
        except TrialFailure:
            return None
        return r["val_accuracy"], r["test_accuracy"], r["latency_ms"]["median"]

    def close(self) -> None:
        """Stop the child."""
        self.worker.__exit__(None, None, None)


def run_sequential(run: Path, args: argparse.Namespace, seed: int, deadline: float
                   ) -> list[Point]:
    """Maximal architecture per resolution, one prune ratio for all layers, then all-int8."""
    from codesign.space.candidate import Candidate

    ev = Evaluator(run, args, seed)
    space = ev.cfg.space_spec
    top = space.max_candidate("int8")
    points = []
    try:
        for res in sorted(space.resolutions, reverse=True):
            for ratio in sorted(space.prune_ratios):
                if time.monotonic() > deadline:
                    return points
                cand = Candidate.make(res, top.depths, {g: ratio for g in space.group_sizes()},
                                      top.precision_map, top.kernel_map or None)
                p = ev(cand)
                if p is not None:
                    points.append(p)
    finally:
        ev.close()
    return points


def run_keras_tuner(run: Path, args: argparse.Namespace, seed: int, deadline: float,
                    ref_latency: float) -> list[Point]:
    """keras-tuner's Bayesian optimization oracle on the folded score."""
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", module="sklearn")  # the oracle's GP fit warns a lot
    import keras_tuner as kt

    from codesign.space.suggest import candidate_from_params

    ev = Evaluator(run, args, seed)
    space, choices = ev.cfg.space_spec, ev.cfg.layer_choices()
    hp = kt.HyperParameters()
    hp.Choice("resolution", list(space.resolutions))
    for i, st in enumerate(space.stages, start=1):
        hp.Int(f"stage{i}_depth", st.min_depth, st.max_depth)
    for g in space.group_sizes():
        hp.Choice(f"prune/{g}", list(space.prune_ratios))
    for layer in space.layer_names():
        hp.Choice(f"precision/{layer}", list(choices[layer]))
    if space.elastic_kernel:
        for bp in space.blocks():
            hp.Choice(f"kernel/{bp.name}", list(space.kernels))
    oracle = kt.oracles.BayesianOptimizationOracle(
        objective=kt.Objective("score", "max"), max_trials=100000, hyperparameters=hp,
        seed=seed, num_initial_points=10)
    oracle._set_project_dir(str(run / "keras_tuner"), "bench")
    points = []
    quiet = io.StringIO()
    try:
        while time.monotonic() < deadline:
            with contextlib.redirect_stdout(quiet):
                trial = oracle.create_trial("bench")
            if trial.status != "RUNNING":
                break
            p = ev(candidate_from_params(trial.hyperparameters.values, space))
            score = -1.0 if p is None else p[0] - p[2] / ref_latency
            with contextlib.redirect_stdout(quiet):
                oracle.update_trial(trial.trial_id, {"score": score})
                trial.status = "COMPLETED"
                oracle.end_trial(trial)
            if p is not None:
                points.append(p)
    finally:
        ev.close()
    return points


def front(points: list[Point]) -> list[Point]:
    """Points no other point beats on validation accuracy and latency, fastest first."""
    out = [p for p in points if not any(
        q[0] >= p[0] and q[2] <= p[2] and (q[0] > p[0] or q[2] < p[2]) for q in points)]
    return sorted(out, key=lambda p: p[2])


def hypervolume(pts: list[Point], ref_latency: float) -> float:
    """Area under the front's test accuracy against latency, up to the reference latency."""
    area, best = 0.0, 0.0
    pts = [p for p in front(pts) if p[2] < ref_latency]
    for i, p in enumerate(pts):
        best = max(best, p[1])
        nxt = pts[i + 1][2] if i + 1 < len(pts) else ref_latency
        area += best * (nxt - p[2])
    return area / ref_latency


def best_under(pts: list[Point], limit: float) -> float:
    """Test accuracy of the most val-accurate point within the latency limit (nan if none)."""
    ok = [p for p in pts if p[2] <= limit]
    return max(ok, key=lambda p: (p[0], -p[2]))[1] if ok else float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run every method on every seed; print the table and save the plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-min", type=float, default=4.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--profile", default="xnnpack-1t")
    ap.add_argument("--space", default="default")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_search")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown:
        sys.exit(f"bench_search: unknown methods {sorted(unknown)}; use {', '.join(METHODS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        for seed in range(args.seeds):
            warm = Path(tmp) / f"warm-{seed}"
            print(f"seed {seed}: training the shared supernet (not timed) ...", flush=True)
            run_codesign(warm, args, seed, ["--latency", "measured"], budget=False)
            refs = json.loads((warm / "references.json").read_text())
            ref_latency = next(r for r in refs if r["name"] == "max-float32")["latency_ms"][
                "median"]
            for m in methods:
                run = Path(tmp) / f"{m}-{seed}"
                run.mkdir()
                (run / "cache").mkdir()
                for name in ("supernet.npz", "supernet.json"):
                    shutil.copy(warm / name, run / name)
                t0 = time.monotonic()
                deadline = t0 + 60 * args.budget_min
                if m == "codesign-predictor":
                    pts = run_codesign(run, args, seed, [
                        "--accuracy", "hybrid", "--latency", "hybrid",
                        "--predictor-float-samples", "120", "--predictor-quant-samples", "40"])
                elif m == "codesign-measured":
                    pts = run_codesign(run, args, seed, ["--latency", "measured"])
                elif m == "random":
                    pts = run_codesign(run, args, seed, ["--latency", "measured", "--sampler",
                                                         "random"])
                elif m == "sequential":
                    pts = run_sequential(run, args, seed, deadline)
                else:
                    pts = run_keras_tuner(run, args, seed, deadline, ref_latency)
                wall = time.monotonic() - t0
                row = {"seed": seed, "points": pts, "evaluated": len(pts), "wall_s": wall,
                       "ref_latency": ref_latency, "hv": hypervolume(pts, ref_latency),
                       **{f"best@{b}": best_under(pts, b * ref_latency) for b in BUDGETS}}
                results[m].append(row)
                (args.out / "results.json").write_text(json.dumps(results, indent=1))
                print(f"  {m:<20} {len(pts):>5} evaluated in {wall:6.1f} s, HV {row['hv']:.4f}, "
                      + ", ".join(f"best@{b} {row[f'best@{b}']:.3f}" for b in BUDGETS),
                      flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print_table(results, args)
    plot(results, args.out / "fronts.png")
    print(f"saved {args.out / 'results.json'} and {args.out / 'fronts.png'}")
    return 0


def print_table(results: dict[str, list[dict]], args: argparse.Namespace) -> None:
    """Mean ± standard deviation over seeds."""
    def ms(values: list[float]) -> str:
        v = np.asarray(values, dtype=float)
        return f"{np.nanmean(v):.4f} ± {np.nanstd(v):.4f}" if np.isfinite(v).any() else "none"

    print(f"\n{args.budget_min:g} min per method and seed, {args.seeds} seeds, {args.space} space, "
          f"{args.data}, {args.profile}")
    head = f"{'method':<20}{'evaluated':>10}  {'hypervolume':<18}" + "".join(
        f"{'test acc @' + str(b) + 'x':<18}" for b in BUDGETS)
    print(head)
    for m, rows in results.items():
        print(f"{m:<20}{np.mean([r['evaluated'] for r in rows]):>10.0f}  "
              f"{ms([r['hv'] for r in rows]):<18}"
              + "".join(f"{ms([r[f'best@{b}'] for r in rows]):<18}" for b in BUDGETS))


def plot(results: dict[str, list[dict]], path: Path) -> None:
    """Each method's front of seed 0: test accuracy against latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ref = None
    for m, rows in results.items():
        if not rows:
            continue
        ref = rows[0]["ref_latency"]
        f = front([tuple(p) for p in rows[0]["points"]])
        ax.step([p[2] * 1000 for p in f], [p[1] for p in f], where="post", marker="o", label=m)
    if ref is not None:
        for b in BUDGETS:
            ax.axvline(b * ref * 1000, color="grey", ls=":", lw=1)
    ax.set_xlabel("latency (us, median)")
    ax.set_ylabel("test accuracy")
    ax.set_title("measured fronts, seed 0 (dotted: 0.2, 0.35, 0.5 x max float32 latency)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
