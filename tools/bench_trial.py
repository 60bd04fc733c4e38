#!/usr/bin/env python3
"""Time one trial of the default space, stage by stage, against the naive conversion path.

Draws candidates from the default space with the default sampler (NSGA-II,
first generation seeded with the search's uniform anchors), evaluates each one
exactly as a search trial does (inherited weights, BN recalibration, fast
conversion with per-layer precision, accuracy and latency in LiteRT), and
prints the median wall time of every stage, per precision mix. For some of the
candidates it also times the naive path a TFLite user writes by hand
(``TFLiteConverter.from_keras_model``, which writes a SavedModel) with the same
quantization, in the same run, and prints the ratio.

    .venv/bin/python tools/bench_trial.py --candidates 20 --naive 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

import codesign  # noqa: F401  (tf_keras before TensorFlow)
from codesign.child.builtin import BuiltinHandlers
from codesign.config import SearchConfig
from codesign.data import load_dataset
from codesign.hardware.profile import load_profile
from codesign.nn.supernet import Supernet
from codesign.preflight import preflight
from codesign.run.study import make_sampler
from codesign.space import get_space, suggest_candidate
from codesign.space.suggest import params_of

STAGES = ("build", "bn_recalibration", "conversion", "accuracy", "latency")


def naive_conversion(model, precision: dict[str, str], calib: np.ndarray) -> float:
    """Seconds for from_keras_model (SavedModel inside) plus the same per-layer quantization."""
    import tensorflow as tf

    from codesign.tflite.quantize import add_signature, quantize_layers

    t0 = time.perf_counter()
    blob = add_signature(bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert()))
    if any(p != "float32" for p in precision.values()):
        quantize_layers(blob, precision, calib[:128])
    return time.perf_counter() - t0


def mix_label(precision: dict[str, str]) -> str:
    kinds = sorted(set(precision.values()))
    return f"uniform {kinds[0]}" if len(kinds) == 1 else f"mixed, {len(kinds)} precisions"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--naive", type=int, default=5, help="candidates also timed the naive way")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    space = get_space("default")
    cfg = preflight(SearchConfig(out=Path("unused"), space="default"))
    choices = cfg.layer_choices()
    data = load_dataset("digits", args.seed)
    pipe = BuiltinHandlers(progress=lambda info: None)
    pipe.space, pipe.data, pipe.profile = space, data, load_profile(cfg.profile)
    pipe.weights = Supernet(space, data.num_classes, data.channels).weights()  # timing only

    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler("nsga2", args.seed, args.candidates))
    depths = tuple((st.min_depth + st.max_depth + 1) // 2 for st in space.stages)
    for precision in ("int8", "float32"):
        anchor = space.uniform(min(space.resolutions), depths, 0.5, precision)
        study.enqueue_trial(params_of(anchor))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.candidates):
            trial = study.ask()
            cand = suggest_candidate(trial, space, choices)
            t0 = time.perf_counter()
            times: dict[str, float] = {}
            net = space.subnet(cand)
            model = pipe._inherited(net, times)  # noqa: SLF001  (the trial's own stages)
            blob = pipe._tflite(model, net, times)  # noqa: SLF001
            res = pipe._measure(blob, net, f"{tmp}/m.tflite", times)  # noqa: SLF001
            total = time.perf_counter() - t0
            study.tell(trial, [res["val_accuracy"], res["latency_ms"]["median"]])
            row = {"mix": mix_label(net.precision), "total": total, **times}
            if i < args.naive:
                row["naive_conversion"] = naive_conversion(
                    model, space.subnet(cand).precision, pipe._images("train", cand.resolution)  # noqa: SLF001
                )
            rows.append(row)
            print(f"candidate {i + 1:2d}/{args.candidates}: {total:5.2f} s  {row['mix']}",
                  flush=True)

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):6.3f}" if values else "     -"

    print()
    print(f"{'mix':<24} {'n':>3} " + " ".join(f"{s[:10]:>10}" for s in (*STAGES, "total")))
    groups = {"all": rows} | {m: [r for r in rows if r["mix"] == m]
                              for m in sorted({r["mix"] for r in rows})}
    for label, group in groups.items():
        cells = " ".join(f"{med([r[s] for r in group]):>10}" for s in (*STAGES, "total"))
        print(f"{label:<24} {len(group):>3} {cells}")
    timed = [r for r in rows if "naive_conversion" in r]
    if timed:
        fast_conv = statistics.median(r["conversion"] for r in timed)
        naive_conv = statistics.median(r["naive_conversion"] for r in timed)
        fast_trial = statistics.median(r["total"] for r in timed)
        naive_trial = statistics.median(
            r["total"] - r["conversion"] + r["naive_conversion"] for r in timed
        )
        print()
        print(f"naive path, same {len(timed)} candidates: conversion {naive_conv:.2f} s vs "
              f"{fast_conv:.2f} s ({naive_conv / fast_conv:.1f}x); whole trial {naive_trial:.2f} s "
              f"vs {fast_trial:.2f} s ({naive_trial / fast_trial:.1f}x)")
    print(f"median trial: {statistics.median(r['total'] for r in rows):.2f} s "
          f"(target 3 s or less)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
