#!/usr/bin/env python3
"""Latency model benchmark: predictor throughput, and a hybrid search against a measured one.

Prints, side by side in one run:
- candidates per second the profile's latency model scores (features + prediction),
  against candidates per second a measured search evaluates;
- the wall time of a search with ``--latency hybrid`` and one with ``--latency
  measured``: same profile, space, seed, trial count and supernet (trained once,
  before either is timed), with how many candidates each timed on the device and
  the hypervolume of each front (accuracy vs latency, reference point fixed).

With ``--hypermodel FILE.py:NAME`` or ``--model PATH`` the two searches are of
that source instead (no supernet; ``--sampler random``, so both evaluate the
same candidates), and the tool prints each front point of the measured search
beside the same trial in the hybrid one: whether it is on that front too, and
the ratio of its two latencies (the same front: every point there, within
±10 %).

    python tools/bench_latency.py --profile xnnpack-1t --trials 40
    python tools/bench_latency.py --profile reference-1t --trials 40
    python tools/bench_latency.py --hypermodel examples/small_cnn.py:SmallCNN --trials 30

Needs the profile's latency model on this machine (``codesign profile build``;
for a source: ``codesign profile build PROFILE --hypermodel ...|--model ...``, checked).
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
           args.profile, "--trials", str(args.trials), "--seed", str(args.seed),
           "--finetune-epochs", "0", "--latency", mode, "--out", str(out)]
    if args.hypermodel:
        cmd += ["--hypermodel", args.hypermodel, "--sampler", "random", "--no-report"]
        cmd += ["--candidate-epochs", str(args.epochs)] if args.epochs else []
    elif args.model:
        cmd += ["--model", args.model, "--sampler", "random", "--no-report"]
    else:
        cmd += ["--space", args.space, "--epochs", str(args.epochs or 40),
                "--quality-samples", "0"]
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
            "points": points, "refs": doc["references"],
            "front": {p["trial"]: p["latency_ms"]["median"] for p in doc["points"]},
            "candidates": {t.number: json.dumps(t.user_attrs["candidate"], sort_keys=True)
                           for t in done}}


def same_front(measured: dict, hybrid: dict) -> tuple[int, int, list[str]]:
    """Front points of the measured search that the hybrid one has too (same candidate and
    within ±10 %), how many there are, and a line per point."""
    lines, same = [], 0
    by_candidate = {c: n for n, c in hybrid["candidates"].items()}
    for trial, lat in sorted(measured["front"].items()):
        other = by_candidate.get(measured["candidates"][trial])
        got = hybrid["front"].get(other) if other is not None else None
        if got is None:
            lines.append(f"  trial {trial}: {lat * 1000:.1f} us, not on the hybrid front")
            continue
        ratio = got / lat
        same += abs(ratio - 1.0) <= 0.10
        lines.append(f"  trial {trial}: {lat * 1000:.1f} us measured, {got * 1000:.1f} us in "
                     f"the hybrid search (trial {other}; ratio {ratio:.3f})")
    return same, len(measured["front"]), lines


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
    ap.add_argument("--epochs", type=int, default=None,
                    help="supernet epochs (default 40), or a HyperModel's candidate epochs "
                         "(default: the search's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--predict-n", type=int, default=5000)
    ap.add_argument("--hypermodel", default=None, help="a HyperModel's searches instead")
    ap.add_argument("--model", default=None, help="a trained model's searches instead")
    args = ap.parse_args(argv)
    if args.hypermodel or args.model:
        return source_searches(args)

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


def source_searches(args: argparse.Namespace) -> int:
    """A HyperModel's or a trained model's measured and hybrid searches, side by side."""
    what = args.hypermodel or args.model
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        results = {mode: search(Path(tmp) / mode, mode, args) for mode in ("measured", "hybrid")}
    ref = 1.1 * max(lat for _, s in results.values() for _, lat in s["points"])
    print(f"\nprofile {args.profile}, {what}, data {args.data}, {args.trials} trials "
          f"(random sampler), seed {args.seed}")
    print(f"{'search':<10}{'wall s':>9}{'timed':>7}{'timing s':>10}{'front':>7}{'HV':>8}")
    for mode, (wall, s) in results.items():
        print(f"{mode:<10}{wall:>9.1f}{s['timed']:>7}{s['timing_s']:>10.1f}"
              f"{len(s['points']):>7}{hypervolume(s['points'], ref):>8.4f}")
    same, n, lines = same_front(results["measured"][1], results["hybrid"][1])
    print(f"hybrid wall time is {results['hybrid'][0] / results['measured'][0]:.2f}x the "
          f"measured search's; {same} of the measured front's {n} points are on the hybrid "
          f"front within ±10 % (HV reference: 1.1x the slowest front point)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
