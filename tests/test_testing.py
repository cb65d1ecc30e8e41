"""skinbench.testing.check_approach: the built-in approaches pass, broken estimators fail naming the check."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from skinbench import info
from skinbench.approaches.base import PathClassifier, PathSegmenter
from skinbench.approaches.baselines import DummyPathClassifier
from skinbench.data.images import image_size, read_image
from skinbench.testing import check_approach


def _class_of(name: str) -> type:
    module, cls = info.approach(name).estimator.split(":")
    return getattr(importlib.import_module(module), cls)


def _smoke(name: str, task: str, **extra) -> dict:
    a = info.approach(name)
    return {**a.params_for(task), **a.smoke_params, **extra}


@pytest.mark.parametrize("task,name", [("task1", "majority"), ("task2", "stratified"), ("task3", "all-background"),
                                       ("task4", "all-foreground"), ("task4", "ellipse"),
                                       ("task4", "classical-seg"), ("task3", "classical-dots")])
def test_cheap_builtin_approaches_pass(task, name):
    check_approach(_class_of(name), task, params=_smoke(name, task))


@pytest.mark.slow
def test_bovw_passes():
    check_approach(_class_of("bovw"), "task1", params=_smoke("bovw", "task1", n_words=10, image_size=48))


#: one deep approach per estimator class that trains in seconds at smoke size; the others (partial and
#: end-to-end fine-tuning, the MobileNetV2 U-Net family, Y-Net, FPN: 25-60 s each on 2 cores) are checked by
#: `python benchmarks/check_approaches.py`, and every one runs through the runner in `skinbench smoke`
CHEAP_DEEP = [("task1", "cnn-scratch"), ("task1", "transfer-mobilenetv2"), ("task4", "unet")]


@pytest.mark.slow
@pytest.mark.parametrize("task,name", CHEAP_DEEP)
def test_deep_approaches_pass(task, name):
    check_approach(_class_of(name), task, params=_smoke(name, task))


def test_a_joint_classifier_is_fitted_with_the_masks_it_needs(monkeypatch):
    """Y-Net's classifier trains on lesion masks too: the check hands them over as the runner does (it
    failed with "got none" before)."""
    seen = {}

    class _JointMean(_MeanColour):
        def fit(self, X, y, groups=None, masks=None):
            seen["masks"] = masks
            return super().fit(X, y, groups)

    check_approach(_JointMean, "task1")
    masks = seen["masks"]
    assert masks is not None and len(masks) > 0 and all(str(m).endswith(".png") for m in masks), masks


# ------------------------------------------------------------------------------- broken estimators
class _MeanColour(PathClassifier):
    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def _x(self, X):
        return np.array([read_image(p, size=(8, 8)).mean() for p in X])

    def fit(self, X, y, groups=None):
        if len(set(np.asarray(y).tolist())) < 2:
            raise ValueError("needs two classes")
        self.classes_ = np.unique(y)
        self.cut_ = float(np.median(self._x(X)))
        return self

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-(self._x(X) - self.cut_)))
        return np.stack([1 - p, p], axis=1)


class NotNormalised(_MeanColour):
    def predict_proba(self, X):
        return super().predict_proba(X) * 0.8


class WrongColumns(_MeanColour):
    def predict_proba(self, X):
        return super().predict_proba(X)[:, :1]


class Unseeded(_MeanColour):
    def predict_proba(self, X):
        p = np.random.default_rng().uniform(size=len(X))
        return np.stack([1 - p, p], axis=1)


class ChangesItsParams(_MeanColour):
    def __init__(self, C: float = 1.0, random_state: int = 0):
        self.C = float(C) * 2  # clone() sees a different value
        self.random_state = random_state


class WritesToCwd(_MeanColour):
    def fit(self, X, y, groups=None):
        Path("features.npy").write_bytes(b"x")
        return super().fit(X, y, groups)


class SilentOnEmpty(_MeanColour):
    def fit(self, X, y, groups=None):
        self.classes_ = np.array([0, 1])
        self.cut_ = float(np.median(self._x(X))) if len(X) else float("nan")
        return self


class CrashesOnOneClass(_MeanColour):
    def fit(self, X, y, groups=None):
        if len(y):
            self.second_ = np.flatnonzero(np.bincount(y))[1]  # IndexError with one class
        return super().fit(X, y, groups)


class HalfSizeMaps(PathSegmenter):
    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def fit(self, X, masks, y=None, groups=None):
        if len(X) == 0:
            raise ValueError("no training images")
        return self

    def predict_proba(self, X):
        for path in X:
            w, h = image_size(path)
            yield np.zeros((h // 2, w // 2), dtype=np.float32)


@pytest.mark.parametrize("cls,task,check", [
    (NotNormalised, "task1", "[proba-rows-sum-to-1]"),
    (WrongColumns, "task1", "[proba-shape]"),
    (Unseeded, "task1", "[deterministic]"),
    (ChangesItsParams, "task1", "[get-params]"),
    (WritesToCwd, "task1", "[writes-only-cache-dir] wrote outside cache_dir: "),
    (SilentOnEmpty, "task1", "[degenerate-training-set] fit on an empty training set succeeded silently"),
    (CrashesOnOneClass, "task1", "[degenerate-training-set] fit on a one-class training set crashed with IndexError"),
    (HalfSizeMaps, "task4", "[map-shape]"),
])
def test_broken_estimators_fail_naming_the_check(cls, task, check):
    with pytest.raises(AssertionError) as err:
        check_approach(cls, task)
    assert str(err.value).startswith(check), str(err.value)


def test_a_correct_small_estimator_passes():
    check_approach(_MeanColour, "task1")


def test_dummy_classifier_refuses_an_empty_training_set():
    """sklearn's DummyClassifier fits zero samples silently; predict_proba then failed far from the cause."""
    with pytest.raises(ValueError, match="at least one training image"):
        DummyPathClassifier().fit(np.array([], dtype=str), np.array([], dtype=int))
