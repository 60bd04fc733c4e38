#!/usr/bin/env python3
"""A front worth having at a small budget: a short search's front against a long one's.

For every seed, ``codesign search`` runs as a user runs it (default settings,
but for ``--set`` flags) with ``--large`` trials, then with ``--small`` trials
on a copy of the first run's supernet (same space, data, epochs and seed, so
the supernet is the same; everything after it is run again). Each run's
published front (``pareto.json``: fine-tuned and re-measured points) is
compared: its number of points, how far its latencies spread (slowest over
fastest), and its hypervolume of accuracy against latency (reference: accuracy
0 and 1.1x the slowest point of either run of the seed), on a linear and on a
log latency axis, with validation and with test accuracy. Prints a table, the
small run's share of the large run's hypervolume per seed and its mean, and
writes ``bench_budget.json`` and a plot of every front.

    .venv/bin/python tools/bench_budget.py --data digits --seeds 1 2 3 --out runs/bench-budget
    .venv/bin/python tools/bench_budget.py --data rgb --seeds 1 2 3 --out runs/bench-budget-rgb

``--data rgb`` makes a 32x32 RGB npz of 4 classes of shapes (2,000 training
images, 500 validation, 600 test; ``examples/trained_models.rgb_shapes``). A
finished run is read again, not rerun, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_compress import hypervolume  # noqa: E402

AXES = ("val", "test", "val-log", "test-log")


def make_rgb(path: Path, classes: int, contrast: float) -> Path:
    """The RGB npz (kept: a rerun uses the same images)."""
    if not path.is_file():
        from examples.trained_models import rgb_shapes

        x, y = rgb_shapes(2000, 0, classes, 32, contrast)
        xv, yv = rgb_shapes(500, 1, classes, 32, contrast)
        xt, yt = rgb_shapes(600, 2, classes, 32, contrast)
        np.savez(path, x_train=x, y_train=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    return path


def search(data: str, run: Path, trials: int, seed: int, extra: list[str],
           supernet_from: Path | None) -> float:
    """Run one search unless it has finished; its wall time in seconds (kept beside it)."""
    kept = run.with_suffix(".json")
    if kept.is_file() and (run / "pareto.json").is_file():
        return float(json.loads(kept.read_text())["wall_s"])
    if supernet_from is not None and not (run / "supernet.npz").is_file():
        run.mkdir(parents=True, exist_ok=True)
        for name in ("supernet.npz", "supernet.json"):
            shutil.copy(supernet_from / name, run / name)
    cmd = [str(ROOT / ".venv" / "bin" / "codesign"), "search", "--data", data, "--out",
           str(run), "--trials", str(trials), "--seed", str(seed), *extra]
    log = run.with_suffix(".log")
    print(" ".join(cmd[1:]), f"(log: {log})", flush=True)
    t0 = time.time()
    with log.open("a") as fh, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # the search's own estimates and its end, as it goes
            fh.write(line)
            if "expected" in line or "Pareto points" in line:
                print(f"  {line.strip()}", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"the search failed (exit {proc.returncode}); see {log}")
    wall = time.time() - t0
    kept.write_text(json.dumps({"wall_s": round(wall, 1)}))
    return wall


def published(run: Path) -> list[dict[str, float]]:
    """The run's front points: validation and test accuracy, latency (ms)."""
    doc = json.loads((run / "pareto.json").read_text())
    return [{"val": p["val_accuracy"], "test": p["test_accuracy"],
             "ms": p["latency_ms"]["median"]} for p in doc["points"]]


