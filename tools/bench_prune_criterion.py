#!/usr/bin/env python3
"""Which channels to keep when pruning a trained model: L1 norm against the batch-norm scale.

Samples random prune configurations of a trained model's channel groups (the
genes of ``codesign search --model``), prunes each with both criteria of
``codesign.hyper.prune.importance``, recalibrates batch norm on 512 training
images, and scores each on the validation split (Keras, float32). Optionally
fine-tunes each for ``--finetune-epochs`` (toward the labels) and scores again.
Prints the mean accuracy per criterion and how often each won.

    .venv/bin/python tools/bench_prune_criterion.py model.keras --data d.npz --samples 20
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import codesign  # noqa: F401  (tf_keras before TensorFlow loads)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print one line per criterion and a JSON summary."""
    from codesign.compress.inputs import input_map
    from codesign.data import load_dataset, resize_bilinear
    from codesign.hyper.graph import channel_graph
    from codesign.hyper.prune import CRITERIA, prune_model
    from codesign.models.load import load_user_model
    from codesign.nn.bn import recalibrate_bn
    from codesign.nn.finetune import Schedule, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-data", default=None)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--ratios", default="0.25,0.5,0.75")
    ap.add_argument("--finetune-epochs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    user = load_user_model(args.model)
    data = load_dataset(args.data, args.seed, args.val_data)
    pre = data.preprocessing
    feed = input_map(float(pre["scale"]), float(pre["offset"]),
                     [p.layer for p in user.preprocessing], (None, None))
    h, w, _ = user.input_shape
    xtr = feed(resize_bilinear(data.x_train, (h, w)))
    xv = feed(resize_bilinear(data.x_val, (h, w)))
    graph = channel_graph(user.model)
    groups = [n for n, g in graph.groups.items() if g.prunable]
    ratios = [float(r) for r in args.ratios.split(",")]
    rng = np.random.default_rng(args.seed)
    scores: dict[str, list[list[float]]] = {c: [] for c in CRITERIA}
    for _ in range(args.samples):
        config = {g: float(rng.choice(ratios)) for g in groups}
        for criterion in CRITERIA:
            narrow, _ = prune_model(user.model, graph, config, criterion)
            recalibrate_bn(narrow, xtr[:512])
            row = [_accuracy(narrow, xv, data.y_val)]
            if args.finetune_epochs:
                train(narrow, (xtr, data.y_train), (xv, data.y_val),
                      Schedule(args.finetune_epochs, 2, 64, args.seed))
                row.append(_accuracy(narrow, xv, data.y_val))
            scores[criterion].append(row)
    summary = _summary(scores, args.samples)
    for criterion, s in summary.items():
        print(f"{criterion}: inherited {s['inherited']:.4f} (wins {s['wins_inherited']})"
              + (f", fine-tuned {s['finetuned']:.4f} (wins {s['wins_finetuned']})"
                 if "finetuned" in s else ""))
    print(json.dumps({"model": args.model, "samples": args.samples, "groups": len(groups),
                      "seconds": round(time.perf_counter() - t0, 1), "criteria": summary}))
    return 0


def _accuracy(model: object, x: np.ndarray, y: np.ndarray) -> float:
    out = model.predict(x, batch_size=256, verbose=0)  # type: ignore[attr-defined]
    return float(np.mean(np.argmax(out, axis=-1) == y))


def _summary(scores: dict[str, list[list[float]]], n: int) -> dict[str, dict[str, float]]:
    names = list(scores)
    arr = {c: np.asarray(v) for c, v in scores.items()}
    out: dict[str, dict[str, float]] = {}
    for c in names:
        others = [arr[o] for o in names if o != c]
        s: dict[str, float] = {"inherited": float(arr[c][:, 0].mean()),
                               "wins_inherited": int(sum(
                                   all(arr[c][i, 0] > o[i, 0] for o in others) for i in range(n)))}
        if arr[c].shape[1] > 1:
            s["finetuned"] = float(arr[c][:, 1].mean())
            s["wins_finetuned"] = int(sum(all(arr[c][i, 1] > o[i, 1] for o in others)
                                          for i in range(n)))
        out[c] = s
    return out


if __name__ == "__main__":
    raise SystemExit(main())
