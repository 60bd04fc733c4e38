"""The chain of kernels built from a model's description agrees with the converted file.

Real tf_keras toy models (a MobileNetV2-like and a ResNet-like functional
model, a Sequential one with Flatten) are pruned and converted through the
project's path; the chain from the description alone must hold the same ops
per kind and precision, with the same multiply-accumulates and output
elements, and the same QUANTIZE / DEQUANTIZE ops.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from codesign.hyper.opgraph import INTEGER_OPS, kept_count
from codesign.latency.graph_chain import graph_kernels, graph_steps, kept_from_ratios
from codesign.latency.graph_check import compare, disagreements
from tests.test_import_rules import _heavy, reachable


def _randomize_bn(model: Any, seed: int = 0) -> Any:
    """Batch-norm statistics of a trained model (an untrained one's offsets are 0 and vanish)."""
    import tf_keras as keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, mu, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.5, b.shape),
                               rng.normal(0, 0.5, mu.shape), rng.uniform(0.5, 2.0, var.shape)])
    return model


def _mobilenet_like() -> Any:
    import tf_keras as keras

    L = keras.layers
    inp = keras.Input((32, 32, 3))
    x = L.Rescaling(1 / 127.5, offset=-1)(inp)
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = L.ReLU(6.0)(L.BatchNormalization()(x))
    for i, (stride, c, k) in enumerate([(1, 16, 3), (2, 24, 3), (1, 24, 5)]):
        y = L.Conv2D(x.shape[-1] * 4, 1, use_bias=False, name=f"b{i}_exp")(x)
        y = L.ReLU(6.0)(L.BatchNormalization()(y))
        y = L.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False,
                              name=f"b{i}_dw")(y)
        y = L.ReLU(6.0)(L.BatchNormalization()(y))
        y = L.BatchNormalization()(L.Conv2D(c, 1, use_bias=False, name=f"b{i}_proj")(y))
        x = L.Add()([x, y]) if stride == 1 and x.shape[-1] == c else y
    x = L.ReLU()(L.Conv2D(64, 1, name="head")(x))
    x = L.Dropout(0.2)(L.GlobalAveragePooling2D()(x))
    return _randomize_bn(keras.Model(inp, L.Dense(10, name="fc")(x)))


def _resnet_like() -> Any:
    import tf_keras as keras

    L = keras.layers
    inp = keras.Input((32, 32, 3))
    x = L.ZeroPadding2D(1)(L.Rescaling(1 / 255.0)(inp))
    x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(16, 3, strides=2, name="stem")(x)))
    x = L.MaxPooling2D(3, strides=2, padding="same")(x)
    for i, (c, stride) in enumerate([(16, 1), (32, 2)]):
        y = L.Conv2D(c, 3, strides=stride, padding="same", use_bias=False, name=f"r{i}_a")(x)
        y = L.ReLU()(L.BatchNormalization()(y))
        y = L.BatchNormalization()(L.Conv2D(c, 3, padding="same", use_bias=False,
                                            name=f"r{i}_b")(y))
        short = x if stride == 1 else L.BatchNormalization()(
            L.Conv2D(c, 1, strides=stride, name=f"r{i}_sc")(x))
        x = L.ReLU()(L.Add()([short, y]))
    x = L.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    return _randomize_bn(keras.Model(inp, L.Dense(10, activation="softmax", name="fc")(x)))


def _sequential() -> Any:
    import tf_keras as keras

    L = keras.layers
    return keras.Sequential([
        keras.Input((16, 16, 1)), L.Rescaling(1 / 255.0),  # folds into c1's weights
        L.Conv2D(8, 3, activation="relu", name="c1"), L.MaxPooling2D(),
        L.Conv2D(16, 3, padding="same", activation="relu", name="c2"), L.AveragePooling2D(),
        L.Flatten(), L.Dense(32, activation="relu", name="d1"),
        L.Dense(10, activation="softmax", name="d2")])


