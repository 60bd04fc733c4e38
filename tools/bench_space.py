#!/usr/bin/env python3
"""codesign's front on 96x96 RGB images against Keras's own MobileNetV2, measured in one run.

Makes a 96x96 RGB npz of coloured shapes on noise
(``examples/trained_models.rgb_shapes``, 10 classes at half contrast: training,
validation and test splits), runs ``codesign search --data NPZ --trials N`` on
it as a user would (the space is fitted to the data), and trains Keras's
MobileNetV2 (``tf_keras.applications``, no pretrained weights, alpha 0.35 to
1.0) on the same training split, with batch-norm momentum 0.9 (Keras's 0.999
leaves data sets this small at chance), the best epoch on the validation split
kept. Each MobileNetV2 is converted to float32 and to int8 (post-training full-
integer quantization, float in and out, as a user does with
``TFLiteConverter``). Every file, the front's, codesign's references' and the
MobileNetV2s', is then re-timed side by side in one batch on the profile;
accuracies are on the test split (the front's as codesign reported them, the
rest scored here with LiteRT). It prints, and writes to
``OUT/bench_space.json`` and ``OUT/bench_space.png``:

* the hypervolume of (test accuracy, latency), reference point (chance, 1.1x
  the slowest), of the front and of the MobileNetV2s together;
* the best accuracy at or below the latency of MobileNetV2-0.35 int8;
* for every hand-built point, the front point that dominates it, if any;
* the time from the search's start to its first finished trial, and the
  supernet quality report's Kendall tau (over ``--quality-samples``
  sub-networks, default 10: the one flag the searches get besides
  ``--trials``, ``--profile`` and ``--seed``), beside a second search on the
  same images downscaled to 32x32 (``--no-downscaled`` skips it).

    .venv/bin/python tools/bench_space.py --out runs/bench_space --trials 30
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
sys.path.insert(0, str(ROOT / "tools"))

from bench_compress import hypervolume  # noqa: E402

import codesign  # noqa: E402,F401  (tf_keras before TensorFlow loads)
from examples.trained_models import rgb_shapes  # noqa: E402

ALPHAS = (0.35, 0.5, 0.75, 1.0)


def main(argv: list[str] | None = None) -> int:
    """Make the data, search, train the hand-built networks, re-time all, print and write."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--train", type=int, default=1600, help="training images")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--contrast", type=float, default=0.5,
                    help="of the shapes against the noise (1: clear; less is harder)")
    ap.add_argument("--quality-samples", type=int, default=10,
                    help="sub-networks of each search's supernet quality report")
    ap.add_argument("--side", type=int, default=96, help="image side, px")
    ap.add_argument("--epochs", type=int, default=30,
                    help="MobileNetV2 training epochs (the best on validation is kept)")
    ap.add_argument("--alphas", default=",".join(map(str, ALPHAS)))
    ap.add_argument("--profile", default="xnnpack-1t")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-downscaled", action="store_true",
                    help="skip the search on the same images at 32x32")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_data(args.out / f"shapes{args.side}.npz", args)
    searches = {f"{args.side}px": search(data, args.out / f"run{args.side}", args)}
    if not args.no_downscaled:
        small = downscale(data, args.out / "shapes32.npz", args.side // 32)
        searches["32px"] = search(small, args.out / "run32", args)
    for name, s in searches.items():
        print(f"search {name}: first trial after {s['first_trial_s'] / 60:.1f} min, "
              f"{s['wall_s'] / 60:.1f} min in all; supernet quality Kendall tau "
              f"{s['tau']:.2f} (noise ceiling {s['ceiling']:.2f})", flush=True)
    hand = {f"MobileNetV2-{a:g}": train_mobilenet(a, data, args)
            for a in map(float, args.alphas.split(","))}
    result = compare(args.out / f"run{args.side}", hand, data, args)
    result["searches"] = searches
    show(result)
    (args.out / "bench_space.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / "bench_space.png")
    print(f"wrote {args.out / 'bench_space.json'} and {args.out / 'bench_space.png'}")
    return 0


def make_data(path: Path, args: argparse.Namespace) -> Path:
    """Training, validation (``x_val``/``y_val``) and test splits of RGB shapes."""
    if not path.is_file():
        x, y = rgb_shapes(args.train, args.seed, args.classes, args.side, args.contrast)
        xv, yv = rgb_shapes(args.train // 4, args.seed + 1, args.classes, args.side, args.contrast)
        xt, yt = rgb_shapes(args.train // 3, args.seed + 2, args.classes, args.side,
                            args.contrast)
        np.savez(path, x_train=x, y_train=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    return path


def downscale(path: Path, out: Path, factor: int) -> Path:
    """The same npz with every image averaged over ``factor`` x ``factor`` blocks."""
    if not out.is_file():
        d = dict(np.load(path))
        for k in ("x_train", "x_val", "x_test"):
            n, h, w, c = d[k].shape
            blocks = d[k].reshape(n, h // factor, factor, w // factor, factor, c)
            d[k] = blocks.astype(np.float32).mean((2, 4)).round().astype(np.uint8)
        np.savez(out, **d)
    return out


def search(data: Path, run: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``codesign search`` as a user runs it; its timing and supernet quality.

    The figures are kept beside the run (``RUN.json``): a rerun of the tool
    takes them from there rather than from the search's reuse of its run.
    """
    import optuna

    kept = run.with_suffix(".json")
    if kept.is_file():
        return dict(json.loads(kept.read_text()))
    log = run.with_suffix(".log")
    t0 = time.time()
    cmd = [str(ROOT / ".venv" / "bin" / "codesign"), "search", "--data", str(data), "--out",
           str(run), "--trials", str(args.trials), "--profile", args.profile,
           "--seed", str(args.seed), "--quality-samples", str(args.quality_samples)]
    print(" ".join(cmd[1:]), f"(log: {log})", flush=True)
    with log.open("a") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)
    wall = time.time() - t0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="codesign", storage=f"sqlite:///{run / 'study.db'}")
    done = [t for t in study.trials if t.datetime_complete is not None]
    first = min(t.datetime_complete for t in done).timestamp() - t0 if done else float("nan")
    quality = run / "supernet_quality.json"
    q = json.loads(quality.read_text()) if quality.is_file() else {}
    figures = {"wall_s": round(wall, 1), "first_trial_s": round(first, 1),
               "tau": q.get("kendall_tau"), "ceiling": q.get("noise_ceiling_tau"),
               "trials": len(done)}
    kept.write_text(json.dumps(figures))
    return figures


def train_mobilenet(alpha: float, data: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Keras's MobileNetV2 at ``alpha`` trained here, as float32 and int8 ``.tflite`` files."""
    files = {p: args.out / f"mobilenetv2-{alpha:g}-{p}.tflite" for p in ("float32", "int8")}
    if all(f.is_file() for f in files.values()):
        return files
    import tensorflow as tf
    import tf_keras as keras

    from codesign.tflite.convert import concrete_converter

    d = np.load(data)
    x, xv = (prep(d[k]) for k in ("x_train", "x_val"))
    keras.utils.set_random_seed(args.seed)
    model = keras.applications.MobileNetV2(input_shape=(args.side, args.side, 3), alpha=alpha,
                                           weights=None, classes=args.classes)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x, d["y_train"], epochs=args.epochs, batch_size=64, verbose=0,
              validation_data=(xv, d["y_val"]),
              callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=6,
                                                       restore_best_weights=True)])
    print(f"MobileNetV2-{alpha:g} trained in {time.perf_counter() - t0:.0f} s", flush=True)
    files["float32"].write_bytes(concrete_converter(model).convert())
    conv = concrete_converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(128))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    files["int8"].write_bytes(conv.convert())
    return files


def prep(x: np.ndarray) -> np.ndarray:
    """MobileNetV2's input scaling: [0, 255] to [-1, 1]."""
    return (x.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def compare(run: Path, hand: dict[str, dict[str, Path]], data: Path, args: argparse.Namespace
            ) -> dict[str, Any]:
    """Every file re-timed in one batch; accuracies, hypervolumes, dominance."""
    from codesign.hardware import litert
    from codesign.hardware.profile import load_profile
    from codesign.latency.measure import local_timer

    doc = json.loads((run / "pareto.json").read_text())
    d = np.load(data)
    xt, yt = prep(d["x_test"]), d["y_test"]
    rows: dict[str, dict[str, Any]] = {}
    for p in doc["points"]:
        rows[f"codesign trial {p['trial']}"] = {
            "file": str(run / p["model"]), "test_accuracy": p["test_accuracy"], "kind": "front",
            "resolution": p["candidate"].get("resolution")}
    for r in doc["references"]:
        rows[f"codesign {r['name']}"] = {"file": str(run / r["model"]), "kind": "reference",
                                         "test_accuracy": r["test_accuracy"]}
    profile = load_profile(args.profile)
    for name, files in hand.items():
        for precision, path in files.items():
            rows[f"{name} {precision}"] = {
                "file": str(path), "kind": "hand-built", "test_accuracy": litert.accuracy(
                    path.read_bytes(), xt, yt, profile.threads, profile.resolver)}
    blobs = [Path(r["file"]).read_bytes() for r in rows.values()]
    timed = local_timer(profile).time(blobs, [litert.random_sample(b) for b in blobs])
    for r, stats in zip(rows.values(), timed.stats, strict=True):
        r["latency_ms"] = None if isinstance(stats, str) else stats.median
    chance = float(np.bincount(yt).max() / len(yt))
    slowest = 1.1 * max(r["latency_ms"] for r in rows.values() if r["latency_ms"] is not None)
    front = [n for n, r in rows.items() if r["kind"] == "front"]
    hand_names = [n for n, r in rows.items() if r["kind"] == "hand-built"]
    hv = {k: hypervolume([(rows[n]["test_accuracy"], rows[n]["latency_ms"]) for n in names],
                         (chance, slowest))
          for k, names in (("codesign front", front), ("MobileNetV2 (all 8)", hand_names))}
    dominated = {h: next((f for f in sorted(front, key=lambda f: rows[f]["latency_ms"])
                          if rows[f]["latency_ms"] <= rows[h]["latency_ms"]
                          and rows[f]["test_accuracy"] >= rows[h]["test_accuracy"]), None)
                 for h in hand_names}
    smallest = f"MobileNetV2-{min(hand, key=lambda n: float(n.split('-')[1])).split('-')[1]} int8"
    limit = rows[smallest]["latency_ms"]
    at_limit = max((rows[f]["test_accuracy"] for f in front if rows[f]["latency_ms"] <= limit),
                   default=None)
    return {"rows": rows, "chance": chance, "hypervolume": hv, "dominated_by": dominated,
            "smallest": smallest, "best_at_smallest": at_limit, "disturbed": timed.disturbed}


def show(res: dict[str, Any]) -> None:
    """The side-by-side table and the figures."""
    rows = res["rows"]
    print(f"\n{'model':32s} {'test acc':>8s} {'latency us':>10s}  dominated by")
    for n, r in sorted(rows.items(), key=lambda kv: kv[1]["latency_ms"] or 1e9):
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms'] * 1000:.1f}"
        extra = f" ({r['resolution']} px)" if r.get("resolution") else ""
        dom = res["dominated_by"].get(n, "") if r["kind"] == "hand-built" else ""
        print(f"{n + extra:32s} {r['test_accuracy']:8.3f} {lat:>10s}  "
              f"{dom or ('-- not dominated' if r['kind'] == 'hand-built' else '')}")
    print(f"\nhypervolume (test accuracy x ms above chance {res['chance']:.2f}):")
    for k, v in res["hypervolume"].items():
        print(f"  {k:24s} {v:.5f}")
    best = res["best_at_smallest"]
    print(f"best front accuracy at or below {res['smallest']}'s latency "
          f"({rows[res['smallest']]['latency_ms'] * 1000:.1f} us): "
          f"{'none' if best is None else f'{best:.3f}'} against "
          f"{rows[res['smallest']]['test_accuracy']:.3f}")
    beaten = sum(v is not None for v in res["dominated_by"].values())
    print(f"the front dominates {beaten} of {len(res['dominated_by'])} hand-built points")
    if res["disturbed"]:
        print("the machine was disturbed while timing: rerun on a quieter machine to trust the "
              "latencies")


def plot(res: dict[str, Any], path: Path) -> None:
    """Test accuracy against latency: the front as a line, the rest as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = sorted((r["latency_ms"] * 1000, r["test_accuracy"]) for r in rows.values()
                   if r["kind"] == "front" and r["latency_ms"] is not None)
    ax.plot(*zip(*front, strict=True), "o-", label="codesign front")
    for n, r in rows.items():
        if r["kind"] != "front" and r["latency_ms"] is not None:
            marker = "s" if n.endswith("int8") else ("^" if r["kind"] == "hand-built" else "x")
            ax.plot(r["latency_ms"] * 1000, r["test_accuracy"], marker, label=n)
    ax.set(xscale="log", xlabel="latency (us, re-timed side by side)", ylabel="test accuracy",
           title="96x96 RGB: codesign against Keras MobileNetV2")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
