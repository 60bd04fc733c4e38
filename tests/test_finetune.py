"""Fine-tuning and quantization-aware training produce files that hold what they claim."""

from __future__ import annotations

import codesign  # noqa: F401
from codesign.data import load_dataset, resize_bilinear
from codesign.hardware import litert
from codesign.nn.bn import recalibrate_bn
from codesign.nn.finetune import fine_tune, keras_accuracy
from codesign.nn.qat import convert_qat, qat_model
from codesign.nn.submodel import build_submodel
from codesign.space import get_space
from codesign.tflite.inspect import mismatches


def test_fine_tuning_improves_and_qat_gives_an_all_int8_file() -> None:
    import tf_keras as keras

    keras.utils.set_random_seed(0)  # the same initial weights whatever ran before
    space = get_space("tiny")
    data = load_dataset("digits", 0)
    sub = space.subnet(space.max_candidate("int8"))
    model = build_submodel(space, sub, 10, 1)
    x = resize_bilinear(data.x_train, sub.resolution)
    xv = resize_bilinear(data.x_val, sub.resolution)
    recalibrate_bn(model, x[:512])
    before = keras_accuracy(model, xv, data.y_val)
    fine_tune(model, x, data.y_train, epochs=3)
    after = keras_accuracy(model, xv, data.y_val)
    assert after > before + 0.2  # from chance towards learned

    wrapped = qat_model(model)
    fine_tune(wrapped, x, data.y_train, epochs=1)
    blob = convert_qat(wrapped)
    assert mismatches(blob, sub.precision) == []
    tflite_acc = litert.accuracy(blob, xv, data.y_val)
    assert abs(tflite_acc - keras_accuracy(wrapped, xv, data.y_val)) < 0.05
    assert tflite_acc > 0.3  # three times chance after one epoch of QAT from a weak start
