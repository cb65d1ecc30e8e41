"""Calibration of predicted probabilities (ECE, Brier, reliability curve) and ``clinical_scores``.

Why: a score used as a risk ("70% melanoma") must mean what it says; AUC is blind to that.

Conventions (one rule each; undefined is None, never NaN):

* What is calibrated. Binary (2 columns, class 1 = positive): the positive-class probability
  ``proba[:, 1]`` against the outcome ``y == 1`` (the reliability diagram of a risk score).
  Multiclass: the top-class confidence ``max_k proba[:, k]`` against "the argmax was right" (the
  usual multiclass ECE of Guo et al. 2017). ``calibration_target`` returns the pair.
* Bins are **equal-mass** (quantile) bins: images sorted by the calibrated score, bin of a tie group
  ``floor(start * n_bins / N)`` where ``start`` is how many images come before the group, so ``n_bins``
  bins of ``N / n_bins`` images, except that identical scores always share a bin (a saturated model
  can leave bins empty; empty bins are dropped from the curve). Equal-mass bins avoid the mostly
  empty high-confidence bins of equal-width ECE on imbalanced dermoscopy sets. ``n_bins`` (default
  10) is a parameter and is returned with the curve and with ``clinical_scores``' ``ece``.
* ``ECE = sum_b (n_b / N) |mean score_b - observed frequency_b|``, in [0, 1]; None for no images.
* Brier. Binary: ``mean (proba[:, 1] - y)^2`` on the positive-class score, in [0, 1].
  Multiclass: the mean over images *and over the K classes* of ``(proba[:, k] - onehot_k)^2``, in
  [0, 2/K]; this is sklearn's ``brier_score_loss(scale_by_half=False)`` (sum over classes) divided
  by K. With complementary binary columns the two definitions give the same number.
* Probabilities must lie in [0, 1] (within 1e-6, then clipped); anything else is not a probability.

``calibration_scores`` is the reference; ``calibration_scores_batch`` computes the same for many
bootstrap resamples given as integer weights (a resample re-bins, as the reference does on the
resampled images). ``clinical_scores`` adds the operating points of ``operating_points.py`` and
bootstrap CIs in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from skinbench.metrics.bootstrap import bootstrap_ci_batch
from skinbench.metrics.classification import check_inputs
from skinbench.metrics.operating_points import (
    OPERATING_POINT_METRICS,
    operating_point_scores,
    operating_point_scores_batch,
)

__all__ = [
    "CALIBRATION_METRICS",
    "CLINICAL_METRICS_BINARY",
    "CLINICAL_METRICS_MULTICLASS",
    "DEFAULT_BINS",
    "calibration_target",
    "equal_mass_bins",
    "expected_calibration_error",
    "brier_score",
    "reliability_curve",
    "calibration_scores",
    "calibration_scores_batch",
    "clinical_scores",
    "clinical_scores_from_predictions",
]

DEFAULT_BINS = 10
CALIBRATION_METRICS = ("ece", "brier")
CLINICAL_METRICS_BINARY = CALIBRATION_METRICS + OPERATING_POINT_METRICS
CLINICAL_METRICS_MULTICLASS = CALIBRATION_METRICS
_PROBA_TOL = 1e-6


def _inputs(y_true, proba) -> tuple[np.ndarray, np.ndarray]:
    y, p = check_inputs(y_true, proba)
    if p.size and (p.min() < -_PROBA_TOL or p.max() > 1 + _PROBA_TOL):
        raise ValueError("calibration needs probabilities in [0, 1]; got scores outside that range")
    return y, np.clip(p, 0.0, 1.0)


def calibration_target(y_true, proba) -> tuple[np.ndarray, np.ndarray]:
    """``(score, hit)`` float (n,): binary ``(p1, y == 1)``, multiclass ``(max p, argmax == y)``."""
    y, p = _inputs(y_true, proba)
    if p.shape[1] == 2:
        return p[:, 1], (y == 1).astype(np.float64)
    return p.max(axis=1), (np.argmax(p, axis=1) == y).astype(np.float64)


def _bins_batch(score: np.ndarray, w: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-mass bin index (B, n) of every sample for each weight row (module-doc rule)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if s.size else np.zeros(0, np.int64)
    gid = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1 if s.size else np.zeros(0, np.int64)
    before = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w[:, order], axis=1)], axis=1)
    total = before[:, -1:]
    start = before[:, starts[gid]]  # weight before each sample's tie group, sorted order
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.floor(start * n_bins / total)
    b = np.clip(np.nan_to_num(b), 0, n_bins - 1).astype(np.int64)
    out = np.empty_like(b)
    out[:, order] = b
    return out


def equal_mass_bins(score, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin index (n,) in ``0..n_bins - 1`` of each score, equal-mass with ties kept together."""
    s = np.asarray(score, dtype=np.float64)
    _check_bins(n_bins)
    return _bins_batch(s, np.ones((1, s.size)), n_bins)[0]


def _check_bins(n_bins: int) -> None:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")


