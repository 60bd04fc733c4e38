"""Per-layer precision: recipes aim at exactly one layer; files hold what was asked."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

import codesign  # noqa: F401
from codesign.data import load_dataset, resize_bilinear
from codesign.hardware import litert
from codesign.nn.bn import recalibrate_bn
from codesign.nn.submodel import build_submodel
from codesign.space import Candidate, get_space
from codesign.space.candidate import PRECISIONS
from codesign.tflite.convert import convert, convert_float
from codesign.tflite.recipe import RecipeError, list_ops, resolve_layers
from codesign.tflite.support import load_table
from tests.tflite_reader import read_ops, weight_of

# what each precision must look like in the file: (activation type, stored weight type)
WANTED = {
    "float32": ("float32", "float32"),
    "float16": ("float32", "float16"),
    "int8": ("int8", "int8"),
    "int16x8": ("int16", "int8"),
    "int4": ("float32", "int4"),
}
KIND = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense"}


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return resize_bilinear(load_dataset("digits", 0).x_train[:128], 24)


def _five_precision_candidate() -> Candidate:
    space = get_space("tiny")
    names = space.layer_names()
    precision = {n: PRECISIONS[i % len(PRECISIONS)] for i, n in enumerate(names)}
    precision["classifier"] = "int16x8"  # the last layer, named Identity in the file
    return Candidate.make(24, (1, 2, 2), {g: 0.0 for g in space.group_sizes()}, precision,
                          space.kernel_genes(3))


def _layer_ops(blob: bytes, layers: list[str]) -> dict[str, object]:
    """Layer -> op, found by the tests' own reader through the weight tensor's name."""
    ops = read_ops(blob)
    by_output = {t.name: op for op in ops for t in op.outputs}
    found = {}
    for op in ops:
        if op.kind not in KIND:
            continue
        weight = weight_of(op, by_output)
        for layer in layers:
            if f"/{layer}/" in weight.name or weight.name.startswith(f"{layer}/"):
                found[layer] = (op, weight)
    return found


def test_file_holds_all_five_precisions_layer_by_layer(calib) -> None:
    space = get_space("tiny")
    cand = _five_precision_candidate()
    sub = space.subnet(cand)
    assert set(sub.precision.values()) == set(PRECISIONS)
    model = build_submodel(space, sub, 10, 1)
    recalibrate_bn(model, calib)
    blob = convert(model, sub.precision, calib)
    found = _layer_ops(blob, list(sub.precision))
    assert set(found) == set(sub.precision), "every layer must be found in the file"
    for layer, precision in sub.precision.items():
        op, weight = found[layer]
        act, wtype = WANTED[precision]
        assert weight.type == wtype, (layer, precision, weight.type)
        assert op.outputs[0].type == act, (layer, precision, op.outputs[0].type)
    # and it runs on every resolver, batch 1 and batched
    for resolver in ("auto", "builtin", "reference"):
        assert litert.predict(blob, calib[:5], resolver=resolver).shape == (5, 10)


def test_exported_weight_shapes_follow_the_kept_channels(calib) -> None:
    space = get_space("default")
    rng = np.random.default_rng(3)
    cand = space.random_candidate(rng, {n: ("float32", "int8") for n in space.layer_names()})
    sub = space.subnet(cand)
    model = build_submodel(space, sub, 10, 1)
    blob = convert(model, sub.precision, resize_bilinear(load_dataset("digits", 0).x_train[:64],
                                                         cand.resolution))
    found = _layer_ops(blob, list(sub.precision))
    groups = space.group_layers()
    owner = {layer: g for g, layers in groups.items() for layer in layers}
    for layer, (op, weight) in found.items():
        if op.kind == "CONV_2D":
            assert weight.shape[0] == sub.channels[owner[layer]], layer  # OHWI
        elif op.kind == "DEPTHWISE_CONV_2D":
            block = next(bp for bp in space.blocks() if bp.name == layer.rsplit("_", 1)[0])
            assert weight.shape[-1] == sub.channels[block.hidden_group], layer  # 1HWC
        else:
            assert weight.shape == (10, sub.channels["head_conv"]), layer
    assert len(found) == len(space.layer_names(cand.depths))


def test_a_layer_that_matches_no_op_or_many_is_an_error() -> None:
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", name="block_1")(inp)
    h = keras.layers.Conv2D(4, 3, padding="same", name="block_10")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(3, name="classifier")(h)
    ops = list_ops(convert_float(keras.Model(inp, out)))
    found = resolve_layers(ops, ["block_1", "block_10", "classifier"])
    assert len({op.index for op in found.values()}) == 3
    assert found["classifier"].op == "FULLY_CONNECTED"
    assert "classifier" not in found["classifier"].scope  # the output is named otherwise
    with pytest.raises(RecipeError, match="matches 0 ops"):
        resolve_layers(ops, ["block_2"])
    with pytest.raises(RecipeError, match="matches 0 ops"):
        resolve_layers(ops, ["block"])  # a prefix of two layers is not a layer


def test_support_table_holds_for_the_installed_runtime(calib) -> None:
    """Every precision the table says runs does run, per layer kind and resolver."""
    from importlib.metadata import version

    installed = version("ai-edge-litert")
    entries = [e for e in load_table() if e.version == installed]
    assert entries, f"the op-support table has no entry for ai-edge-litert {installed}"
    space = get_space("tiny")
    sub = space.subnet(space.max_candidate())
    model = build_submodel(space, sub, 10, 1)
    recalibrate_bn(model, calib)
    probe = {"conv": "s2b1_expand", "depthwise": "s2b1_dw", "dense": "classifier"}
    for kind, layer in probe.items():
        for precision in PRECISIONS:
            wanted = [e.resolver for e in entries if precision in e.runs[kind]]
            if not wanted:
                continue
            assignment = {n: "float32" for n in sub.precision}
            assignment[layer] = precision
            blob = convert(model, assignment, calib)
            for resolver in wanted:
                out = litert.predict(blob, calib[:4], resolver=resolver)
                assert out.shape == (4, 10) and np.isfinite(out).all(), (kind, precision, resolver)


def test_io_type_int8_and_uint8_keep_the_predictions(calib) -> None:
    from codesign.errors import CodesignError
    from codesign.tflite.interface import change_io_type

    space = get_space("tiny")
    sub = space.subnet(space.max_candidate("int8"))
    model = build_submodel(space, sub, 10, 1)
    recalibrate_bn(model, calib)
    blob = convert(model, sub.precision, calib)
    reference = np.argmax(litert.predict(blob, calib[:50]), axis=1)
    for io_type in ("int8", "uint8"):
        changed = change_io_type(blob, io_type)
        io = litert.io_details(changed)
        assert io["input"]["dtype"] == io["output"]["dtype"] == io_type
        assert io["input"]["quantization"]["scale"] > 0
        agree = np.mean(np.argmax(litert.predict(changed, calib[:50]), axis=1) == reference)
        assert agree > 0.95, (io_type, agree)
    with pytest.raises(CodesignError, match="first and last layers must be int8"):
        change_io_type(convert_float(model), "int8")
