"""Boundary metrics: HD95 and ASSD per image, empty-mask conventions, summaries and their bootstrap path."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from skinbench.metrics import bootstrap_ci, bootstrap_ci_batch
from skinbench.metrics.surface import (
    SURFACE_METRICS,
    boundary,
    surface_distances,
    surface_scores,
    surface_scores_batch,
    surface_scores_from_predictions,
)


def _reference(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Brute force from the module's definitions: all pairwise boundary distances."""
    bt, bp = np.argwhere(boundary(truth)), np.argwhere(boundary(pred))
    d = cdist(bt, bp)
    d_tp, d_pt = d.min(axis=1), d.min(axis=0)
    hd95 = max(np.percentile(d_tp, 95), np.percentile(d_pt, 95))
    return float(hd95), float((d_tp.sum() + d_pt.sum()) / (d_tp.size + d_pt.size))


def _blob(shape, center, radius, rng=None, wobble=0.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    angle = np.arctan2(yy - center[0], xx - center[1])
    r = radius * (1 + wobble * np.sin(3 * angle + (rng.random() * 6 if rng is not None else 0)))
    return np.hypot(yy - center[0], xx - center[1]) <= r


def test_boundary_is_the_4_connected_rim_and_the_image_edge_counts_as_outside():
    m = np.zeros((5, 5), bool)
    m[1:4, 1:4] = True
    b = boundary(m)
    assert b.sum() == 8 and not b[2, 2]
    full = boundary(np.ones((4, 6), bool))
    assert full.sum() == 2 * 6 + 2 * 2 and not full[1:3, 1:5].any()  # the frame
    assert boundary(np.zeros((3, 3), bool)).sum() == 0


def test_hand_computed_distances():
    t = np.zeros((5, 8), bool)
    p = np.zeros((5, 8), bool)
    t[2, 2], p[2, 5] = True, True  # single pixels 3 apart
    assert surface_distances(t, p) == pytest.approx((3.0, 3.0))
    # directed percentiles, pooled mean: truth {(0,0)}, prediction {(0,0), (0,4)}
    t = np.zeros((3, 6), bool)
    p = np.zeros((3, 6), bool)
    t[0, 0] = True
    p[0, 0] = p[0, 4] = True
    hd95, assd = surface_distances(t, p)
    assert hd95 == pytest.approx(0.95 * 4)  # P95 of {0, 4} (linear); the truth side is 0
    assert assd == pytest.approx((0 + 0 + 4) / 3)
    same = _blob((20, 30), (10, 15), 6)
    assert surface_distances(same, same) == (0.0, 0.0)


def test_empty_mask_conventions():
    shape = (450, 600)
    empty = np.zeros(shape, bool)
    lesion = _blob(shape, (200, 300), 50)
    diagonal = math.hypot(450, 600)
    assert diagonal == 750.0
    assert surface_distances(empty, empty) == (0.0, 0.0)  # both empty: perfect
    assert surface_distances(lesion, empty) == (diagonal, diagonal)  # missed lesion
    assert surface_distances(empty, lesion) == (diagonal, diagonal)  # false lesion
    full = np.ones(shape, bool)
    assert surface_distances(full, full) == (0.0, 0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        surface_distances(lesion, lesion[:, :-1])


@pytest.mark.parametrize("seed", range(5))
def test_equals_brute_force_on_random_shapes(seed):
    rng = np.random.default_rng(seed)
    shape = (60, 80)
    t = _blob(shape, rng.integers(15, 45, 2), rng.integers(5, 15), rng, wobble=0.3)
    p = _blob(shape, rng.integers(15, 45, 2), rng.integers(5, 15), rng, wobble=0.3)
    p |= _blob(shape, (rng.integers(0, 60), rng.integers(0, 80)), 3)  # a far-away blob, maybe at the edge
    assert surface_distances(t, p) == pytest.approx(_reference(t, p), abs=1e-9)
    assert surface_distances(p, t)[1] == pytest.approx(surface_distances(t, p)[1])  # ASSD is symmetric
    assert surface_distances(p, t)[0] == pytest.approx(surface_distances(t, p)[0])  # so is this HD95


def test_summary_hand_case_and_one_empty_fraction():
    values = np.array([[1.0, 0.5], [3.0, 1.5], [750.0, 750.0], [2.0, 1.0], [0.0, 0.0]])
    counts = np.array([[5, 1, 1, 9], [5, 2, 2, 7], [0, 0, 9, 7], [5, 1, 0, 10], [0, 0, 0, 16]])  # 3rd: missed
    res = surface_scores(values[:4], counts[:4])
    assert list(res) == list(SURFACE_METRICS)
    assert res["hd95_mean"] == pytest.approx(756 / 4) and res["hd95_median"] == pytest.approx(2.5)
    assert res["assd_mean"] == pytest.approx(753 / 4) and res["assd_median"] == pytest.approx(1.25)
    assert res["surface_one_empty"] == pytest.approx(0.25)
    assert surface_scores(values)["surface_one_empty"] is None  # unknown without the counts
    both_empty = surface_scores(values, counts)  # the 5th image has both masks empty: not "one empty"
    assert both_empty["surface_one_empty"] == pytest.approx(0.2) and both_empty["hd95_median"] == 2.0
    assert surface_scores_from_predictions({"surface": values.tolist(), "counts": counts.tolist()}) == both_empty
    with pytest.raises(ValueError, match="confusion counts"):
        surface_scores(values, counts[:3])
    assert surface_scores(np.zeros((0, 2))) == dict.fromkeys(SURFACE_METRICS)
    with pytest.raises(ValueError, match="shape"):
        surface_scores(np.ones((3, 3)))


def test_normalised_hd95_divides_by_each_truth_masks_diagonal():
    """hd95 / sqrt(H^2 + W^2) per image, then the mean: a one-empty image scores 1, both empty 0."""
    values = np.array([[30.0, 9.0], [50.0, 20.0], [0.0, 0.0]])
    shapes = np.array([[30, 40], [300, 400], [60, 80]])  # diagonals 50, 500, 100
    res = surface_scores(values, None, shapes)
    assert res["hd95_norm_mean"] == pytest.approx((30 / 50 + 50 / 500 + 0) / 3)
    assert res["hd95_mean"] == pytest.approx(80 / 3)  # the pixel values are unchanged
    t = np.zeros((30, 40), bool)
    t[5:15, 5:20] = True
    one = surface_distances(t, np.zeros_like(t))  # prediction empty: the image diagonal
    assert surface_scores([one], None, [t.shape])["hd95_norm_mean"] == pytest.approx(1.0)
    assert surface_scores(values)["hd95_norm_mean"] is None  # unknown without the shapes
    record = {"surface": values.tolist(), "mask_shape": shapes.tolist()}
    assert surface_scores_from_predictions(record)["hd95_norm_mean"] == res["hd95_norm_mean"]
    with pytest.raises(ValueError, match="mask shapes"):
        surface_scores(values, None, shapes[:2])
    with pytest.raises(ValueError, match="positive"):
        surface_scores(values, None, [[0, 4]] * 3)


def test_batch_equals_reference_on_resamples_and_fast_bootstrap():
    rng = np.random.default_rng(0)
    values = np.round(rng.gamma(2.0, 3.0, (41, 2)), 1)  # ties in the medians
    counts = rng.integers(1, 50, (41, 4))
    counts[::7, 0] = counts[::7, 1] = 0  # nothing predicted on every 7th image
    values[::7] = 100.0
    idx = rng.integers(0, 41, (15, 41))
    idx[1] = idx[1, :1].repeat(41)
    weights = np.stack([np.bincount(i, minlength=41) for i in idx])
    shapes = rng.integers(100, 700, (41, 2))  # truth masks of several sizes (hd95_norm_mean)
    batch = surface_scores_batch(values, weights, counts, shapes)
    for r, i in enumerate(idx):
        ref = surface_scores(values[i], counts[i], shapes[i])
        for name, v in ref.items():
            assert batch[name][r] == pytest.approx(v, abs=1e-12), (name, r)
    slow = bootstrap_ci(lambda i: surface_scores(values[i], counts[i], shapes[i]), 41, n_boot=40, seed=2)
    fast = bootstrap_ci_batch(lambda w: surface_scores_batch(values, w, counts, shapes), 41, n_boot=40, seed=2)
    for name in slow:
        assert fast[name] == pytest.approx(slow[name], abs=1e-12), name


def test_cost_per_ham10000_sized_mask():
    rng = np.random.default_rng(1)
    shape = (450, 600)
    pairs = [(_blob(shape, (225, 300), 150, rng, 0.2), _blob(shape, (230, 290), 140, rng, 0.25)) for _ in range(5)]
    start = time.process_time()
    for t, p in pairs:
        surface_distances(t, p)
    per_image = (time.process_time() - start) / len(pairs)
    assert per_image < 0.25, f"{per_image * 1000:.0f} ms CPU per 600x450 mask pair"  # ~10 ms measured
