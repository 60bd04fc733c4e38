#!/usr/bin/env python3
"""Refit a latency model from recorded timings, and compare feature sets on its check.

A latency model's build leaves its timings in
``$CODESIGN_HOME/latency/<profile>-<hash>.measurements.jsonl`` and its last
check in ``...check.jsonl``. This script fits the model again from those
records with three feature sets (the fine one a build of 400 networks keeps,
the same without the multiply-accumulates of true channel counts, and the
coarse one a small build falls back to), and prints each fit's agreement with the check side
by side: no timing, no conversion, seconds of CPU. It also says how well the
two timing passes of each network agreed (the measurement's own noise, which
bounds any model's figure).

    .venv/bin/python tools/refit_latency.py --home /tmp/latB/home --profile xnnpack-1t
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="the CODESIGN_HOME of the build")
    ap.add_argument("--profile", default="xnnpack-1t")
    ap.add_argument("--blocks", type=int, default=300, help="as given to profile build")
    ap.add_argument("--whole", type=int, default=100, help="as given to profile build")
    ap.add_argument("--n", type=int, default=100, help="as given to profile check")
    args = ap.parse_args(argv)

    from codesign.hardware.profile import load_profile
    from codesign.latency.build import (
        CHECK_SEED,
        WHOLE_WEIGHT,
        delegated,
        network_features,
    )
    from codesign.latency.measure import read_records
    from codesign.latency.model import LatencyModel, at_detail, errors, fit, repeatability
    from codesign.latency.sampling import block_networks, whole_networks
    from codesign.latency.spaces import profile_key

    profile = load_profile(args.profile)
    folder = args.home / "latency"
    key = profile_key(profile)
    built = read_records(folder / f"{key}.measurements.jsonl")
    checked = read_records(folder / f"{key}.check.jsonl")
    if not built or not checked:
        print(f"no build or check records of {key} in {folder}", file=sys.stderr)
        return 2
    samples = (block_networks(args.blocks, 0, profile.precisions)
               + whole_networks(args.whole, 1, profile.precisions))
    train = [(s, built[s["id"]], i >= args.blocks) for i, s in enumerate(samples)
             if "median_ms" in built.get(s["id"], {})]
    test = [(s, checked[s["id"]]) for s in whole_networks(args.n, CHECK_SEED, profile.precisions)
            if "median_ms" in checked.get(s["id"], {})]
    delegate = delegated(profile)

    def feats(sample: dict, variant: str) -> dict[str, float]:
        f = network_features(sample, delegate)
        if variant == "padded":
            return {k: v for k, v in f.items() if not k.endswith(":tmacs")}
        return at_detail(f, variant)

    print(f"{key}: fitted on {len(train)} networks, checked on {len(test)}")
    print(f"{'features':<44} {'within ±10 %':>13} {'MAPE':>7} {'p95 error':>10} {'tau':>6}")
    for label, variant in (("fine, padded MACs only", "padded"),
                           ("coarse (depthwise widths alike, no weights)", "coarse"),
                           ("fine (depthwise per width, weight elements)", "fine")):
        coef = fit([feats(s, variant) for s, _, _ in train],
                   [r["median_ms"] for _, r, _ in train],
                   [WHOLE_WEIGHT if whole else 1.0 for _, _, whole in train])
        model = LatencyModel({}, coef)
        e = errors([model.predict(feats(s, variant)) for s, _ in test],
                   [r["median_ms"] for _, r in test])
        print(f"{label:<44} {e['within_10pct']:>12.0%} {e['mape']:>7.1%} "
              f"{e['p95_abs_rel_error']:>10.1%} {e['kendall_tau']:>6.3f}")
    for name, recs in (("build", built), ("check", checked)):
        floor, agree = repeatability(list(recs.values()))
        if agree is None:
            print(f"{name}: timed in one pass (recorded before the second pass existed)")
        else:
            print(f"{name}: the timing passes agree within ±10 % on {agree:.0%} of networks "
                  f"(noise floor {floor:.1%}: the measurement's own noise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
