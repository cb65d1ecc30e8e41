"""Our metrics equal the official ISIC scorer (``isic_challenge_scoring``) on the same inputs.

Classification goes through the scorer's ``ClassificationScore`` (on DataFrames, see below),
segmentation through its folder entry points (``SegmentationScore.from_dir`` for ISIC 2017/2018
Task 1, ``task2.score`` for 2018 Task 2 attributes) on PNG files written to a temp folder, and
per-image values through its public metric functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

isic = pytest.importorskip("isic_challenge_scoring")
from isic_challenge_scoring import metrics as isic_metrics, task2  # noqa: E402
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore  # noqa: E402
from isic_challenge_scoring.confusion import create_binary_confusion_matrix  # noqa: E402
from isic_challenge_scoring.segmentation import SegmentationScore  # noqa: E402

from skinbench.metrics import (  # noqa: E402
    classification_scores,
    confusion_counts,
    per_class_report,
    per_image_scores,
    segmentation_scores,
)

HAM_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def _official_classification(truth, proba, categories) -> ClassificationScore:
    """The scorer on in-memory tables (its CSV reader calls ``DataFrame.applymap``, gone in pandas 3).

    ``truth`` and ``proba`` are (n, len(categories)) arrays, one column per category as in the
    ground-truth CSVs (2016 Part 3: the single column ``malignant``; 2018 Task 3: one-hot).
    """
    ids = pd.Index([f"ISIC_{i:07d}" for i in range(len(truth))], name="image")
    truth = pd.DataFrame(truth, columns=categories, index=ids, dtype=float)
    pred = pd.DataFrame(proba, columns=categories, index=ids)
    weights = pd.DataFrame({"score_weight": 1.0, "validation_weight": 1.0}, index=ids)
    return ClassificationScore(truth, pred, weights, ClassificationMetric.AVERAGE_PRECISION)


def _binary_cases():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 379)
    s = np.clip(0.3 * y + 0.7 * rng.random(379), 0, 1)
    yield "random", y, s
    yield "ties", y, np.round(s, 1)  # many tied scores, some exactly 0.5
    yield "perfect", y, y * 0.9 + 0.05
    yield "inverted", y, 1 - s
    yield "all_negative_predictions", y, 0.4 * s
    yield "all_positive_predictions", y, 0.51 + 0.4 * s
    yield "constant", y, np.full(y.size, 0.3)
    yield "one_positive", np.eye(1, 50, 7, dtype=int)[0], np.linspace(0, 1, 50)


@pytest.mark.filterwarnings("ignore:A single label:UserWarning")  # the scorer's one-column balanced accuracy
@pytest.mark.parametrize("case", list(_binary_cases()), ids=lambda c: c[0])
def test_binary_classification_equals_isic_2016_part3_scorer(case):
    _, y, s = case
    official = _official_classification(np.eye(2)[y], np.column_stack([1 - s, s]), ["benign", "malignant"])
    mal = official.per_category.loc["malignant"]
    ours = classification_scores(y, np.column_stack([1 - s, s]))
    part3 = _official_classification(y[:, None], s[:, None], ["malignant"])  # the 2016 truth format
    assert ours["accuracy"] == pytest.approx(mal["accuracy"], abs=1e-12)
    assert ours["recall"] == pytest.approx(mal["sensitivity"], abs=1e-12)
    assert ours["specificity"] == pytest.approx(mal["specificity"], abs=1e-12)
    assert ours["auc"] == pytest.approx(mal["auc"], abs=1e-12)
    assert ours["ap"] == pytest.approx(mal["ap"], abs=1e-12)
    assert ours["ap"] == pytest.approx(part3.overall, abs=1e-12)  # 2016 Part 3 ranked by AP
    assert ours["auc"] == pytest.approx(part3.per_category.loc["malignant", "auc"], abs=1e-12)
    if np.any(s > 0.5):  # the scorer's PPV is 1.0 with no positive prediction; ours is 0.0 (documented)
        assert ours["precision"] == pytest.approx(mal["ppv"], abs=1e-12)
    else:
        assert ours["precision"] == 0.0 and mal["ppv"] == 1.0
    if not np.any(s == 0.5):  # the scorer calls a 0.5/0.5 row 'undecided'; ours says negative
        assert ours["balanced_accuracy"] == pytest.approx(official.aggregate["balanced_accuracy"], abs=1e-12)


def test_multiclass_classification_equals_isic_2018_task3_scorer():
    rng = np.random.default_rng(1)
    y = rng.choice(7, 500, p=[0.11, 0.67, 0.05, 0.03, 0.11, 0.015, 0.015])
    proba = rng.dirichlet(np.ones(7), 500) + 0.4 * np.eye(7)[y] * rng.random((500, 1))
    proba /= proba.sum(axis=1, keepdims=True)
    proba[y == 5, 5] = 0.0  # true DF images get no DF score at all
    proba /= proba.sum(axis=1, keepdims=True)
    official = _official_classification(np.eye(7)[y], proba, HAM_CLASSES)
    ours = classification_scores(y, proba)
    assert ours["balanced_accuracy"] == pytest.approx(official.aggregate["balanced_accuracy"], abs=1e-12)
    assert ours["auc_macro"] == pytest.approx(official.macro_average["auc"], abs=1e-12)
    assert ours["ap_macro"] == pytest.approx(official.macro_average["ap"], abs=1e-12)
    report = per_class_report(y, proba, HAM_CLASSES)
    for name in HAM_CLASSES:
        assert report[name]["auc"] == pytest.approx(official.per_category.loc[name, "auc"], abs=1e-12)
        assert report[name]["ap"] == pytest.approx(official.per_category.loc[name, "ap"], abs=1e-12)


# ----------------------------------------------------------------------------- segmentation


def _write_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path)


def _official_per_image(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    cm = create_binary_confusion_matrix(truth_binary_values=truth, prediction_binary_values=pred)
    return {
        "jaccard": isic_metrics.binary_jaccard(cm),
        "dice": isic_metrics.binary_dice(cm),
        "thresholded_jaccard": isic_metrics.binary_threshold_jaccard(cm, threshold=0.65),
        "sensitivity": isic_metrics.binary_sensitivity(cm),
        "specificity": isic_metrics.binary_specificity(cm),
        "accuracy": isic_metrics.binary_accuracy(cm),
    }


def _compare_task1(pairs, tmp_path: Path) -> None:
    """Per image through the scorer's metric functions, the means through SegmentationScore.from_dir."""
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    counts = []
    for i, (truth, pred) in enumerate(pairs):
        counts.append(confusion_counts(truth, pred))
        ours = {k: float(v[0]) for k, v in per_image_scores(counts[-1]).items()}
        assert ours == pytest.approx(_official_per_image(truth, pred), abs=1e-12), i
        _write_mask(truth_dir / f"ISIC_{i:07d}_segmentation.png", truth)
        _write_mask(pred_dir / f"ISIC_{i:07d}_prediction.png", pred)
    official = SegmentationScore.from_dir(truth_dir, pred_dir).macro_average
    ours = segmentation_scores(np.array(counts))
    for our_name, their_name in [
        ("jaccard_mean", "jaccard"),
        ("dice_mean", "dice"),
        ("thresholded_jaccard", "threshold_jaccard"),
        ("sensitivity_mean", "sensitivity"),
        ("specificity_mean", "specificity"),
        ("accuracy_mean", "accuracy"),
    ]:
        assert ours[our_name] == pytest.approx(official[their_name], abs=1e-12), our_name


