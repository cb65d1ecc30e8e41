"""Boundary metrics of a segmentation: 95th-percentile Hausdorff distance (HD95) and average symmetric
surface distance (ASSD), per image, in pixels of the truth mask.

Why: Jaccard/Dice barely move when a border is ragged or a far-away blob is added; boundary distances
do, and a lesion's border is what a clinician reads (asymmetry, border irregularity).

Definitions (those of the MONAI / DeepMind ``surface-distance`` libraries):

* A mask's boundary is its foreground pixels with at least one 4-neighbour outside the mask; pixels
  beyond the image edge count as background, so a mask touching the edge has a boundary there (a
  full-image mask's boundary is the image frame).
* ``d(a, B)`` is the Euclidean distance from boundary pixel ``a`` to the nearest boundary pixel of
  ``B`` (``scipy.ndimage.distance_transform_edt``, pixel units, computed on the bounding box of the
  two boundaries only, which gives the same distances faster).
* ``HD95 = max(P95 {d(t, P)}, P95 {d(p, T)})``: the larger of the two *directed* 95th percentiles
  (numpy's linear percentile), not the percentile of the pooled distances (medpy pools).
* ``ASSD = (sum_t d(t, P) + sum_p d(p, T)) / (|T| + |P|)``: pooled over both boundaries (Heimann et
  al. 2009), not the mean of the two directed means.

Empty masks (one rule each, tested):

* truth and prediction both empty: HD95 = ASSD = **0.0** (a perfect answer for an image without the
  structure, as Jaccard = 1 there).
* exactly one empty: HD95 = ASSD = **the image diagonal** ``sqrt(H^2 + W^2)``, the largest distance
  possible in the image (BraTS scores it the same way with its volume diagonal). A value, not None,
  so a method that predicts nothing on hard images is penalised rather than dropped from the mean;
  ``surface_scores`` also reports the fraction of images that got it (``surface_one_empty``), read
  from the images' confusion counts (truth empty: tp + fn = 0; prediction empty: tp + fp = 0).

Normalised HD95 (``hd95_norm_mean``): HD95 in pixels scales with the mask's resolution (ISIC masks
come at each image's own size, HAM10000's at 450x600), so test sets with different mask sizes are
compared by
``hd95 / sqrt(H^2 + W^2)``, the image's HD95 divided by the diagonal of its *truth mask* (the same
diagonal as the one-empty rule, so such an image scores exactly 1.0 and both empty 0.0), averaged over
images: a unitless fraction of the image's extent, lower is better. It needs each image's truth-mask
shape, which runs store beside the distances (``predictions["mask_shape"]``, [H, W] per image); without
it ``hd95_norm_mean`` is None (NaN in the batch form), and the other values are unchanged.

``surface_distances`` gives one image's ``(hd95, assd)``; a run keeps an ``(n, 2)`` array of them
beside its ``(n, 4)`` confusion counts and ``(n, 2)`` truth-mask shapes, and ``surface_scores`` /
``surface_scores_batch`` summarise them, the batch form for ``bootstrap_ci_batch``;
``surface_scores_from_predictions`` reads them from a record's predictions block.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = [
    "SURFACE_METRICS",
    "boundary",
    "diagonals",
    "one_empty",
    "surface_distances",
    "surface_scores",
    "surface_scores_batch",
    "surface_scores_from_predictions",
]

SURFACE_METRICS = ("hd95_mean", "hd95_median", "assd_mean", "assd_median", "surface_one_empty", "hd95_norm_mean")
PERCENTILE = 95.0


def boundary(mask) -> np.ndarray:
    """Foreground pixels with a 4-neighbour outside the mask (the image outside counts as background)."""
    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim != 2:
        raise ValueError(f"masks must be 2-D, got shape {m.shape}")
    pad = np.pad(m, 1)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return m & ~interior


def _directed(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distances from every ``src`` boundary pixel to the nearest ``dst`` boundary pixel."""
    return ndimage.distance_transform_edt(~dst)[src]


def surface_distances(truth, pred) -> tuple[float, float]:
    """``(hd95, assd)`` of one image in truth-mask pixels (definitions and empty rules: module doc).

    Raises ``ValueError`` when the shapes differ: a prediction must be at the truth mask's size.
    """
    t = np.asarray(truth).astype(bool, copy=False)
    p = np.asarray(pred).astype(bool, copy=False)
    if t.shape != p.shape:
        raise ValueError(f"mask shapes differ: truth {t.shape}, prediction {p.shape}")
    bt, bp = boundary(t), boundary(p)
    has_t, has_p = bool(bt.any()), bool(bp.any())
    if not has_t and not has_p:
        return 0.0, 0.0
    if has_t != has_p:
        diagonal = math.hypot(*t.shape)
        return diagonal, diagonal
    rows = np.flatnonzero((bt | bp).any(axis=1))
    cols = np.flatnonzero((bt | bp).any(axis=0))
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    bt, bp = bt[box], bp[box]
    d_tp, d_pt = _directed(bt, bp), _directed(bp, bt)
    hd95 = max(np.percentile(d_tp, PERCENTILE), np.percentile(d_pt, PERCENTILE))
    assd = (d_tp.sum() + d_pt.sum()) / (d_tp.size + d_pt.size)
    return float(hd95), float(assd)


