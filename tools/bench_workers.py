"""Trials per minute with 1 and 2 local workers, side by side.

Runs the same tiny search twice from one already-trained supernet (copied
into both run directories, so neither trains): once with one worker (SQLite),
once with ``--workers 2`` (a journal in the run directory), and optionally
with 2 workers on a throwaway PostgreSQL (``--postgres``). Trials per minute
count the trial phase only: COMPLETE trials over the time from the first
trial's start to the last one's end, taken from the study.

    .venv/bin/python tools/bench_workers.py --trials 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.run.directory import RunDir  # noqa: E402
from codesign.run.study import load_study  # noqa: E402

CODESIGN = [sys.executable, "-m", "codesign.cli"]
ARGS = ["--space", "tiny", "--epochs", "10", "--seed", "0", "--quality-samples", "0",
        "--finetune-epochs", "0", "--latency", "measured", "--no-report"]


def _search(out: Path, trials: int, extra: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([*CODESIGN, "search", *ARGS, "--trials", str(trials), *extra,
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        sys.exit(f"search failed: {proc.stderr[-2000:]}")
    return time.monotonic() - t0


def _rate(locator: str) -> tuple[int, float]:
    from optuna.trial import TrialState

    trials = load_study(locator).get_trials(states=(TrialState.COMPLETE,))
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return len(trials), len(trials) / max((end - start).total_seconds(), 1e-9) * 60


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--postgres", action="store_true",
                    help="also 2 workers on a throwaway PostgreSQL cluster")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="codesign-bench-workers-"))
    env = dict(os.environ)
    seed = work / "seed"
    print(f"training the shared supernet once in {seed} ...", flush=True)
    _search(seed, 1, [], env)
    rows = []
    cases = [("1 worker (SQLite)", []), ("2 workers (journal)", ["--workers", "2"])]
    cluster = None
    if args.postgres:
        from codesign.scale.pgcluster import Cluster

        cluster = Cluster().init()
        os.environ["CODESIGN_STORAGE"] = cluster.url  # how this script reads that study back
        cases.append(("2 workers (PostgreSQL)", ["--workers", "2", "--storage", cluster.url,
                                                 "--study", "bench"]))
    try:
        for i, (name, extra) in enumerate(cases):
            out = work / f"run{i}"
            out.mkdir()
            for f in ("supernet.npz", "supernet.json", "references.json", "noise_floor.json"):
                if (seed / f).is_file():
                    shutil.copy(seed / f, out / f)
            shutil.copytree(seed / "cache", out / "cache")
            wall = _search(out, args.trials, extra, env)
            n, rate = _rate(RunDir(out).storage_url)
            rows.append((name, n, rate, wall))
            print(f"{name}: {n} trials, {rate:.1f} trials/min in the trial phase "
                  f"({wall:.0f} s for the whole command)", flush=True)
    finally:
        if cluster is not None:
            cluster.destroy()
    base = rows[0][2]
    print(f"\n{'workers':<24} {'trials':>6} {'trials/min':>10} {'speed-up':>8} {'command s':>9}")
    for name, n, rate, wall in rows:
        print(f"{name:<24} {n:>6} {rate:>10.1f} {rate / base:>7.2f}x {wall:>9.0f}")
    print(f"(machine: {os.cpu_count()} CPUs; runs in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
