"""Classical segmenter: finds a dark lesion through hairs and vignetted corners, at the image's own size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skinbench.approaches.classical_seg import ClassicalSegmenter, fill_holes, remove_hair
from skinbench.errors import ConfigError
from skinbench.scoring import fit_summary


def _lesion_image(folder, name: str, w: int = 200, h: int = 150, hairs: bool = True, seed: int = 0):
    """Skin background, a dark off-centre lesion, black vignette corners and dark hairs; returns paths."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (200, 150, 130), np.float64) + rng.normal(0, 4, (h, w, 3))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2 + 12, h // 2 - 6), (40, 28), 20, 0, 360, 1, -1)
    img[mask > 0] = (110, 70, 60)
    yy, xx = np.mgrid[0:h, 0:w]
    corners = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2 > 1.25
    img[corners] = 5
    if hairs:
        for k in range(4):
            cv2.line(img, (0, 20 + 35 * k), (w - 1, 5 + 40 * k), (20, 15, 10), 1)
    img = np.clip(img, 0, 255).astype(np.uint8)
    ip, mp = folder / f"{name}.png", folder / f"{name}_mask.png"
    cv2.imwrite(str(ip), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(mp), mask * 255)
    return str(ip), str(mp), mask.astype(bool)


def _jaccard(a, b) -> float:
    return (a & b).sum() / (a | b).sum()


def test_segments_dark_lesion_despite_hairs_and_corners(tmp_path):
    X, M, truths = zip(*[_lesion_image(tmp_path, f"im{i}", seed=i) for i in range(3)])
    seg = ClassicalSegmenter(n_tune=3, progress=False).fit(np.array(X), np.array(M))
    assert seg.chosen_[0] in ("blue", "gray", "pca") and len(seg.tuning_) == 12
    # the record keeps what the fit chose (extras.fit): a reader sees why two fits predict alike
    assert fit_summary(seg)["best_params"] == {"channel": seg.chosen_[0], "threshold_scale": seg.chosen_[1]}
    maps = list(seg.predict_proba(np.array(X)))
    for prob, truth in zip(maps, truths):
        assert prob.dtype == np.float32 and prob.shape == truth.shape
        assert _jaccard(prob >= 0.5, truth) > 0.8
        assert not (prob[0, 0] or prob[-1, -1])  # the black corners are not lesion


def test_output_at_each_images_own_size(tmp_path):
    big, _, truth = _lesion_image(tmp_path, "big", w=600, h=450, hairs=False)
    seg = ClassicalSegmenter(channel="blue", threshold_scale=1.1, progress=False).fit(np.array([big]), np.array([""]))
    (prob,) = list(seg.predict_proba(np.array([big])))
    assert prob.shape == (450, 600) and _jaccard(prob > 0.5, truth) > 0.8


def test_blank_image_still_gets_a_map(tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((60, 80, 3), 180, np.uint8))
    (prob,) = list(ClassicalSegmenter(progress=False).predict_proba(np.array([str(blank)])))
    assert prob.shape == (60, 80) and np.isfinite(prob).all()


def test_hair_removal_and_hole_filling():
    img = np.full((64, 64, 3), 200, np.uint8)
    cv2.line(img, (0, 32), (63, 32), (10, 10, 10), 1)
    assert remove_hair(img)[32].min() > 150
    ring = np.zeros((20, 20), bool)
    ring[5:15, 5:15] = True
    ring[8:12, 8:12] = False
    assert fill_holes(ring)[10, 10] and not fill_holes(ring)[0, 0]


def test_unknown_channel_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        ClassicalSegmenter(channel="infrared").fit(np.array(["x.png"]), np.array([""]))


# ------------------------------------------------------------------------------ dark-dot detector (task3)

def _dotted_lesion(folder, name: str, seed: int, with_dots: bool = True):
    """A brown lesion holding a cluster of dark dots (a globule area) in one quadrant; returns paths."""
    rng = np.random.default_rng(seed)
    w, h = 200, 150
    img = np.full((h, w, 3), (200, 150, 130), np.float64) + rng.normal(0, 3, (h, w, 3))
    cv2.ellipse(img, (w // 2, h // 2), (60, 45), 0, 0, 360, (140, 95, 80), -1)
    truth = np.zeros((h, w), np.uint8)
    if with_dots:
        for _ in range(14):
            x, y = int(rng.integers(w // 2 + 5, w // 2 + 45)), int(rng.integers(h // 2 - 30, h // 2 + 5))
            cv2.circle(img, (x, y), 2, (45, 30, 25), -1)
            cv2.circle(truth, (x, y), 6, 1, -1)
    img = np.clip(img, 0, 255).astype(np.uint8)
    ip, mp = folder / f"{name}.png", folder / f"{name}_globules.png"
    cv2.imwrite(str(ip), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(mp), truth * 255)
    return str(ip), str(mp), truth.astype(bool)


def test_dark_dot_detector_finds_dots_and_puts_its_threshold_at_half(tmp_path):
    from skinbench.approaches.classical_dots import DarkDotSegmenter

    data = [_dotted_lesion(tmp_path, f"i{k}", seed=k, with_dots=k % 3 != 0) for k in range(9)]
    X, M, truths = (np.array([d[i] for d in data], dtype=object) for i in range(3))
    est = DarkDotSegmenter(progress=False).fit(X[:6], M[:6])
    assert est.scale_ in est.scales_grid and est.threshold_ in est.thresholds_grid
    assert fit_summary(est)["best_params"] == {"scale": est.scale_, "threshold": est.threshold_}
    inter = union = 0
    for prob, truth in zip(est.predict_proba(X[6:]), truths[6:]):
        assert prob.shape == truth.shape and prob.dtype == np.float32 and 0 <= prob.min() <= prob.max() <= 1
        pred = prob >= 0.5
        inter, union = inter + np.count_nonzero(pred & truth), union + np.count_nonzero(pred | truth)
    all_foreground = sum(t.sum() for t in truths[6:]) / sum(t.size for t in truths[6:])
    assert inter / union > max(0.3, 5 * all_foreground)  # the dots, not the whole lesion


def test_dark_dot_detector_needs_fit_and_matching_masks(tmp_path):
    from skinbench.approaches.classical_dots import DarkDotSegmenter

    ip, mp, _ = _dotted_lesion(tmp_path, "a", seed=0)
    with pytest.raises(ConfigError, match="not fitted"):
        next(DarkDotSegmenter().predict_proba([ip]))
    with pytest.raises(ConfigError, match="1 images but 2 masks"):
        DarkDotSegmenter().fit(np.array([ip]), np.array([mp, mp]))
