"""Percentile bootstrap confidence intervals, resampling images with replacement.

Two entry points draw the *same* resamples for the same ``(n, n_boot, seed)``:

* ``bootstrap_ci(score_fn, n, ...)``: generic, calls ``score_fn(indices) -> dict`` per resample.
* ``bootstrap_ci_batch(batch_fn, n, ...)``: fast, calls ``batch_fn(weights (B, n)) -> {name: (B,)}``
  on blocks of resamples, where ``weights[b, i]`` is how often image i was drawn in resample b
  (see ``classification.classification_scores_batch`` and ``segmentation.score_counts_batch``).

A metric that is undefined in a resample (None or NaN) is skipped; its CI is None when fewer than
``MIN_VALID_FRACTION`` of the resamples give a value (the interval would describe another population).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

import numpy as np

__all__ = [
    "MIN_VALID_FRACTION",
    "resample_indices",
    "resample_weights",
    "percentile_ci",
    "bootstrap_ci",
    "bootstrap_ci_batch",
]

MIN_VALID_FRACTION = 0.5
_BLOCK = 200  # resamples drawn at once: bounds memory at 200 * n floats


def resample_indices(n: int, n_boot: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Blocks of bootstrap index arrays, each ``(<= _BLOCK, n)``; deterministic in ``seed``."""
    if n <= 0:
        raise ValueError("cannot bootstrap an empty set (n = 0)")
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _BLOCK):
        yield rng.integers(0, n, size=(min(_BLOCK, n_boot - start), n))


def resample_weights(n: int, n_boot: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The same resamples as ``resample_indices`` as per-image draw counts ``(<= _BLOCK, n)``."""
    for idx in resample_indices(n, n_boot, seed):
        rows = np.arange(idx.shape[0])[:, None] * n
        yield np.bincount((rows + idx).ravel(), minlength=idx.size).reshape(idx.shape).astype(np.float64)


def percentile_ci(values, n_boot: int, alpha: float = 0.05) -> tuple[float, float] | None:
    """(lo, hi) percentile interval of the finite ``values``; None if too few resamples were valid."""
    v = np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or v.size < math.ceil(MIN_VALID_FRACTION * n_boot):
        return None
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _check(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def bootstrap_ci(
    score_fn: Callable[[np.ndarray], Mapping[str, float | None]],
    n: int,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float] | None]:
    """Percentile ``1 - alpha`` CI of every metric ``score_fn(indices)`` returns."""
    _check(n_boot, alpha)
    samples: dict[str, list] = {}
    for block in resample_indices(n, n_boot, seed):
        for idx in block:
            for name, value in score_fn(idx).items():
                samples.setdefault(name, []).append(value)
    return {name: percentile_ci(vals, n_boot, alpha) for name, vals in samples.items()}


def bootstrap_ci_batch(
    batch_fn: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    n: int,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float] | None]:
    """As ``bootstrap_ci`` (same resamples, same intervals) with a vectorised ``batch_fn(weights)``."""
    _check(n_boot, alpha)
    samples: dict[str, list[np.ndarray]] = {}
    for weights in resample_weights(n, n_boot, seed):
        for name, values in batch_fn(weights).items():
            samples.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    return {name: percentile_ci(np.concatenate(v), n_boot, alpha) for name, v in samples.items()}
