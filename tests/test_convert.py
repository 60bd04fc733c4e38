"""Conversion to TFLite and running it in LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

import codesign  # noqa: F401
from codesign.data import load_dataset, resize_bilinear
from codesign.hardware import litert
from codesign.nn.submodel import build_submodel
from codesign.space import get_space
from codesign.tflite.convert import convert, convert_float


@pytest.fixture(scope="module")
def model_and_data():
    space = get_space("tiny")
    sub = space.subnet(space.max_candidate())
    model = build_submodel(space, sub, 10, 1)
    data = load_dataset("digits", 0)
    return model, resize_bilinear(data.x_train[:64], sub.resolution)


def _uniform(model, precision: str) -> dict[str, str]:
    return {n: precision for n in get_space("tiny").layer_names()}


def test_float_file_matches_keras(model_and_data) -> None:
    model, x = model_and_data
    blob = convert(model, _uniform(model, "float32"))
    np.testing.assert_allclose(litert.predict(blob, x), model(x).numpy(), atol=1e-4)
    io = litert.io_details(blob)
    assert io["input"]["shape"] == [-1, *x.shape[1:]]
    assert io["input"]["dtype"] == "float32"


def test_int8_file_holds_int8_weights(model_and_data) -> None:
    model, x = model_and_data
    blob = convert(model, _uniform(model, "int8"), x)
    interp = litert.make_interpreter(blob)
    types = {d["name"]: np.dtype(d["dtype"]).name for d in interp.get_tensor_details()}
    conv_weights = [n for n in types if n.endswith("/Conv2D")]
    assert conv_weights and all(types[n] == "int8" for n in conv_weights)
    # float inputs and outputs; int8 inside
    assert litert.io_details(blob)["input"]["dtype"] == "float32"
    float_out = litert.predict(convert_float(model), x)
    int8_out = litert.predict(blob, x)
    assert np.mean(np.argmax(float_out, 1) == np.argmax(int8_out, 1)) > 0.8


def test_latency_stats_are_consistent(model_and_data) -> None:
    model, x = model_and_data
    stats = litert.time_latency(convert_float(model), x[:1], warmup=3, runs=20)
    assert 0 < stats.min <= stats.median <= stats.p90
    # the runs are split into windows spread over time; the spread figures come from the
    # windows that agree with the figure
    assert stats.runs >= 3 and stats.std >= 0 and stats.quiet_rounds <= stats.rounds
    assert stats.rounds >= 8 and stats.quiet_rounds >= 1, stats