def volumes(points: list[dict[str, float]], slowest: float, fastest: float
            ) -> dict[str, float]:
    """Hypervolume on each axis; log latency is counted from half the fastest point."""
    out = {}
    for axis in AXES:
        acc = axis.split("-")[0]
        if axis.endswith("log"):
            pts = [(p[acc], math.log(p["ms"] / (0.5 * fastest))) for p in points]
            ref = math.log(1.1 * slowest / (0.5 * fastest))
        else:
            pts, ref = [(p[acc], p["ms"]) for p in points], 1.1 * slowest
        out[axis] = hypervolume(pts, (0.0, ref)) / ref
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both budgets on every seed; print, write and plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", default="digits", help="digits, rgb, or an npz/folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--small", type=int, default=20)
    ap.add_argument("--large", type=int, default=100)
    ap.add_argument("--classes", type=int, default=4, help="of --data rgb")
    ap.add_argument("--contrast", type=float, default=0.5, help="of --data rgb's shapes")
    ap.add_argument("--set", default="", help="more search flags, quoted as one argument")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data == "rgb":
        data = str(make_rgb(args.out / "rgb32.npz", args.classes, args.contrast))
    extra = args.set.split()
    print(f"{len(args.seeds)} seeds x ({args.large} + {args.small} trials) on {args.data}; "
          "each search says what it expects as it starts", flush=True)
    rows: dict[str, Any] = {}
    for seed in args.seeds:
        large = args.out / f"s{seed}-{args.large}"
        small = args.out / f"s{seed}-{args.small}"
        walls = {"large": search(data, large, args.large, seed, extra, None),
                 "small": search(data, small, args.small, seed, extra, large)}
        fronts = {"large": published(large), "small": published(small)}
        every = [p["ms"] for f in fronts.values() for p in f]
        slowest, fastest = max(every), min(every)
        row: dict[str, Any] = {"fronts": fronts, "wall_s": walls}
        for name, f in fronts.items():
            ms = [p["ms"] for p in f]
            row[name] = {"points": len(f), "spread": max(ms) / min(ms),
                         "hv": volumes(f, slowest, fastest)}
        row["ratio"] = {a: row["small"]["hv"][a] / row["large"]["hv"][a] for a in AXES}
        rows[str(seed)] = row
    show(rows, args)
    (args.out / "bench_budget.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args, args.out / "bench_budget.png")
    print(f"wrote {args.out / 'bench_budget.json'} and {args.out / 'bench_budget.png'}")
    return 0


def show(rows: dict[str, Any], args: argparse.Namespace) -> None:
    """Per seed and budget: points, spread, hypervolumes; then the ratios' means."""
    print(f"\n{'seed':>4} {'trials':>6} {'points':>6} {'spread':>8} {'wall min':>8} "
          + " ".join(f"{'hv ' + a:>11}" for a in AXES))
    for seed, row in rows.items():
        for name, trials in (("large", args.large), ("small", args.small)):
            r = row[name]
            print(f"{seed:>4} {trials:>6} {r['points']:>6} {r['spread']:>7.1f}x "
                  f"{row['wall_s'][name] / 60:>8.1f} "
                  + " ".join(f"{r['hv'][a]:>11.4f}" for a in AXES))
    print(f"\n{args.small} trials against {args.large}, hypervolume ratio per seed (mean):")
    for a in AXES:
        ratios = [row["ratio"][a] for row in rows.values()]
        print(f"  {a:>8}: " + " ".join(f"{r:.3f}" for r in ratios)
              + f"  (mean {statistics.mean(ratios):.3f})")
    least = min(row["small"]["points"] for row in rows.values())
    print(f"the {args.small}-trial fronts hold {least} points or more")


def plot(rows: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    """Each seed's two fronts, test accuracy against latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.8), squeeze=False)
    for ax, (seed, row) in zip(axes[0], rows.items(), strict=True):
        for name, trials, style in (("large", args.large, "o-"), ("small", args.small, "s--")):
            pts = sorted((p["ms"] * 1000, p["test"]) for p in row["fronts"][name])
            ax.plot(*zip(*pts, strict=True), style, label=f"{trials} trials")
        ax.set(xscale="log", xlabel="latency (us)", ylabel="test accuracy",
               title=f"{args.data}, seed {seed}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
