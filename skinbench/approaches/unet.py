"""The reference Keras U-Net (Ronneberger et al. 2015) with width and depth as hyper-parameters.

The reference study used base 64 and depth 4 (64-128-256-512-1024); the default here is base 16 so a
model trains on two CPU cores in minutes. Width (``base_filters``), depth and ``dropout`` are parameters. Everything else follows the reference: two 3x3 conv + batch
norm + ReLU per level, max pooling down, transposed convolutions up, skip concatenation, sigmoid.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
from keras import layers

from skinbench.approaches.seg_losses import LOSSES, get_loss, soft_jaccard_metric
from skinbench.approaches.seg_training import KerasSegmenter


def conv_block(x, filters: int):
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    return x


def build_unet(input_size: int = 128, base_filters: int = 16, depth: int = 4, dropout: float = 0.0) -> keras.Model:
    """U-Net on float images in 0..255; output (input_size, input_size, 1) sigmoid probabilities.

    ``dropout`` > 0: that rate after the bottleneck and after each expanding block (as the flexible
    Keras U-Nets do); 0 builds no Dropout layer at all."""
    def drop(x):
        return layers.Dropout(dropout)(x) if dropout > 0 else x

    inputs = keras.Input((input_size, input_size, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    skips = []
    for level in range(depth):                                   # contracting path
        x = conv_block(x, base_filters * 2 ** level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = drop(conv_block(x, base_filters * 2 ** depth))           # bottleneck
    for level in reversed(range(depth)):                         # expanding path
        x = layers.Conv2DTranspose(base_filters * 2 ** level, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = drop(conv_block(x, base_filters * 2 ** level))
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"unet_b{base_filters}_d{depth}")


class UNetSegmenter(KerasSegmenter):
    """U-Net trained from scratch with a choice of loss (see :mod:`seg_losses`).

    ``loss_params`` are passed to the loss factory (e.g. ``{"pos_weight": 20}`` for ``wbce``).
    ``checkpoint``: a ``*.weights.h5`` file to load instead of training (weights trained elsewhere).
    """

    _allowed: ClassVar[dict[str, Any]] = {"loss": LOSSES}

    def __init__(self, input_size: int = 128, base_filters: int = 16, depth: int = 4, dropout: float = 0.0,
                 loss: str = "bce_dice",
                 loss_params: dict | None = None, learning_rate: float = 1e-3, epochs: int = 30,
                 batch_size: int = 16, validation_fraction: float = 0.15, patience: int = 8,
                 augment: bool = True, positive_fraction: float = 0.0, tune_threshold: bool = True,
                 tta: str = "none", select_by: str = "val_loss",
                 checkpoint: str | None = None, random_state: int = 0, verbose: int | None = None):
        self.input_size = input_size
        self.base_filters = base_filters
        self.depth = depth
        self.dropout = dropout
        self.loss = loss
        self.loss_params = loss_params
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.augment = augment
        self.positive_fraction = positive_fraction
        self.tune_threshold = tune_threshold
        self.tta = tta
        self.select_by = select_by
        self.checkpoint = checkpoint
        self.random_state = random_state
        self.verbose = verbose

    def _build(self, n_classes: int) -> keras.Model:
        return build_unet(self.input_size, self.base_filters, self.depth, self.dropout)

    def _compile(self, model: keras.Model, y, n_classes: int, learning_rate: float) -> None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=get_loss(self.loss, **(self.loss_params or {})), metrics=[soft_jaccard_metric])
