"""Threshold tuning of segmentation probability maps on the validation images."""

from __future__ import annotations

from typing import Sequence

import numpy as np


#: the cuts tried first; :func:`tuned_threshold` looks beyond its ends only when the best cut sits on one
GRID = tuple(np.arange(0.05, 0.96, 0.05))
#: finer cuts past each end of :data:`GRID` (a rare attribute's map can be best cut at 0.02)
LOW_EDGE, HIGH_EDGE = (0.01, 0.02, 0.03, 0.04), (0.96, 0.97, 0.98, 0.99)


def best_threshold(truth: np.ndarray, prob: np.ndarray, grid: Sequence[float] = GRID) -> tuple[float, float]:
    """(threshold, Jaccard) maximising Jaccard pooled over the validation images (rare features need < 0.5)."""
    t = truth.astype(bool).ravel()
    p = prob.ravel()
    scores = []
    for th in grid:
        pred = p >= th
        inter, union = np.sum(pred & t), np.sum(pred | t)
        scores.append(inter / union if union else 1.0)
    best = int(np.argmax(scores))
    return float(grid[best]), float(scores[best])


def recalibrate(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Monotone remap putting ``threshold`` at 0.5, so any caller thresholding at 0.5 gets the tuned cut."""
    if abs(threshold - 0.5) < 1e-9:
        return prob
    return np.where(prob < threshold, 0.5 * prob / threshold,
                    0.5 + 0.5 * (prob - threshold) / (1.0 - threshold)).astype(np.float32)


def tuned_threshold(truth: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """:func:`best_threshold` over :data:`GRID`, then over the finer cuts past the end it landed on, if it
    landed on one: a cut strictly inside the grid is kept as it is (so are the numbers made with it)."""
    threshold, score = best_threshold(truth, prob, GRID)
    edge = LOW_EDGE if threshold == GRID[0] else HIGH_EDGE if threshold == GRID[-1] else ()
    if edge:
        threshold, score = best_threshold(truth, prob, (threshold, *edge))
    return threshold, score