def reliability_curve(y_true, proba, n_bins: int = DEFAULT_BINS) -> dict:
    """Data for a reliability diagram: per non-empty bin ``mean_predicted``, ``observed`` frequency
    and ``count`` (lists, ascending score), plus ``ece``, ``n_bins``, ``binning`` and ``target``."""
    _check_bins(n_bins)
    score, hit = calibration_target(y_true, proba)
    b = equal_mass_bins(score, n_bins)
    count = np.bincount(b, minlength=n_bins)
    keep = count > 0
    mean_pred = np.bincount(b, score, n_bins)[keep] / count[keep]
    observed = np.bincount(b, hit, n_bins)[keep] / count[keep]
    k = np.asarray(proba).shape[1] if np.ndim(proba) == 2 else 2
    return {
        "n_bins": int(n_bins),
        "binning": "equal-mass",
        "target": "positive-class probability" if k == 2 else "top-class confidence",
        "mean_predicted": mean_pred.tolist(),
        "observed": observed.tolist(),
        "count": count[keep].tolist(),
        "ece": float(np.sum(count[keep] * np.abs(mean_pred - observed)) / score.size) if score.size else None,
    }


def expected_calibration_error(y_true, proba, n_bins: int = DEFAULT_BINS) -> float | None:
    """Equal-mass-bin ECE (module doc); None for no images."""
    return reliability_curve(y_true, proba, n_bins)["ece"]


def brier_score(y_true, proba) -> float | None:
    """Binary: on ``proba[:, 1]``; multiclass: mean over images and classes (module doc); None if empty."""
    y, p = _inputs(y_true, proba)
    if y.size == 0:
        return None
    if p.shape[1] == 2:
        return float(np.mean((p[:, 1] - (y == 1)) ** 2))
    return float(np.mean((p - np.eye(p.shape[1])[y]) ** 2))


def calibration_scores(y_true, proba, n_bins: int = DEFAULT_BINS) -> dict[str, float | None]:
    """``{"ece", "brier"}`` (reference implementation)."""
    return {"ece": expected_calibration_error(y_true, proba, n_bins), "brier": brier_score(y_true, proba)}


def calibration_scores_batch(y_true, proba, weights, n_bins: int = DEFAULT_BINS) -> dict[str, np.ndarray]:
    """``calibration_scores`` for each row of ``weights`` (B, n) of sample counts; NaN = undefined."""
    _check_bins(n_bins)
    y, p = _inputs(y_true, proba)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != y.size:
        raise ValueError(f"weights have {w.shape[1]} columns for {y.size} samples")
    score, hit = calibration_target(y, p)
    b = _bins_batch(score, w, n_bins)
    rows = np.arange(w.shape[0])[:, None] * n_bins
    gap = np.bincount((rows + b).ravel(), (w * (hit - score)).ravel(), w.shape[0] * n_bins)
    total = w.sum(axis=1)
    sq = (p[:, 1] - (y == 1)) ** 2 if p.shape[1] == 2 else np.mean((p - np.eye(p.shape[1])[y]) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ece = np.abs(gap.reshape(-1, n_bins)).sum(axis=1) / total
        brier = (w @ sq) / total
    ece[total == 0] = np.nan
    brier[total == 0] = np.nan
    return {"ece": ece, "brier": brier}


def _clinical_batch(y: np.ndarray, p: np.ndarray, n_bins: int, weights: np.ndarray) -> dict[str, np.ndarray]:
    out = calibration_scores_batch(y, p, weights, n_bins)
    if p.shape[1] == 2:
        out.update(operating_point_scores_batch(y, p, weights))
    return out


def clinical_scores(
    y_true, proba, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, n_bins: int = DEFAULT_BINS
) -> dict[str, dict]:
    """``{name: {"value", "ci"}}`` for ``CLINICAL_METRICS_BINARY`` (2 columns) or
    ``CLINICAL_METRICS_MULTICLASS``; ``ece`` also carries ``"n_bins"``. Percentile bootstrap CIs over
    images (``n_boot=0``: ci None), the same resamples as ``evaluate_classification`` for one seed.
    Undefined values and intervals are None, never NaN."""
    y, p = _inputs(y_true, proba)
    values: dict[str, float | None] = calibration_scores(y, p, n_bins)
    if p.shape[1] == 2:
        values.update(operating_point_scores(y, p))
    cis = (bootstrap_ci_batch(partial(_clinical_batch, y, p, n_bins), y.size, n_boot, seed, alpha)
           if n_boot > 0 and y.size > 0 else {})
    out = {name: {"value": v, "ci": list(cis[name]) if cis.get(name) is not None and v is not None else None}
           for name, v in values.items()}
    out["ece"]["n_bins"] = int(n_bins)
    return out


def clinical_scores_from_predictions(predictions: Mapping, n_boot: int = 1000, seed: int = 0,
                                     n_bins: int = DEFAULT_BINS) -> dict[str, dict]:
    """``clinical_scores`` of a run record's ``predictions`` block (``y_true`` and ``scores`` lists)."""
    return clinical_scores(np.asarray(predictions["y_true"]), np.asarray(predictions["scores"], dtype=np.float64),
                           n_boot=n_boot, seed=seed, n_bins=n_bins)
