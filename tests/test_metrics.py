"""Metrics: sklearn agreement, documented undefined values, fast bootstrap = slow bootstrap, tests."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from helpers_scores import binary_scores, multiclass_scores, resamples
from skinbench.metrics import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    SEGMENTATION_METRICS,
    bootstrap_ci,
    bootstrap_ci_batch,
    classification_scores,
    classification_scores_batch,
    confusion_counts,
    confusion_matrix,
    delong,
    evaluate_classification,
    evaluate_segmentation,
    mcnemar,
    paired_bootstrap,
    per_class_report,
    per_image_scores,
    percentile_ci,
    predict_labels,
    score_counts_batch,
    segmentation_scores,
)


_binary, _multiclass = binary_scores, multiclass_scores


def _no_nan(scores: dict) -> None:
    for name, v in scores.items():
        assert v is None or (isinstance(v, float) and np.isfinite(v)), (name, v)


# ----------------------------------------------------------------------------- classification


def test_binary_scores_equal_sklearn():
    y, p = _binary()
    s = classification_scores(y, p)
    assert tuple(s) == BINARY_METRICS
    pred = (p[:, 1] > 0.5).astype(int)
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert s["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert s["recall"] == pytest.approx(skm.recall_score(y, pred))
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert s["specificity"] == pytest.approx(tn / (tn + fp))
    assert s["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert s["auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert s["ap"] == pytest.approx(skm.average_precision_score(y, p[:, 1]))
    assert 0.6 < s["auc"] < 1.0  # the synthetic scores carry signal
    assert classification_scores(y, p[:, 1]) == s  # a 1-D score is the positive-class column


def test_multiclass_scores_equal_sklearn():
    y, p = _multiclass()
    s = classification_scores(y, p)
    assert tuple(s) == MULTICLASS_METRICS
    pred = p.argmax(axis=1)
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        assert s[f"precision_{avg}"] == pytest.approx(skm.precision_score(y, pred, average=avg))
        assert s[f"recall_{avg}"] == pytest.approx(skm.recall_score(y, pred, average=avg))
        assert s[f"f1_{avg}"] == pytest.approx(skm.f1_score(y, pred, average=avg))
    assert s["auc_macro"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    onehot = np.eye(p.shape[1])[y]
    assert s["ap_macro"] == pytest.approx(skm.average_precision_score(onehot, p, average="macro"))


def test_prediction_rule_threshold_and_argmax():
    assert predict_labels(np.array([[0.5, 0.5], [0.49, 0.51], [0.9, 0.1]])).tolist() == [0, 1, 0]
    assert predict_labels(np.array([0.5, 0.500001])).tolist() == [0, 1]
    assert predict_labels(np.array([[0.2, 0.4, 0.4], [0.1, 0.2, 0.7]])).tolist() == [1, 2]


def test_undefined_classification_values_are_documented_not_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warning leaks out either
        y = np.array([0, 1, 0, 1, 1])
        none_predicted = classification_scores(y, np.full(5, 0.2))
        assert none_predicted["precision"] == 0.0 and none_predicted["f1"] == 0.0
        assert none_predicted["recall"] == 0.0 and none_predicted["specificity"] == 1.0
        assert none_predicted["auc"] == 0.5  # constant scores rank nothing
        one_class = classification_scores(np.zeros(6, int), np.linspace(0.1, 0.9, 6))
        assert one_class["auc"] is None and one_class["ap"] is None
        assert one_class["recall"] == 0.0 and one_class["accuracy"] == 0.5
        all_pos = classification_scores(np.ones(4, int), np.full(4, 0.9))
        assert all_pos["specificity"] == 0.0 and all_pos["recall"] == 1.0 and all_pos["auc"] is None
        y3, p3 = np.array([0, 0, 1, 1]), np.eye(3)[[0, 0, 1, 0]]  # class 2 absent, never predicted
        multi = classification_scores(y3, p3)
        assert multi["balanced_accuracy"] == pytest.approx(0.75)  # mean recall over present classes
        assert multi["auc_macro"] == pytest.approx(np.mean([skm.roc_auc_score(y3 == c, p3[:, c]) for c in (0, 1)]))
        assert multi["recall_macro"] == pytest.approx((1 + 0.5 + 0) / 3)
        empty = classification_scores(np.array([], int), np.zeros((0, 2)))
        assert set(empty.values()) == {None}
    for s in (none_predicted, one_class, all_pos, multi):
        _no_nan(s)


def test_bad_classification_inputs_raise():
    with pytest.raises(ValueError, match="rows"):
        classification_scores(np.array([0, 1]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="outside"):
        classification_scores(np.array([0, 2]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        classification_scores(np.array([0, 1]), np.array([[0.5, np.nan], [0.5, 0.5]]))


@pytest.mark.parametrize("make", [_binary, _multiclass])
@pytest.mark.parametrize("ties", [False, True])
def test_batch_scores_equal_reference_on_resamples(make, ties):
    y, p = make(n=120, seed=3, ties=ties)
    idx, weights = resamples(y, 15, seed=1)
    batch = classification_scores_batch(y, p, weights)
    for r, i in enumerate(idx):
        ref = classification_scores(y[i], p[i])
        for name, value in ref.items():
            if value is None:
                assert np.isnan(batch[name][r]), name
            else:
                assert batch[name][r] == pytest.approx(value, abs=1e-12), (name, r)


def test_confusion_matrix_and_per_class_report():
    y, p = _multiclass(n=150, k=3, seed=2)
    pred = p.argmax(axis=1)
    cm = confusion_matrix(y, pred, 4)
    assert cm.shape == (4, 4) and cm.sum() == 150 and cm[3].sum() == 0
    assert np.array_equal(cm[:3, :3], skm.confusion_matrix(y, pred))
    rep = per_class_report(y, p, ["a", "b", "c"])
    assert list(rep) == ["a", "b", "c"]
    pr, rc, f1, sup = skm.precision_recall_fscore_support(y, pred)
    for c, name in enumerate(rep):
        assert rep[name]["support"] == sup[c]
        assert rep[name]["precision"] == pytest.approx(pr[c]) and rep[name]["recall"] == pytest.approx(rc[c])
        assert rep[name]["f1"] == pytest.approx(f1[c])
        assert rep[name]["auc"] == pytest.approx(skm.roc_auc_score(y == c, p[:, c]))
        assert rep[name]["ap"] == pytest.approx(skm.average_precision_score(y == c, p[:, c]))
    with pytest.raises(ValueError, match="class names"):
        per_class_report(y, p, ["a", "b"])


# ----------------------------------------------------------------------------- segmentation


def test_confusion_counts():
    truth = np.zeros((4, 5), bool)
    truth[1:3, 1:4] = True  # 6 px
    pred = np.zeros((4, 5), np.uint8)
    pred[2:4, 2:5] = 255  # 6 px, overlap rows 2, cols 2..3 = 2 px
    assert confusion_counts(truth, pred).tolist() == [2, 4, 4, 10]
    assert confusion_counts(truth, pred).dtype == np.int64
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_counts(truth, pred[:, :4])


def test_per_image_empty_mask_conventions():
    counts = np.array(
        [
            [0, 0, 0, 100],  # empty truth, empty prediction -> perfect
            [0, 10, 0, 90],  # empty truth, some prediction -> 0 overlap, sensitivity free
            [0, 0, 10, 90],  # truth, empty prediction
            [50, 0, 50, 0],  # truth covers the image -> specificity free
            [64, 18, 18, 900],  # jaccard 0.64, just under the threshold
            [65, 15, 20, 900],  # jaccard 0.65, kept
        ]
    )
    per = per_image_scores(counts)
    assert per["jaccard"].tolist() == pytest.approx([1, 0, 0, 0.5, 0.64, 0.65])
    assert per["dice"].tolist() == pytest.approx([1, 0, 0, 2 / 3, 128 / 164, 130 / 165])
    assert per["thresholded_jaccard"].tolist() == pytest.approx([1, 0, 0, 0, 0, 0.65])
    assert per["sensitivity"].tolist() == pytest.approx([1, 1, 0, 0.5, 64 / 82, 65 / 85])
    assert per["specificity"].tolist() == pytest.approx([1, 0.9, 1, 1, 900 / 918, 900 / 915])
    s = segmentation_scores(counts)
    assert tuple(s) == SEGMENTATION_METRICS
    assert s["jaccard_mean"] == pytest.approx(np.mean([1, 0, 0, 0.5, 0.64, 0.65]))
    assert s["thresholded_jaccard"] == pytest.approx((1 + 0.65) / 6)
    _no_nan(s)


def test_set_metrics_normalise_each_image_then_pool():
    small = [1, 1, 2, 0]  # 4 px image: fractions .25 .25 .5 0
    big = [0, 0, 0, 400]  # no truth, no prediction
    s = segmentation_scores(np.array([small, big]))
    assert s["jaccard_set"] == pytest.approx(0.25 / 1.0)
    assert s["dice_set"] == pytest.approx(0.5 / 1.25)
    assert s["precision_set"] == pytest.approx(0.5) and s["recall_set"] == pytest.approx(1 / 3)
    nothing = segmentation_scores(np.array([[0, 0, 0, 10], [0, 0, 0, 5]]))
    assert nothing["jaccard_set"] == 1.0 and nothing["precision_set"] == 1.0 and nothing["recall_set"] == 1.0
    missed = segmentation_scores(np.array([[0, 0, 3, 10]]))
    assert missed["precision_set"] == 1.0 and missed["recall_set"] == 0.0 and missed["jaccard_set"] == 0.0
    assert set(segmentation_scores(np.zeros((0, 4))).values()) == {None}
    with pytest.raises(ValueError, match="zero pixels"):
        segmentation_scores(np.array([[0, 0, 0, 0]]))


def test_score_counts_batch_equals_scores_of_resample():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, (40, 4))
    counts[:5, :3] = 0  # some empty-empty images
    counts[:, 3] += 1
    idx = rng.integers(0, 40, (10, 40))
    weights = np.stack([np.bincount(i, minlength=40) for i in idx])
    batch = score_counts_batch(counts, weights)
    for r, i in enumerate(idx):
        for name, value in segmentation_scores(counts[i]).items():
            assert batch[name][r] == pytest.approx(value, abs=1e-12), name


# ----------------------------------------------------------------------------- bootstrap / evaluate


def test_fast_bootstrap_equals_generic_bootstrap():
    y, p = _binary(n=80, seed=5)
    slow = bootstrap_ci(lambda i: classification_scores(y[i], p[i]), y.size, n_boot=60, seed=4)
    fast = bootstrap_ci_batch(lambda w: classification_scores_batch(y, p, w), y.size, n_boot=60, seed=4)
    assert slow.keys() == fast.keys()
    for name in slow:
        assert fast[name] == pytest.approx(slow[name], abs=1e-12), name
    counts = np.random.default_rng(0).integers(0, 30, (50, 4))
    slow = bootstrap_ci(lambda i: segmentation_scores(counts[i]), 50, n_boot=40, seed=1)
    fast = bootstrap_ci_batch(lambda w: score_counts_batch(counts, w), 50, n_boot=40, seed=1)
    for name in slow:
        assert fast[name] == pytest.approx(slow[name], abs=1e-12), name


def test_bootstrap_ci_seeded_and_skips_undefined():
    values = np.random.default_rng(0).random(100)
    fn = lambda i: {"mean": float(values[i].mean())}  # noqa: E731
    a = bootstrap_ci(fn, 100, n_boot=200, seed=7)["mean"]
    assert a == bootstrap_ci(fn, 100, n_boot=200, seed=7)["mean"]
    assert a != bootstrap_ci(fn, 100, n_boot=200, seed=8)["mean"]
    assert a[0] < values.mean() < a[1]
    se = values.std() / 10
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * se, rel=0.2)
    assert percentile_ci([None] * 6 + [0.1, 0.2, 0.3, 0.4], n_boot=10) is None  # 4 of 10 valid
    assert percentile_ci([None, float("nan")] + [0.5] * 8, n_boot=10) == (0.5, 0.5)


def test_evaluate_outputs_are_json_with_cis():
    y, p = _multiclass(n=200, k=3, seed=1)
    res = evaluate_classification(y, p, ["nv", "mel", "bkl"], n_boot=100, seed=0)
    json.dumps(res, allow_nan=False)
    assert set(res) == {"metrics", "confusion_matrix", "per_class"}
    assert list(res["metrics"]) == list(MULTICLASS_METRICS)
    for m in res["metrics"].values():
        lo, hi = m["ci"]
        assert lo <= m["value"] <= hi and isinstance(lo, float)
    assert np.array(res["confusion_matrix"]).sum() == 200
    assert evaluate_classification(y, p, ["a", "b", "c"], n_boot=0)["metrics"]["accuracy"]["ci"] is None
    one_class = evaluate_classification(np.zeros(20, int), np.random.default_rng(0).random(20), ["b", "m"], 50)
    assert one_class["metrics"]["auc"] == {"value": None, "ci": None}
    json.dumps(one_class, allow_nan=False)
    counts = np.random.default_rng(2).integers(0, 100, (60, 4))
    seg = evaluate_segmentation(counts, n_boot=100)
    json.dumps(seg, allow_nan=False)
    assert list(seg["metrics"]) == list(SEGMENTATION_METRICS)
    assert all(m["ci"][0] <= m["value"] <= m["ci"][1] for m in seg["metrics"].values())


def test_bootstrap_is_fast_on_a_test_set_sized_problem():
    y, p = _multiclass(n=2000, k=7, seed=0)
    start = time.process_time()  # CPU time: other processes on a shared machine do not count
    res = evaluate_classification(y, p, list("abcdefg"), n_boot=1000, seed=0)
    cpu = time.process_time() - start
    assert all(m["ci"] is not None for m in res["metrics"].values())
    assert cpu < 5, f"1000 resamples of 2000 images took {cpu:.1f}s CPU"  # ~0.6 s measured


# ----------------------------------------------------------------------------- significance


def test_mcnemar_exact_and_chi2():
    a = np.array([True] * 10 + [False] * 2 + [True] * 50)
    b = np.array([False] * 10 + [True] * 2 + [True] * 50)
    r = mcnemar(a, b)
    assert (r["a_only"], r["b_only"], r["method"]) == (10, 2, "exact")
    assert r["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)
    a = np.array([True] * 30 + [False] * 10)
    r = mcnemar(a, ~a)
    assert r["method"] == "chi2" and r["statistic"] == pytest.approx(19**2 / 40)
    assert r["p_value"] == pytest.approx(0.002663, rel=1e-3)
    assert mcnemar(a, a)["p_value"] == 1.0


def _delong_bruteforce(y, sa, sb):
    """O(m n) DeLong covariance straight from the kernel definition, to check the midrank form."""
    pos, neg = y == 1, y == 0
    comps = []
    for s in (sa, sb):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        comps.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    s10 = np.cov([comps[0][1], comps[1][1]])
    s01 = np.cov([comps[0][2], comps[1][2]])
    cov = s10 / pos.sum() + s01 / neg.sum()
    return comps[0][0] - comps[1][0], np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def test_delong_known_cases():
    y, p = _binary(n=300, seed=2, ties=True)
    s = p[:, 1]
    same = delong(y, s, s)
    assert same["p_value"] == 1.0 and same["z"] == 0.0
    assert same["auc_a"] == pytest.approx(skm.roc_auc_score(y, s))
    noisy = np.round(s + np.random.default_rng(0).normal(0, 0.25, s.size), 1)
    r = delong(y, s, noisy)
    diff, se = _delong_bruteforce(y, s, noisy)
    assert r["difference"] == pytest.approx(diff) and r["se"] == pytest.approx(se)
    assert r["auc_b"] == pytest.approx(skm.roc_auc_score(y, noisy))
    assert r["p_value"] < 0.01 and r["difference"] > 0
    swapped = delong(y, noisy, s)
    assert swapped["z"] == pytest.approx(-r["z"]) and swapped["p_value"] == pytest.approx(r["p_value"])
    # the DeLong standard error agrees roughly with a paired bootstrap of the AUC difference
    draws = np.random.default_rng(1).integers(0, y.size, (400, y.size))
    w = np.stack([np.bincount(i, minlength=y.size) for i in draws])
    boot = classification_scores_batch(y, p, w)["auc"] - classification_scores_batch(y, noisy, w)["auc"]
    assert np.std(boot) == pytest.approx(r["se"], rel=0.2)
    with pytest.raises(ValueError, match="positives"):
        delong(np.zeros(10), s[:10], s[:10])


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    same = paired_bootstrap(a, a, n_boot=200)
    assert same["difference"] == 0.0 and same["p_value"] == 1.0 and same["ci"] == [0.0, 0.0]
    better = paired_bootstrap(a + 0.05 + rng.normal(0, 0.05, 200), a, n_boot=500, seed=1)
    assert better["ci"][0] > 0 and better["p_value"] == pytest.approx(1 / 501)
    noise = paired_bootstrap(a + rng.normal(0, 0.1, 200), a, n_boot=500, seed=1)
    assert noise["ci"][0] < 0 < noise["ci"][1] and noise["p_value"] > 0.05
    b = a + np.random.default_rng(9).normal(0, 0.1, 200)
    assert paired_bootstrap(b, a, n_boot=300, seed=2) == paired_bootstrap(b, a, n_boot=300, seed=2)
