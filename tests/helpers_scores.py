"""Made-up scores shared by the metric tests (one generator, so the cases agree across files)."""

from __future__ import annotations

import numpy as np

from skinbench.approaches.base import PathClassifier
from skinbench.data.images import read_image


def binary_scores(n: int = 200, seed: int = 0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(y, proba (n, 2)): a weakly informative binary score; ``ties`` rounds it to force tied values."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    if ties:
        s = np.round(s, 1)
    return y, np.column_stack([1 - s, s])


def multiclass_scores(n: int = 300, k: int = 5, seed: int = 0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(y, proba (n, k)): Dirichlet scores nudged towards the true class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = rng.dirichlet(np.ones(k), n) + 0.3 * np.eye(k)[y]
    p /= p.sum(axis=1, keepdims=True)
    if ties:
        p = np.round(p, 1)
    return y, p


def resamples(y: np.ndarray, n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices (n_rows, n), bootstrap draw counts (n_rows, n)); row 0 leaves class 1 out entirely, the
    edge case batch scorers must get right."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, y.size, (n_rows, y.size))
    idx[0] = np.flatnonzero(y != 1)[rng.integers(0, np.sum(y != 1), y.size)]
    return idx, np.stack([np.bincount(i, minlength=y.size) for i in idx])



class NearTieClassifier(PathClassifier):
    """Scores tied at one decimal and broken only below the sixth, the decimals a record stores (mean
    brightness rounded to 0.1, plus 4e-7 times the brightness): numbers computed before the rounding (AUC,
    AP) could not be reproduced from the record (issue 31). Used ad hoc:
    ``--approach helpers_scores:NearTieClassifier --family classical``."""

    def __init__(self, size: int = 8):
        self.size = size

    def fit(self, X, y, groups=None):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        m = np.array([read_image(p, size=(self.size, self.size)).mean() / 255.0 for p in X])
        s = np.round(m, 1) + 4e-7 * m
        return np.column_stack([1 - s, s])