def _odd_layers() -> Any:
    """Folds and fusions that depend on who reads what, and layers beyond conv / add / pool."""
    import tf_keras as keras

    L = keras.layers
    inp = keras.Input((16, 16, 3))
    a = L.Conv2D(8, 3, padding="same", name="a")(inp)
    x = L.Add()([L.ReLU()(L.BatchNormalization()(a)), a])  # a read twice: no fold, no fusion
    x = L.BatchNormalization()(L.Conv2D(8, 3, padding="same", activation="relu", name="b")(x))
    x = L.ReLU()(L.Concatenate()([x, L.Conv2D(8, 1, name="c")(x)]))
    x = L.ReLU()(L.MaxPooling2D()(x))
    y = L.ReLU(6.0)(L.AveragePooling2D(padding="same", strides=1)(
        L.Conv2D(16, 1, name="d")(x)))
    x = L.Activation("relu6")(L.Multiply()([L.ReLU(6.0)(L.Add()([x, y])), y]))
    x = L.Activation("swish")(L.Dropout(0.1)(L.BatchNormalization()(
        L.Conv2D(16, 3, strides=2, name="e")(x))))
    se = L.Conv2D(16, 1, activation="sigmoid", name="se")(
        L.GlobalAveragePooling2D(keepdims=True)(x))
    x = L.Multiply()([x, se])  # broadcast
    x = L.LeakyReLU(0.1)(L.Conv2D(8, 1, name="f")(L.UpSampling2D()(x)))
    x = L.Maximum()([x, L.DepthwiseConv2D(3, padding="same", activation="tanh", name="g")(x)])
    x = L.ReLU()(L.GlobalAveragePooling2D()(x))
    x = L.BatchNormalization()(L.Dense(16, name="h")(x))
    return _randomize_bn(keras.Model(inp, L.Softmax()(L.Dense(10, name="i")(x))))


def _keras_mobilenet_v2() -> Any:
    """Keras' own MobileNetV2: ZeroPadding2D before its strided depthwise layers."""
    import tf_keras as keras

    return _randomize_bn(keras.applications.MobileNetV2(input_shape=(72, 72, 3), alpha=0.35,
                                                        weights=None, classes=10))


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    """Each toy model and its description, as it crosses the child's JSON boundary."""
    import codesign  # noqa: F401  (tf_keras before TensorFlow)
    from codesign.hyper.graph import channel_graph

    built = {"mobilenet": _mobilenet_like(), "resnet": _resnet_like(),
             "sequential": _sequential(), "keras_mobilenet_v2": _keras_mobilenet_v2(),
             "odd_layers": _odd_layers()}
    return {name: (m, json.loads(json.dumps(channel_graph(m).describe())))
            for name, m in built.items()}


def _alternating(description: dict[str, Any], precisions: tuple[str, ...]) -> dict[str, str]:
    return {layer["name"]: precisions[i % len(precisions)]
            for i, layer in enumerate(description["layers"])}


CASES = [  # model, prune ratio of every group, precisions in turn, resolution (None: own)
    ("mobilenet", 0.5, ("int8", "float32"), None),
    ("mobilenet", 0.25, ("float32", "int8", "int16x8"), 24),
    ("resnet", 0.5, ("float32", "int8"), None),
    ("resnet", 0.25, ("int16x8", "int8", "float16", "int4"), 28),  # odd maps: ceil(7 / 2)
    ("sequential", 0.5, ("int8", "float32"), None),
    ("keras_mobilenet_v2", 0.25, ("int8", "float32"), None),  # 9x9 maps: one PAD stays
    ("odd_layers", 0.5, ("int8", "float32"), None),
    ("odd_layers", 0.25, ("float32", "int16x8", "int8"), None),
]


