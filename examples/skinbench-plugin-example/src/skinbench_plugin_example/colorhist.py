"""Colour histograms + logistic regression: a classical estimator following skinbench's classifier contract."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression

from skinbench.approaches.base import PathClassifier
from skinbench.data.images import read_image


class ColorHistogramClassifier(PathClassifier):
    """HSV colour histograms of the whole image, then a class-balanced logistic regression."""

    #: bump when what fit/predict compute changes: it enters every record's run key
    algorithm_version: ClassVar[int] = 1

    def __init__(self, bins: int = 8, C: float = 1.0, image_size: int = 128, random_state: int = 0):
        self.bins = bins
        self.C = C
        self.image_size = image_size
        self.random_state = random_state

    def _features(self, X: np.ndarray) -> np.ndarray:
        rows = []
        for path in X:
            hsv = cv2.cvtColor(read_image(path, size=(self.image_size, self.image_size)), cv2.COLOR_RGB2HSV)
            hist = [np.histogram(hsv[..., c], bins=self.bins, range=(0, 180 if c == 0 else 256))[0]
                    for c in range(3)]
            rows.append(np.concatenate(hist) / hsv[..., 0].size)
        return np.asarray(rows, dtype=float)

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "ColorHistogramClassifier":
        y = np.asarray(y)
        if len(y) == 0 or len(np.unique(y)) < 2:
            raise ValueError(f"ColorHistogramClassifier needs at least two classes to fit, got {np.unique(y).tolist()}")
        self.model_ = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000,
                                         random_state=self.random_state)
        self.model_.fit(self._features(X), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(self._features(X))
