"""Paired tests between two approaches scored on the same test images.

* ``mcnemar``: accuracy (per-image correct / wrong).
* ``delong``: two correlated ROC AUCs (DeLong, DeLong & Clarke-Pearson 1988, in the fast midrank
  form of Sun & Xu 2014).
* ``paired_bootstrap``: any per-image score, e.g. Jaccard; resamples images, keeping pairs together.
* ``paired_bootstrap_batch``: any metric, averaged over several paired predictions (a learning curve's
  seeds), the images resampled once per draw for all of them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats

from skinbench.metrics.bootstrap import resample_weights
from skinbench.metrics.segmentation import score_counts_batch, segmentation_scores

__all__ = ["EXACT_BELOW", "mcnemar", "delong", "paired_bootstrap", "paired_bootstrap_batch"]

EXACT_BELOW = 25  # discordant pairs below which McNemar uses the exact binomial test


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's test on paired correctness.

    Returns ``{"a_only", "b_only", "statistic", "p_value", "method"}``: the discordant counts (a right
    and b wrong, and the reverse); with fewer than ``EXACT_BELOW`` discordant pairs the exact two-sided
    binomial test (statistic = a_only), otherwise chi-square with continuity correction
    ``(|b - c| - 1)^2 / (b + c)``. No discordant pair gives p = 1.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be equal-length 1-D arrays, got {a.shape}, {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}
    if n < EXACT_BELOW:
        p = stats.binomtest(a_only, n, 0.5).pvalue
        return {"a_only": a_only, "b_only": b_only, "statistic": float(a_only), "p_value": float(min(1.0, p)),
                "method": "exact"}
    chi2 = (abs(a_only - b_only) - 1) ** 2 / n
    return {"a_only": a_only, "b_only": b_only, "statistic": float(chi2),
            "p_value": float(stats.chi2.sf(chi2, df=1)), "method": "chi2"}


def _placements(scores: np.ndarray, is_pos: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components V10 (per positive) and V01 (per negative)."""
    x, y = scores[is_pos], scores[~is_pos]
    m, n = x.size, y.size
    rank_all = stats.rankdata(np.concatenate([x, y]))  # midranks: ties count 1/2
    rank_x, rank_y = stats.rankdata(x), stats.rankdata(y)
    v10 = (rank_all[:m] - rank_x) / n  # fraction of negatives each positive beats
    v01 = 1.0 - (rank_all[m:] - rank_y) / m  # fraction of positives that beat each negative
    return float(v10.mean()), v10, v01


def delong(y_true, score_a, score_b) -> dict:
    """DeLong's paired test of AUC(a) = AUC(b) on the same images.

    Returns ``{"auc_a", "auc_b", "difference", "se", "z", "p_value"}`` (two-sided, normal). When the
    variance of the difference is zero (e.g. identical scores) and the AUCs are equal, z = 0, p = 1.
    Raises ``ValueError`` unless both classes are present.
    """
    y = np.asarray(y_true).astype(bool)
    sa, sb = np.asarray(score_a, dtype=np.float64), np.asarray(score_b, dtype=np.float64)
    if not (y.shape == sa.shape == sb.shape and y.ndim == 1):
        raise ValueError(f"y_true, score_a, score_b must be equal-length 1-D arrays: {y.shape}, {sa.shape}, {sb.shape}")
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least 2 positives and 2 negatives, got {m} and {n}")
    auc_a, v10_a, v01_a = _placements(sa, y)
    auc_b, v10_b, v01_b = _placements(sb, y)
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    cov = s10 / m + s01 / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_a - auc_b
    if var <= 1e-15:
        z = 0.0 if abs(diff) < 1e-12 else float(np.sign(diff) * np.inf)
        p = 1.0 if z == 0 else 0.0
        se = 0.0
    else:
        se = var**0.5
        z = diff / se
        p = float(2 * stats.norm.sf(abs(z)))
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": diff, "se": se, "z": float(z), "p_value": p}


