"""A small convolutional network trained from scratch on the task's images alone.

The deep classification row that needs nothing beyond the data: no ImageNet file, no download, so
``skinbench demo`` can show classical and deep approaches side by side offline in its first minute.
It never loads weights: it has no ``weights`` parameter, so it cannot fall back to random "pretrained"
weights either; its numbers are what a CNN learns from these images only (compare the transfer rows).

Architecture: ``depth`` blocks of 3x3 conv + batch norm + ReLU + 2x2 max pooling, doubling from
``base_filters``; global average pooling, dropout, softmax. Adam on class-balanced cross-entropy (the
classes weigh equally, as in the transfer heads), random flips as augmentation, early stopping on the
validation loss of a lesion-aware validation split of the training images (best weights restored).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from skinbench.approaches.base import TF_TOLERANCE, PathClassifier, holdout_split, training_classes
from skinbench.data.images import read_image


class ScratchCNNClassifier(PathClassifier):
    """Small CNN, random initialisation, trained on the training split only."""

    algorithm_version: ClassVar[int] = 1
    #: TensorFlow computes (features or training): identical on the same CPU and instruction set only
    reproducibility: ClassVar[str] = "bitwise-same-cpu"
    reproducibility_tolerance: ClassVar[float] = TF_TOLERANCE

    def __init__(self, input_size: int = 128, base_filters: int = 16, depth: int = 4, dropout: float = 0.3,
                 learning_rate: float = 1e-3, epochs: int = 40, batch_size: int = 32, val_size: float = 0.15,
                 patience: int = 8, augment: bool = True, class_weight: str | None = "balanced",
                 random_state: int = 0, verbose: int = 1):
        self.input_size = input_size
        self.base_filters = base_filters
        self.depth = depth
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.val_size = val_size
        self.patience = patience
        self.augment = augment
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    def _pixels(self, X: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) uint8: every image resized once (small enough to hold in memory)."""
        size = (int(self.input_size), int(self.input_size))
        return np.stack([read_image(path, size) for path in np.asarray(X).astype(str)])

    def _build(self, n_classes: int):
        import keras
        from keras import layers

        inputs = keras.Input((self.input_size, self.input_size, 3))
        x = layers.Rescaling(1.0 / 255)(inputs)
        if self.augment:  # active in training only
            x = layers.RandomFlip("horizontal_and_vertical", seed=self.random_state)(x)
        for level in range(self.depth):
            x = layers.Conv2D(self.base_filters * 2 ** level, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.GlobalAveragePooling2D()(x)
        if self.dropout > 0:
            x = layers.Dropout(self.dropout)(x)
        outputs = layers.Dense(n_classes, activation="softmax", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name=f"scratch_cnn_b{self.base_filters}_d{self.depth}")
        model.compile(keras.optimizers.Adam(self.learning_rate), "sparse_categorical_crossentropy")
        return model

    def _split(self, y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return holdout_split(y, groups, self.val_size, self.random_state)

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "ScratchCNNClassifier":
        import keras

        from skinbench.approaches.transfer import class_weights
        from skinbench.progress import keras_callback

        y = np.asarray(y).astype(np.int64)
        self.classes_ = training_classes(y)
        tr, va = self._split(y, groups)
        pixels = self._pixels(X)
        keras.utils.set_random_seed(self.random_state)
        self.model_ = self._build(len(self.classes_))
        validation = (pixels[va], y[va]) if len(va) else None
        callbacks = [keras.callbacks.EarlyStopping("val_loss", patience=self.patience, restore_best_weights=True)
                     ] if validation is not None and self.patience else []
        if self.verbose:
            callbacks.append(keras_callback("scratch CNN", self.epochs))
        weights = class_weights(y[tr], len(self.classes_)) if self.class_weight == "balanced" else None
        hist = self.model_.fit(pixels[tr], y[tr], batch_size=self.batch_size, epochs=self.epochs, shuffle=True,
                               validation_data=validation, callbacks=callbacks, class_weight=weights, verbose=0)
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        proba = self.model_.predict(self._pixels(X), batch_size=self.batch_size, verbose=0)
        return np.asarray(proba, dtype=np.float64)
