#!/usr/bin/env python3
"""codesign on TensorFlow Lite Micro under 256 KB of RAM and 1 MB of flash, against MobileNetV2.

On a 96x96 RGB npz made here (coloured shapes on noise, ``examples/trained_models.py``),
``codesign search --profile tflm --max-ram-kb 256 --max-flash-kb 1024`` (objectives
accuracy, RAM and flash; the built-in space chooses its own input resolution),
and, trained by hand on the same training images, Keras's MobileNetV2 with
alpha 0.35 at 96x96 (tf_keras, no pre-trained weights, batch-norm momentum 0.9:
with Keras's 0.999 it stays at chance on small data), converted to int8 with
post-training quantization. Both are measured in TFLM itself: the arena the
model needs, its flash (file bytes) and test accuracy. The tool prints
codesign's most accurate front point within both budgets (chosen on validation
accuracy, reported on test) beside MobileNetV2's, in budget or not, and writes
``OUT/bench_tflm.json``.

    .venv/bin/python tools/bench_tflm.py --out runs/bench-tflm --trials 30
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

import codesign  # noqa: E402,F401  (tf_keras before TensorFlow loads)
from examples.trained_models import rgb_shapes  # noqa: E402

SIZE, CLASSES = 96, 10
RAM_KB, FLASH_KB = 256, 1024


def main(argv: list[str] | None = None) -> int:
    """Make the data, search, train the baseline, measure both in TFLM, print and write."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--train", type=int, default=2000, help="training images")
    ap.add_argument("--test", type=int, default=500, help="test images")
    ap.add_argument("--epochs", type=int, default=20, help="MobileNetV2's training epochs")
    ap.add_argument("--search-epochs", type=int, default=None,
                    help="supernet epochs (default: codesign's own choice)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "shapes96.npz"
    x, y = rgb_shapes(args.train, args.seed, CLASSES, SIZE)
    xt, yt = rgb_shapes(args.test, args.seed + 1, CLASSES, SIZE)
    np.savez(data, x_train=x, y_train=y, x_test=xt, y_test=yt)
    t0 = time.perf_counter()
    ours = search(data, args)
    t1 = time.perf_counter()
    theirs = mobilenet(x, y, xt, yt, args.out, args.epochs, args.seed)
    result = {"codesign": ours, "mobilenet_v2_0.35": theirs,
              "seconds": {"search": round(t1 - t0, 1),
                          "mobilenet": round(time.perf_counter() - t1, 1)},
              "budgets_kb": {"ram": RAM_KB, "flash": FLASH_KB},
              "data": {"size": SIZE, "classes": CLASSES, "train": args.train, "test": args.test}}
    (args.out / "bench_tflm.json").write_text(json.dumps(result, indent=1))
    show(result)
    return 0


def search(data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run the TFLM search; return its best front point within both budgets."""
    run = args.out / "run"
    cmd = [sys.executable, "-m", "codesign.cli", "search", "--data", str(data),
           "--profile", "tflm", "--objectives", "accuracy,ram,flash",
           "--max-ram-kb", str(RAM_KB), "--max-flash-kb", str(FLASH_KB),
           "--trials", str(args.trials), "--seed", str(args.seed), "--out", str(run),
           "--no-report"]
    if args.search_epochs is not None:
        cmd += ["--epochs", str(args.search_epochs)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    doc = json.loads((run / "pareto.json").read_text())
    fits = [p for p in doc["points"]
            if p["ram_bytes"] <= RAM_KB * 1024 and p["flash_bytes"] <= FLASH_KB * 1024]
    best = max(fits, key=lambda p: p["val_accuracy"])
    return {"trial": best["trial"], "test_accuracy": best["test_accuracy"],
            "val_accuracy": best["val_accuracy"], "ram_bytes": best["ram_bytes"],
            "flash_bytes": best["flash_bytes"], "resolution": best["candidate"]["resolution"],
            "latency_ms_host_stand_in": best["latency_ms"]["median"],
            "front": len(doc["points"]), "skipped_by_ram_estimate":
                doc["run"].get("skipped_by_ram_estimate")}


def mobilenet(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, out: Path,
              epochs: int, seed: int) -> dict[str, Any]:
    """Keras's MobileNetV2 alpha 0.35, trained here, int8, measured in TFLM."""
    import tensorflow as tf
    import tf_keras as keras

    from codesign.hardware import tflm

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35,
                                           weights=None, classes=CLASSES)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    xf, xtf = x.astype("float32") / 255.0, xt.astype("float32") / 255.0
    model.fit(xf, y, epochs=epochs, batch_size=32, validation_split=0.1, verbose=2)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([xf[i : i + 1]] for i in range(128))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    blob = bytes(converter.convert())
    (out / "mobilenet_v2_0.35_int8.tflite").write_bytes(blob)
    facts = tflm.arena(blob)
    needed = tflm.needed_arena(blob, facts)
    return {"test_accuracy": tflm.accuracy(blob, xtf, yt, needed),
            "keras_test_accuracy": float(model.evaluate(xtf, yt, verbose=0)[1]),
            "ram_bytes": needed, "recorded_bytes": facts.total_bytes,
            "head_bytes": facts.head_bytes, "flash_bytes": len(blob),
            "within_budget": needed <= RAM_KB * 1024 and len(blob) <= FLASH_KB * 1024}


def show(result: dict[str, Any]) -> None:
    """Print the comparison."""
    ours, theirs = result["codesign"], result["mobilenet_v2_0.35"]
    print(f"budgets: {RAM_KB} KB RAM (TFLM arena), {FLASH_KB} KB flash; {SIZE}x{SIZE} RGB, "
          f"{CLASSES} classes")
    print(f"codesign (trial {ours['trial']}, {ours['resolution']} px input): test accuracy "
          f"{ours['test_accuracy']:.3f}, RAM {ours['ram_bytes'] / 1024:.1f} KB, flash "
          f"{ours['flash_bytes'] / 1024:.1f} KB ({result['seconds']['search']:.0f} s)")
    verdict = "within" if theirs["within_budget"] else "OVER"
    print(f"MobileNetV2 0.35 int8: test accuracy {theirs['test_accuracy']:.3f} (Keras float "
          f"{theirs['keras_test_accuracy']:.3f}), RAM {theirs['ram_bytes'] / 1024:.1f} KB, flash "
          f"{theirs['flash_bytes'] / 1024:.1f} KB: {verdict} budget "
          f"({result['seconds']['mobilenet']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
