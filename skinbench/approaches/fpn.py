"""Feature Pyramid Network for lesion segmentation (Lin et al. 2017; the semantic-segmentation head of
Kirillov et al. 2019, as in segmentation_models' FPN), on an ImageNet MobileNetV2 encoder.

Encoder taps at strides 32, 16, 8, 4 (the same layers the U-Net uses, from :mod:`backbones`). Top-down:
each level's 1x1 lateral convolution plus the coarser level upsampled x2. Each pyramid level then gets its
own head (two 3x3 conv + BN + ReLU) and is upsampled to stride 4; the heads are summed, and one 3x3
convolution and a x4 bilinear upsampling give the sigmoid map. Cheaper than the U-Net decoder on a CPU:
nothing runs above stride 4.
"""

from __future__ import annotations

from typing import ClassVar

import keras
from keras import layers

from skinbench.approaches import backbones
from skinbench.approaches.ynet import BACKBONE, MobileNetUNetSegmenter, base_arguments


def _head(x, filters: int, upsample: int, name: str):
    for i in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return layers.UpSampling2D(upsample, interpolation="bilinear", name=f"{name}_up")(x) if upsample > 1 else x


def build_mobilenet_fpn(input_size: int = 128, weights: str | None = "imagenet", train_encoder: bool = False,
                        pyramid_filters: int = 128, segmentation_filters: int = 64, dropout: float = 0.2) -> keras.Model:
    """Image (float RGB 0..255) -> (input_size, input_size, 1) sigmoid probabilities."""
    bottleneck, skips = backbones.unet_layers(BACKBONE)
    taps = [bottleneck, *skips[:3]]  # strides 32, 16, 8, 4
    inputs, (c5, c4, c3, c2) = backbones.encoder_taps(BACKBONE, input_size, weights, train_encoder, taps)
    p = layers.Conv2D(pyramid_filters, 1, name="lateral5")(c5)
    pyramid = [p]
    for level, c in zip((4, 3, 2), (c4, c3, c2)):                 # top-down pathway
        p = layers.Add(name=f"p{level}")([layers.UpSampling2D(2, name=f"top_down{level}")(p),
                                          layers.Conv2D(pyramid_filters, 1, name=f"lateral{level}")(c)])
        pyramid.append(p)
    heads = [_head(p, segmentation_filters, 2 ** (3 - i), f"head{5 - i}") for i, p in enumerate(pyramid)]
    x = layers.Add(name="merge")(heads)
    x = layers.SpatialDropout2D(dropout, name="merge_dropout")(x)
    x = layers.Conv2D(segmentation_filters, 3, padding="same", activation="relu", name="final_conv")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="final_up")(x)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="seg")(x)
    return keras.Model(inputs, outputs, name="fpn_mobilenetv2")


class FPNSegmenter(MobileNetUNetSegmenter):
    """FPN with an ImageNet MobileNetV2 encoder; training, validation and resumption as every Keras
    segmenter (:class:`KerasSegmenter`)."""

    #: its registered row has no fine-tuning stage, which is all MobileNetUNetSegmenter's version 3 changed
    algorithm_version: ClassVar[int] = 2

    def __init__(self, input_size: int = 128, weights: str | None = "imagenet", train_encoder: bool = False,
                 pyramid_filters: int = 128, segmentation_filters: int = 64, dropout: float = 0.2,
                 loss: str = "bce_dice", learning_rate: float = 1e-3, epochs: int = 20, batch_size: int = 16,
                 validation_fraction: float = 0.1, patience: int = 5, augment: bool = True,
                 positive_fraction: float = 0.0, finetune_epochs: int = 0, finetune_learning_rate: float = 1e-4,
                 tune_threshold: bool = True, tta: str = "none", select_by: str = "val_loss",
                 checkpoint: str | None = None, random_state: int = 0, verbose: int | None = None):
        super().__init__(**base_arguments(locals()))
        self.pyramid_filters = pyramid_filters
        self.segmentation_filters = segmentation_filters
        self.dropout = dropout

    def _build(self, n_classes: int) -> keras.Model:
        return build_mobilenet_fpn(self.input_size, self.weights, self.train_encoder, self.pyramid_filters,
                                   self.segmentation_filters, self.dropout)
