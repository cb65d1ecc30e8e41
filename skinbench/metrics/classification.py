"""Classification metrics from class probabilities, binary and multiclass.

Conventions (one rule each, never NaN, never a crash):

* Predicted label: binary (2 columns, class 1 = positive) -> positive iff ``proba[:, 1] > 0.5``,
  the threshold of the official ISIC scorer (``prediction.gt(0.5)``) and the same as ``argmax`` for
  complementary columns; multiclass -> ``argmax`` (ties go to the lower class index; the ISIC scorer
  counts exact ties as wrong, the only place the two differ).
* Precision, recall, specificity and F1 with a zero denominator are 0.0 (sklearn ``zero_division=0``).
  The ISIC scorer instead gives 1.0 for sensitivity/specificity/PPV with an empty class; that only
  happens when a class is absent, where the AUC below is undefined anyway.
* Balanced accuracy is the mean recall over the classes present in ``y_true`` (sklearn; equals the
  ISIC 2018 Task 3 definition).
* AUC and average precision need both classes: with one class present they are ``None``. Macro
  averages of AUC/AP are over the classes where they are defined (one-vs-rest), ``None`` if none is.
* Macro precision/recall/F1 average over all ``n_classes`` columns of ``proba``; weighted averages
  weight by support in ``y_true``.

``classification_scores`` uses sklearn.metrics and is the reference; ``classification_scores_batch``
computes the same numbers for many bootstrap resamples at once (as integer sample weights) in numpy,
which is what makes 1000 resamples of 2000 images take well under a second. Tests hold the two equal.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "balanced_accuracy",
    "check_inputs",
    "predict_labels",
    "classification_scores",
    "classification_scores_batch",
    "confusion_matrix",
    "per_class_report",
]

BINARY_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "auc", "ap")
MULTICLASS_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "auc_macro",
    "ap_macro",
)


def check_inputs(y_true, proba) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(y int64 (n,), proba float64 (n, k))``; a 1-D proba is a binary score."""
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"proba must have shape (n, n_classes >= 2), got {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true has shape {y.shape}, proba has {p.shape[0]} rows")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains NaN or infinite values")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("y_true must hold integer class indices")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"y_true holds labels outside 0..{p.shape[1] - 1}")
    return y, p


#: a binary prediction is positive when the positive class's probability exceeds this (the ISIC scorer's)
DECISION_THRESHOLD = 0.5


def predict_labels(proba) -> np.ndarray:
    """Hard labels by the module rule: binary ``p1 > DECISION_THRESHOLD``, multiclass argmax."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1:
        return (p > DECISION_THRESHOLD).astype(np.int64)
    if p.shape[1] == 2:
        return (p[:, 1] > DECISION_THRESHOLD).astype(np.int64)
    return np.argmax(p, axis=1).astype(np.int64)


def _ranking_scores(y_bin: np.ndarray, score: np.ndarray) -> tuple[float | None, float | None]:
    """(AUC, AP) of one binary problem, None when only one class is present."""
    n_pos = int(y_bin.sum())
    if n_pos == 0 or n_pos == y_bin.size:
        return None, None
    return float(skm.roc_auc_score(y_bin, score)), float(skm.average_precision_score(y_bin, score))


def _mean_defined(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes present in ``y_true``: the value of sklearn's
    ``balanced_accuracy_score``, without its "y_pred contains classes not in y_true" warning. A model
    that predicts a class a small validation fold lacks is normal (hyper-parameter selection on a
    lesion-aware split), so that warning only alarms a user; the classes counted are the same."""
    y = np.asarray(y_true)
    return float(skm.recall_score(y, np.asarray(y_pred), labels=np.unique(y), average="macro", zero_division=0))