@pytest.mark.parametrize(("name", "ratio", "precisions", "side"), CASES)
def test_the_chain_holds_what_the_converted_file_runs(
        models: dict[str, Any], name: str, ratio: float, precisions: tuple[str, ...],
        side: int | None) -> None:
    from codesign.compress.describe_check import CandidateCheck, check_candidate

    model, description = models[name]
    prune = {g["name"]: ratio for g in description["groups"] if g["prunable"]}
    assert prune, "the toy model must have groups to prune"
    cand = CandidateCheck(prune, _alternating(description, precisions),
                          side or int(model.input_shape[1]))
    got = check_candidate(model, description, cand, np.random.default_rng(0))
    assert got.problems == []
    assert disagreements(got.rows) == []
    keys = {r.key for r in got.rows}
    assert any(k.startswith("q:") for k in keys)  # precision changes were there to count
    assert sum(len(r.file) for r in got.rows) >= len(description["layers"])


def test_random_candidates_agree(models: dict[str, Any]) -> None:
    from codesign.compress.describe_check import check_model

    model = models["mobilenet"][0]
    checks = check_model(model, 2, ("float32", "int8"), seed=3, resolutions=(32, 24))
    assert [disagreements(c.rows) for c in checks] == [[], []]


def test_a_wrong_description_is_caught(models: dict[str, Any]) -> None:
    """The comparison fails when the description says another stride or kernel."""
    from codesign.compress.describe_check import CandidateCheck, check_candidate

    model, description = models["resnet"]
    wrong = copy.deepcopy(description)
    for op in wrong["ops"]:
        if op["name"] == "r1_a":
            op["strides"] = [1, 1]
        if op["name"] == "r0_b":
            op["kernel"] = [5, 5]
    precision = _alternating(description, ("float32",))
    cand = check_candidate(model, wrong, CandidateCheck({}, precision, 32),
                           np.random.default_rng(0))
    lines = "\n".join(disagreements(cand.rows))
    assert "conv3:float32" in lines and "conv5:float32" in lines
    assert "r0_b" in lines and "r1_a" in lines


def _as_described(key: str) -> str:
    """A built-in feature's name for a described model (the stem is a 3x3 convolution)."""
    for old, new in (("stem:", "conv3:"), ("fallback:stem:", "fallback:conv:")):
        if key.startswith(old):
            return new + key[len(old):]
    return key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_built_in_subnet_described_prices_as_the_built_in_chain(seed: int) -> None:
    """The description of a built-in candidate's Keras model gives the features of ``kernels()``.

    The built-in chain calls its first convolution ``stem``; a described model
    calls every k x k convolution ``conv<k>``. Both read channels from the
    candidate (the described one through the model's own layer widths).
    """
    import codesign  # noqa: F401  (tf_keras before TensorFlow)
    from codesign.hyper.graph import channel_graph
    from codesign.latency.features import features, kernels
    from codesign.nn.submodel import build_submodel
    from codesign.space import get_space
    from codesign.space.candidate import Candidate

    space = get_space("default")
    rng = np.random.default_rng(seed)
    cand = space.random_candidate(rng)
    names = space.layer_names()
    precision = {n: str(rng.choice(["float32", "int8", "int16x8", "float16"])) for n in names}
    cand = Candidate.make(cand.resolution, cand.depths, cand.prune_map, precision,
                          cand.kernel_map or None)
    model = build_submodel(space, space.subnet(cand), 10, 1)
    description = json.loads(json.dumps(channel_graph(model).describe()))
    built_in = {_as_described(k): v
                for k, v in features(kernels(space, cand, 10, 1), ("int8",)).items()}
    described = features(graph_kernels(description, {}, precision), ("int8",))
    assert described.keys() == built_in.keys()
    assert all(described[k] == pytest.approx(built_in[k]) for k in built_in)


