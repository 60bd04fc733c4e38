"""A ResNet-style HyperModel sized for small inputs (8x8 digits, upsampled), searched by codesign.

    codesign search --hypermodel examples/small_resnet.py:SmallResNet --data digits \
        --trials 10 --out runs/resnet

Residual blocks add a shortcut to two convolutions, so the block's output
channels and the shortcut's are one channel group: codesign prunes them
together (and the stem's channels with every identity shortcut they feed).
The number of blocks per stage is a conditional hyperparameter: a stage that
is not built asks for none.
"""

from __future__ import annotations

import keras_tuner as kt
import tf_keras as keras  # not `import keras`: that is Keras 3

L = keras.layers
MAX_STAGES = 3


def conv_bn(x: keras.KerasTensor, filters: int, stride: int, name: str, depthwise: bool,
            relu: bool = True) -> keras.KerasTensor:
    """3x3 convolution (or depthwise 3x3 then pointwise 1x1), batch norm, optional ReLU."""
    if depthwise:
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                              name=f"{name}_dw")(x)
        x = L.BatchNormalization(name=f"{name}_dw_bn")(x)
        x = L.ReLU(name=f"{name}_dw_relu")(x)
        x = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    else:
        x = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_block(x: keras.KerasTensor, filters: int, stride: int, name: str,
                   depthwise: bool) -> keras.KerasTensor:
    """Two convolutions plus a shortcut (1x1 projection when the shape changes)."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = L.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = L.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = conv_bn(x, filters, stride, f"{name}_a", depthwise)
    y = conv_bn(y, filters, 1, f"{name}_b", depthwise, relu=False)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([shortcut, y]))


class SmallResNet(kt.HyperModel):
    """Stem, one to three stages of residual blocks (width doubling, stride 2), classifier.

    Args:
        num_classes: Classes of the data set (codesign passes the data's).
        input_channels: Image channels (codesign passes the data's).
    """

    def __init__(self, num_classes: int = 10, input_channels: int = 1) -> None:
        super().__init__(name="small_resnet")
        self.num_classes = num_classes
        self.input_channels = input_channels

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """The model of one set of hyperparameters."""
        resolution = hp.Choice("resolution", [16, 24])
        width = hp.Choice("width", [8, 16, 24])
        stages = hp.Int("stages", 1, MAX_STAGES)
        depthwise = hp.Boolean("depthwise_blocks")
        inputs = keras.Input((resolution, resolution, self.input_channels), name="image")
        x = conv_bn(inputs, width, 1, "stem", depthwise=False)
        for s in range(MAX_STAGES):
            with hp.conditional_scope("stages", list(range(s + 1, MAX_STAGES + 1))):
                if s < stages:
                    blocks = hp.Int(f"stage{s + 1}_blocks", 1, 2)
                    for b in range(blocks):
                        stride = 2 if s > 0 and b == 0 else 1
                        x = residual_block(x, width * 2**s, stride, f"s{s + 1}b{b + 1}",
                                           depthwise)
        x = L.GlobalAveragePooling2D(name="gap")(x)
        x = L.Dropout(hp.Float("dropout", 0.0, 0.3, step=0.1), name="dropout")(x)
        outputs = L.Dense(self.num_classes, name="classifier")(x)
        return keras.Model(inputs, outputs, name="small_resnet")