def paired_bootstrap(values_a, values_b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean difference of paired per-image values with a percentile CI and a two-sided p-value.

    Images are resampled with replacement (pairs kept together). The p-value is the share of
    resampled differences at least as far from the observed mean as the observed mean is from 0
    (the bootstrap distribution shifted to the null), ``(1 + count) / (1 + n_boot)``.
    Returns ``{"mean_a", "mean_b", "difference", "ci", "p_value"}``.
    """
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"values_a and values_b must be equal-length non-empty 1-D arrays: {a.shape}, {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired values contain NaN or infinite entries")
    d = a - b
    observed = float(d.mean())
    boot = np.concatenate([w @ d / d.size for w in resample_weights(d.size, n_boot, seed)])
    return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), **_summarise(observed, boot, alpha)}


def paired_bootstrap_pooled(counts_a, counts_b, metric: str, n_boot: int = 1000, seed: int = 0,
                            alpha: float = 0.05) -> dict:
    """Difference of a pooled (``*_set``) segmentation metric of two predictions of the same images.

    ``counts_*``: (n_images, 4) confusion counts (tp, fp, fn, tn) in the same image order. Images are
    resampled in pairs with the tables' own resamples; CI and p-value as :func:`paired_bootstrap`.
    Returns ``{"difference", "ci", "p_value"}``.
    """
    counts_a, counts_b = np.asarray(counts_a), np.asarray(counts_b)
    if counts_a.shape != counts_b.shape or counts_a.ndim != 2 or counts_a.shape[1] != 4 or not len(counts_a):
        raise ValueError(f"counts must be two equal (n_images, 4) arrays: {counts_a.shape}, {counts_b.shape}")
    observed = float(segmentation_scores(counts_a)[metric] - segmentation_scores(counts_b)[metric])
    boot = np.concatenate([score_counts_batch(counts_a, w)[metric] - score_counts_batch(counts_b, w)[metric]
                           for w in resample_weights(len(counts_a), n_boot, seed)])
    return _summarise(observed, boot[np.isfinite(boot)], alpha)


def paired_bootstrap_batch(pairs: Sequence[tuple[Callable[[np.ndarray], np.ndarray],
                                                  Callable[[np.ndarray], np.ndarray]]],
                           n: int, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Difference a - b of a metric, averaged over several paired predictions of the same ``n`` images.

    Why: a learning curve compares two rows over their seeds (each seed its own training subset and
    model), so the effect is the mean over seeds of each seed's difference, and the uncertainty comes from
    the test images: every bootstrap draw resamples the images once and scores every pair on that draw.
    ``pairs``: ``(batch_a, batch_b)`` per seed, each a function of image weights (B, n) -> (B,) metric
    values (NaN where undefined), e.g. ``classification_scores_batch`` bound to one record's predictions.
    Returns ``{"difference", "ci", "p_value"}`` (two-sided, as :func:`paired_bootstrap`).
    """
    if not pairs:
        raise ValueError("no paired predictions to compare")
    ones = np.ones((1, n))
    observed = float(np.mean([np.asarray(fa(ones))[0] - np.asarray(fb(ones))[0] for fa, fb in pairs]))
    boot = np.concatenate([np.mean([np.asarray(fa(w)) - np.asarray(fb(w)) for fa, fb in pairs], axis=0)
                           for w in resample_weights(n, n_boot, seed)])
    return _summarise(observed, boot[np.isfinite(boot)], alpha)


def _summarise(observed: float, boot: np.ndarray, alpha: float) -> dict:
    """Percentile CI, and the p-value of the bootstrap distribution shifted to the null (0 difference)."""
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    extreme = int(np.sum(np.abs(boot - observed) >= abs(observed) - 1e-12))
    return {"difference": observed, "ci": [float(lo), float(hi)],
            "p_value": float(min(1.0, (1 + extreme) / (1 + boot.size)))}
