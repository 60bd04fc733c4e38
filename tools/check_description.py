#!/usr/bin/env python3
"""Compare a trained model's description with its converted candidates, op by op.

Draws random candidates of the model (a prune ratio per channel group, a
precision per layer, optionally an input resolution), prunes and converts each
as a ``codesign compress`` trial does, and sets the file's ops beside the chain
the latency model would price from the description alone
(:mod:`codesign.latency.graph_chain`): per kind and precision, the op counts,
multiply-accumulates and output elements, and the QUANTIZE / DEQUANTIZE ops.
Prints the table summed over the candidates and every disagreement.

    python tools/check_description.py --model model.keras --n 10
    python tools/check_description.py --model model.h5 --n 5 --precisions float32,int8,int16x8 \
        --resolutions 32,24
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit 1 if any candidate disagrees."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a .keras or .h5 model file")
    ap.add_argument("--n", type=int, default=10, help="random candidates (default 10)")
    ap.add_argument("--precisions", default="float32,int8",
                    help="comma-separated precisions to draw from (default float32,int8)")
    ap.add_argument("--resolutions", default="", help="comma-separated input sides to draw from")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import codesign  # noqa: F401  (tf_keras before TensorFlow)
    from codesign.compress.describe_check import check_model
    from codesign.latency.graph_check import Row, disagreements, table
    from codesign.models.load import load_user_model

    model = load_user_model(args.model).model
    sides = [int(s) for s in args.resolutions.split(",") if s.strip()]
    t0 = time.perf_counter()
    checks = check_model(model, args.n, args.precisions.split(","), args.seed, sides)
    total: dict[str, Row] = {}
    failed = 0
    for i, c in enumerate(checks):
        for row in c.rows:
            acc = total.setdefault(row.key, Row(row.key))
            acc.chain += row.chain
            acc.file += row.file
        lines = disagreements(c.rows) + [f"problem: {p}" for p in c.problems]
        if lines:
            failed += 1
            print(f"candidate {i} (resolution {c.resolution}, "
                  f"{sorted(set(c.precision.values()))}) disagrees:")
            print("\n".join(f"  {line}" for line in lines))
    print(table([total[k] for k in sorted(total)]))
    print(f"{len(checks) - failed} of {len(checks)} candidates agree "
          f"({time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
