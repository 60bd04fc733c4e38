#!/usr/bin/env python3
"""Refit a latency model from recorded timings, and compare feature sets on its check.

A latency model's build leaves its timings in
``$CODESIGN_HOME/latency/<profile>-<hash>.measurements.jsonl`` and its last
check in ``...check.jsonl``. This script fits the model again from those
records with four feature sets (the fine one a build of 400 networks keeps,
the same without the multiply-accumulates of true channel counts, the same
without the input elements, and the coarse one a small build falls back to),
and prints each fit's agreement with the check side by side: no timing, no
conversion, seconds of CPU. It also says how well the two timing passes of
each network agreed (the measurement's own noise, which bounds any model's
figure).

    .venv/bin/python tools/refit_latency.py --home /tmp/latB/home --profile xnnpack-1t
    .venv/bin/python tools/refit_latency.py --home H --hypermodel-model \
        H/latency/xnnpack-1t-<hash>.hypermodel-<key>.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (name, build's (network, record, weight) rows, check's (network, record) rows, features)
Source = tuple[str, list[tuple[dict, dict, float]], list[tuple[dict, dict]],
               Callable[[dict[str, Any]], dict[str, float]]]


def _default_space(args: argparse.Namespace, folder: Path) -> Source:
    """The build's and the check's networks of a profile's own model, and their features."""
    from codesign.hardware.profile import load_profile
    from codesign.latency.build import CHECK_SEED, WHOLE_WEIGHT, delegated, network_features
    from codesign.latency.measure import read_records
    from codesign.latency.sampling import block_networks, whole_networks
    from codesign.latency.spaces import profile_key

    profile = load_profile(args.profile)
    key = profile_key(profile)
    built = read_records(folder / f"{key}.measurements.jsonl")
    checked = read_records(folder / f"{key}.check.jsonl")
    samples = (block_networks(args.blocks, 0, profile.precisions)
               + whole_networks(args.whole, 1, profile.precisions))
    train = [(s, built[s["id"]], WHOLE_WEIGHT if i >= args.blocks else 1.0)
             for i, s in enumerate(samples) if "median_ms" in built.get(s["id"], {})]
    test = [(s, checked[s["id"]]) for s in whole_networks(args.n, CHECK_SEED, profile.precisions)
            if "median_ms" in checked.get(s["id"], {})]
    delegate = delegated(profile)
    return key, train, test, lambda s: network_features(s, delegate)


def _hypermodel(args: argparse.Namespace) -> Source:
    """The same of a HyperModel's model: its drawn candidates are kept beside it."""
    from codesign.hardware.profile import load_profile
    from codesign.latency.hypermodel import CHECK_SEED, sample_features
    from codesign.latency.measure import read_records

    path: Path = args.hypermodel_model
    stem = path.with_suffix("")

    def kept(samples: str, records: str) -> list:
        recs = read_records(Path(f"{stem}{records}"))
        drawn = json.loads(Path(f"{stem}{samples}").read_text())
        return [(s, recs[s["id"]], 1.0) for s in drawn if "median_ms" in recs.get(s["id"], {})]

    train = kept(".samples-0.json", ".measurements.jsonl")
    test = [(s, r) for s, r, _ in kept(f".samples-{CHECK_SEED}.json", ".check.jsonl")]
    return path.stem, train, test, sample_features(load_profile(args.profile))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="the CODESIGN_HOME of the build")
    ap.add_argument("--profile", default="xnnpack-1t")
    ap.add_argument("--blocks", type=int, default=300, help="as given to profile build")
    ap.add_argument("--whole", type=int, default=100, help="as given to profile build")
    ap.add_argument("--n", type=int, default=100, help="as given to profile check")
    ap.add_argument("--hypermodel-model", type=Path, metavar="JSON",
                    help="a HyperModel's latency model (HOME/latency/<profile>-<hash>.hypermodel-"
                         "<key>.json) instead of the profile's own; built with the default seed")
    args = ap.parse_args(argv)

    from codesign.latency.build import quiet_ms
    from codesign.latency.model import LatencyModel, at_detail, errors, fit, repeatability

    folder = args.home / "latency"
    try:
        key, train, test, network_features = (
            _hypermodel(args) if args.hypermodel_model else _default_space(args, folder))
    except (OSError, ValueError) as exc:
        print(f"cannot read the build and check records: {exc}", file=sys.stderr)
        return 2
    if not train or not test:
        print(f"no build or check records of {key} in {folder}", file=sys.stderr)
        return 2

    def feats(sample: dict, variant: str) -> dict[str, float]:
        f = network_features(sample)
        if variant == "padded":
            return {k: v for k, v in f.items() if not k.endswith(":tmacs")}
        if variant == "no-inputs":
            return {k: v for k, v in f.items() if not k.endswith(":inp")}
        return at_detail(f, variant)

    def ms(rec: dict) -> float:
        # a HyperModel's records as its build fits them (the quiet figure); the profile's own
        # on their medians, as this tool always refitted them (its build fits the quiet figure)
        return quiet_ms(rec) if args.hypermodel_model else float(rec["median_ms"])

    print(f"{key}: fitted on {len(train)} networks, checked on {len(test)}")
    print(f"{'features':<44} {'within ±10 %':>13} {'MAPE':>7} {'p95 error':>10} {'tau':>6}")
    for label, variant in (("fine, padded MACs only", "padded"),
                           ("coarse (depthwise widths alike, no weights)", "coarse"),
                           ("fine without input elements (schema 4)", "no-inputs"),
                           ("fine (depthwise per width, weight elements)", "fine")):
        coef = fit([feats(s, variant) for s, _, _ in train], [ms(r) for _, r, _ in train],
                   [w for _, _, w in train])
        model = LatencyModel({}, coef, {"floor_ms": 0.5 * min(ms(r) for _, r, _ in train)})
        e = errors([model.predict(feats(s, variant)) for s, _ in test], [ms(r) for _, r in test])
        print(f"{label:<44} {e['within_10pct']:>12.0%} {e['mape']:>7.1%} "
              f"{e['p95_abs_rel_error']:>10.1%} {e['kendall_tau']:>6.3f}")
    for name, recs in (("build", [r for _, r, _ in train]), ("check", [r for _, r in test])):
        floor, agree = repeatability(recs)
        if agree is None:
            print(f"{name}: timed in one pass (recorded before the second pass existed)")
        else:
            print(f"{name}: the timing passes agree within ±10 % on {agree:.0%} of networks "
                  f"(noise floor {floor:.1%}: the measurement's own noise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
