"""Threshold tuning of segmentation probability maps on the validation images."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def best_threshold(truth: np.ndarray, prob: np.ndarray,
                   grid: Sequence[float] = tuple(np.arange(0.05, 0.96, 0.05))) -> tuple[float, float]:
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
