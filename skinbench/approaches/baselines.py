"""Trivial baselines: the floor every table is read against."""

from __future__ import annotations

from typing import Any, ClassVar, Iterator

import numpy as np
from sklearn.dummy import DummyClassifier

from skinbench.approaches.base import PathClassifier, PathSegmenter
from skinbench.data.images import image_size, read_mask


class DummyPathClassifier(PathClassifier):
    """sklearn's DummyClassifier on image paths (``prior``: majority label, prior scores; ``stratified``)."""

    #: sklearn's strategies that need no further argument ("constant" needs one this class does not take)
    _allowed: ClassVar[dict[str, Any]] = {"strategy": ("most_frequent", "prior", "stratified", "uniform")}

    def __init__(self, strategy: str = "prior", random_state: int = 0):
        self.strategy = strategy
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "DummyPathClassifier":
        if len(y) == 0:  # sklearn fits zero samples silently, then predict_proba fails far from the cause
            raise ValueError("DummyPathClassifier needs at least one training image, got none")
        self.dummy_ = DummyClassifier(strategy=self.strategy, random_state=self.random_state)
        self.dummy_.fit(np.zeros((len(y), 1)), y)
        self.classes_ = self.dummy_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.dummy_.predict_proba(np.zeros((len(X), 1))), dtype=float)


class ConstantSegmenter(PathSegmenter):
    """Every pixel background (0.0) or foreground (1.0)."""

    def __init__(self, value: float = 0.0):
        self.value = value

    def fit(self, X: np.ndarray, masks: np.ndarray, y: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "ConstantSegmenter":
        return self

    def predict_proba(self, X: np.ndarray) -> Iterator[np.ndarray]:
        for path in X:
            w, h = image_size(path)
            yield np.full((h, w), self.value, dtype=np.float32)


class EllipseSegmenter(PathSegmenter):
    """A centred ellipse covering the mean training lesion fraction: 'where lesions usually are'."""

    def __init__(self, max_train_masks: int = 500, random_state: int = 0):
        self.max_train_masks = max_train_masks
        self.random_state = random_state

    def fit(self, X: np.ndarray, masks: np.ndarray, y: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "EllipseSegmenter":
        rng = np.random.default_rng(self.random_state)
        paths = [m for m in masks if m]
        if len(paths) > self.max_train_masks:
            paths = list(rng.choice(paths, self.max_train_masks, replace=False))
        fractions = [read_mask(p).mean() for p in paths]
        self.area_fraction_ = float(np.mean(fractions)) if fractions else 0.25
        return self

    def predict_proba(self, X: np.ndarray) -> Iterator[np.ndarray]:
        # ellipse with the image's aspect: area pi*a*b = f*w*h with a/b = w/h
        scale = np.sqrt(self.area_fraction_ / np.pi)
        for path in X:
            w, h = image_size(path)
            yy, xx = np.ogrid[0:h, 0:w]  # broadcast: the same values as a full grid, without two int64 copies
            a, b = max(scale * w, 1.0), max(scale * h, 1.0)
            inside = ((xx - (w - 1) / 2) / a) ** 2 + ((yy - (h - 1) / 2) / b) ** 2 <= 1.0
            yield inside.astype(np.float32)
