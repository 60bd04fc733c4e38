#!/usr/bin/env python3
"""Latency model benchmark: predictor throughput, and a hybrid search against a measured one.

Prints, side by side in one run:
- candidates per second the profile's latency model scores (features + prediction),
  against candidates per second a measured search evaluates;
- the wall time of a search with ``--latency hybrid`` and one with ``--latency
  measured``: same profile, space, seed, trial count and supernet (trained once,
  before either is timed), with how many candidates each timed on the device and
  the hypervolume of each front (accuracy vs latency, reference point fixed).

    python tools/bench_latency.py --profile xnnpack-1t --trials 40
    python tools/bench_latency.py --profile reference-1t --trials 40

Needs the profile's latency model on this machine (``codesign profile build``).
"""

from __future__ import annotations

import argparse
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


def predictor_rate(profile_name: str, space_name: str, n: int) -> tuple[float, float]:
    """Candidates per second scored by the latency model, and the seconds per candidate."""
    from codesign.engine.screen import Screen, builtin_chain
    from codesign.hardware.profile import load_profile
    from codesign.latency.build import load_model
    from codesign.space import get_space

    profile = load_profile(profile_name)
    model = load_model(profile)
    if model is None:
        sys.exit(f"bench_latency: no latency model for {profile.name}; run "
                 f"codesign profile build {profile.name}")
    space = get_space(space_name)
    screen = Screen(model, builtin_chain(space, 10, 1), profile)
    rng = np.random.default_rng(0)
    choices = {n: profile.precisions for n in space.layer_names()}
    cands = [space.random_candidate(rng, choices) for _ in range(n)]
    t0 = time.perf_counter()
    for c in cands:
        screen.predict(c)
    seconds = time.perf_counter() - t0
    return n / seconds, seconds / n


def search(out: Path, mode: str, args: argparse.Namespace) -> tuple[float, dict]:
    """Run one search; return its wall time and a summary of its trials."""
    cmd = [sys.executable, "-m", "codesign.cli", "search", "--data", args.data, "--profile",
           args.profile, "--space", args.space, "--trials", str(args.trials), "--seed",
           str(args.seed), "--epochs", str(args.epochs), "--quality-samples", "0",
           "--finetune-epochs", "0", "--latency", mode, "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_latency: {mode} search failed: {proc.stderr.strip()[-500:]}")
    return wall, summarize(out)


def summarize(run: Path) -> dict:
    """Timed trials, seconds spent timing, and the front's points."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run / 'study.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    timed = [t for t in done if t.user_attrs["latency_ms"].get("source") != "predicted"]
    timing_s = sum(t.user_attrs["times"].get("latency", 0.0) for t in done)
    doc = json.loads((run / "pareto.json").read_text())
    points = [(p["val_accuracy"], p["latency_ms"]["median"]) for p in doc["points"]]
    return {"completed": len(done), "timed": len(timed), "timing_s": timing_s,
            "points": points, "refs": doc["references"]}


def hypervolume(points: list[tuple[float, float]], ref_latency: float) -> float:
    """Area dominated by (accuracy up, latency down) points, reference (0, ref_latency)."""
    pts = sorted((lat, acc) for acc, lat in points if lat < ref_latency)
    area, best = 0.0, 0.0
    for i, (lat, acc) in enumerate(pts):
        best = max(best, acc)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else ref_latency
        area += best * (nxt - lat)
    return area / ref_latency


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="xnnpack-1t")
    ap.add_argument("--space", default="default")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--predict-n", type=int, default=5000)
    args = ap.parse_args(argv)

    rate, per = predictor_rate(args.profile, args.space, args.predict_n)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        warm = Path(tmp) / "warm"
        print("training the shared supernet (not timed) ...", flush=True)
        search(warm, "measured", argparse.Namespace(**{**vars(args), "trials": 1}))
        results = {}
        for mode in ("measured", "hybrid"):
            run = Path(tmp) / mode
            run.mkdir()
            for name in ("supernet.npz", "supernet.json"):
                shutil.copy(warm / name, run / name)
            for name in ("references.json", "noise_floor.json"):
                shutil.copy(warm / name, run / name)
            shutil.copytree(warm / "cache", run / "cache")
            results[mode] = search(run, mode, args)
    ref = max(r["latency_ms"]["median"] for r in results["measured"][1]["refs"])
    print(f"\nprofile {args.profile}, space {args.space}, {args.trials} trials, seed {args.seed}")
    print(f"latency model: {rate:,.0f} candidates/s ({per * 1e6:.0f} us each)")
    print(f"{'search':<10}{'wall s':>9}{'cand/s':>9}{'timed':>7}{'timing s':>10}"
          f"{'front':>7}{'HV':>8}")
    for mode, (wall, s) in results.items():
        hv = hypervolume(s["points"], ref)
        print(f"{mode:<10}{wall:>9.1f}{s['completed'] / wall:>9.2f}{s['timed']:>7}"
              f"{s['timing_s']:>10.1f}{len(s['points']):>7}{hv:>8.4f}")
    speed = results["measured"][0] / results["hybrid"][0]
    print(f"hybrid wall time is {1 / speed:.2f}x the measured search's "
          f"({speed:.2f}x faster); HV reference latency {ref:.4f} ms (largest reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
