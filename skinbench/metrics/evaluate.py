"""Entry points the runner calls: every metric with its bootstrap 95% CI, as plain JSON values."""

from __future__ import annotations

from functools import partial

import numpy as np

from skinbench.metrics.bootstrap import bootstrap_ci_batch
from skinbench.metrics.classification import (
    check_inputs,
    classification_scores,
    classification_scores_batch,
    confusion_matrix,
    per_class_report,
    predict_labels,
)
from skinbench.metrics.segmentation import (
    false_alarm_scores,
    false_alarm_scores_batch,
    score_counts_batch,
    segmentation_scores,
)
from skinbench.metrics.surface import surface_scores, surface_scores_batch

__all__ = ["evaluate_classification", "evaluate_segmentation", "evaluate_false_alarms", "evaluate_pooled_targets",
           "evaluate_surface"]


def _with_cis(values: dict, batch_fn, n: int, n_boot: int, seed: int, alpha: float) -> dict:
    cis = bootstrap_ci_batch(batch_fn, n, n_boot, seed, alpha) if n_boot > 0 and n > 0 else {}
    return {
        name: {"value": value, "ci": list(cis[name]) if cis.get(name) is not None else None}
        for name, value in values.items()
    }


def evaluate_classification(
    y_true, proba, class_names, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict:
    """``{"metrics": {name: {"value", "ci"}}, "confusion_matrix": [[..]], "per_class": {..}}``.

    ``n_boot=0`` skips the intervals (ci None). Rows of the confusion matrix are true classes.
    """
    y, p = check_inputs(y_true, proba)
    names = [str(c) for c in class_names]
    if len(names) != p.shape[1]:
        raise ValueError(f"{len(names)} class names for {p.shape[1]} probability columns")
    metrics = _with_cis(
        classification_scores(y, p), partial(classification_scores_batch, y, p), y.size, n_boot, seed, alpha
    )
    return {
        "metrics": metrics,
        "confusion_matrix": confusion_matrix(y, predict_labels(p), len(names)).tolist(),
        "per_class": per_class_report(y, p, names),
    }


def evaluate_segmentation(counts, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, over=None,
                          empty_precision: float = 1.0) -> dict:
    """``{"metrics": {name: {"value", "ci"}}}`` from per-image ``(n, 4)`` tp, fp, fn, tn counts; ``over``:
    the images the per-image means are taken over, ``empty_precision``: the precision of a set with nothing
    predicted (``segmentation.score_counts_batch``; defaults: all images, the ISIC scorer's 1.0). The CIs
    resample all images (so the pooled and per-image metrics share resamples)."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    metrics = _with_cis(segmentation_scores(c, over, empty_precision),
                        partial(score_counts_batch, c, over=over, empty_precision=empty_precision), c.shape[0],
                        n_boot, seed, alpha)
    return {"metrics": metrics}


def evaluate_false_alarms(counts, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """``{"metrics": {"false_alarm_images", "false_alarm_area"}}`` with ``{"value", "ci"}`` each: what is
    predicted on the images whose truth lacks the target (``segmentation.false_alarm_scores``), with the
    same resamples of all images as :func:`evaluate_segmentation`."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    return {"metrics": _with_cis(false_alarm_scores(c), partial(false_alarm_scores_batch, c), c.shape[0], n_boot,
                                 seed, alpha)}


def evaluate_pooled_targets(counts_by_target, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """The ISIC 2018 Task 2 score: Jaccard (and Dice) of every (target, image) pair's counts pooled, each
    pair divided by its pixel count first (the official scorer's ``micro_average``, its ``overall``).

    ``counts_by_target``: one ``(n, 4)`` array per target, rows of the same n images in the same order.
    The CI resamples images, each with all its targets. Returns ``{"metrics": {"jaccard_pooled",
    "dice_pooled"}}`` with ``{"value", "ci"}`` each.
    """
    stack = np.stack([np.asarray(c, dtype=np.int64).reshape(-1, 4) for c in counts_by_target])
    k, n, _ = stack.shape
    flat = stack.reshape(-1, 4)  # target-major: target j's images are rows j*n .. j*n+n-1

    def batch(weights):
        out = score_counts_batch(flat, np.tile(np.atleast_2d(weights), (1, k)))
        return {"jaccard_pooled": out["jaccard_set"], "dice_pooled": out["dice_set"]}

    values = {name: float(v[0]) for name, v in batch(np.ones((1, n))).items()}
    return {"metrics": _with_cis(values, batch, n, n_boot, seed, alpha)}


def evaluate_surface(values, counts=None, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                     shapes=None, over=None) -> dict:
    """``{"metrics": {name: {"value", "ci"}}}`` of the boundary metrics (``surface.SURFACE_METRICS``:
    HD95 and ASSD means and medians, the one-empty fraction, the mean HD95 over the truth-mask
    diagonal) from per-image ``(n, 2)`` [hd95, assd].

    ``counts`` (n, 4) are the images' confusion counts (for ``surface_one_empty``; without them it is
    None); ``over``: the images the values are taken over (None: all); ``shapes`` (n, 2) the truth masks'
    [H, W] (for ``hd95_norm_mean``; without them None). The CIs resample images as ``evaluate_segmentation``
    does: with one seed, the same resamples. The per-image distances themselves are computed by the runner
    while it predicts (``surface.surface_distances``) and stored in the record's ``predictions["surface"]``;
    the scorer summarises them with the record's other numbers (``skinbench.scoring.surface_metrics``). Cost, measured on 300 task4 test masks (HAM10000, 450x600), CPU time on
    one core: 10.0 ms per image for the ellipse baseline's predictions, 13.9 ms for classical-seg's
    ragged ones (confusion counts: 0.1 ms), so 20-28 s per 2004-image task4 run, counted in its
    ``predict_s``; task3's 192x256 attribute masks take under 1 ms.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    c = None if counts is None else np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    s = None if shapes is None else np.asarray(shapes, dtype=np.float64).reshape(-1, 2)
    metrics = _with_cis(surface_scores(v, c, s, over), lambda w: surface_scores_batch(v, w, c, s, over), v.shape[0],
                        n_boot, seed, alpha)
    return {"metrics": metrics}
