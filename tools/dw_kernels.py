"""One depthwise layer at kernel 3, 5 and 7, timed with LiteRT's XNNPACK and without it.

The default space offers 7x7 depthwise kernels (issue 18), and its largest
networks run several times slower than with 3x3 ones on ``xnnpack-1t``. This
tool isolates the layer: a 3x3, 5x5 or 7x7 depthwise convolution (stride 1,
same padding, then ReLU) on a 16x16x64 input, converted in float32 and in
int8, each timed with the XNNPACK delegate (as ``xnnpack-1t`` runs it) and
with the built-in kernels alone (as ``builtin-1t``), one thread, all models
in one interleaved loop so that a slow phase of the machine slows them alike.

Run: ``.venv/bin/python tools/dw_kernels.py [--model F.tflite ...]`` (about
30 s). Prints the CPU, one row per kernel and precision: microseconds with
and without XNNPACK, their ratio, and microseconds per thousand
multiply-accumulates; then each ``--model`` file (a run's models) timed both
ways in the same loop.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import codesign  # noqa: F401  (sets tf_keras up before TensorFlow loads)


def _convert(kernel: int, int8: bool, res: int, channels: int) -> bytes:
    """The layer as a ``.tflite`` (int8: full-integer post-training quantization)."""
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((res, res, channels))
    out = keras.layers.ReLU()(keras.layers.DepthwiseConv2D(kernel, padding="same")(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out))
    if int8:
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: (
            [rng.random((1, res, res, channels), dtype=np.float32)] for _ in range(16))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def _interpreter(blob: bytes, xnnpack: bool) -> object:
    """A one-thread interpreter, its input set, warmed up."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = (OpResolverType.AUTO if xnnpack
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it = Interpreter(model_content=blob, num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    for _ in range(10):
        it.invoke()
    return it


def _cpu() -> str:
    """The CPU's model name and vector extensions (XNNPACK picks its kernels by them)."""
    try:
        info = Path("/proc/cpuinfo").read_text()  # Linux
    except OSError:
        return "an unknown CPU"
    fields = {k.strip(): v for k, v in (line.split(":", 1) for line in info.splitlines()[:40]
                                          if ":" in line)}
    name = fields.get("model name", "?").strip()
    flags = fields.get("flags", "").split()
    ext = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_fp16") if f in flags]
    return f"{name} ({', '.join(ext) or 'no AVX2'})"


def _time(blobs: dict[str, bytes], rounds: int) -> dict[tuple[str, bool], float]:
    """Median seconds per run of each model, with XNNPACK and without, interleaved."""
    interps = {(c, x): _interpreter(blobs[c], x) for c in blobs for x in (True, False)}
    runs: dict[tuple[str, bool], list[float]] = {key: [] for key in interps}
    for _ in range(rounds):
        for key, it in interps.items():
            t0 = time.perf_counter()
            for _ in range(10):
                it.invoke()  # type: ignore[attr-defined]
            runs[key].append((time.perf_counter() - t0) / 10)
    return {key: float(np.median(v)) for key, v in runs.items()}


def main() -> None:
    """Convert, time in interleaved rounds, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=16, help="input height and width")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=30, help="interleaved rounds of 10 runs")
    ap.add_argument("--model", type=Path, nargs="*", default=[],
                    help=".tflite files to time both ways too (a run's models, say)")
    args = ap.parse_args()
    cases = [(k, p) for k in (3, 5, 7) for p in ("float32", "int8")]
    blobs = {f"{k}x{k} {p}": _convert(k, p == "int8", args.res, args.channels) for k, p in cases}
    blobs.update({str(m): m.read_bytes() for m in args.model})
    med = _time(blobs, args.rounds)
    print(f"one depthwise layer, {args.res}x{args.res}x{args.channels}, stride 1, one thread "
          f"(median of {args.rounds} interleaved rounds of 10 runs), on {_cpu()}")
    print(f"{'kernel':>6}  {'precision':>9}  {'XNNPACK us':>10}  {'built-in us':>11}  "
          f"{'XNNPACK / built-in':>18}  {'XNNPACK us per kMAC':>19}")
    for k, p in cases:
        xnn, own = med[(f"{k}x{k} {p}", True)] * 1e6, med[(f"{k}x{k} {p}", False)] * 1e6
        kmacs = args.res * args.res * args.channels * k * k / 1e3
        print(f"{k:>4}x{k}  {p:>9}  {xnn:>10.1f}  {own:>11.1f}  {xnn / own:>18.2f}  "
              f"{xnn / kmacs:>19.3f}")
    for m in args.model:
        xnn, own = med[(str(m), True)] * 1e6, med[(str(m), False)] * 1e6
        print(f"{m}: XNNPACK {xnn:.1f} us, built-in {own:.1f} us ({xnn / own:.2f}x)")


if __name__ == "__main__":
    main()
