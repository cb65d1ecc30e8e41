"""Clinical operating points of a binary classifier, read off its ROC curve (class 1 = positive).

Why: a screening tool is used at one threshold, usually one that keeps sensitivity high; AUC averages
over thresholds nobody would use. These metrics report what the ROC curve gives where it matters.

Conventions (one rule each; undefined is None, never NaN):

* The ROC curve is sklearn's: one point per distinct score (tied scores form one threshold, so a tie
  group is one diagonal step), plus (0, 0) for "nothing positive". A point is an *achievable*
  threshold ``score >= t``; nothing is interpolated between points for the operating points.
* ``specificity_at_sensitivity(s)``: the best specificity among the thresholds whose sensitivity is at
  least ``s`` (the threshold a clinician could pick to guarantee ``s``). Because the curve is
  monotone this is the first point, from the strict end, reaching ``s``. Always defined with both
  classes present (the all-positive point has sensitivity 1).
* ``sensitivity_at_specificity(sp)``: the best sensitivity among thresholds whose specificity is at
  least ``sp``; (0, 0) always qualifies.
* Comparisons allow ``TOLERANCE`` = 1e-9 for float rounding (1/5 of the negatives is a false
  positive rate of exactly 0.2, which ``1 - 0.8`` misses by 4e-17).
* ``partial_auc_above_tpr(min_tpr=0.8)``: the ISIC 2024 challenge metric, the area of the ROC region
  above ``TPR = min_tpr``, i.e. the integral over FPR of ``max(TPR(FPR) - min_tpr, 0)`` on the
  piecewise-linear (trapezoidal) curve; range ``[0, 1 - min_tpr]`` (0.2 for a perfect ranking, 0.02
  for a random one). The official code gets the same number by flipping labels and scores, calling
  ``roc_auc_score(max_fpr=1 - min_tpr)`` and undoing sklearn's McClish standardisation; the flip is a
  point reflection of the curve, which keeps areas (tests check the two agree).
* With one class present every metric here is None.

``operating_point_scores`` is the reference; ``operating_point_scores_batch`` computes the same for
many bootstrap resamples given as integer sample weights (see ``metrics/bootstrap.py``); tests hold
the two equal on resamples with ties.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "OPERATING_POINT_METRICS",
    "TOLERANCE",
    "roc_points",
    "specificity_at_sensitivity",
    "sensitivity_at_specificity",
    "partial_auc_above_tpr",
    "operating_point_scores",
    "operating_point_scores_batch",
]

OPERATING_POINT_METRICS = ("spec_at_sens80", "spec_at_sens95", "sens_at_spec80", "pauc_above_tpr80")
TOLERANCE = 1e-9
_SPEC_AT_SENS = {"spec_at_sens80": 0.80, "spec_at_sens95": 0.95}
_SENS_AT_SPEC = {"sens_at_spec80": 0.80}
_PAUC_MIN_TPR = 0.80


def _binary_inputs(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """(is_positive bool (n,), score float (n,)); ``score`` may be (n,) or binary proba (n, 2)."""
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if s.ndim == 2:
        if s.shape[1] != 2:
            raise ValueError(f"operating points are binary: proba must have 2 columns, got {s.shape[1]}")
        s = s[:, 1]
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"y_true has shape {y.shape}, score has {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("score contains NaN or infinite values")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 labels (1 = positive)")
    return y.astype(bool), s


def _roc_batch(is_pos: np.ndarray, score: np.ndarray, w: np.ndarray):
    """Weighted ROC points per row of ``w`` (B, n): ``fpr, tpr`` (B, G + 1), thresholds (G,), defined (B,)."""
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1] if s.size else np.zeros(0, dtype=np.int64)
    wo = w[:, order]
    cum_pos = np.cumsum(wo * is_pos[order], axis=1)[:, ends]
    cum_neg = np.cumsum(wo * ~is_pos[order], axis=1)[:, ends]
    zeros = np.zeros((w.shape[0], 1))
    n_pos = cum_pos[:, -1] if ends.size else zeros[:, 0]
    n_neg = cum_neg[:, -1] if ends.size else zeros[:, 0]
    defined = (n_pos > 0) & (n_neg > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.concatenate([zeros, cum_pos], axis=1) / n_pos[:, None]
        fpr = np.concatenate([zeros, cum_neg], axis=1) / n_neg[:, None]
    return fpr, tpr, s[ends], defined


def roc_points(y_true, score, sample_weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: point k is the threshold ``score >= thresholds[k]``; point 0 is (0, 0)
    with threshold +inf. Raises ``ValueError`` when a class is absent (the curve is undefined)."""
    is_pos, s = _binary_inputs(y_true, score)
    w = np.ones((1, s.size)) if sample_weight is None else np.asarray(sample_weight, np.float64)[None, :]
    fpr, tpr, thr, defined = _roc_batch(is_pos, s, w)
    if not defined[0]:
        raise ValueError("the ROC curve needs both classes in y_true")
    return fpr[0], tpr[0], np.r_[np.inf, thr]


