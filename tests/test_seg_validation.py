"""Segmenters take lesion ids: every fit accepts ``groups``, and the Keras segmenters hold out whole lesions
(through skinbench.data.splits), stratified by empty vs non-empty mask (or by class for the Y-Net)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from skinbench import info, runner


def _segmenter_approaches() -> list[str]:
    return sorted({name for task in ("task3", "task4") for name in info.approaches_for(task)})


@pytest.mark.parametrize("approach", _segmenter_approaches())
def test_every_segmenter_fit_takes_groups(approach):
    """The runner calls fit(X, masks, y=..., groups=...) on every segmenter."""
    pytest.importorskip("keras")
    est = runner.build_estimator(info.approach(approach), 0, None, info.approach(approach).tasks[0])
    params = inspect.signature(est.fit).parameters
    assert "groups" in params and params["groups"].default is None, approach


def _straddling(groups: np.ndarray, tr: np.ndarray, va: np.ndarray) -> set[str]:
    return set(groups[tr]) & set(groups[va])


def test_keras_split_holds_out_whole_lesions_stratified_by_mask_presence():
    from skinbench.approaches.seg_data import validation_split

    rng = np.random.default_rng(0)
    groups = np.repeat([f"L{i}" for i in range(40)], 3)  # three images of each lesion
    masks = np.zeros((len(groups), 4, 4), np.uint8)
    masks[np.isin(groups, [f"L{i}" for i in range(0, 40, 4)]), 1, 1] = 1  # a quarter of lesions positive
    order = rng.permutation(len(groups))
    groups, masks = groups[order], masks[order]
    tr, va = validation_split(masks, 0.2, groups, seed=0)
    assert len(va) and not _straddling(groups, tr, va)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(groups)))
    positive = masks.reshape(len(masks), -1).any(axis=1)
    assert positive[va].mean() == pytest.approx(positive.mean(), abs=0.1)  # stratified, not by luck
    # every mask non-empty (the lesion target): one stratum is fine
    tr, va = validation_split(np.ones_like(masks), 0.2, groups, seed=0)
    assert len(va) and not _straddling(groups, tr, va)
    # the Y-Net stratifies by class
    y = np.array([int(g[1:]) % 2 for g in groups])
    tr, va = validation_split(masks, 0.2, groups, seed=0, y=y)
    assert not _straddling(groups, tr, va) and set(y[va]) == {0, 1}


def test_keras_segmenter_validation_never_splits_a_lesion(synthetic_dataset, tmp_path, monkeypatch):
    """On synthetic data where lesions have several images: the fitted split keeps each lesion on one side,
    and the training folder is keyed by it (another split is another run, never a reused one)."""
    pytest.importorskip("keras")
    from skinbench.approaches.unet import UNetSegmenter

    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    groups = tr.groups
    assert len(set(groups)) < len(groups), "the synthetic training part should repeat lesion ids"
    est = UNetSegmenter(input_size=32, base_filters=4, depth=2, epochs=1, batch_size=8, verbose=0,
                        validation_fraction=0.25)
    est.fit(tr.paths, tr.masks("globules"), groups=groups)
    va = est.validation_index_
    fit_idx = np.setdiff1d(np.arange(len(tr)), va)
    assert len(va) and not _straddling(groups, fit_idx, va)
    from skinbench.data.images import read_mask

    with_globules = np.array([read_mask(m).any() for m in tr.masks("globules")])
    assert with_globules.any() and not with_globules.all()
    assert with_globules[va].any() and not with_globules[va].all()  # both kinds to tune the threshold on
    X, masks = np.asarray(tr.paths), np.asarray(tr.masks("globules"))
    assert est._run_dir(X, masks, None, va) == est.run_dir_
    assert est._run_dir(X, masks, None, va[1:]) != est.run_dir_


def test_oversampling_holds_the_share_per_output_of_a_multi_output_model():
    """A common output (pigment network, 60%) must not hide a rare one (streaks, 4%) from the sampler."""
    from skinbench.approaches.seg_data import PairBatches

    rng = np.random.default_rng(0)
    n, shares = 400, (0.6, 0.2, 0.25, 0.07, 0.04)
    shows = np.stack([rng.random(n) < s for s in shares], axis=1)
    packed = np.zeros((n, 4, 4), np.uint8)
    for k in range(len(shares)):
        packed[shows[:, k], 1, 2] |= np.uint8(1 << k)
    batches = PairBatches(np.zeros((n, 4, 4, 3), np.uint8), packed, 8, augment=None, positive_fraction=0.25,
                          seed=1, n_outputs=len(shares))
    for epoch in range(2):
        batches.set_epoch(epoch)
        assert len(batches.order) == n
        drawn = shows[batches.order].mean(axis=0)
        assert np.all(drawn >= 0.25 - 1e-9), drawn
        assert drawn[4] > 4 * shows[:, 4].mean()  # streaks (5.5% here) really oversampled
    # the "any output" rule it replaces would see 60%+ positive images and oversample nothing
    assert shows.any(axis=1).mean() > 0.25


def test_oversampling_one_output_reaches_the_share_and_keeps_every_negative_image_distinct():
    from skinbench.approaches.seg_data import PairBatches

    n = 100
    masks = np.zeros((n, 4, 4), np.uint8)
    masks[:10, 0, 0] = 1
    batches = PairBatches(np.zeros((n, 4, 4, 3), np.uint8), masks, 8, augment=None, positive_fraction=0.5, seed=0)
    order = batches.order
    assert np.sum(order < 10) == 50
    negatives = order[order >= 10]
    assert len(negatives) == len(np.unique(negatives)) == 50