def test_pruning_a_group_cuts_its_producers_and_consumers(models: dict[str, Any]) -> None:
    """Keeping half of an expansion's channels halves the expand, depthwise and project MACs."""
    description = models["mobilenet"][1]
    precision = _alternating(description, ("float32",))
    full = graph_steps(description, {}, precision)
    group = next(g for g in description["groups"] if g["name"] == "b1_exp")
    assert group["prunable"] and group["size"] == 64
    ratios = {"b1_exp": 0.5}
    kept = kept_from_ratios(description, ratios)
    assert kept["b1_exp"] == kept_count(64, 0.5) == 32
    half = graph_steps(description, kept, precision)
    assert [s.layer for s in half] == [s.layer for s in full]
    for a, b in zip(full, half, strict=True):
        touched = a.layer in ("b1_exp", "b1_dw", "b1_proj")
        assert b.kernel.tmacs == pytest.approx(a.kernel.tmacs * (0.5 if touched else 1.0))
        assert b.kernel.weights == pytest.approx(a.kernel.weights * (0.5 if touched else 1.0))
    assert sum(s.kernel.tmacs for s in half) < sum(s.kernel.tmacs for s in full)


def test_precision_changes_and_the_output_are_converted_once() -> None:
    """A pure description: int8 conv, float add of it and the input, int8 dense output."""
    g = [["g", 8]]
    x = [[["_input", 3]], 1]
    description = {"groups": [{"name": "g", "size": 8, "prunable": True}], "ops": [
        {"name": "c", "tflite": "CONV_2D", "inputs": [-1], "in_layouts": [x],
         "out_layout": [g, 1], "in_hw": [8, 8], "out_hw": [8, 8], "kernel": [3, 3],
         "strides": [1, 1], "padding": "same", "group": "g", "layer": True},
        {"name": "p", "tflite": "MEAN", "inputs": [0], "in_layouts": [[g, 1]],
         "out_layout": [g, 1], "in_hw": [8, 8], "out_hw": None},
        {"name": "d", "tflite": "FULLY_CONNECTED", "inputs": [1], "in_layouts": [[g, 1]],
         "out_layout": [[["d", 4]], 1], "group": "d", "layer": True},
    ]}
    steps = graph_steps(description, {"g": 6}, {"c": "int8", "d": "int8"}, 16)
    assert [(s.layer, s.kernel.name, s.kernel.precision) for s in steps] == [
        ("input", "q:f>i8", ""), ("c", "conv3", "int8"), ("p", "pool", "int8"),
        ("d", "dense", "int8"), ("d", "q:i8>f", "")]
    conv = steps[1].kernel
    assert conv.tmacs == 16 * 16 * 9 * 3 * 6 and conv.macs == 16 * 16 * 9 * 8 * 8
    assert steps[0].kernel.out == 16 * 16 * 3 and steps[3].kernel.tmacs == 6 * 4
    mixed = graph_steps(description, {}, {"c": "int8", "d": "int16x8"}, None)
    assert [s.kernel.name for s in mixed] == ["q:f>i8", "conv3", "pool", "q:i8>i16", "dense",
                                              "q:i16>f"]


def _padded_depthwise(pads: list[list[int]], stride: int) -> dict[str, Any]:
    x = [[["_input", 4]], 1]
    return {"groups": [], "ops": [
        {"name": "pad", "tflite": "PAD", "inputs": [-1], "in_layouts": [x], "out_layout": x,
         "in_hw": [8, 8], "out_hw": [8 + sum(pads[0]), 8 + sum(pads[1])], "pads": pads},
        {"name": "dw", "tflite": "DEPTHWISE_CONV_2D", "inputs": [0], "in_layouts": [x],
         "out_layout": x, "in_hw": [9, 9], "out_hw": [4, 4], "kernel": [3, 3],
         "strides": [stride, stride], "padding": "valid", "layer": True}]}


