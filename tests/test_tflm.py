"""TensorFlow Lite Micro: arena figures, the arena estimate, op support and running models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import codesign  # noqa: F401
from codesign.data import load_dataset, resize_bilinear
from codesign.errors import TrialFailure
from codesign.hardware import litert, tflm
from codesign.nn.bn import recalibrate_bn
from codesign.nn.submodel import build_submodel
from codesign.space import get_space
from codesign.tflite import memplan
from codesign.tflite.convert import concrete_converter, convert, convert_float
from codesign.tflite.recipe import list_ops

pytest.importorskip("tflite_micro")

LAYERS = ("stem", "dw", "project", "expand", "classifier")
RES = 16


def _residual_model() -> keras.Model:
    """Conv, depthwise, 1x1 projection added back to the stem (a residual ADD), pool, dense."""
    inp = keras.Input((RES, RES, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    y = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    y = keras.layers.Conv2D(8, 1, name="project")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.Conv2D(16, 1, strides=2, activation="relu", name="expand")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="classifier")(x))


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return resize_bilinear(load_dataset("digits", 0).x_train[:64], RES).astype(np.float32)


@pytest.fixture(scope="module")
def models(calib) -> dict[str, bytes]:
    """The residual model at every precision, one mixed, and a tiny-space candidate."""
    keras.utils.set_random_seed(0)
    model = _residual_model()
    out = {p: convert(model, {n: p for n in LAYERS}, calib)
           for p in ("float32", "float16", "int8", "int16x8", "int4")}
    mixed = {"stem": "int8", "dw": "int16x8", "project": "int8", "expand": "float32",
             "classifier": "int16x8"}
    out["mixed"] = convert(model, mixed, calib)
    space = get_space("tiny")
    sub = space.subnet(space.max_candidate())
    cand = build_submodel(space, sub, 10, 1)
    digits = resize_bilinear(load_dataset("digits", 0).x_train[:64], sub.resolution)
    recalibrate_bn(cand, digits)
    out["tiny-int8"] = convert(cand, {n: "int8" for n in sub.precision}, digits)
    return out


def test_arena_figures_are_parsed_and_add_up(models) -> None:
    facts = tflm.arena(models["int8"])
    assert facts.head_bytes > 0 and facts.tail_bytes > 0
    assert facts.total_bytes == facts.head_bytes + facts.tail_bytes
    assert facts.head_bytes % memplan.ALIGNMENT == 0
    # the recorded total is exactly enough; 64 bytes fewer is not
    assert tflm.arena(models["int8"], facts.total_bytes) == facts
    with pytest.raises(tflm.ArenaTooSmall, match="missing"):
        tflm.arena(models["int8"], facts.total_bytes - 64)


def test_a_tiny_arena_fails_cleanly_instead_of_crashing(models) -> None:
    with pytest.raises(tflm.ArenaTooSmall):
        tflm.arena(models["int8"], 100)  # TFLM itself segfaults below about 500 bytes


def test_int8_needs_less_arena_than_float32(models) -> None:
    f32, i8 = tflm.arena(models["float32"]), tflm.arena(models["int8"])
    assert i8.head_bytes < f32.head_bytes / 2
    assert i8.total_bytes < f32.total_bytes


@pytest.mark.parametrize("name", ["float32", "int8", "int16x8", "mixed", "tiny-int8"])
def test_estimate_matches_tflm_head(models, name) -> None:
    blob = models[name]
    ops = {o.op for o in list_ops(blob)}
    assert "ADD" in ops and "MEAN" in ops  # a residual and a kernel with scratch buffers
    facts = tflm.arena(blob)
    plan = memplan.plan(blob)
    assert abs(plan.head_bytes - facts.head_bytes) <= 0.05 * facts.head_bytes, (plan, facts)
    assert plan.lower_bound <= plan.head_bytes
    assert abs(plan.tail_bytes - facts.tail_bytes) <= 0.10 * facts.tail_bytes


def test_greedy_placement_puts_the_last_added_block_first_among_equals() -> None:
    blocks = [memplan.Block("a", 32, 2, 2), memplan.Block("b", 16, 1, 2),
              memplan.Block("c", 32, 0, 1), memplan.Block("d", 32, 0, 0)]
    # d, then c, then a (equal sizes, last added first), then b: TFLM's order
    assert memplan.place(blocks) == [0, 64, 32, 0]
    blocks_without_overlap = [memplan.Block("x", 48, 0, 1), memplan.Block("y", 48, 2, 3)]
    assert memplan.place(blocks_without_overlap) == [0, 0]


def test_predictions_match_litert_reference_kernels(models, calib) -> None:
    x = calib[:8]
    for name in ("float32", "int8", "int16x8"):
        ours = tflm.predict(models[name], x)
        ref = litert.predict(models[name], x, resolver="reference")
        assert ours.shape == (8, 10)
        # float32 agrees exactly; integer kernels may round one output step differently
        np.testing.assert_allclose(ours, ref, rtol=0, atol=0.02 * np.abs(ref).max())
    labels = np.argmax(tflm.predict(models["int8"], x), axis=1)
    assert tflm.accuracy(models["int8"], x, labels) == 1.0
    assert tflm.accuracy(models["int8"], x, (labels + 1) % 10) == 0.0


def test_integer_input_and_output_are_quantized(calib) -> None:
    keras.utils.set_random_seed(1)
    converter = concrete_converter(_residual_model())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    blob = bytes(converter.convert())
    io = tflm.io_details(blob)
    assert io["input"]["dtype"] == "int8" and io["input"]["quantization"]["scale"] > 0
    ours = tflm.predict(blob, calib[:6])
    assert ours.dtype == np.float32
    step = io["output"]["quantization"]["scale"]  # the kernels may round one step apart
    ref = litert.predict(blob, calib[:6], resolver="reference")
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1.01 * step)
    assert np.mean(np.isclose(ours, ref, rtol=0, atol=1e-6)) > 0.9


@pytest.mark.parametrize(("precision", "weights"), [("float16", "FLOAT16"), ("int4", "INT4")])
def test_unsupported_weight_type_names_the_op(models, precision, weights) -> None:
    with pytest.raises(TrialFailure, match=f"DEQUANTIZE .*{weights} weights") as err:
        tflm.arena(models[precision])
    assert not isinstance(err.value, tflm.ArenaTooSmall)
    with pytest.raises(TrialFailure, match="DEQUANTIZE"):
        tflm.predict(models[precision], np.zeros((1, RES, RES, 1), np.float32))


def test_op_without_a_kernel_is_named() -> None:
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = keras.layers.Activation(tf.nn.gelu, name="gelu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    blob = convert_float(keras.Model(inp, keras.layers.Dense(3, name="classifier")(x)))
    assert "GELU" in {o.op for o in list_ops(blob)}
    with pytest.raises(TrialFailure, match="no kernel for GELU"):
        tflm.arena(blob)


def test_a_corrupt_file_is_a_trial_failure() -> None:
    with pytest.raises(TrialFailure, match="cannot read the model"):
        tflm.arena(b"\x00" * 64)


def test_latency_stats_are_consistent(models, calib) -> None:
    stats = tflm.time_latency(models["int8"], calib[:1], warmup=2, runs=10)
    assert 0 < stats.min <= stats.median <= stats.p90
    assert stats.runs == 10 and stats.warmup == 2 and stats.std >= 0


def test_the_modules_import_no_tensorflow(models, tmp_path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(models["int8"])
    code = (
        "import sys; from codesign.hardware import tflm; from codesign.tflite import memplan\n"
        f"blob = open({str(path)!r}, 'rb').read()\n"
        "assert tflm.arena(blob).head_bytes == memplan.plan(blob).head_bytes\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