def _compare_task2(pairs, tmp_path: Path, attribute: str = "globules") -> None:
    truth_dir, pred_dir = tmp_path / "truth2", tmp_path / "pred2"
    truth_dir.mkdir()
    pred_dir.mkdir()
    for i, (truth, pred) in enumerate(pairs):
        _write_mask(truth_dir / f"ISIC_{i:07d}_attribute_{attribute}.png", truth)
        _write_mask(pred_dir / f"ISIC_{i:07d}_attribute_{attribute}.png", pred)
    official = task2.score(truth_dir, pred_dir)[attribute]
    ours = segmentation_scores(np.array([confusion_counts(t, p) for t, p in pairs]))
    assert ours["jaccard_set"] == pytest.approx(official["jaccard"], abs=1e-12)
    assert ours["dice_set"] == pytest.approx(official["dice"], abs=1e-12)


def _blob(shape, rng) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ry, rx = rng.uniform(0.1, 0.4) * h, rng.uniform(0.1, 0.4) * w
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _synthetic_pairs():
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(14):
        shape = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))  # sizes vary, as in ISIC
        truth, pred = _blob(shape, rng), _blob(shape, rng)
        pairs.append((truth, pred))
    t = _blob((50, 60), rng)
    pairs += [
        (t, t),  # perfect
        (t, np.roll(t, 3, axis=1)),  # near the 0.65 threshold
        (np.zeros((50, 60), bool), np.zeros((50, 60), bool)),  # empty truth, empty prediction
        (np.zeros((50, 60), bool), t),  # empty truth, some prediction
        (t, np.zeros((50, 60), bool)),  # empty prediction
        (np.ones((50, 60), bool), t),  # truth covers everything
        (t, np.ones((50, 60), bool)),  # full prediction
    ]
    return pairs


