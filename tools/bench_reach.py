#!/usr/bin/env python3
"""Does the front reach what the space holds? Its most accurate point against the references.

For every seed, ``codesign search`` runs as a user runs it (default settings,
``--trials`` trials, but for ``--set`` flags). The run measures the maximal
network in float32 and in int8 as references, fine-tuned like the front.
Prints, per seed, the published front's most accurate point (references
excluded: they are not trials) beside the most accurate reference (the faster
of equals): test accuracy, the gap in points, and the latency ratio. The target
(issue 20): a gap of at most 0.5 point averaged over the seeds, at no more
latency. Where the front's point is the reference's own network, the latency
ratio is the two timings' noise, and the line says so.

    .venv/bin/python tools/bench_reach.py --data rgb --seeds 1 2 3 --out runs/bench-reach

``--data rgb`` makes the 32x32 RGB npz of ``tools/bench_budget.py``. A finished
run is read again, not rerun, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_budget import make_rgb, search  # noqa: E402


def reach(run: Path) -> dict[str, Any]:
    """The front's most accurate point and the best reference of one finished run."""
    doc = json.loads((run / "pareto.json").read_text())
    if not doc["points"] or not doc.get("references"):
        raise SystemExit(f"{run}: no front or no references to compare")

    def best(points: list[dict[str, Any]]) -> dict[str, Any]:
        return max(points, key=lambda p: (p["test_accuracy"], -p["latency_ms"]["median"]))

    top, ref = best(doc["points"]), best(doc["references"])
    return {
        "trial": top["trial"], "test": top["test_accuracy"], "ms": top["latency_ms"]["median"],
        "reference": ref["name"], "ref_test": ref["test_accuracy"],
        "ref_ms": ref["latency_ms"]["median"],
        "gap_points": 100 * (ref["test_accuracy"] - top["test_accuracy"]),
        "latency_ratio": top["latency_ms"]["median"] / ref["latency_ms"]["median"],
        "same_network": top["candidate"] == ref["candidate"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run a search per seed; print each front's best against the best reference."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", default="rgb", help="digits, rgb, or an npz/folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--set", default="", help="more search flags, quoted as one argument")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = str(make_rgb(args.out / "rgb32.npz", 4, 0.5)) if args.data == "rgb" else args.data
    print(f"{len(args.seeds)} seeds x {args.trials} trials on {args.data}; each search says "
          "what it expects as it starts", flush=True)
    rows = {}
    for seed in args.seeds:
        run = args.out / f"s{seed}-{args.trials}"
        search(data, run, args.trials, seed, args.set.split(), None)
        rows[seed] = reach(run)
    print("\nseed  front's best: trial, test acc, latency us | best reference: test acc, "
          "latency us | gap (points) | latency ratio")
    for seed, r in rows.items():
        same = " (the reference's own network)" if r["same_network"] else ""
        print(f"{seed:>4}  trial {r['trial']:>3}, {r['test']:.4f}, {1e3 * r['ms']:,.0f} | "
              f"{r['reference']} {r['ref_test']:.4f}, {1e3 * r['ref_ms']:,.0f} | "
              f"{r['gap_points']:+.2f} | {r['latency_ratio']:.3f}{same}")
    gap = statistics.mean(r["gap_points"] for r in rows.values())
    slower = [s for s, r in rows.items() if r["latency_ratio"] > 1 and not r["same_network"]]
    print(f"mean gap {gap:+.2f} points (target: at most 0.5); seeds whose best point is slower "
          f"than the reference and another network: {slower or 'none'}")
    (args.out / "bench_reach.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
