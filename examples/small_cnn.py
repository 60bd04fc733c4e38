"""A small CNN as a keras-tuner HyperModel, searched by codesign.

    codesign search --hypermodel examples/small_cnn.py:SmallCNN --data digits \
        --trials 12 --out runs/cnn

keras-tuner is used for its ``HyperModel`` and ``hp`` only; the model itself
is tf_keras (Keras 2), which codesign converts and quantizes. codesign adds a
prune ratio per channel group and a precision per layer on top of the
hyperparameters below, so layers are named: the names are the genes' names.
"""

from __future__ import annotations

import keras_tuner as kt
import tf_keras as keras  # not `import keras`: that is Keras 3

L = keras.layers


class SmallCNN(kt.HyperModel):
    """Conv blocks (conv, batch norm, ReLU, pooling), global pooling, optional dense head.

    Args:
        num_classes: Classes of the data set (codesign passes the data's).
        input_channels: Image channels (codesign passes the data's).
    """

    def __init__(self, num_classes: int = 10, input_channels: int = 1) -> None:
        super().__init__(name="small_cnn")
        self.num_classes = num_classes
        self.input_channels = input_channels

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """The model of one set of hyperparameters."""
        resolution = hp.Choice("resolution", [8, 12, 16])
        blocks = hp.Int("conv_blocks", 1, 3)
        inputs = keras.Input((resolution, resolution, self.input_channels), name="image")
        x = inputs
        for i in range(blocks):
            filters = hp.Choice(f"filters_{i}", [8, 16, 32])
            x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = L.BatchNormalization(name=f"bn{i}")(x)
            x = L.ReLU(name=f"relu{i}")(x)
            if x.shape[1] >= 8:
                x = L.MaxPooling2D(name=f"pool{i}")(x)
        x = L.GlobalAveragePooling2D(name="gap")(x)
        head = hp.Boolean("dense_head")
        with hp.conditional_scope("dense_head", [True]):
            if head:
                units = hp.Int("head_units", 16, 64, step=16)
                x = L.Dense(units, activation="relu", name="head")(x)
        outputs = L.Dense(self.num_classes, name="classifier")(x)
        model = keras.Model(inputs, outputs, name="small_cnn")
        lr = hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
        model.compile(optimizer=keras.optimizers.Adam(lr))
        return model
