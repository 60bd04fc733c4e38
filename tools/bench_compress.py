#!/usr/bin/env python3
"""codesign --model against the usual ways of compressing a trained model, measured in one run.

For each example model (``examples/trained_models.py``: a Keras 3
MobileNetV2-style ``.keras`` and a tf_keras ResNet-style ``.h5``), trained here
on RGB shapes made here: ``codesign search --model`` (its front fine-tuned with
distillation), and the baselines: the original in float32 and all-int8
(post-training quantization), TFMOT magnitude pruning at 50 % sparsity then
int8 (the sequential Deep Compression pipeline), uniform channel pruning at 25 %
and 50 % then int8 (AMC's uniform baseline; fine-tuned like the front). Every
file is re-timed side by side in one batch on the profile, scored on the test
split, and the tool prints per model: hypervolume of (test accuracy, latency)
with the reference point (chance accuracy, 1.1x the slowest latency) for the
front and each baseline, the speed-up of the fastest front point at most one
point below the original's test accuracy, and sizes. As Liu et al. (2018,
"Rethinking the value of network pruning") ask, the architectures of the
front's most accurate points (``--scratch``, default 3) are also trained from
a fresh initialisation for the same epochs as the original, quantized like
their front point, and both test accuracies are printed side by side. It writes
``OUT/bench_compress.json`` and ``OUT/bench_compress.png``.

    .venv/bin/python tools/bench_compress.py --out runs/bench --trials 30
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import codesign  # noqa: E402,F401  (tf_keras before TensorFlow loads)
from examples.trained_models import mobilenet_v2_style, resnet_style, rgb_shapes  # noqa: E402

CLASSES = 10


def main(argv: list[str] | None = None) -> int:
    """Train, search, run the baselines, re-time everything, print and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--train", type=int, default=3000, help="training images")
    ap.add_argument("--epochs", type=int, default=20, help="training epochs of each model")
    ap.add_argument("--finetune-epochs", type=int, default=None,
                    help="of the front and the baselines (default: a --model search's)")
    ap.add_argument("--trial-finetune-images", type=int, default=None,
                    help="the search's (default: a --model search's)")
    ap.add_argument("--models", default="mobilenet,resnet")
    ap.add_argument("--profile", default="xnnpack-1t")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scratch", type=int, default=3,
                    help="front points whose architecture is also trained from scratch")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_data(args.out / "shapes.npz", args.train, args.seed)
    results = {}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        model_path = train_model(name, data, args.out, args.epochs, args.seed)
        results[name] = bench_model(name, model_path, data, args)
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        show(name, results[name])
    (args.out / "bench_compress.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "bench_compress.png")
    print(f"wrote {args.out / 'bench_compress.json'} and {args.out / 'bench_compress.png'}")
    return 0


def make_data(path: Path, n_train: int, seed: int) -> Path:
    """Training, validation (x_val/y_val: images the model never sees) and test images."""
    x, y = rgb_shapes(n_train, seed, CLASSES)
    xv, yv = rgb_shapes(max(200, n_train // 5), seed + 1, CLASSES)
    xt, yt = rgb_shapes(max(300, n_train // 4), seed + 2, CLASSES)
    np.savez(path, x_train=x, y_train=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    return path


def train_model(name: str, data: Path, out: Path, epochs: int, seed: int) -> Path:
    """Train an example model on the training images and save it as a user would."""
    d = np.load(data)
    if name == "mobilenet":
        import keras

        keras.utils.set_random_seed(seed)
        model = mobilenet_v2_style(CLASSES)
        loss: Any = "sparse_categorical_crossentropy"
        path = out / "mobilenet.keras"
    else:
        import tf_keras as keras  # type: ignore[no-redef]

        keras.utils.set_random_seed(seed)
        model = resnet_style(CLASSES)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        path = out / "resnet.h5"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit(d["x_train"], d["y_train"], epochs=epochs, batch_size=64, verbose=0,
              validation_data=(d["x_val"], d["y_val"]))
    model.save(path)
    return path


def bench_model(name: str, model_path: Path, data: Path, args: argparse.Namespace
                ) -> dict[str, Any]:
    """The search and every baseline of one model, re-timed side by side."""
    from codesign.child import EvalChild
    from codesign.compress.search import run_compress_search
    from codesign.compress.settings import CompressSettings, compress_config
    from codesign.config import SearchConfig

    run = args.out / f"run-{name}"
    settings = CompressSettings() if args.trial_finetune_images is None else CompressSettings(
        trial_finetune_images=args.trial_finetune_images)
    cfg = compress_config(model_path, SearchConfig(
        out=run, data=str(data), trials=args.trials, seed=args.seed, profile=args.profile,
        latency="measured", finetune_epochs=args.finetune_epochs), settings)
    doc = run_compress_search(cfg).pareto
    files = {r["name"]: run / r["model"] for r in doc["references"]}
    files.update({f"codesign trial {p['trial']}": run / p["model"] for p in doc["points"]})
    front = [f"codesign trial {p['trial']}" for p in doc["points"]]
    groups = [g["name"] for g in cfg.facts["graph"]["groups"] if g["prunable"]]
    layers = [layer["name"] for layer in cfg.facts["graph"]["layers"]]
    with EvalChild(timeout_s=None) as child:
        for ratio in (0.25, 0.5):
            path = run / f"uniform-{ratio:g}-int8.tflite"
            child.call("trained_finetune", ctx=cfg.child_ctx(),
                       candidate={"prune": {g: ratio for g in groups},
                                  "precision": {n: "int8" for n in layers}},
                       model_path=str(path), epochs=cfg.search.finetune_epochs)
            files[f"uniform {ratio:.0%} int8"] = path
    files["tfmot 50% sparse int8"] = tfmot_baseline(cfg, run, cfg.search.finetune_epochs)
    res = measure_all(files, front, cfg)
    best = sorted(doc["points"], key=lambda p: -p["test_accuracy"])[:args.scratch]
    inputs = _inputs(cfg)  # the model and data, loaded once for every architecture
    res["scratch"] = [from_scratch(cfg, inputs, p, args.epochs, args.seed) for p in best]
    return res


def _inputs(cfg: Any) -> tuple[Any, Any, Any]:
    """The model's training and test images (in its input units) and the data set."""
    from codesign.compress.inputs import input_map
    from codesign.data import load_dataset, resize_bilinear
    from codesign.models.load import load_user_model

    user = load_user_model(cfg.model)
    data = load_dataset(cfg.search.data, cfg.search.seed)
    pre = data.preprocessing
    feed = input_map(float(pre["scale"]), float(pre["offset"]),
                     [p.layer for p in user.preprocessing], (None, None))
    h, w, _ = user.input_shape
    return user, data, lambda x: feed(resize_bilinear(x, (h, w)))


def tfmot_baseline(cfg: Any, run: Path, epochs: int) -> Path:
    """TFMOT magnitude pruning to 50 % sparsity while fine-tuning, then int8 conversion."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from codesign.tflite.convert import convert

    user, data, feed = _inputs(cfg)
    sparsity = tfmot.sparsity.keras
    schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=10)
    prunable = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)

    def wrap(layer: Any) -> Any:
        return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule) \
            if isinstance(layer, prunable) else layer

    model = keras.models.clone_model(user.model, clone_function=wrap)  # wraps the trained layers
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=user.output == "logits"))
    model.fit(feed(data.x_train), data.y_train, epochs=max(1, epochs), batch_size=64, verbose=0,
              callbacks=[sparsity.UpdatePruningStep()])
    stripped = sparsity.strip_pruning(model)
    precision = {layer["name"]: "int8" for layer in cfg.facts["graph"]["layers"]}
    path = run / "tfmot-50-int8.tflite"
    path.write_bytes(convert(stripped, precision, feed(data.x_train[:128])))
    return path


def from_scratch(cfg: Any, inputs: tuple[Any, Any, Any], point: dict[str, Any], epochs: int,
                 seed: int) -> dict[str, Any]:
    """A front point's architecture trained from a fresh start, quantized like the point.

    Returns:
        The point's trial, its (fine-tuned) test accuracy and the from-scratch one.
    """
    import tf_keras as keras

    from codesign.hardware import litert
    from codesign.hyper.graph import channel_graph
    from codesign.hyper.prune import prune_model
    from codesign.tflite.convert import convert

    user, data, feed = inputs
    cand = point["candidate"]
    narrow, _ = prune_model(user.model, channel_graph(user.model), cand["prune"])
    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(narrow)  # same layers and widths, fresh weights
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=user.output == "logits"))
    model.fit(feed(data.x_train), data.y_train, epochs=epochs, batch_size=64, verbose=0)
    blob = convert(model, cand["precision"], feed(data.x_train[:128]))
    profile = cfg.search.profile_spec
    acc = litert.accuracy(blob, feed(data.x_test), data.y_test, profile.threads,
                          profile.resolver)
    return {"trial": point["trial"], "pruned_finetuned": point["test_accuracy"],
            "from_scratch": acc, "epochs": epochs}


def measure_all(files: dict[str, Path], front: list[str], cfg: Any) -> dict[str, Any]:
    """Test accuracy, sizes and side-by-side latency of every file; hypervolumes, speed-up."""
    from codesign.hardware import litert
    from codesign.latency.measure import local_timer

    _, data, feed = _inputs(cfg)
    xt = feed(data.x_test)
    profile = cfg.search.profile_spec
    blobs = [p.read_bytes() for p in files.values()]
    timed = local_timer(profile).time(blobs, [xt[:1]] * len(blobs))
    rows = {}
    for (name, path), blob, stats in zip(files.items(), blobs, timed.stats, strict=True):
        rows[name] = {"file": str(path), "test_accuracy": litert.accuracy(
            blob, xt, data.y_test, profile.threads, profile.resolver),
            "latency_ms": None if isinstance(stats, str) else stats.median,
            "size_bytes": len(blob), "size_gzip_bytes": len(gzip.compress(blob, 9))}
    chance = float(np.bincount(data.y_test).max() / len(data.y_test))
    slowest = 1.1 * max(r["latency_ms"] for r in rows.values() if r["latency_ms"] is not None)
    sets = {"codesign front": front, **{n: [n] for n in rows if n not in front}}
    hv = {k: hypervolume([(rows[n]["test_accuracy"], rows[n]["latency_ms"]) for n in v],
                         (chance, slowest)) for k, v in sets.items()}
    base = rows["original-float32"]
    near = [rows[n] for n in front if rows[n]["test_accuracy"] >= base["test_accuracy"] - 0.01]
    speed = max((base["latency_ms"] / r["latency_ms"] for r in near), default=None)
    return {"rows": rows, "front": front, "hypervolume": hv, "chance": chance,
            "speed_up_within_1pt": speed, "disturbed": timed.disturbed}


def hypervolume(points: list[tuple[float, float | None]], ref: tuple[float, float]) -> float:
    """Area dominated by (accuracy up, latency down) points above ``ref`` (chance, slowest)."""
    pts = sorted((lat, acc) for acc, lat in points if lat is not None and acc > ref[0])
    area, best = 0.0, ref[0]
    for i, (lat, acc) in enumerate(pts):
        best = max(best, acc)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else ref[1]
        area += max(0.0, min(nxt, ref[1]) - lat) * (best - ref[0])
    return area


def show(name: str, res: dict[str, Any]) -> None:
    """One table per model."""
    print(f"\n{name}: hypervolume (test accuracy x ms above chance {res['chance']:.2f})")
    for k, v in sorted(res["hypervolume"].items(), key=lambda kv: -kv[1]):
        print(f"  {k:28s} {v:.5f}")
    print(f"  {'file':28s} {'test acc':>8s} {'latency us':>10s} {'KB':>7s} {'gzip KB':>8s}")
    for n, r in res["rows"].items():
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms'] * 1000:.1f}"
        print(f"  {n:28s} {r['test_accuracy']:8.3f} {lat:>10s} {r['size_bytes'] / 1024:7.1f} "
              f"{r['size_gzip_bytes'] / 1024:8.1f}")
    for r in res.get("scratch", []):
        print(f"  trial {r['trial']}: pruned and fine-tuned {r['pruned_finetuned']:.3f}, "
              f"same architecture from scratch ({r['epochs']} epochs) {r['from_scratch']:.3f}")
    s = res["speed_up_within_1pt"]
    print(f"  speed-up of the fastest front point within 1 point of the original: "
          f"{'none' if s is None else f'{s:.2f}x'}; {res['seconds']:.0f} s")


def plot(results: dict[str, Any], path: Path) -> None:
    """Test accuracy against latency per model: the front as a line, baselines as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        rows = res["rows"]
        front = sorted((rows[n]["latency_ms"] * 1000, rows[n]["test_accuracy"])
                       for n in res["front"] if rows[n]["latency_ms"] is not None)
        if front:
            ax.plot(*zip(*front, strict=True), "o-", label="codesign front")
        for n, r in rows.items():
            if n not in res["front"] and r["latency_ms"] is not None:
                ax.plot(r["latency_ms"] * 1000, r["test_accuracy"], "s", label=n)
        ax.set(title=name, xlabel="latency (us, re-timed side by side)", ylabel="test accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