def _spec_at_sens(fpr: np.ndarray, tpr: np.ndarray, sensitivity: float) -> np.ndarray:
    reach = tpr >= sensitivity - TOLERANCE
    return 1.0 - np.where(reach, fpr, np.inf).min(axis=1)


def _sens_at_spec(fpr: np.ndarray, tpr: np.ndarray, specificity: float) -> np.ndarray:
    keep = 1.0 - fpr >= specificity - TOLERANCE
    return np.where(keep, tpr, -np.inf).max(axis=1)


def _pauc(fpr: np.ndarray, tpr: np.ndarray, min_tpr: float) -> np.ndarray:
    """Integral over FPR of max(TPR - min_tpr, 0) on the polyline, per row (TPR never decreases)."""
    dx = np.diff(fpr, axis=1)
    a0, a1 = tpr[:, :-1] - min_tpr, tpr[:, 1:] - min_tpr
    full = dx * (a0 + a1) / 2  # segment entirely above the line
    cross = np.zeros_like(dx)  # segment crossing it: the triangle above
    crossing = (a0 < 0) & (a1 > 0)
    np.divide(0.5 * dx * a1 * a1, a1 - a0, out=cross, where=crossing)
    return np.where(a0 >= 0, full, cross).sum(axis=1)


def specificity_at_sensitivity(y_true, score, sensitivity: float = 0.8) -> dict[str, float] | None:
    """``{"specificity", "sensitivity", "threshold"}`` of the best-specificity threshold reaching
    ``sensitivity`` (rule in the module doc; predict positive when ``score >= threshold``); None with
    one class."""
    is_pos, s = _binary_inputs(y_true, score)
    fpr, tpr, thr, defined = _roc_batch(is_pos, s, np.ones((1, s.size)))
    if not defined[0]:
        return None
    k = int(np.argmax(tpr[0] >= sensitivity - TOLERANCE))
    return {"specificity": float(1 - fpr[0, k]), "sensitivity": float(tpr[0, k]),
            "threshold": float(np.r_[np.inf, thr][k])}


def sensitivity_at_specificity(y_true, score, specificity: float = 0.8) -> dict[str, float] | None:
    """``{"sensitivity", "specificity", "threshold"}`` of the best-sensitivity threshold keeping
    ``specificity``; threshold +inf means "call nothing positive"; None with one class."""
    is_pos, s = _binary_inputs(y_true, score)
    fpr, tpr, thr, defined = _roc_batch(is_pos, s, np.ones((1, s.size)))
    if not defined[0]:
        return None
    k = int(np.flatnonzero(1 - fpr[0] >= specificity - TOLERANCE)[-1])
    return {"sensitivity": float(tpr[0, k]), "specificity": float(1 - fpr[0, k]),
            "threshold": float(np.r_[np.inf, thr][k])}


def partial_auc_above_tpr(y_true, score, min_tpr: float = _PAUC_MIN_TPR) -> float | None:
    """ISIC 2024 pAUC above ``min_tpr`` in ``[0, 1 - min_tpr]``; None with one class."""
    if not 0 <= min_tpr < 1:
        raise ValueError(f"min_tpr must be in [0, 1), got {min_tpr}")
    is_pos, s = _binary_inputs(y_true, score)
    fpr, tpr, _, defined = _roc_batch(is_pos, s, np.ones((1, s.size)))
    return float(_pauc(fpr, tpr, min_tpr)[0]) if defined[0] else None


def operating_point_scores_batch(y_true, proba, weights) -> dict[str, np.ndarray]:
    """``OPERATING_POINT_METRICS`` for each row of ``weights`` (B, n) of sample counts; NaN = undefined."""
    is_pos, s = _binary_inputs(y_true, proba)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != s.size:
        raise ValueError(f"weights have {w.shape[1]} columns for {s.size} samples")
    fpr, tpr, _, defined = _roc_batch(is_pos, s, w)
    fpr, tpr = np.nan_to_num(fpr), np.nan_to_num(tpr)  # undefined rows are masked below
    out = {name: _spec_at_sens(fpr, tpr, v) for name, v in _SPEC_AT_SENS.items()}
    out.update({name: _sens_at_spec(fpr, tpr, v) for name, v in _SENS_AT_SPEC.items()})
    out["pauc_above_tpr80"] = _pauc(fpr, tpr, _PAUC_MIN_TPR)
    for v in out.values():
        v[~defined] = np.nan
    return {name: out[name] for name in OPERATING_POINT_METRICS}


def operating_point_scores(y_true, proba) -> dict[str, float | None]:
    """Reference values of ``OPERATING_POINT_METRICS`` (binary; None with one class)."""
    spec = {name: specificity_at_sensitivity(y_true, proba, v) for name, v in _SPEC_AT_SENS.items()}
    sens = {name: sensitivity_at_specificity(y_true, proba, v) for name, v in _SENS_AT_SPEC.items()}
    out: dict[str, float | None] = {k: (None if r is None else r["specificity"]) for k, r in spec.items()}
    out.update({k: (None if r is None else r["sensitivity"]) for k, r in sens.items()})
    out["pauc_above_tpr80"] = partial_auc_above_tpr(y_true, proba, _PAUC_MIN_TPR)
    return {name: out[name] for name in OPERATING_POINT_METRICS}
