#!/usr/bin/env python3
"""Check the TFLM arena estimate (codesign.tflite.memplan) against TFLM itself.

Builds random candidates of a built-in space (converted once and cached under
``$CODESIGN_HOME/latency/models``), runs each in TensorFlow Lite Micro (one
child process per model, so that a crash in TFLM costs one model, not the
run) for its recorded head, tail and total, estimates the head and tail from
the file alone, and prints how close the estimates are.

    CODESIGN_HOME=/tmp/tflm-home python tools/check_ram.py --n 100
    CODESIGN_HOME=/tmp/tflm-home python tools/check_ram.py --n 10 --precisions int16x8
    CODESIGN_HOME=/tmp/tflm-home python tools/check_ram.py --n 10 --precisions int8,int16x8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys
from codesign.errors import TrialFailure
from codesign.hardware import tflm
blob = open(sys.argv[1], "rb").read()
try:
    print(json.dumps(tflm.arena(blob).to_dict()))
except TrialFailure as exc:
    print(json.dumps({"error": str(exc)}))
"""


def run_tflm(path: Path) -> dict[str, Any]:
    """TFLM's arena figures for one model, measured in a child process."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
        return {"error": f"TFLM child exited with {proc.returncode}: {tail[0][:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(kind: str, rel: np.ndarray) -> str:
    """One line: share within 5 %, median and max relative error."""
    a = np.abs(rel)
    return (f"{kind}: {len(a)} models, within 5 %: {np.mean(a <= 0.05):.0%}, "
            f"median |error| {np.median(a):.2%}, max |error| {a.max():.2%}, "
            f"mean error {rel.mean():+.2%}")


def main(argv: list[str] | None = None) -> int:
    """Measure, estimate and print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="candidates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precisions", default="int8", help="comma-separated per-layer precisions")
    ap.add_argument("--space", default="default")
    ap.add_argument("--worst", type=int, default=5, help="worst cases to list")
    ap.add_argument("--json", type=Path, help="also write every record here")
    args = ap.parse_args(argv)

    from codesign.latency.measure import converted
    from codesign.latency.sampling import whole_networks
    from codesign.tflite import memplan

    allowed = tuple(args.precisions.split(","))
    samples = whole_networks(args.n, args.seed, allowed, args.space)
    records = []
    t_tflm = t_est = 0.0
    for k, sample in enumerate(samples):
        path = converted(sample)
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"id": sample["id"], **run_tflm(path)}
        t_tflm += time.perf_counter() - t0
        blob = path.read_bytes()
        t0 = time.perf_counter()
        est = memplan.plan(blob)
        rec["est_head"], rec["est_tail"] = est.head_bytes, est.tail_bytes
        rec["lower_bound"] = est.lower_bound
        t_est += time.perf_counter() - t0
        rec["resolution"] = sample["candidate"]["resolution"]
        rec["precisions"] = sorted(set(sample["candidate"]["precision"].values()))
        records.append(rec)
        print(f"{k + 1}/{len(samples)} {rec['id']} {json.dumps(rec)}", file=sys.stderr)
    ok = [r for r in records if "error" not in r]
    for r in ok:
        r["head_error"] = (r["est_head"] - r["head_bytes"]) / r["head_bytes"]
        r["tail_error"] = (r["est_tail"] - r["tail_bytes"]) / r["tail_bytes"]
    failed = [r for r in records if "error" in r]
    print(f"space {args.space}, precisions {allowed}, seed {args.seed}: {len(ok)} measured, "
          f"{len(failed)} failed in TFLM")
    for r in failed[: args.worst]:
        print(f"  failed {r['id']}: {r['error']}")
    if not ok:
        return 1
    print(summary("head (planned activations)", np.array([r["head_error"] for r in ok])))
    print(summary("tail (persistent, rough)", np.array([r["tail_error"] for r in ok])))
    total = np.array([(r["est_head"] + r["est_tail"]) / r["total_bytes"] - 1 for r in ok])
    print(summary("total", total))
    heads = np.array([r["head_bytes"] for r in ok])
    print(f"TFLM head: median {np.median(heads):.0f} bytes, range {heads.min()}-{heads.max()}; "
          f"estimate at the lower bound (live bytes) in "
          f"{np.mean([r['est_head'] == r['lower_bound'] for r in ok]):.0%} of models")
    print(f"seconds per model: TFLM child {t_tflm / len(records):.3f}, "
          f"estimate {t_est / len(records):.4f}")
    print("worst head estimates:")
    for r in sorted(ok, key=lambda r: -abs(r["head_error"]))[: args.worst]:
        print(f"  {r['id']} res {r['resolution']} {','.join(r['precisions'])}: TFLM head "
              f"{r['head_bytes']}, estimate {r['est_head']} ({r['head_error']:+.2%}), "
              f"lower bound {r['lower_bound']}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