def test_segmentation_equals_isic_task1_scorer_on_synthetic_masks(tmp_path):
    _compare_task1(_synthetic_pairs(), tmp_path)


def test_set_metrics_equal_isic_2018_task2_scorer(tmp_path):
    _compare_task2(_synthetic_pairs(), tmp_path)
    empty = [(np.zeros((20, 30), bool), np.zeros((20, 30), bool))] * 2
    sub = tmp_path / "empty"
    sub.mkdir()
    _compare_task2(empty, sub)


def _perturbations(truth: np.ndarray, i: int) -> np.ndarray:
    import cv2

    kind = i % 6
    if kind == 0:
        return cv2.erode(truth.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    if kind == 1:
        return cv2.dilate(truth.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    if kind == 2:
        return np.roll(truth, (30 + 10 * i, 20), axis=(0, 1))
    if kind == 3:
        return np.zeros_like(truth)
    if kind == 4:
        return np.ones_like(truth)
    return truth.copy()


@pytest.mark.realdata
def test_segmentation_equals_isic_scorer_on_real_ham10000_masks(shared_data, tmp_path):
    from skinbench.data.images import read_mask

    files = sorted((shared_data / "ham10000" / "masks").glob("ISIC_*_segmentation.png"))[::300][:30]
    files.append(shared_data / "ham10000" / "masks" / "ISIC_0026042_segmentation.png")  # full-image mask
    pairs = []
    for i, f in enumerate(files):
        truth = read_mask(f)
        pairs.append((truth, _perturbations(truth, i)))
    assert len(pairs) >= 30 and all(t.shape == (450, 600) for t, _ in pairs)
    _compare_task1(pairs, tmp_path)


@pytest.mark.realdata
def test_set_metrics_equal_isic_scorer_on_real_attribute_masks(shared_data, tmp_path):
    from skinbench.data.images import read_mask

    files = sorted((shared_data / "isic2018_task2" / "globules").glob("ISIC_*_attribute_globules.png"))[::90][:25]
    pairs = []
    for i, f in enumerate(files):
        truth = read_mask(f, fix_inverted=False)  # attributes are sparse: never "inverted"
        pairs.append((truth, _perturbations(truth, i)))
    assert len({t.shape for t, _ in pairs}) > 1  # image sizes vary: the per-image normalisation matters
    _compare_task2(pairs, tmp_path)


def test_pooled_attribute_score_equals_isic_2018_task2_overall(tmp_path):
    """The ISIC 2018 Task 2 score (``overall``, the micro average over attributes and images) from our
    per-target counts, for two attributes of the same images of varying sizes."""
    from skinbench.metrics.evaluate import evaluate_pooled_targets

    pairs = _synthetic_pairs()
    rng = np.random.default_rng(1)
    second = [(np.roll(t, int(rng.integers(-5, 5)), axis=0), p) for t, p in pairs]
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    for attribute, attr_pairs in (("globules", pairs), ("streaks", second)):
        for i, (truth, pred) in enumerate(attr_pairs):
            _write_mask(truth_dir / f"ISIC_{i:07d}_attribute_{attribute}.png", truth)
            _write_mask(pred_dir / f"ISIC_{i:07d}_attribute_{attribute}.png", pred)
    official = task2.score(truth_dir, pred_dir)
    counts = [np.array([confusion_counts(t, p) for t, p in attr_pairs]) for attr_pairs in (pairs, second)]
    ours = evaluate_pooled_targets(counts, n_boot=200)["metrics"]
    assert ours["jaccard_pooled"]["value"] == pytest.approx(official["micro_average"]["jaccard"], abs=1e-12)
    assert ours["dice_pooled"]["value"] == pytest.approx(official["micro_average"]["dice"], abs=1e-12)
    lo, hi = ours["jaccard_pooled"]["ci"]
    assert lo < ours["jaccard_pooled"]["value"] < hi
