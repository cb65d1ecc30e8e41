"""MobileNetV2 U-Net and the "Y-Net" (U-Net + classification head) of the HAM10000 reference study.

Encoder: ImageNet MobileNetV2 (frozen by default), skips at block_1/3/6/13 ``expand_relu``; decoder
256-128-64-32-16 (upsample x2, concatenate the skip, two 3x3 conv + BN + ReLU), sigmoid 3x3 conv.
The decoder starts from ``block_16_project`` (320 channels; the reference code used ``out_relu``, 1280
channels, which quadruples the first decoder stage for no gain in resolution). Those layer names are
the backbone's facts and live in :mod:`backbones` (``unet_layers``).
Y-Net adds GlobalAveragePooling -> Dense 128 -> Dropout 0.4 -> Dense 128 -> softmax on that same
activation and trains both heads together (segmentation loss x5, class-weighted cross-entropy x1).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import keras
from keras import layers
from sklearn.utils.class_weight import compute_class_weight

from skinbench.approaches import backbones
from skinbench.approaches.base import TF_TOLERANCE, PathClassifier
from skinbench.approaches.seg_losses import LOSSES, get_loss, per_output, soft_jaccard_metric, weighted_categorical_crossentropy
from skinbench.approaches.seg_training import KerasSegmenter
from skinbench.approaches.unet import conv_block
from skinbench.errors import ConfigError, DataError

BACKBONE = "mobilenet_v2"
BOTTLENECK, SKIPS = backbones.unet_layers(BACKBONE)
DECODER = (256, 128, 64, 32, 16)


def build_mobilenet_unet(input_size: int = 128, weights: str | None = "imagenet", train_encoder: bool = False,
                         n_classes: int = 0, n_outputs: int = 1, crop_size: int | None = None) -> keras.Model:
    """Outputs ``seg`` (``n_outputs`` sigmoid maps), plus ``cls`` (softmax over ``n_classes``) when n_classes > 0.
    ``crop_size``: the model takes any size (trained on crops, predicts whole ``input_size`` images)."""
    inputs, (top, *skips) = backbones.encoder_taps(BACKBONE, None if crop_size else input_size, weights,
                                                   train_encoder)  # the U-Net's taps: bottleneck, skips
    x = top
    for i, filters in enumerate(DECODER):
        x = layers.UpSampling2D(2)(x)
        if i < len(skips):
            x = layers.Concatenate()([x, skips[i]])
        x = conv_block(x, filters)
    outputs = {"seg": layers.Conv2D(n_outputs, 3, padding="same", activation="sigmoid", dtype="float32", name="seg")(x)}
    if n_classes:
        h = layers.GlobalAveragePooling2D()(top)
        h = layers.Dense(128, activation="relu")(h)
        h = layers.Dropout(0.4)(h)
        h = layers.Dense(128, activation="relu")(h)
        outputs["cls"] = layers.Dense(n_classes, activation="softmax", dtype="float32", name="cls")(h)
        return keras.Model(inputs, outputs, name="ynet_mobilenetv2")
    name = "unet_mobilenetv2" + (f"_x{n_outputs}" if n_outputs > 1 else "")
    return keras.Model(inputs, outputs["seg"], name=name + (f"_crop{crop_size}_at{input_size}" if crop_size else ""))


class MobileNetUNetSegmenter(KerasSegmenter):
    """U-Net with an ImageNet MobileNetV2 encoder (``weights=None`` only for tests: random encoder).

    ``crop_size``: train on random ``crop_size`` crops of the images resized to ``input_size`` (a crop of a
    positive image always holds foreground) and predict whole images at ``input_size``: small globules
    get more pixels at the cost per training step of a ``crop_size`` model."""

    #: 3: its fine-tuning stage keeps the decoder stage's weights unless it beats them on validation
    algorithm_version: ClassVar[int] = 3
    _allowed: ClassVar[dict[str, Any]] = {"loss": LOSSES}
    input_multiple: ClassVar[int] = backbones.spec(BACKBONE).stride

    def __init__(self, input_size: int = 128, weights: str | None = "imagenet", train_encoder: bool = False,
                 loss: str = "bce_dice", learning_rate: float = 1e-3, epochs: int = 20, batch_size: int = 16,
                 validation_fraction: float = 0.1, patience: int = 5, augment: bool = True,
                 positive_fraction: float = 0.0, finetune_epochs: int = 0, finetune_learning_rate: float = 1e-4,
                 tune_threshold: bool = True, tta: str = "none", select_by: str = "val_loss",
                 crop_size: int | None = None, checkpoint: str | None = None, random_state: int = 0,
                 verbose: int | None = None):
        self.input_size = input_size
        self.weights = weights
        self.train_encoder = train_encoder
        self.loss = loss
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.augment = augment
        self.positive_fraction = positive_fraction
        self.finetune_epochs = finetune_epochs
        self.finetune_learning_rate = finetune_learning_rate
        self.tune_threshold = tune_threshold
        self.tta = tta
        self.select_by = select_by
        self.crop_size = crop_size
        self.checkpoint = checkpoint
        self.random_state = random_state
        self.verbose = verbose

    def _build(self, n_classes: int) -> keras.Model:
        return build_mobilenet_unet(self.input_size, self.weights, self.train_encoder,
                                    n_classes if self.joint else 0, crop_size=self.crop_size)

    def _compile(self, model: keras.Model, y, n_classes: int, learning_rate: float) -> None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=get_loss(self.loss),
                      metrics=[soft_jaccard_metric])

    def _unfreeze(self, model: keras.Model) -> None:
        """Encoder trainable except its BatchNorm layers, which keep their ImageNet statistics (keras-io
        fine-tuning guide): batches of 16 rare-feature crops would otherwise re-estimate them badly."""
        encoder = model.get_layer("encoder")
        encoder.trainable = True  # does not reach the layers of this wrapper model: set each one
        for layer in encoder.layers:
            layer.trainable = not isinstance(layer, layers.BatchNormalization)


def base_arguments(values: dict) -> dict:
    """The :class:`MobileNetUNetSegmenter` arguments among a subclass ``__init__``'s ``locals()``: subclasses
    spell out every parameter (scikit-learn reads them from the signature) and hand the shared ones on."""
    import inspect

    names = set(inspect.signature(MobileNetUNetSegmenter.__init__).parameters) - {"self"}
    return {k: v for k, v in values.items() if k in names}


class MultiOutputUNetSegmenter(MobileNetUNetSegmenter):
    """One MobileNetV2 U-Net with a sigmoid map per target (the ISIC 2018 Task 2 teams' set-up for the five
    attributes): ``fit`` takes an (n_images, n_targets) table of mask paths, ``predict_proba`` returns
    target ``output``. The training folder does not depend on ``output``, so scoring each target reuses
    one training. Loss: ``loss`` per output, averaged (``seg_losses.per_output``)."""

    #: 4: a validation cut on the end of the 0.05..0.95 grid is refined past it (``tuned_threshold``); its
    #: records had such cuts (globules, milia, negative network at 0.05, streaks at 0.95). The other
    #: segmenters' records all have cuts inside the grid, which the refinement leaves as they were.
    algorithm_version: ClassVar[int] = 4

    def __init__(self, input_size: int = 128, weights: str | None = "imagenet", train_encoder: bool = False,
                 loss: str = "bce_dice", output: int = 0, learning_rate: float = 1e-3, epochs: int = 20,
                 batch_size: int = 16, validation_fraction: float = 0.1, patience: int = 5, augment: bool = True,
                 positive_fraction: float = 0.0, finetune_epochs: int = 0, finetune_learning_rate: float = 1e-4,
                 tune_threshold: bool = True, tta: str = "none", select_by: str = "val_loss",
                 checkpoint: str | None = None, random_state: int = 0, verbose: int | None = None):
        super().__init__(**base_arguments(locals()))
        self.output = output

    def _build(self, n_classes: int) -> keras.Model:
        return build_mobilenet_unet(self.input_size, self.weights, self.train_encoder, n_outputs=self.n_outputs_)

    def _compile(self, model: keras.Model, y, n_classes: int, learning_rate: float) -> None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=per_output(get_loss(self.loss)),
                      metrics=[soft_jaccard_metric])


class YNetSegmenter(MobileNetUNetSegmenter):
    """MobileNetV2 U-Net + classification head trained jointly; ``fit`` needs ``y`` (class indices)."""

    joint = True
    #: its registered rows have no fine-tuning stage, which is all version 3 changed
    algorithm_version: ClassVar[int] = 2

    def __init__(self, input_size: int = 128, weights: str | None = "imagenet", train_encoder: bool = False,
                 loss: str = "bce_dice", seg_loss_weight: float = 5.0, n_classes: int = 0,
                 learning_rate: float = 1e-3, epochs: int = 20, batch_size: int = 16,
                 validation_fraction: float = 0.1, patience: int = 5, augment: bool = True,
                 positive_fraction: float = 0.0, finetune_epochs: int = 0, finetune_learning_rate: float = 1e-4,
                 tune_threshold: bool = True, tta: str = "none", select_by: str = "val_loss",
                 checkpoint: str | None = None, random_state: int = 0, verbose: int | None = None):
        super().__init__(**base_arguments(locals()))
        self.seg_loss_weight = seg_loss_weight
        self.n_classes = n_classes

    def _compile(self, model: keras.Model, y, n_classes: int, learning_rate: float) -> None:
        present = np.unique(y)
        weights = np.ones(n_classes)
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
        self.class_weights_ = weights
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss={"seg": get_loss(self.loss), "cls": weighted_categorical_crossentropy(weights)},
                      loss_weights={"seg": self.seg_loss_weight, "cls": 1.0},
                      metrics={"seg": [soft_jaccard_metric], "cls": ["accuracy"]})

    def predict_classes_proba(self, X) -> np.ndarray:
        """(n_images, n_classes) softmax scores of the classification head."""
        return np.concatenate([self._predict_arrays(x)[1] for _, x in self._batches(X)])


class YNetClassifier(PathClassifier):
    """Task2 view of the Y-Net: trains the same joint model, scores its classification head.

    ``fit`` needs the lesion masks: the runner passes the Dataset's (``ApproachInfo.needs_masks``). The
    parameters are the Y-Net's own; with the same data and parameters as a task4 Y-Net run (the registry
    gives both rows the same), that run's training folder is reused, not retrained.
    """

    #: 2: the Y-Net's lesion-aware validation split (KerasSegmenter version 2); 3: the Y-Net's own parameters
    algorithm_version: ClassVar[int] = 3
    #: TensorFlow computes (features or training): identical on the same CPU and instruction set only
    reproducibility: ClassVar[str] = "bitwise-same-cpu"
    reproducibility_tolerance: ClassVar[float] = TF_TOLERANCE
    _allowed: ClassVar[dict[str, Any]] = {"loss": LOSSES}

    def __init__(self, input_size: int = 128, weights: str | None = "imagenet", train_encoder: bool = False,
                 loss: str = "bce_dice", seg_loss_weight: float = 5.0, n_classes: int = 0,
                 learning_rate: float = 1e-3, epochs: int = 20, batch_size: int = 16,
                 validation_fraction: float = 0.1, patience: int = 5, augment: bool = True,
                 checkpoint: str | None = None, random_state: int = 0):
        self.input_size = input_size
        self.weights = weights
        self.train_encoder = train_encoder
        self.loss = loss
        self.seg_loss_weight = seg_loss_weight
        self.n_classes = n_classes
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.augment = augment
        self.checkpoint = checkpoint
        self.random_state = random_state

    def fit(self, X, y, groups=None, masks=None) -> "YNetClassifier":
        X = np.asarray(X, dtype=str)
        if masks is None:
            raise ConfigError("YNetClassifier trains on lesion masks too and got none",
                              fix="call fit(X, y, groups, masks=Dataset.masks('lesion')) on a dataset with "
                                  "lesion masks")
        masks = np.asarray(masks, dtype=str)
        if len(masks) != len(X):
            raise ConfigError(f"{len(X)} images but {len(masks)} masks", fix="pass one mask path per image")
        empty = np.flatnonzero(masks == "")
        if len(empty):
            raise DataError(f"{len(empty)} of {len(X)} training images have no lesion mask (the Y-Net trains on "
                            "masks too)", path=X[empty[0]],
                            fix="add those images' lesion mask files or leave the images out")
        y = np.asarray(y, dtype=np.int64)
        # every parameter passed through: with task4's Y-Net parameters this is its training folder, reused
        self.ynet_ = YNetSegmenter(**self.get_params(), tune_threshold=False)
        self.ynet_.fit(X, masks, y, groups=groups)
        self.classes_ = np.arange(self.ynet_.n_classes_)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.ynet_.predict_classes_proba(X).astype(float)
