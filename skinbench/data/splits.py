"""Lesion-aware stratified splits: images of one lesion never straddle two sides of a split.

HAM10000 has up to six images of one lesion; a random image split puts near-duplicates on both sides
and inflates test scores. Every split here keeps each group (lesion id) on one side and stratifies by
label, using scikit-learn's ``StratifiedGroupKFold`` (one fold is held out).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from skinbench.errors import DataError

if TYPE_CHECKING:  # data.base imports nothing of this module, but generic -> splits -> base would be a cycle
    from skinbench.data.base import Dataset


def _n_folds(fraction: float) -> int:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    return max(2, int(round(1.0 / fraction)))


def _check(y: np.ndarray, groups: np.ndarray | None, n_folds: int, what: str, min_classes: int = 2) -> None:
    classes = np.unique(y)
    if len(classes) < min_classes:
        raise DataError(f"cannot make a stratified {what} split: only one class ({classes.tolist()}) "
                        f"among {len(y)} images", fix="provide images of at least two classes")
    units = len(np.unique(groups)) if groups is not None else len(y)
    if units < n_folds:
        kind = "lesions" if groups is not None else "images"
        raise DataError(f"cannot make a {what} split: {units} {kind} is too few for a 1/{n_folds} held-out part",
                        fix=f"provide at least {n_folds} {kind} (more for a meaningful score)")


def held_out_split(y, groups=None, fraction: float = 0.2, seed: int = 0, what: str = "train/test",
                   min_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(keep_idx, held_out_idx): about ``fraction`` held out, stratified by ``y``, whole groups only.

    ``groups=None`` means every image is its own lesion. Deterministic for a given ``seed``. Each side
    must hold ``min_classes`` classes (1: ``y`` is only a stratum, e.g. a segmenter's empty/non-empty mask).
    """
    y = np.asarray(y)
    groups = None if groups is None else np.asarray(groups).astype(str)
    if groups is not None and len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} entries but y has {len(y)}")
    n_folds = _n_folds(fraction)
    _check(y, groups, n_folds, what, min_classes)
    dummy = np.zeros((len(y), 1))
    group_ids = groups if groups is not None else np.arange(len(y)).astype(str)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only k members": checked below
        warnings.simplefilter("ignore", UserWarning)
        keep, held = next(splitter.split(dummy, y, group_ids))
    if len(held) == 0 or len(np.unique(y[keep])) < min_classes:
        raise DataError(f"the {what} split left a side without data or with one class ({len(y)} images)",
                        fix="provide more images per class")
    return np.sort(keep), np.sort(held)


def lesion_split(y, groups=None, test_size: float = 0.2, seed: int = 0) -> np.ndarray:
    """Split labels ("train"/"test") per image: lesion-aware, stratified, seeded."""
    _, test = held_out_split(y, groups, test_size, seed, what="train/test")
    split = np.full(len(np.asarray(y)), "train", dtype=object)
    split[test] = "test"
    return split


def validation_split(y, groups=None, fraction: float = 0.15, seed: int = 0,
                     min_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) inside a training set, for choosing hyper-parameters without the test set.

    Lesion-aware when ``groups`` (lesion ids) are given, stratified by ``y``; raises :class:`DataError`
    for a single class or too few images/lesions.
    """
    return held_out_split(y, groups, fraction, seed, what="validation", min_classes=min_classes)


def limit_images(ds: "Dataset", n: int | None, seed: int) -> "Dataset":
    """A deterministic, stratified subset of at most ``n`` images (``--limit``: smoke and quick runs).

    One rule for every side that is limited (a run's train and test splits, a foreign test set, the
    test split an external submission is scored on), so ``score --limit N`` scores the images a
    ``run --limit N`` predicted."""
    if n is None or len(ds) <= n:
        return ds
    idx = np.arange(len(ds))
    labels = ds.frame["label"].to_numpy(dtype=str)
    try:
        keep, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify: plain sample
        keep = np.random.default_rng(seed).choice(idx, n, replace=False)
    return ds.subset(np.sort(keep))
