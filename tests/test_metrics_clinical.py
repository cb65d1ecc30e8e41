"""Clinical metrics: calibration (ECE, Brier, reliability curve), operating points and the ISIC 2024
pAUC, their bootstrap fast path, and per-subgroup scores."""

from __future__ import annotations

import json
import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from helpers_scores import binary_scores, multiclass_scores, resamples
from skinbench.errors import DataError
from skinbench.metrics import (
    CLINICAL_METRICS_BINARY,
    CLINICAL_METRICS_MULTICLASS,
    OPERATING_POINT_METRICS,
    bootstrap_ci,
    bootstrap_ci_batch,
    brier_score,
    calibration_scores,
    calibration_scores_batch,
    classification_scores,
    classification_scores_batch,
    clinical_scores,
    clinical_scores_from_predictions,
    expected_calibration_error,
    operating_point_scores,
    operating_point_scores_batch,
    partial_auc_above_tpr,
    reliability_curve,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from skinbench.metrics.calibration import equal_mass_bins
from skinbench.metrics.operating_points import roc_points
from skinbench.metrics.subgroups import (
    UNKNOWN,
    age_band,
    age_bands,
    group_labels,
    load_ham10000_metadata,
    subgroup_scores,
)


_binary, _multiclass = binary_scores, multiclass_scores


def _isic2024_pauc(y, score, min_tpr=0.8):
    """The ISIC 2024 definition, written from its description: flip labels and scores, sklearn's
    standardised partial AUC at max_fpr = 1 - min_tpr, then undo the McClish standardisation."""
    max_fpr = abs(1 - min_tpr)
    std_auc = skm.roc_auc_score(np.abs(np.asarray(y) - 1), -np.asarray(score), max_fpr=max_fpr)
    return 0.5 * max_fpr**2 + (max_fpr - 0.5 * max_fpr**2) / (1.0 - 0.5) * (std_auc - 0.5)


# --------------------------------------------------------------------------------------- calibration


def test_ece_and_brier_hand_computed_binary():
    y = np.array([0, 1, 1, 1])
    s = np.array([0.1, 0.3, 0.6, 0.8])
    # two equal-mass bins {0.1, 0.3}, {0.6, 0.8}: |0.2 - 0.5| and |0.7 - 1.0|, each half the images
    assert expected_calibration_error(y, s, n_bins=2) == pytest.approx(0.3)
    assert brier_score(y, s) == pytest.approx((0.01 + 0.49 + 0.16 + 0.04) / 4)
    assert brier_score(y, s) == pytest.approx(skm.brier_score_loss(y, s))
    curve = reliability_curve(y, np.column_stack([1 - s, s]), n_bins=2)
    assert curve["mean_predicted"] == pytest.approx([0.2, 0.7])
    assert curve["observed"] == pytest.approx([0.5, 1.0])
    assert curve["count"] == [2, 2] and curve["n_bins"] == 2 and curve["binning"] == "equal-mass"
    assert curve["target"] == "positive-class probability" and curve["ece"] == pytest.approx(0.3)
    # one bin: |mean score - prevalence|
    assert expected_calibration_error(y, s, n_bins=1) == pytest.approx(abs(0.45 - 0.75))


def test_ece_and_brier_hand_computed_multiclass_top_class():
    y = np.array([0, 2, 2])
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    # top-class confidences 0.6, 0.7, 0.8; right, wrong, right
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(0.7 - 2 / 3))
    assert expected_calibration_error(y, p, n_bins=3) == pytest.approx((0.4 + 0.7 + 0.2) / 3)
    brier = (0.16 + 0.09 + 0.01 + 0.04 + 0.49 + 0.81 + 0.01 + 0.01 + 0.04) / 9  # mean over images and classes
    assert brier_score(y, p) == pytest.approx(brier)
    ref = skm.brier_score_loss(y, p, labels=[0, 1, 2], scale_by_half=False) / 3
    assert brier_score(y, p) == pytest.approx(ref)
    assert reliability_curve(y, p, 3)["target"] == "top-class confidence"


