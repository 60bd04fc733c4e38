"""Users' own trained models: Keras 3 .keras translated to tf_keras, .h5, SavedModel, refusals."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import codesign  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from codesign.errors import CodesignError
from codesign.models.configs import SAME_ACTIVATIONS
from codesign.models.facts import Normalize, Rescale
from codesign.models.load import load_user_model

assert os.environ["TF_USE_LEGACY_KERAS"] == "1"  # set by codesign before TensorFlow loads

import keras  # noqa: E402  (Keras 3, imported after codesign)
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

L3 = keras.layers
L2 = tf_keras.layers
TIMINGS: dict[str, float] = {}


def images(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """32x32x3 noise images in [0, 255]: class k < 3 has channel k brighter, class 3 none."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.uniform(0, 160, (n, 32, 32, 3))
    for i, label in enumerate(y):
        if label < 3:
            x[i, :, :, label] += 90
    return x.astype("float32"), y


def randomize(model: keras.Model, seed: int = 0) -> None:
    """Give every weight (batch-norm statistics too) a random value, so copying is tested."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape = tuple(v.shape)
        if "count" in v.path:
            continue
        if "variance" in v.path or "gamma" in v.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1 if len(shape) > 1 else 0.3, shape)
        v.assign(value.astype("float32"))


def max_diff(model3: keras.Model, model2: tf_keras.Model, x: np.ndarray, training: bool = False
             ) -> float:
    a = np.asarray(model3(x, training=training))
    b = model2(x, training=training).numpy()
    return float(np.abs(a - b).max())


def refused(path: Path) -> str:
    with pytest.raises(CodesignError) as info:
        load_user_model(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def test_import_order() -> None:
    """After `import codesign`, tf.keras is tf_keras and `import keras` is still Keras 3."""
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert keras.__version__.startswith("3.")
    assert tf.keras.layers.Dense is L2.Dense
    inp = tf_keras.Input((4,))
    model = tf_keras.Model(inp, L2.Dense(2)(inp))
    assert type(model).__module__.startswith("tf_keras.")
    assert isinstance(model, tf.keras.Model) and not isinstance(model, keras.Model)


def test_activations_mean_the_same() -> None:
    x = tf.constant(np.linspace(-8, 8, 401, dtype="float32").reshape(1, -1))
    for name in SAME_ACTIVATIONS:
        a = np.asarray(keras.activations.get(name)(x))
        b = tf_keras.activations.get(name)(x).numpy()
        assert np.abs(a - b).max() < 1e-6, name
    # Why hard_sigmoid is rebuilt from layers: the two Kerases disagree.
    a = np.asarray(keras.activations.hard_sigmoid(x))
    assert np.abs(a - tf_keras.activations.hard_sigmoid(x).numpy()).max() > 0.05


def test_mobilenetv2(tmp_path: Path) -> None:
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                           classes=4)
    randomize(model)
    path = tmp_path / "mnv2.keras"
    model.save(path)
    start = time.perf_counter()
    user = load_user_model(path)
    TIMINGS["mobilenetv2"] = time.perf_counter() - start
    assert (user.format, user.input_shape, user.num_classes) == ("keras3", (32, 32, 3), 4)
    assert user.translated and user.output == "softmax" and user.softmax
    assert user.preprocessing == ()
    assert user.max_difference is not None and user.max_difference < 1e-5
    names3 = {layer.name for layer in model.layers[1:]}
    assert names3 == {layer.name for layer in user.model.layers[1:]}
    assert all(type(layer).__module__.startswith("tf_keras.") for layer in user.model.layers)
    x, _ = images(16)
    assert max_diff(model, user.model, x / 127.5 - 1) < 1e-5
    print(f"MobileNetV2 load+translate+check {TIMINGS['mobilenetv2']:.2f}s, "
          f"max difference {user.max_difference:.3g}")


def test_mobilenetv3_hard_swish_converts(tmp_path: Path) -> None:
    """Keras 3 hard_swish/hard_sigmoid and `x + 3.0` ops: translated, and TFLite fuses them."""
    from codesign.hardware.litert import make_interpreter, predict
    from codesign.tflite.convert import convert_float

    model = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75,
                                                weights=None, classes=4)
    randomize(model)
    model.save(tmp_path / "mnv3.keras")
    start = time.perf_counter()
    user = load_user_model(tmp_path / "mnv3.keras")
    TIMINGS["mobilenetv3small"] = time.perf_counter() - start
    assert user.max_difference < 1e-5 and user.preprocessing[0].offset == (-1.0,)
    assert any(n.endswith(": hard_swish") for n in user.notes)
    flat = convert_float(user.model)
    ops = {d["op_name"] for d in make_interpreter(flat)._get_ops_details()}
    assert "HARD_SWISH" in ops, ops
    x, _ = images(4)
    assert np.abs(predict(flat, x) - np.asarray(model(x, training=False))).max() < 1e-4


def residual_concat_keras3() -> keras.Model:
    inp = keras.Input((32, 32, 3), name="pixels")
    x = L3.Rescaling(1.0 / 255, name="scale")(inp)
    x = L3.Conv2D(8, 3, strides=2, padding="same", name="stem")(x)
    x = L3.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = L3.ReLU(name="stem_relu")(x)
    y = L3.Conv2D(8, 3, padding="same", activation="relu", name="res_conv")(x)
    x = L3.Add(name="res_add")([x, y])
    a = L3.Conv2D(6, 1, name="branch_a")(x)
    b = L3.DepthwiseConv2D(3, padding="same", name="branch_b")(x)
    x = L3.Concatenate(name="concat")([a, b])
    x = L3.MaxPooling2D(name="pool")(x)
    x = L3.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L3.Dense(4, name="logits")(x))


def test_trained_keras3_functional(tmp_path: Path) -> None:
    x, y = images(512)
    model = residual_concat_keras3()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    path = tmp_path / "residual.keras"
    model.save(path)
    x_test, y_test = images(128, seed=1)
    user = load_user_model(path, sample=x_test[:16])
    assert user.output == "logits" and user.num_classes == 4
    assert user.preprocessing == (Rescale("scale", (1.0 / 255,), (0.0,)),)
    assert user.max_difference < 1e-4
    assert max_diff(model, user.model, x_test) < 1e-4
    acc3 = np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test)
    acc2 = np.mean(np.argmax(user.model.predict(x_test, verbose=0), 1) == y_test)
    assert acc2 == acc3 and acc3 > 0.5, (acc2, acc3)
    # The translation trains in tf_keras, as codesign's fine-tuning does.
    user.model.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    user.model.fit(x[:64], y[:64], epochs=1, verbose=0)


def test_nested_sequential_and_transfer_learning(tmp_path: Path) -> None:
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                          include_top=False)
    randomize(base, seed=1)
    seq = keras.Sequential([keras.Input((32, 32, 3)), L3.Rescaling(1 / 127.5, -1.0), base,
                            L3.GlobalAveragePooling2D(), L3.Dense(3, activation="softmax")])
    seq.save(tmp_path / "seq.keras")
    user = load_user_model(tmp_path / "seq.keras")
    assert f"flattened {base.name}" in user.notes and user.max_difference < 1e-5
    assert not any(isinstance(layer, tf_keras.Model) for layer in user.model.layers)
    assert user.preprocessing[0].scale == (1 / 127.5,) and user.num_classes == 3

    base.trainable = False
    inp = keras.Input((32, 32, 3))
    x = base(inp / 127.5 - 1.0, training=False)  # arithmetic: keras.ops, not layers
    x = L3.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L3.Dense(5)(x))
    model.save(tmp_path / "frozen.keras")
    user = load_user_model(tmp_path / "frozen.keras")
    assert [type(p) for p in user.preprocessing] == [Rescale, Rescale]
    assert user.preprocessing[1].offset == (-1.0,)
    frozen = [layer for layer in user.model.layers if layer.name.startswith("block_")]
    assert frozen and not any(layer.trainable for layer in frozen)
    x_in, _ = images(8)
    assert max_diff(model, user.model, x_in, training=True) < 1e-4


def test_layer_zoo(tmp_path: Path) -> None:
    """Many built-in layers, Keras-3-only settings (hard_swish, negative_slope) and ops."""
    rng = np.random.default_rng(0)
    inp = keras.Input((32, 32, 3))
    x = L3.RandomFlip("horizontal")(inp)
    x = L3.RandomRotation(0.1)(x)
    x = L3.RandomZoom(0.1)(x)
    x = L3.RandomTranslation(0.1, 0.1)(x)
    x = L3.RandomContrast(0.1)(x)
    norm = L3.Normalization()
    norm.adapt(rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32"))
    x = norm(x)
    x = L3.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.5, 2.0, 0.5])(x)
    x = L3.Resizing(36, 36)(x)
    x = L3.CenterCrop(32, 32)(x)
    x = L3.ZeroPadding2D(1)(x)
    x = L3.Conv2D(16, 3, strides=2, kernel_regularizer=keras.regularizers.L2(1e-4),
                  kernel_constraint=keras.constraints.MaxNorm(3),
                  kernel_initializer="he_normal")(x)
    x = L3.BatchNormalization()(x)
    x = L3.LeakyReLU(negative_slope=0.1)(x)
    a = L3.SeparableConv2D(16, 3, padding="same", activation="gelu")(x)
    b = L3.DepthwiseConv2D(3, padding="same")(x)
    b = L3.PReLU(shared_axes=[1, 2])(b)
    c = L3.Conv2D(16, 3, padding="same", dilation_rate=2, groups=4, activation="hard_swish")(x)
    x = L3.Add()([a, b, c])
    x = L3.Subtract()([x, a])
    x = L3.Multiply()([x, L3.Activation("hard_sigmoid")(b)])
    x = L3.Average()([x, a])
    x = L3.Maximum()([x, b])
    x = L3.Minimum()([x, c]) * 0.5 + b  # ops: Rescaling, Add
    x = L3.ELU()(x)
    x = L3.ReLU(max_value=6.0)(x)
    x = L3.Activation("swish")(x)
    x = L3.SpatialDropout2D(0.1)(x)
    x = L3.GaussianNoise(0.1)(x)
    x = L3.LayerNormalization()(x)
    x = L3.MaxPooling2D()(x)
    x = L3.UpSampling2D(2, interpolation="bilinear")(x)
    x = L3.Cropping2D(2)(x)
    x = L3.AveragePooling2D(2, padding="same")(x)
    x = L3.Conv2DTranspose(8, 3, strides=2, padding="same")(x)
    x = L3.Identity()(x)
    g = L3.GlobalMaxPooling2D()(x)
    x = L3.Permute((2, 1, 3))(x)
    x = L3.Reshape((-1, 8))(x)
    x = L3.Conv1D(8, 3)(x)
    x = L3.GlobalAveragePooling1D()(x)
    x = L3.Concatenate()([x, g])
    x = L3.Dropout(0.3)(x)
    x = L3.Dense(10, activation="relu")(x)
    x = L3.Dense(5)(x)
    model = keras.Model(inp, L3.Softmax()(x))
    randomize(model)
    model.save(tmp_path / "zoo.keras")
    user = load_user_model(tmp_path / "zoo.keras")
    assert user.max_difference < 1e-5 and user.output == "softmax"
    assert [type(p) for p in user.preprocessing] == [Normalize, Normalize]
    assert user.preprocessing[1].variance == pytest.approx((1.5, 2.0, 0.5))
    assert any(n.endswith(": hard_swish") for n in user.notes)
    assert user.model.get_layer("leaky_re_lu").alpha == pytest.approx(0.1)


def test_keras3_h5_is_translated(tmp_path: Path) -> None:
    model = residual_concat_keras3()
    randomize(model)
    model.save(tmp_path / "k3.h5")
    user = load_user_model(tmp_path / "k3.h5")
    assert user.format == "h5" and user.translated and user.max_difference < 1e-5


def test_tf_keras_h5_and_savedmodel(tmp_path: Path) -> None:
    x, y = images(128)
    inp = tf_keras.Input((32, 32, 3))
    h = L2.Rescaling(1 / 255.0)(inp)
    h = L2.Conv2D(8, 3, padding="same", activation="relu")(h)
    for i in range(2):
        r = L2.Conv2D(8, 3, padding="same", name=f"res{i}")(h)
        h = L2.Add(name=f"add{i}")([h, r])
    out = L2.Dense(4, activation="softmax")(L2.GlobalAveragePooling2D()(h))
    residual = tf_keras.Model(inp, out)
    residual.compile("adam", "sparse_categorical_crossentropy")
    residual.fit(x, y, epochs=1, verbose=0)
    residual.save(tmp_path / "residual.h5")
    user = load_user_model(tmp_path / "residual.h5")
    assert (user.format, user.output, user.translated) == ("h5", "softmax", False)
    assert user.preprocessing == (Rescale(user.preprocessing[0].layer, (1 / 255.0,), (0.0,)),)
    assert np.allclose(user.model.predict(x[:8], verbose=0), residual.predict(x[:8], verbose=0))

    inp = tf_keras.Input((16, 16, 1))
    a = L2.Conv2D(4, 3, padding="same")(inp)
    b = L2.Conv2D(4, 1)(inp)
    h = L2.Concatenate()([a, b, L2.Conv2D(2, 5, padding="same")(a)])
    concat = tf_keras.Model(inp, L2.Dense(3)(L2.Flatten()(h)))
    concat.save(tmp_path / "concat_sm", save_format="tf")
    user = load_user_model(tmp_path / "concat_sm")
    assert (user.format, user.input_shape, user.num_classes, user.output) == (
        "savedmodel", (16, 16, 1), 3, "logits")
    xs = np.random.default_rng(0).normal(size=(4, 16, 16, 1)).astype("float32")
    assert np.allclose(user.model(xs).numpy(), concat(xs).numpy(), atol=1e-6)

    seq = tf_keras.Sequential([tf_keras.Input((16, 16, 1)),
                               L2.Normalization(mean=0.5, variance=4.0), L2.Conv2D(4, 3),
                               L2.Flatten(), L2.Dense(3), L2.Softmax()])
    seq.save(tmp_path / "tfk.keras")  # a .keras file tf_keras wrote
    user = load_user_model(tmp_path / "tfk.keras")
    assert (user.format, user.output) == ("keras2", "softmax")
    assert user.preprocessing == (Normalize(seq.layers[0].name, (0.5,), (4.0,)),)


def test_tf_keras_nested_is_flattened(tmp_path: Path) -> None:
    base = tf_keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                             include_top=False)
    base.trainable = False
    inp = tf_keras.Input((32, 32, 3))
    x = L2.Rescaling(1 / 127.5, -1.0)(inp)
    x = base(x, training=False)
    x = L2.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inp, L2.Dense(4, activation="softmax")(x))
    for v in model.weights:  # batch-norm statistics too
        v.assign(np.random.default_rng(0).uniform(0.5, 1.5, v.shape).astype("float32")
                 if "variance" in v.name else v + 0.05)
    model.save(tmp_path / "transfer.h5")
    user = load_user_model(tmp_path / "transfer.h5")
    assert f"flattened {base.name}" in user.notes and user.max_difference < 1e-5
    assert not any(isinstance(layer, tf_keras.Model) for layer in user.model.layers)
    assert len(user.model.layers) == len(model.layers) - 2 + len(base.layers)
    assert not user.model.get_layer("bn_Conv1").trainable
    x_in, _ = images(4)  # frozen batch norms stay in inference mode while training
    want, got = model(x_in, training=True).numpy(), user.model(x_in, training=True).numpy()
    assert np.abs(want - got).max() < 1e-5 and user.preprocessing[0].offset == (-1.0,)


@keras.saving.register_keras_serializable(package="tests")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


@keras.saving.register_keras_serializable(package="tests")
class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L3.Conv2D(4, 3)
        self.pool = L3.GlobalAveragePooling2D()
        self.head = L3.Dense(2)

    def call(self, x):
        return self.head(self.pool(self.conv(x)))


def test_refusals(tmp_path: Path) -> None:
    text = tmp_path / "notes.keras"
    text.write_text("not a model\n")
    assert "not a Keras model file" in refused(text) and "zip" in refused(text)

    model = residual_concat_keras3()
    model.save(tmp_path / "ok.keras")
    data = (tmp_path / "ok.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    assert "truncated or damaged" in refused(tmp_path / "cut.keras")

    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([a, b], L3.Dense(2)(L3.Flatten()(L3.Add()([a, b]))))
    two.save(tmp_path / "two.keras")
    assert "2 inputs" in refused(tmp_path / "two.keras")
    a = keras.Input((8, 8, 3))
    h = L3.Flatten()(a)
    two_out = keras.Model(a, [L3.Dense(2)(h), L3.Dense(3)(h)])
    two_out.save(tmp_path / "two_out.keras")
    assert "2 outputs" in refused(tmp_path / "two_out.keras")

    v = keras.Input((20,))
    keras.Model(v, L3.Dense(2)(v)).save(tmp_path / "vector.keras")
    assert "not an image" in refused(tmp_path / "vector.keras")
    free = keras.Input((None, None, 3))
    keras.Model(free, L3.Dense(2)(L3.GlobalAveragePooling2D()(free))).save(
        tmp_path / "free.keras")
    assert "not fixed" in refused(tmp_path / "free.keras")
    seg = keras.Input((8, 8, 3))
    keras.Model(seg, L3.Conv2D(2, 1)(seg)).save(tmp_path / "seg.keras")
    assert "classifier" in refused(tmp_path / "seg.keras")

    c = keras.Input((8, 8, 3))
    keras.Model(c, L3.Dense(2)(L3.Flatten()(Doubler(name="twice")(c)))).save(
        tmp_path / "custom.keras")
    message = refused(tmp_path / "custom.keras")
    assert "'twice'" in message and "Doubler" in message and "built-in" in message

    lam = keras.Input((8, 8, 3))
    lam_out = L3.Lambda(lambda t: t * 2.0, name="times2")(lam)
    keras.Model(lam, L3.Dense(2)(L3.Flatten()(lam_out))).save(tmp_path / "lambda.keras")
    message = refused(tmp_path / "lambda.keras")
    assert "'times2'" in message and "Lambda" in message

    sub = Subclassed()
    sub(np.zeros((1, 8, 8, 3), "float32"))
    sub.save(tmp_path / "sub.keras")
    message = refused(tmp_path / "sub.keras")
    assert "subclassed" in message and "Subclassed" in message and "functional" in message

    ops = keras.Input((8, 8, 3))
    keras.Model(ops, L3.Dense(2)(L3.Flatten()(keras.ops.sqrt(ops)))).save(
        tmp_path / "ops.keras")
    assert "outside a layer" in refused(tmp_path / "ops.keras")


def test_refusals_tf_keras_and_paths(tmp_path: Path) -> None:
    assert "no such file" in refused(tmp_path / "missing.keras")
    (tmp_path / "empty_dir").mkdir()
    assert "not a SavedModel" in refused(tmp_path / "empty_dir")

    inp = tf_keras.Input((8, 8, 3))
    model = tf_keras.Model(inp, L2.Dense(2)(L2.GlobalAveragePooling2D()(inp)))
    model.save_weights(tmp_path / "weights.h5")
    assert "weights only" in refused(tmp_path / "weights.h5")
    model.save(tmp_path / "whole.h5")
    data = (tmp_path / "whole.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    assert "truncated or damaged" in refused(tmp_path / "cut.h5")
    tf.saved_model.save(model, str(tmp_path / "plain_sm"))
    assert "without a Keras model" in refused(tmp_path / "plain_sm")

    class Sub(tf_keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = L2.Dense(2)

        def call(self, x):
            return self.dense(L2.Flatten()(x))

    sub = Sub()
    sub(np.zeros((1, 8, 8, 3), "float32"))
    sub.save(tmp_path / "sub_sm", save_format="tf")
    assert "subclassed" in refused(tmp_path / "sub_sm")


def test_zz_report_timings() -> None:
    """Last: the timings measured above (-s shows them)."""
    print(TIMINGS)
