"""Lesion-aware stratified splits: images of one lesion never straddle two sides of a split.

HAM10000 has up to six images of one lesion; a random image split puts near-duplicates on both sides
and inflates test scores. Every split here keeps each group (lesion id) on one side and stratifies by
label, using scikit-learn's ``StratifiedGroupKFold`` (one fold is held out).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from skinbench.cache import make_key
from skinbench.errors import ConfigError, DataError

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



# ------------------------------------------------------------------ learning-curve subsets

#: training-set fractions of a learning curve (issue 32): each subset inside the next
DEFAULT_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
#: declared version of the nested-subset rule below: it enters the run key of every fraction point, so a
#: change of the rule (another ordering, another rounding) makes exactly those records stale
SUBSET_VERSION = 1


def check_fraction(fraction: float) -> float:
    """``fraction`` as a float in (0, 1], else a ConfigError (a user types it in a sweep definition)."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"training fraction {fraction!r} is not in (0, 1]",
                          fix="use fractions such as 0.05, 0.1, 0.25, 0.5, 1")
    return value


def nested_order(y, groups=None, seed: int = 0) -> np.ndarray:
    """Lesions (``groups``; None: every image its own) in the order a learning curve takes them.

    Within each class the lesions are shuffled with ``seed``. The order opens with one lesion of every
    class (seeded order), so each class is present as soon as a subset holds as many lesions as there are
    classes; after that each next lesion comes from the class furthest below its share of the lesions
    taken so far (seeded ties), so every longer prefix holds each class within about one lesion of its
    share. A lesion's class is its first image's. Returns indices into ``np.unique(groups)``.
    """
    y = np.asarray(y)
    if groups is None:
        groups = np.arange(len(y)).astype(str)
    groups = np.asarray(groups).astype(str)
    _, first = np.unique(groups, return_index=True)
    labels, unit_class = np.unique(y[first], return_inverse=True)
    rng = np.random.default_rng([SUBSET_VERSION, seed])
    queues = [rng.permutation(np.flatnonzero(unit_class == c)).tolist() for c in range(len(labels))]
    sizes = np.array([len(q) for q in queues], dtype=float)
    share = sizes / sizes.sum()
    taken = np.zeros(len(labels))
    order: list[int] = []
    for c in rng.permutation(len(labels)):  # one lesion of each class first
        order.append(queues[c].pop())
        taken[c] += 1
    ties = rng.random((len(first), len(labels))) * 1e-9
    while len(order) < len(first):
        deficit = share * (len(order) + 1) - taken + ties[len(order)]
        deficit[taken >= sizes] = -np.inf
        c = int(np.argmax(deficit))
        order.append(queues[c].pop())
        taken[c] += 1
    return np.asarray(order, dtype=np.int64)


@lru_cache(maxsize=16)
def _order(y: tuple[str, ...], groups: tuple[str, ...], seed: int) -> np.ndarray:
    """:func:`nested_order`, memoised: every fraction of a curve (and ``regenerate.py --status``, which keys
    each point) draws from the same order, and drawing it is a Python loop over the lesions."""
    order = nested_order(np.asarray(y), np.asarray(groups), seed)
    order.setflags(write=False)
    return order


def nested_subset(y, groups=None, fraction: float = 1.0, seed: int = 0) -> np.ndarray:
    """Sorted indices of the images in the ``fraction`` subset: the shortest prefix of
    :func:`nested_order` holding at least ``round(fraction * n_images)`` images (at least one lesion).

    Nested by construction (a smaller fraction is a shorter prefix of the same order), lesion-aware
    (whole lesions only), stratified (see :func:`nested_order`) and seeded: seeds are subset paths."""
    fraction = check_fraction(fraction)
    y = np.asarray(y)
    if groups is None:
        groups = np.arange(len(y)).astype(str)
    groups = np.asarray(groups).astype(str)
    if len(y) == 0 or fraction == 1.0:
        return np.arange(len(y))
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = _order(tuple(y.astype(str).tolist()), tuple(groups.tolist()), seed)
    taken = np.cumsum(counts[order])
    n_units = int(np.searchsorted(taken, max(1, round(fraction * len(y))))) + 1
    keep = np.zeros(len(counts), dtype=bool)
    keep[order[:n_units]] = True
    return np.flatnonzero(keep[inverse])


def training_fraction(train: "Dataset", fraction: float | None, seed: int) -> "Dataset":
    """The ``fraction`` subset of a training set (:func:`nested_subset` on its labels and lesion ids);
    None or 1: the whole set. The test split is never passed here: it stays whole."""
    if fraction is None or check_fraction(fraction) == 1.0:
        return train
    labels = train.frame["label"].to_numpy(dtype=str)
    return train.subset(nested_subset(labels, train.groups, fraction, seed))


def training_set(ds: "Dataset", seed: int, limit: int | None = None, fraction: float | None = None) -> "Dataset":
    """The images a run trains on: the train split, limited (``--limit``, :func:`limit_images`), then its
    nested ``fraction`` (:func:`training_fraction`). The one rule for the runner and the run key."""
    return training_fraction(limit_images(ds.split("train"), limit, seed), fraction, seed)


def subset_digest(ds: "Dataset") -> str:
    """Digest of which images a set holds (its sorted image ids): the learning-curve subset in a run key."""
    return make_key(sorted(ds.ids.tolist()))[:16]