@pytest.mark.parametrize(("pads", "stride", "side", "folds"), [
    ([[0, 1], [0, 1]], 2, 8, True), ([[0, 1], [0, 1]], 2, 9, False),
    ([[1, 1], [1, 1]], 2, 9, True), ([[1, 1], [1, 1]], 1, 9, True), ([[0, 1], [0, 1]], 1, 8, False),
])
def test_a_pad_folds_where_it_adds_what_same_padding_adds(
        pads: list[list[int]], stride: int, side: int, folds: bool) -> None:
    """As converted files show (a 3x3 convolution after ZeroPadding2D, sizes 6 to 9)."""
    steps = graph_steps(_padded_depthwise(pads, stride), {}, {"dw": "int8"}, side)
    assert [s.tflite for s in steps].count("PAD") == (0 if folds else 1)
    dw = next(s.kernel for s in steps if s.tflite == "DEPTHWISE_CONV_2D")
    padded = side + sum(pads[0])
    out = (padded - 3) // stride + 1
    read = side if folds else padded  # a folded PAD: the convolution reads the map itself
    assert dw.out == out * out * 4 and dw.inp == read * read * 4
    assert [s.kernel.kind for s in steps if s.kernel.kind.startswith("q:")] == ["q:f>i8",
                                                                               "q:i8>f"]


def _rescaled_conv(padding: str, const: str) -> dict[str, Any]:
    x = [[["_input", 3]], 1]
    plain = {"in_layouts": [x], "out_layout": x, "in_hw": [8, 8], "out_hw": [8, 8]}
    return {"groups": [], "ops": [
        {"name": "rescaling", "tflite": "MUL", "inputs": [-1], "const": const, **plain},
        {"name": "rescaling", "tflite": "ADD", "inputs": [0], "const": const, **plain},
        {"name": "c", "tflite": "CONV_2D", "inputs": [1], "in_layouts": [x],
         "out_layout": [[["c", 4]], 1], "in_hw": [8, 8], "out_hw": [8, 8], "kernel": [3, 3],
         "strides": [1, 1], "padding": padding, "group": "c", "layer": True}]}


@pytest.mark.parametrize(("padding", "const", "left"), [
    ("valid", "scalar", []), ("same", "scalar", ["MUL", "ADD"]),
    ("valid", "channel", ["MUL", "ADD"])])
def test_a_rescaling_folds_into_the_convolution_it_feeds(padding: str, const: str,
                                                          left: list[str]) -> None:
    """A scalar offset folds into a valid convolution's bias, then the scale into its weights."""
    steps = graph_steps(_rescaled_conv(padding, const), {}, {"c": "float32"}, 8)
    assert [s.tflite for s in steps] == [*left, "CONV_2D"]


def test_integer_glue_follows_the_installed_quantizer_policy() -> None:
    from ai_edge_quantizer import default_policy

    policy = json.loads(default_policy.DEFAULT_JSON_POLICY)["ops_per_config"]
    emitted = {"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "AVERAGE_POOL_2D", "MAX_POOL_2D",
               "MEAN", "REDUCE_MAX", "CONCATENATION", "RESHAPE", "SOFTMAX", "LOGISTIC", "TANH",
               "ELU", "GELU", "HARD_SWISH", "LEAKY_RELU", "RELU", "RELU6", "PAD",
               "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"}
    for precision, config in (("int8", "static_wi8_ai8"), ("int16x8", "static_wi8_ai16")):
        assert INTEGER_OPS[precision] <= set(policy[config])
        assert INTEGER_OPS[precision] & emitted == set(policy[config]) & emitted


def test_the_chain_imports_no_tensorflow() -> None:
    starts = ["codesign.latency.graph_chain", "codesign.latency.graph_check",
              "codesign.hyper.opgraph"]
    assert _heavy(reachable(starts, tuple(starts))) == []


def test_rows_compare_and_fail(models: dict[str, Any]) -> None:
    """The same chain against itself agrees; against a file op more it does not."""
    from codesign.latency.graph_check import FileOp

    description = models["sequential"][1]
    steps = graph_steps(description, {}, _alternating(description, ("float32",)))
    mirror = [FileOp(f"{s.kernel.name}:{s.kernel.precision}", s.tflite, s.kernel.tmacs,
                     s.kernel.out, s.layer) for s in steps]
    assert all(r.agrees for r in compare(steps, mirror))
    extra = compare(steps, [*mirror, FileOp("reshape:float32", "RESHAPE", 0.0, 5.0, "x")])
    assert [r.key for r in extra if not r.agrees] == ["reshape:float32"]
