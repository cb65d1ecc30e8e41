"""The two estimator contracts every approach follows (scikit-learn conventions).

``X`` is always a 1-D array of image paths (``Dataset.paths``); estimators read images with
:mod:`skinbench.data.images`, so a runner, a test or a notebook drives them the same way.
Constructor arguments are hyper-parameters only (``get_params``/``set_params`` work); the runner
sets ``random_state`` and, where the estimator has it, ``cache_dir``.

``algorithm_version`` is the estimator's declared numeric version: it enters every record's run key
(:mod:`skinbench.provenance`), so bump it in the same change that alters what the estimator computes
(a rename, a moved function or a comment does not). The golden check (tests/test_provenance.py)
fails when a deterministic estimator's numbers move while its version stays.

``reproducibility`` (with ``reproducibility_tolerance``) declares how a rerun of the same run key
reproduces the numbers, which ``benchmarks/regenerate.py --verify`` applies and the dashboard shows:
``"bitwise"`` on any machine (NumPy, OpenCV and scikit-learn on the same inputs), ``"bitwise-same-cpu"``
(identical on the same CPU and instruction set, else within the tolerance: TensorFlow's CPU kernels pick
other code paths per instruction set, and a training run amplifies their float rounding), or
``"tolerance"`` (within it everywhere). A registered approach may state its own (``ApproachInfo``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from skinbench.data.splits import validation_split
from skinbench.errors import ConfigError, DataError

#: the classes of :data:`PathClassifier.reproducibility`, strictest first
REPRODUCIBILITY = ("bitwise", "bitwise-same-cpu", "tolerance")
#: the stated tolerance of TensorFlow-trained estimators across instruction sets (absolute, on every stored
#: metric): the MLP head on cached MobileNetV2 features moved 0.039 balanced accuracy between an AMD EPYC
#: and an Intel Xeon (commit e7a83de), its early-stopped epoch amplifying float rounding of the features
TF_TOLERANCE = 0.05


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


def allowed(cls: type) -> dict[str, Any]:
    """``{parameter: allowed values}`` that ``cls`` and its bases declare in ``_allowed`` (the subclass
    wins). A declared value is a tuple, or a dict whose keys are the names (a registry of losses).
    ``skinbench.params.allowed_values`` reads the same declarations from source, so ``-p``/``-g``
    values are refused before any work; keep each one a literal, a module-level constant or ``a + b``."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get("_allowed", {}))
    return out


def check_allowed(estimator: Any) -> None:
    """fit's check of the declared values, for Python callers that construct an estimator themselves
    (runs through the CLI and the runner were checked before any work by ``params.validate_params``)."""
    for name, choices in allowed(type(estimator)).items():
        value = getattr(estimator, name, None)
        if hasattr(estimator, name) and not _is_one_of(value, choices):
            listed = ", ".join("none" if c is None else str(c) for c in choices)
            raise ConfigError(f"{type(estimator).__name__}: unknown {name} {value!r}", fix=f"use one of: {listed}")


def _is_one_of(value: Any, choices: Mapping | tuple) -> bool:
    try:
        return value in choices
    except TypeError:  # an unhashable value is no key of a dict of names
        return False


def training_classes(y: np.ndarray) -> np.ndarray:
    """The classes of integer training labels, refused in one line unless there are at least two and they
    are 0..k-1 indices (``Dataset.y``): a Keras head is sized by them."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise ConfigError(f"the training labels hold a single class ({classes.tolist()}) among {len(y)} images",
                          fix="train on images of at least two classes")
    if not np.array_equal(classes, np.arange(len(classes))):
        raise ConfigError(f"labels must be 0..k-1 indices, got {classes.tolist()}",
                          fix="pass Dataset.y (indices into class_names)")
    return classes


def holdout_split(y: np.ndarray, groups: np.ndarray | None, val_size: float, seed: int | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices for an estimator that picks its epoch or threshold on held-out training
    images (lesion-aware with ``groups``); ``val_size`` 0: everything fits, nothing is held out. A set too
    small to split is one ConfigError naming the fix, not sklearn's message deep inside ``fit``."""
    if not val_size:
        return np.arange(len(y)), np.array([], dtype=int)
    try:
        return validation_split(y, groups, val_size, seed)
    except (DataError, ValueError) as err:  # ValueError: sklearn, fewer members per class than folds
        raise ConfigError(f"cannot hold out a {val_size:.0%} validation split: {err}",
                          fix="provide more images per class, or -p val_size=0 to train fixed epochs "
                              "without validation") from None


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
    #: how its records reproduce (module docstring; :data:`REPRODUCIBILITY`) and the tolerance that applies
    reproducibility: ClassVar[str] = "bitwise"
    reproducibility_tolerance: ClassVar[float] = 0.0
    #: parameters with a fixed set of values: {name: tuple, or dict whose keys are the names} (see :func:`allowed`)
    _allowed: ClassVar[dict[str, Any]] = {}

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PathSegmenter(BaseEstimator):
    """Base for segmenters on image paths: ``predict`` thresholds ``predict_proba`` at ``threshold``."""

    algorithm_version: ClassVar[int] = 1
    #: how its records reproduce (module docstring; :data:`REPRODUCIBILITY`) and the tolerance that applies
    reproducibility: ClassVar[str] = "bitwise"
    reproducibility_tolerance: ClassVar[float] = 0.0
    #: parameters with a fixed set of values (see :func:`allowed`)
    _allowed: ClassVar[dict[str, Any]] = {}
    threshold: float = 0.5

    def predict(self, X: np.ndarray) -> Iterable[np.ndarray]:
        for prob in self.predict_proba(X):
            yield prob >= self.threshold