def test_equal_mass_bins_keep_ties_together_and_drop_empty_bins():
    assert equal_mass_bins([0.9, 0.1, 0.5, 0.3], 2).tolist() == [1, 0, 1, 0]
    assert equal_mass_bins(np.arange(10) / 10, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert equal_mass_bins([0.2, 0.2, 0.2, 0.9], 2).tolist() == [0, 0, 0, 1]  # a tie group never splits
    saturated = reliability_curve([1, 1, 0, 1, 0], [1.0, 1.0, 1.0, 1.0, 0.0], n_bins=10)
    assert saturated["count"] == [1, 4] and saturated["n_bins"] == 10
    assert saturated["ece"] == pytest.approx((1 * 0 + 4 * 0.25) / 5)


def test_perfect_calibration_scores_zero_and_inputs_checked():
    s = np.repeat([0.25, 0.75], 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(y, s, n_bins=2) == pytest.approx(0.0)
    assert calibration_scores([], np.zeros((0, 2))) == {"ece": None, "brier": None}
    with pytest.raises(ValueError, match="probabilities"):
        calibration_scores([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)
    # one class present: calibration is still defined
    assert calibration_scores([0, 0, 0], [0.1, 0.2, 0.3])["ece"] == pytest.approx(0.2)


# ---------------------------------------------------------------------------------- operating points


def _hand_roc():
    neg = [0.1, 0.2, 0.3, 0.4, 0.6]
    pos = [0.35, 0.5, 0.7, 0.8, 0.9]
    return np.r_[np.zeros(5, int), np.ones(5, int)], np.array(neg + pos)


def test_operating_points_hand_computed():
    y, s = _hand_roc()
    # ROC (fpr, tpr): (0,0) (0,.2) (0,.4) (0,.6) (.2,.6) (.2,.8) (.4,.8) (.4,1) (.6,1) (.8,1) (1,1)
    fpr, tpr, thr = roc_points(y, s)
    assert fpr == pytest.approx([0, 0, 0, 0, .2, .2, .4, .4, .6, .8, 1])
    assert tpr == pytest.approx([0, .2, .4, .6, .6, .8, .8, 1, 1, 1, 1])
    assert thr[0] == math.inf
    assert specificity_at_sensitivity(y, s, 0.8) == pytest.approx(
        {"specificity": 0.8, "sensitivity": 0.8, "threshold": 0.5})
    assert specificity_at_sensitivity(y, s, 0.95) == pytest.approx(
        {"specificity": 0.6, "sensitivity": 1.0, "threshold": 0.35})
    # specificity exactly 0.8 (1 false positive of 5) qualifies despite float rounding
    assert sensitivity_at_specificity(y, s, 0.8) == pytest.approx(
        {"sensitivity": 0.8, "specificity": 0.8, "threshold": 0.5})
    # above TPR 0.8: only the stretch from FPR 0.4 to 1 at TPR 1 -> 0.6 * 0.2
    assert partial_auc_above_tpr(y, s) == pytest.approx(0.12)
    assert partial_auc_above_tpr(y, s) == pytest.approx(_isic2024_pauc(y, s))
    assert operating_point_scores(y, np.column_stack([1 - s, s])) == pytest.approx(
        {"spec_at_sens80": 0.8, "spec_at_sens95": 0.6, "sens_at_spec80": 0.8, "pauc_above_tpr80": 0.12})


def test_pauc_range_and_extremes():
    y = np.array([0, 0, 1, 1])
    assert partial_auc_above_tpr(y, [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.2)  # perfect
    assert partial_auc_above_tpr(y, [0.8, 0.9, 0.1, 0.2]) == pytest.approx(0.0)  # reversed
    assert partial_auc_above_tpr(y, [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.02)  # one tie: the diagonal
    assert partial_auc_above_tpr(y, [0.5] * 4) == pytest.approx(_isic2024_pauc(y, [0.5] * 4))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_pauc_equals_isic2024_definition_and_points_equal_brute_force(seed, ties):
    y, p = _binary(n=150 + 17 * seed, seed=seed, ties=ties)
    s = p[:, 1]
    assert partial_auc_above_tpr(y, s) == pytest.approx(_isic2024_pauc(y, s), abs=1e-12)
    assert 0 <= partial_auc_above_tpr(y, s) <= 0.2
    # brute force over every threshold (sklearn's full curve)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    for sens in (0.8, 0.95):
        best = max(1 - f for f, t in zip(fpr, tpr) if t >= sens - 1e-12)
        assert specificity_at_sensitivity(y, s, sens)["specificity"] == pytest.approx(best, abs=1e-12)
    best = max(t for f, t in zip(fpr, tpr) if 1 - f >= 0.8 - 1e-12)
    assert sensitivity_at_specificity(y, s, 0.8)["sensitivity"] == pytest.approx(best, abs=1e-12)


def test_operating_points_undefined_with_one_class_and_bad_inputs():
    assert operating_point_scores([1, 1, 1], [0.2, 0.5, 0.9]) == dict.fromkeys(OPERATING_POINT_METRICS)
    assert specificity_at_sensitivity([0, 0], [0.1, 0.2]) is None
    with pytest.raises(ValueError, match="binary"):
        operating_point_scores([0, 1, 2], np.eye(3))
    with pytest.raises(ValueError, match="both classes"):
        roc_points([0, 0], [0.1, 0.2])


# ------------------------------------------------------------------------------ bootstrap fast path


@pytest.mark.parametrize("make", [_binary, _multiclass])
@pytest.mark.parametrize("ties", [False, True])
def test_batch_equals_reference_on_resamples(make, ties):
    y, p = make(n=90, seed=4, ties=ties)
    idx, weights = resamples(y, 12, seed=2)
    batch = calibration_scores_batch(y, p, weights, n_bins=7)
    if p.shape[1] == 2:
        batch.update(operating_point_scores_batch(y, p, weights))
    for r, i in enumerate(idx):
        ref = calibration_scores(y[i], p[i], n_bins=7)
        if p.shape[1] == 2:
            ref.update(operating_point_scores(y[i], p[i]))
        for name, value in ref.items():
            if value is None:
                assert np.isnan(batch[name][r]), (name, r)
            else:
                assert batch[name][r] == pytest.approx(value, abs=1e-12), (name, r)


def test_fast_bootstrap_equals_generic_bootstrap():
    y, p = _binary(n=70, seed=8, ties=True)

    def slow_fn(i):
        return {**calibration_scores(y[i], p[i]), **operating_point_scores(y[i], p[i])}

    def fast_fn(w):
        return {**calibration_scores_batch(y, p, w), **operating_point_scores_batch(y, p, w)}

    slow = bootstrap_ci(slow_fn, y.size, n_boot=50, seed=3)
    fast = bootstrap_ci_batch(fast_fn, y.size, n_boot=50, seed=3)
    assert slow.keys() == fast.keys()
    for name in slow:
        assert fast[name] == pytest.approx(slow[name], abs=1e-12), name


def test_clinical_scores_binary_multiclass_and_json():
    y, p = _binary(n=300, seed=1)
    res = clinical_scores(y, p, n_boot=200, seed=0)
    assert list(res) == list(CLINICAL_METRICS_BINARY)
    json.dumps(res, allow_nan=False)
    assert res["ece"]["n_bins"] == 10
    for m in res.values():
        lo, hi = m["ci"]
        assert lo <= m["value"] <= hi
    assert 0 <= res["pauc_above_tpr80"]["value"] <= 0.2
    assert res["pauc_above_tpr80"]["value"] == pytest.approx(_isic2024_pauc(y, p[:, 1]))
    assert clinical_scores_from_predictions({"y_true": y.tolist(), "scores": p.tolist()}, n_boot=200) == res
    assert clinical_scores(y, p, n_boot=0)["brier"]["ci"] is None
    assert clinical_scores(y, p, n_boot=0, n_bins=5)["ece"]["n_bins"] == 5
    ym, pm = _multiclass(n=200, k=4, seed=2)
    multi = clinical_scores(ym, pm, n_boot=100)
    assert list(multi) == list(CLINICAL_METRICS_MULTICLASS)
    one_class = clinical_scores(np.ones(30, int), np.random.default_rng(0).random(30), n_boot=50)
    assert one_class["spec_at_sens80"] == {"value": None, "ci": None}
    assert one_class["ece"]["value"] is not None
    json.dumps(one_class, allow_nan=False)


# -------------------------------------------------------------------------------------- subgroups


def test_age_bands_documented_edges():
    assert [age_band(a) for a in (0, 29.9, 30, 44, 45, 59, 60, 74, 75, 85)] == [
        "<30", "<30", "30-44", "30-44", "45-59", "45-59", "60-74", "60-74", "75+", "75+"]
    assert [age_band(a) for a in (None, float("nan"), "", "old", -5)] == [UNKNOWN] * 5
    assert age_bands(["40", 80.0]).tolist() == ["30-44", "75+"]
    assert group_labels(["male", None, float("nan"), " ", "female"]).tolist() == [
        "male", UNKNOWN, UNKNOWN, UNKNOWN, "female"]


def test_subgroup_scores_hand_case_too_few_and_gap():
    values = np.r_[np.full(40, 0.9), np.full(35, 0.6), np.full(10, 0.1)]
    groups = ["a"] * 40 + ["b"] * 35 + ["c"] * 10
    res = subgroup_scores(groups, "mean", score_fn=lambda i: {"mean": float(values[i].mean())}, n_boot=50)
    rows = {r["group"]: r for r in res["subgroups"]}
    assert rows["a"]["value"] == pytest.approx(0.9) and rows["a"]["ci"] == pytest.approx([0.9, 0.9])
    assert rows["a"]["n"] == 40 and rows["a"]["status"] == "ok"
    assert rows["c"] == {"group": "c", "n": 10, "value": None, "ci": None, "status": "too few"}
    assert res["gap"] == pytest.approx({"value": 0.3, "best": "a", "worst": "b"})
    assert res["min_size"] == 30 and res["n_images"] == 85
    lower = subgroup_scores(groups, "mean", score_fn=lambda i: {"mean": float(values[i].mean())}, n_boot=0,
                            higher_is_better=False, min_size=5)
    assert lower["gap"]["best"] == "c" and lower["gap"]["worst"] == "a"
    assert lower["gap"]["value"] == pytest.approx(0.8)
    single = subgroup_scores(["a"] * 40 + ["b"] * 3, "mean", score_fn=lambda i: {"mean": 1.0}, n_boot=0)
    assert single["gap"] is None
    with pytest.raises(ValueError, match="exactly one"):
        subgroup_scores(groups, "mean")


def test_subgroup_batch_fn_equals_score_fn_and_marks_undefined():
    y, p = _binary(n=160, seed=6)
    groups = np.array(["f", "m", "unknown", None] * 40, dtype=object)
    groups[:40] = "f"
    fast = subgroup_scores(groups, "auc", batch_fn=partial(classification_scores_batch, y, p), n_boot=60, seed=1)
    slow = subgroup_scores(groups, "auc", score_fn=lambda i: classification_scores(y[i], p[i]), n_boot=60, seed=1)
    assert [r["group"] for r in fast["subgroups"]] == ["f", "m", UNKNOWN]  # None joins "unknown", sorted last
    for a, b in zip(fast["subgroups"], slow["subgroups"]):
        assert a["n"] == b["n"] and a["status"] == b["status"]
        assert a["value"] == pytest.approx(b["value"], abs=1e-12)
        assert a["ci"] == pytest.approx(b["ci"], abs=1e-12)
    whole = classification_scores(y[groups == "f"], p[groups == "f"])["auc"]
    assert fast["subgroups"][0]["value"] == pytest.approx(whole)
    y_one = y.copy()
    y_one[groups == "m"] = 0  # AUC undefined in "m"
    und = subgroup_scores(groups, "auc", batch_fn=partial(classification_scores_batch, y_one, p), n_boot=20)
    assert und["subgroups"][1]["status"] == "undefined" and und["subgroups"][1]["value"] is None
    json.dumps(und, allow_nan=False)


def test_subgroups_age_bands_in_age_order():
    ages = [20, 80, 50, 35, 65, None] * 30
    res = subgroup_scores(age_bands(ages), "n", score_fn=lambda i: {"n": float(len(i))}, n_boot=0)
    assert [r["group"] for r in res["subgroups"]] == ["<30", "30-44", "45-59", "60-74", "75+", UNKNOWN]


def test_load_ham10000_metadata_official_layout(tmp_path):
    csv = tmp_path / "HAM10000_metadata.csv"
    csv.write_text("lesion_id,image_id,dx,dx_type,age,sex,localization\n"
                   "HAM_1,ISIC_0000001,nv,follow_up,45.0,male,back\n"
                   "HAM_1,ISIC_0000002,nv,follow_up,45.0,male,back\n"
                   "HAM_2,ISIC_0000003,mel,histo,,unknown,Unknown\n"
                   "HAM_3,ISIC_0000004,bkl,consensus,80.0,female,\n")
    meta = load_ham10000_metadata(csv, ["ISIC_0000004", "ISIC_0000001", "ISIC_0000003"])
    assert meta.index.tolist() == ["ISIC_0000004", "ISIC_0000001", "ISIC_0000003"]
    assert meta["sex"].tolist() == ["female", "male", "unknown"]
    assert meta["localization"].tolist() == ["unknown", "back", "unknown"]
    assert meta["dx_type"].tolist() == ["consensus", "follow_up", "histo"]
    assert meta["age_band"].tolist() == ["75+", "45-59", "unknown"]
    assert np.isnan(meta["age"].iloc[2]) and meta["age"].iloc[0] == 80.0
    with pytest.raises(DataError, match="not in the HAM10000 metadata"):
        load_ham10000_metadata(csv, ["ISIC_0000009"])
    (tmp_path / "bad.csv").write_text("image_id,age\nISIC_0000001,40\n")
    with pytest.raises(DataError, match="lacks columns"):
        load_ham10000_metadata(tmp_path / "bad.csv", ["ISIC_0000001"])


@pytest.mark.realdata
def test_ham10000_metadata_real_file(shared_data):
    meta_csv = shared_data / "ham10000" / "HAM10000_metadata.csv"
    ids = pd.read_csv(meta_csv)["image_id"].tolist()
    meta = load_ham10000_metadata(meta_csv, ids)
    assert len(meta) == 10015
    assert meta["sex"].value_counts().to_dict() == {"male": 5406, "female": 4552, "unknown": 57}
    assert (meta["age_band"] == "unknown").sum() == 57
    assert set(meta["dx_type"]) == {"histo", "follow_up", "consensus", "confocal"}
