"""The two estimator contracts every approach follows (scikit-learn conventions).

``X`` is always a 1-D array of image paths (``Dataset.paths``); estimators read images with
:mod:`skinbench.data.images`, so a runner, a test or a notebook drives them the same way.
Constructor arguments are hyper-parameters only (``get_params``/``set_params`` work); the runner
sets ``random_state`` and, where the estimator has it, ``cache_dir``.

``algorithm_version`` is the estimator's declared numeric version: it enters every record's run key
(:mod:`skinbench.provenance`), so bump it in the same change that alters what the estimator computes
(a rename, a moved function or a comment does not). The golden check (tests/test_provenance.py)
fails when a deterministic estimator's numbers move while its version stays.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


@runtime_checkable
class Classifier(Protocol):
    classes_: np.ndarray

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "Classifier":
        """``y`` integer class indices; ``groups`` lesion ids for leakage-free validation splits."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n_images, len(classes_)) scores in [0, 1], rows summing to 1."""


@runtime_checkable
class Segmenter(Protocol):
    def fit(self, X: np.ndarray, masks: np.ndarray, y: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "Segmenter":
        """``masks`` mask paths; ``y`` optional class indices (Y-Net); ``groups`` lesion ids, so a
        validation split never holds one lesion on both sides."""

    def predict_proba(self, X: np.ndarray) -> Iterable[np.ndarray]:
        """One float32 (H, W) foreground probability map per image, at that image's own size."""


class KerasPickleMixin:
    """For estimators holding fitted Keras models, so that a stored one loads back (the cross-dataset
    model store): its models are pickled uncompiled (a segmenter's loss is a closure Keras cannot find
    again) and it unpickles through :func:`skinbench.approaches.keras_layers.rebuild`, so that module is
    imported, and skinbench's own layers registered, before Keras reads the models (unpickling imports
    the estimator's module only, which may import Keras lazily)."""

    def __reduce_ex__(self, protocol: Any) -> tuple:
        from skinbench.approaches import keras_layers

        return keras_layers.rebuild, (type(self), keras_layers.picklable_state(self.__getstate__()))


class PathClassifier(ClassifierMixin, BaseEstimator):
    """Base for classifiers on image paths: ``predict`` is argmax over ``predict_proba``."""

    algorithm_version: ClassVar[int] = 1

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PathSegmenter(BaseEstimator):
    """Base for segmenters on image paths: ``predict`` thresholds ``predict_proba`` at ``threshold``."""

    algorithm_version: ClassVar[int] = 1
    threshold: float = 0.5

    def predict(self, X: np.ndarray) -> Iterable[np.ndarray]:
        for prob in self.predict_proba(X):
            yield prob >= self.threshold
