"""The elastic depthwise kernel, measured: one kernel (3) against 3/5/7 as centre crops.

Trains the default space's supernet twice on the same data and seed, once
with depthwise kernel 3 only and once with kernels 3, 5 and 7 (a smaller
kernel is the centre of the 7x7 weights), and reports for each: training
seconds, the inherited (batch-norm recalibrated) validation accuracy of the
largest and the narrowest network at every kernel the space offers, and the
supernet quality report's Kendall tau (inherited against fine-tuned accuracy
over spread sub-networks) beside its noise ceiling.

    .venv/bin/python tools/bench_kernel.py --data digits --epochs 20 --samples 12

It trains two supernets and fine-tunes ``2 * samples`` sub-networks per
space: about a quarter of an hour on 2 cores with digits.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import codesign  # noqa: F401  (tf_keras before TensorFlow)
from codesign.data import load_dataset, resize_bilinear
from codesign.nn.maskeval import MaskedEvaluator
from codesign.nn.quality import supernet_quality
from codesign.nn.train import TrainSettings, train_supernet
from codesign.space import get_space


def measure(kernels: tuple[int, ...], args: argparse.Namespace) -> dict:
    """Train one supernet with ``kernels`` and score it."""
    data = load_dataset(args.data, args.seed)
    space = replace(get_space(args.space), kernels=kernels)
    start = time.perf_counter()
    net = train_supernet(space, data, TrainSettings(epochs=args.epochs, seed=args.seed))
    train_s = time.perf_counter() - start
    evaluator = MaskedEvaluator(net)
    inherited = {}
    for label, base in (("largest", space.max_candidate()), ("narrowest", space.min_candidate())):
        calib = resize_bilinear(data.x_train[:512], base.resolution)
        x_val = resize_bilinear(data.x_val, base.resolution)
        for k in kernels:
            cand = replace(base, kernel=None if len(kernels) == 1 else tuple(
                (b, k) for b, _ in base.kernel))
            inherited[f"{label} k{k}"] = evaluator.accuracy(cand, calib, x_val, data.y_val)
    start = time.perf_counter()
    quality = supernet_quality(space, data, net.weights(), samples=args.samples, seed=args.seed)
    return {"kernels": list(kernels), "train_s": round(train_s, 1),
            "quality_s": round(time.perf_counter() - start, 1), "inherited": inherited,
            "kendall_tau": quality["kendall_tau"],
            "noise_ceiling_tau": quality["noise_ceiling_tau"]}


def main() -> None:
    """Measure both spaces and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--space", default="default")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for kernels in ((3,), (3, 5, 7)):
        print(json.dumps(measure(kernels, args)), flush=True)


if __name__ == "__main__":
    main()