def classification_scores(y_true, proba) -> dict[str, float | None]:
    """Scores of one prediction set; keys ``BINARY_METRICS`` or ``MULTICLASS_METRICS``."""
    y, p = check_inputs(y_true, proba)
    k = p.shape[1]
    if y.size == 0:
        return dict.fromkeys(BINARY_METRICS if k == 2 else MULTICLASS_METRICS)
    pred = predict_labels(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-class resamples warn; the values are documented above
        out: dict[str, float | None] = {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "balanced_accuracy": balanced_accuracy(y, pred),
        }
        if k == 2:
            out["precision"] = float(skm.precision_score(y, pred, labels=[0, 1], zero_division=0))
            out["recall"] = float(skm.recall_score(y, pred, labels=[0, 1], zero_division=0))
            out["specificity"] = float(
                skm.recall_score(y, pred, labels=[0, 1], pos_label=0, zero_division=0)
            )
            out["f1"] = float(skm.f1_score(y, pred, labels=[0, 1], zero_division=0))
            out["auc"], out["ap"] = _ranking_scores(y == 1, p[:, 1])
            return out
        labels = list(range(k))
        for avg in ("macro", "weighted"):
            pr, rc, f1, _ = skm.precision_recall_fscore_support(
                y, pred, labels=labels, average=avg, zero_division=0
            )
            out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(pr), float(rc), float(f1)
        ranks = [_ranking_scores(y == c, p[:, c]) for c in range(k)]
    out["auc_macro"] = _mean_defined([r[0] for r in ranks])
    out["ap_macro"] = _mean_defined([r[1] for r in ranks])
    return {name: out[name] for name in MULTICLASS_METRICS}


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts, rows = truth, columns = prediction (sklearn layout)."""
    return skm.confusion_matrix(
        np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64), labels=list(range(n_classes))
    ).astype(np.int64)


def per_class_report(y_true, proba, class_names) -> dict[str, dict[str, float | int | None]]:
    """Per class (one-vs-rest): precision, recall, f1 (0.0 when undefined), support, auc, ap (None)."""
    y, p = check_inputs(y_true, proba)
    names = list(class_names)
    if len(names) != p.shape[1]:
        raise ValueError(f"{len(names)} class names for {p.shape[1]} probability columns")
    pred = predict_labels(p)
    labels = list(range(len(names)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr, rc, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    report = {}
    for c, name in enumerate(names):
        auc, ap = _ranking_scores(y == c, p[:, c]) if y.size else (None, None)
        report[str(name)] = {
            "precision": float(pr[c]) if y.size else 0.0,
            "recall": float(rc[c]) if y.size else 0.0,
            "f1": float(f1[c]) if y.size else 0.0,
            "support": int(sup[c]) if y.size else 0,
            "auc": auc,
            "ap": ap,
        }
    return report


# --------------------------------------------------------------------------- batch (bootstrap) path


def _safe_div(num: np.ndarray, den: np.ndarray, fill: float = 0.0) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, fill, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _ranking_batch(is_pos: np.ndarray, score: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted AUC (Mann-Whitney, ties 1/2) and AP (sklearn's step rule) for each row of ``w``.

    Samples are sorted by descending score once; tied scores form one threshold group, so ties
    behave exactly as in sklearn. Only cumulative sums at the positives' groups are needed:
    AUC = sum_pos w * (negatives below + half the tied negatives) / (P N),
    AP = sum_pos w * precision at the end of the positive's tie group / P.
    """
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    new_group = np.r_[True, s[1:] != s[:-1]]
    starts = np.flatnonzero(new_group)
    gid = np.cumsum(new_group) - 1
    ends = np.r_[starts[1:], s.size] - 1
    pp = np.flatnonzero(is_pos[order])  # sorted positions of the positives
    wo = w[:, order]
    cum_all = np.cumsum(wo, axis=1)
    wpos = wo[:, pp]
    cum_pos = np.cumsum(wpos, axis=1)
    gp = gid[pp]
    last = np.searchsorted(gp, gp, side="right") - 1  # last positive of the same tie group
    first = np.searchsorted(gp, gp, side="left")  # first positive of the same tie group
    zeros = np.zeros((w.shape[0], 1))
    pos_end = cum_pos[:, last]  # positive weight at scores >= this group's score
    pos_before = np.concatenate([zeros, cum_pos], axis=1)[:, first]
    all_end = cum_all[:, ends[gp]]
    all_before = np.concatenate([zeros, cum_all], axis=1)[:, starts[gp]]
    neg_end = all_end - pos_end
    neg_tied = neg_end - (all_before - pos_before)
    n_pos = cum_pos[:, -1] if pp.size else np.zeros(w.shape[0])
    n_neg = cum_all[:, -1] - n_pos
    auc = _safe_div((wpos * (n_neg[:, None] - neg_end + 0.5 * neg_tied)).sum(axis=1), n_pos * n_neg, np.nan)
    ap = _safe_div((wpos * _safe_div(pos_end, all_end)).sum(axis=1), n_pos, np.nan)
    undefined = (n_pos == 0) | (n_neg == 0)
    auc[undefined] = np.nan
    ap[undefined] = np.nan
    return auc, ap


def classification_scores_batch(y_true, proba, weights) -> dict[str, np.ndarray]:
    """``classification_scores`` for each row of ``weights`` (B, n) of sample counts; NaN = None.

    A bootstrap resample is the same as integer weights (how many times each image was drawn), so
    every metric here is computed from weighted confusion matrices and weighted rank statistics.
    """
    y, p = check_inputs(y_true, proba)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != y.size:
        raise ValueError(f"weights have {w.shape[1]} columns for {y.size} samples")
    k = p.shape[1]
    pred = predict_labels(p)
    onehot = np.zeros((y.size, k * k))
    onehot[np.arange(y.size), y * k + pred] = 1.0
    cm = (w @ onehot).reshape(-1, k, k)  # (B, true, pred)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = support.sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)
    present = support > 0
    out = {
        "accuracy": _safe_div(tp.sum(axis=1), total, np.nan),
        "balanced_accuracy": _safe_div((recall * present).sum(axis=1), present.sum(axis=1), np.nan),
    }
    if k == 2:
        out.update(precision=precision[:, 1], recall=recall[:, 1], specificity=recall[:, 0], f1=f1[:, 1])
        out["auc"], out["ap"] = _ranking_batch(y == 1, p[:, 1], w)
        return out
    for name, v in (("precision", precision), ("recall", recall), ("f1", f1)):
        out[f"{name}_macro"] = v.mean(axis=1)
        out[f"{name}_weighted"] = _safe_div((v * support).sum(axis=1), total)
    ranks = [_ranking_batch(y == c, p[:, c], w) for c in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN (= None) is intended
        out["auc_macro"] = np.nanmean(np.stack([r[0] for r in ranks], axis=1), axis=1)
        out["ap_macro"] = np.nanmean(np.stack([r[1] for r in ranks], axis=1), axis=1)
    return {name: out[name] for name in MULTICLASS_METRICS}