def _check_values(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1 and v.shape == (2,):
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != 2:
        raise ValueError(f"surface values must have shape (n, 2) = hd95, assd; got {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("surface values must be finite and non-negative")
    return v


def _weighted_median(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``np.median`` of the resample that ``w`` (B, n) of counts describes, per row."""
    order = np.argsort(values, kind="mergesort")
    v, cum = values[order], np.cumsum(w[:, order], axis=1)
    total = cum[:, -1]
    lo = np.minimum((cum <= np.floor((total - 1) / 2)[:, None]).sum(axis=1), v.size - 1)
    hi = np.minimum((cum <= np.floor(total / 2)[:, None]).sum(axis=1), v.size - 1)
    return (v[lo] + v[hi]) / 2


def one_empty(counts) -> np.ndarray:
    """bool (n,): exactly one of truth and prediction is empty, from (n, 4) tp, fp, fn, tn counts."""
    c = np.asarray(counts).reshape(-1, 4)
    return (c[:, 0] + c[:, 2] == 0) != (c[:, 0] + c[:, 1] == 0)


def diagonals(shapes) -> np.ndarray:
    """float (n,): ``sqrt(H^2 + W^2)`` of each image's truth mask from its (n, 2) [H, W] shapes (what
    ``hd95_norm_mean`` divides by; module doc)."""
    s = np.asarray(shapes, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("mask shapes must be positive [height, width] pairs")
    return np.hypot(s[:, 0], s[:, 1])


def surface_scores_batch(values, weights, counts=None, shapes=None, over=None) -> dict[str, np.ndarray]:
    """``SURFACE_METRICS`` for each row of ``weights`` (B, n) of image counts; NaN where a row is empty.

    ``counts`` (n, 4) are the images' confusion counts (tp, fp, fn, tn), which say which images had
    exactly one empty mask (``surface_one_empty``, a fraction); without them that fraction is NaN.
    ``shapes`` (n, 2) are the truth masks' [H, W] (for ``hd95_norm_mean``); without them it is NaN.
    ``over``: bool (n,) images every value is taken over (None: all; the scorer passes the images whose
    truth holds the target, as for the per-image overlap means: ``segmentation.score_counts_batch``).
    """
    v = _check_values(values)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != v.shape[0]:
        raise ValueError(f"weights have {w.shape[1]} columns for {v.shape[0]} images")
    if over is not None:
        m = np.asarray(over, dtype=bool).reshape(-1)
        if m.size != v.shape[0]:
            raise ValueError(f"`over` has {m.size} entries for {v.shape[0]} images")
        w = w * m.astype(np.float64)
    total = w.sum(axis=1)
    empty = total == 0
    safe = np.where(empty, 1.0, total)
    out = {
        "hd95_mean": w @ v[:, 0] / safe,
        "hd95_median": _weighted_median(v[:, 0], w) if v.shape[0] else np.full(w.shape[0], np.nan),
        "assd_mean": w @ v[:, 1] / safe,
        "assd_median": _weighted_median(v[:, 1], w) if v.shape[0] else np.full(w.shape[0], np.nan),
        "surface_one_empty": np.full(w.shape[0], np.nan),
        "hd95_norm_mean": np.full(w.shape[0], np.nan),
    }
    if counts is not None:
        one = one_empty(counts)
        if one.size != v.shape[0]:
            raise ValueError(f"{one.size} confusion counts for {v.shape[0]} images")
        out["surface_one_empty"] = w @ one / safe
    if shapes is not None:
        diag = diagonals(shapes)
        if diag.size != v.shape[0]:
            raise ValueError(f"{diag.size} mask shapes for {v.shape[0]} images")
        out["hd95_norm_mean"] = w @ (v[:, 0] / diag) / safe
    for a in out.values():
        a[empty] = np.nan
    return out


def surface_scores(values, counts=None, shapes=None, over=None) -> dict[str, float | None]:
    """Means and medians of per-image ``(n, 2)`` [hd95, assd], the fraction of one-empty images (needs
    the ``(n, 4)`` confusion ``counts``) and the mean normalised HD95 (needs the ``(n, 2)`` truth-mask
    ``shapes``), over the images ``over`` (None: all); None for an empty set or a value whose input is
    missing."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return dict.fromkeys(SURFACE_METRICS)
    res = surface_scores_batch(v, np.ones((1, _check_values(v).shape[0])), counts, shapes, over)
    return {k: (float(a[0]) if np.isfinite(a[0]) else None) for k, a in res.items()}


def surface_scores_from_predictions(predictions) -> dict[str, float | None]:
    """``surface_scores`` of a segmentation record's predictions block: ``surface`` ([hd95, assd] per
    image, the key this module proposes), ``counts`` ([tp, fp, fn, tn] per image, optional) and
    ``mask_shape`` ([H, W] of each truth mask, optional: records made before it have none)."""
    return surface_scores(predictions["surface"], predictions.get("counts"), predictions.get("mask_shape"))
