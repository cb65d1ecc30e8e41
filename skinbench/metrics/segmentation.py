"""Segmentation metrics from per-image confusion counts (tp, fp, fn, tn).

Everything is computed from an ``(n, 4)`` counts array, so a large test set streams: predict one
image, call ``confusion_counts``, keep four integers, drop the masks.

Conventions, identical to the official ISIC scorer (``isic_challenge_scoring.metrics``,
``segmentation.py`` for 2017/2018 Task 1, ``task2.py`` for 2018 Task 2):

* Per image: Jaccard = tp / (tp + fp + fn), Dice = 2tp / (2tp + fp + fn); both are **1.0** when
  truth and prediction are both empty (tp + fp + fn = 0), and 0.0 when exactly one is empty.
  Sensitivity is **1.0** when the truth is empty (tp + fn = 0); specificity is **1.0** when the
  truth covers the whole image (tn + fp = 0); accuracy = (tp + tn) / pixels.
* ``thresholded_jaccard`` (ISIC 2018 Task 1): per-image Jaccard, set to 0 when below 0.65, then
  averaged. All ``*_mean`` metrics are plain means over images.
* ``*_set`` metrics (ISIC 2018 Task 2 attributes; the 2016 Part 2B scoring was of the same kind):
  each image's counts are first divided by its pixel count (so every image weighs the same whatever
  its size; with equal-size images this is plain pooling of all pixels), summed over the set, and the
  ratio is taken once. The same empty rules apply to the sums: Jaccard/Dice 1.0 when the set has no
  truth and no prediction pixel; precision (the scorer's PPV) 1.0 when nothing is predicted anywhere;
  recall 1.0 when there is no truth pixel anywhere.

``score_counts_batch`` evaluates many bootstrap resamples (rows of image weights) at once;
``segmentation_scores`` is that function with every image weighted once, so there is one definition.

Sparse targets: both take ``over``, a bool ``(n,)`` of the images the per-image means (``*_mean``,
``thresholded_jaccard``) are taken over (default: all; the pooled ``*_set`` metrics always pool every
image). Why: on an attribute most images lack (ISIC 2018 globules, streaks), an empty prediction scores
Jaccard 1.0 on every image without it, so a mean over all images is won by predicting nothing. The scorer
passes ``over=has_target(counts)``; the images without the target are scored apart by
``false_alarm_scores`` (how often, and how much, something is predicted where nothing is).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SEGMENTATION_METRICS",
    "JACCARD_THRESHOLD",
    "FALSE_ALARM_METRICS",
    "confusion_counts",
    "false_alarm_scores",
    "false_alarm_scores_batch",
    "has_target",
    "per_image_scores",
    "segmentation_scores",
    "score_counts_batch",
]

JACCARD_THRESHOLD = 0.65
SEGMENTATION_METRICS = (
    "jaccard_mean",
    "dice_mean",
    "thresholded_jaccard",
    "jaccard_set",
    "dice_set",
    "precision_set",
    "recall_set",
    "sensitivity_mean",
    "specificity_mean",
    "accuracy_mean",
)
#: scores of the images whose truth lacks the target: the share of them with any predicted pixel, and the
#: mean predicted area (fraction of the image) over them
FALSE_ALARM_METRICS = ("false_alarm_images", "false_alarm_area")
_MEAN_OF = {  # per-image score -> name of its mean over images
    "jaccard": "jaccard_mean",
    "dice": "dice_mean",
    "thresholded_jaccard": "thresholded_jaccard",
    "sensitivity": "sensitivity_mean",
    "specificity": "specificity_mean",
    "accuracy": "accuracy_mean",
}


def confusion_counts(truth, pred) -> np.ndarray:
    """``int64[4]`` = (tp, fp, fn, tn) of two masks (anything non-zero is foreground).

    Raises ``ValueError`` when the shapes differ: a prediction must be at the mask's size.
    """
    t = np.asarray(truth).astype(bool, copy=False)
    p = np.asarray(pred).astype(bool, copy=False)
    if t.shape != p.shape:
        raise ValueError(f"mask shapes differ: truth {t.shape}, prediction {p.shape}")
    tp = int(np.count_nonzero(t & p))
    n_pred, n_truth = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    fp, fn = n_pred - tp, n_truth - tp
    return np.array([tp, fp, fn, t.size - tp - fp - fn], dtype=np.int64)


def _check_counts(counts) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim == 1 and c.shape == (4,):
        c = c[None, :]
    if c.ndim != 2 or c.shape[1] != 4:
        raise ValueError(f"counts must have shape (n, 4) = tp, fp, fn, tn; got {c.shape}")
    if np.any(c < 0):
        raise ValueError("counts must be non-negative")
    if np.any(c.sum(axis=1) == 0):
        raise ValueError("an image with zero pixels in counts")
    return c.astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    """num / den, ``empty`` where den == 0 (the ISIC scorer's rule for an undefined ratio)."""
    out = np.full(np.shape(den), empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def per_image_scores(counts) -> dict[str, np.ndarray]:
    """Per-image jaccard, dice, thresholded_jaccard, sensitivity, specificity, accuracy (n,)."""
    c = _check_counts(counts)
    tp, fp, fn, tn = c.T
    jac = _ratio(tp, tp + fp + fn, 1.0)
    return {
        "jaccard": jac,
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
        "thresholded_jaccard": np.where(jac >= JACCARD_THRESHOLD, jac, 0.0),
        "sensitivity": _ratio(tp, tp + fn, 1.0),
        "specificity": _ratio(tn, tn + fp, 1.0),
        "accuracy": (tp + tn) / c.sum(axis=1),
    }


def has_target(counts) -> np.ndarray:
    """bool (n,): the image's truth holds the target (tp + fn > 0), from (n, 4) tp, fp, fn, tn counts."""
    c = np.asarray(counts).reshape(-1, 4)
    return (c[:, 0] + c[:, 2]) > 0


def _subset(over, n: int) -> np.ndarray | None:
    """``over`` as a float (n,) 0/1 mask, or None for every image."""
    if over is None:
        return None
    m = np.asarray(over, dtype=bool).reshape(-1)
    if m.size != n:
        raise ValueError(f"`over` has {m.size} entries for {n} images")
    return m.astype(np.float64)


def score_counts_batch(counts, weights, over=None, empty_precision: float = 1.0) -> dict[str, np.ndarray]:
    """``segmentation_scores`` for each row of ``weights`` (B, n) of image counts -> (B,) arrays.

    ``over``: bool (n,) images the per-image means are taken over (None: all). Rows with zero total
    weight (for the means: zero weight on ``over``) give NaN. ``empty_precision``: ``precision_set`` of a
    set with no predicted pixel (the ISIC scorer's 1.0 by default; NaN: undefined, so that predicting
    nothing cannot score the best precision).
    """
    c = _check_counts(counts)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != c.shape[0]:
        raise ValueError(f"weights have {w.shape[1]} columns for {c.shape[0]} images")
    per = per_image_scores(c)
    total = w.sum(axis=1)
    sub = _subset(over, c.shape[0])
    wm = w if sub is None else w * sub
    mean_total = total if sub is None else wm.sum(axis=1)
    out = {out_name: _ratio(wm @ per[name], mean_total, np.nan) for name, out_name in _MEAN_OF.items()}
    tp, fp, fn, _ = (w @ (c / c.sum(axis=1, keepdims=True))).T
    out["jaccard_set"] = _ratio(tp, tp + fp + fn, 1.0)
    out["dice_set"] = _ratio(2 * tp, 2 * tp + fp + fn, 1.0)
    out["precision_set"] = _ratio(tp, tp + fp, empty_precision)
    out["recall_set"] = _ratio(tp, tp + fn, 1.0)
    for name in ("jaccard_set", "dice_set", "precision_set", "recall_set"):
        out[name][total == 0] = np.nan
    return {name: out[name] for name in SEGMENTATION_METRICS}


def segmentation_scores(counts, over=None, empty_precision: float = 1.0) -> dict[str, float | None]:
    """All ``SEGMENTATION_METRICS`` of a set of images given their ``(n, 4)`` counts (``over``,
    ``empty_precision``: as :func:`score_counts_batch`).

    An empty set (n = 0) gives None for every metric, and so does a mean over no image (or an undefined
    precision).
    """
    c = np.asarray(counts)
    if c.size == 0:
        return dict.fromkeys(SEGMENTATION_METRICS)
    scores = score_counts_batch(c, np.ones((1, _check_counts(c).shape[0])), over, empty_precision)
    return {name: (float(v[0]) if np.isfinite(v[0]) else None) for name, v in scores.items()}


def false_alarm_scores_batch(counts, weights) -> dict[str, np.ndarray]:
    """``FALSE_ALARM_METRICS`` for each row of ``weights`` (B, n), over the images whose truth lacks the
    target (tp + fn = 0): ``false_alarm_images``, the share of them with any predicted pixel (fp > 0), and
    ``false_alarm_area``, the mean over them of the predicted fraction of the image (fp / pixels). NaN for
    a row that weighs no such image."""
    c = _check_counts(counts)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != c.shape[0]:
        raise ValueError(f"weights have {w.shape[1]} columns for {c.shape[0]} images")
    wn = w * (~has_target(c)).astype(np.float64)
    total = wn.sum(axis=1)
    return {"false_alarm_images": _ratio(wn @ (c[:, 1] > 0).astype(np.float64), total, np.nan),
            "false_alarm_area": _ratio(wn @ (c[:, 1] / c.sum(axis=1)), total, np.nan)}


def false_alarm_scores(counts) -> dict[str, float | None]:
    """:func:`false_alarm_scores_batch` with every image weighted once; None without a target-free image."""
    c = np.asarray(counts)
    if c.size == 0:
        return dict.fromkeys(FALSE_ALARM_METRICS)
    scores = false_alarm_scores_batch(c, np.ones((1, _check_counts(c).shape[0])))
    return {name: (float(v[0]) if np.isfinite(v[0]) else None) for name, v in scores.items()}
