#!/usr/bin/env python3
"""Compare Optuna samplers at the demo's budget: mean hypervolume over seeds.

For every seed, trains the supernet once (a search with the first sampler),
then runs the same search with each sampler on a copy of that supernet, and
computes the hypervolume of each run's measured front (validation accuracy up,
latency down; reference point: accuracy 0 and 1.1x the slowest latency seen in
any run). Prints a table, the mean per sampler, and saves a plot.

    .venv/bin/python tools/bench_sampler.py --seeds 0 1 2 --trials 30 --out runs/bench-sampler
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

SAMPLERS = ("nsga2", "tpe", "random")


def search(out: Path, sampler: str, seed: int, trials: int, space: str) -> None:
    """Run (or, if it is complete, just reopen) one search."""
    cmd = [sys.executable, "-m", "codesign.cli", "search", "--out", str(out), "--sampler",
           sampler, "--seed", str(seed), "--trials", str(trials), "--space", space,
           "--quality-samples", "0", "--finetune-epochs", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"search failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def points(run: Path) -> list[tuple[float, float]]:
    with sqlite3.connect(run / "study.db") as con:
        rows = con.execute(
            "select t.trial_id, v.objective, v.value from trials t join trial_values v "
            "on t.trial_id = v.trial_id where t.state = 'COMPLETE'"
        ).fetchall()
    by_trial: dict[int, dict[int, float]] = {}
    for trial_id, objective, value in rows:
        by_trial.setdefault(trial_id, {})[objective] = value
    return [(v[0], v[1]) for v in by_trial.values()]


def hypervolume(pts: list[tuple[float, float]], ref_latency: float) -> float:
    """Area dominated by the points (accuracy up from 0, latency down from ref)."""
    # sweep: between successive latencies, the best accuracy reachable at or below the left one
    xs = sorted({lat for _, lat in pts if lat < ref_latency} | {ref_latency})
    area = 0.0
    for left, right in zip(xs, xs[1:], strict=False):
        reach = max((a for a, lat in pts if lat <= left), default=0.0)
        area += reach * (right - left)
    return area


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--space", default="default")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-sampler"))
    args = ap.parse_args()
    runs: dict[tuple[str, int], Path] = {}
    for seed in args.seeds:
        first = args.out / f"{SAMPLERS[0]}-seed{seed}"
        search(first, SAMPLERS[0], seed, args.trials, args.space)
        runs[(SAMPLERS[0], seed)] = first
        for sampler in SAMPLERS[1:]:
            out = args.out / f"{sampler}-seed{seed}"
            out.mkdir(parents=True, exist_ok=True)
            for name in ("supernet.npz", "supernet.json"):
                shutil.copy(first / name, out / name)
            search(out, sampler, seed, args.trials, args.space)
            runs[(sampler, seed)] = out
            print(f"done: {sampler} seed {seed}", flush=True)
    pts = {key: points(run) for key, run in runs.items()}
    ref = 1.1 * max(lat for p in pts.values() for _, lat in p)
    hv = {key: hypervolume(p, ref) for key, p in pts.items()}
    # the fast end of the front spans microseconds while the slowest trials take far longer:
    # on a log-latency axis every decade counts alike (reference: 1.1x the slowest, in log10)
    low = min(lat for p in pts.values() for _, lat in p) / 2
    log_pts = {k: [(a, math.log10(lat / low)) for a, lat in p] for k, p in pts.items()}
    log_ref = math.log10(ref / low)
    hv_log = {key: hypervolume(p, log_ref) for key, p in log_pts.items()}
    seeds = " ".join(f"{'seed ' + str(s):>9}" for s in args.seeds)
    means = {}
    for title, table in (("accuracy x ms", hv), ("accuracy x log10 latency", hv_log)):
        print(f"\nhypervolume ({title}; reference latency {ref:.4f} ms), {args.trials} trials")
        print(f"{'sampler':<8} {seeds}      mean")
        for sampler in SAMPLERS:
            vals = [table[(sampler, s)] for s in args.seeds]
            mean = statistics.fmean(vals)
            if table is hv_log:
                means[sampler] = mean
            print(f"{sampler:<8} " + " ".join(f"{v:9.5f}" for v in vals) + f" {mean:9.5f}")
    best = max(means, key=means.get)
    print(f"\nlargest mean hypervolume (log latency): {best}")
    (args.out / "summary.json").write_text(json.dumps(
        {"hypervolume": {f"{k[0]}-seed{k[1]}": v for k, v in hv.items()},
         "hypervolume_log_latency": {f"{k[0]}-seed{k[1]}": v for k, v in hv_log.items()},
         "mean_log_latency": means,
         "best": best, "reference_latency_ms": ref, "trials": args.trials}, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        colors = {"nsga2": "tab:blue", "tpe": "tab:orange", "random": "tab:gray"}
        for (sampler, seed), p in pts.items():
            ax.scatter([lat * 1000 for _, lat in p], [a for a, _ in p], s=12, alpha=0.6,
                       color=colors[sampler], label=sampler if seed == args.seeds[0] else None)
        ax.set_xscale("log")
        ax.set_xlabel("latency median (µs, log scale)")
        ax.set_ylabel("validation accuracy (inherited weights)")
        ax.set_title(f"All trials per sampler, {len(args.seeds)} seeds x {args.trials} trials")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / "samplers.png", dpi=120)
        print(f"plot: {args.out / 'samplers.png'}")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
