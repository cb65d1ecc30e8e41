"""Paired tests of one record against another on the test images both predicted, and the Holm-adjusted
column every table of such tests ends with.

The dashboard's significance and derived-row sections, the contributed rows' section and the learning
curves all test with these, so the tests, their wording and the multiple-testing rule are written once (and
none of those modules imports another for them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skinbench.metrics import significance
from skinbench.metrics.classification import predict_labels
from skinbench.results.records import RunRecord
from skinbench.results.tables import MISSING
from skinbench.scoring import mean_over


def paired_indices(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a and b of the image ids both predicted, in a's order."""
    pos_b = {i: k for k, i in enumerate(ids_b)}
    ia = np.array([k for k, i in enumerate(ids_a) if i in pos_b], dtype=int)
    ib = np.array([pos_b[ids_a[k]] for k in ia], dtype=int)
    return ia, ib


def compare(a: RunRecord, b: RunRecord, kind: str, metric: str = "") -> list[dict]:
    """Paired tests of record ``a`` against ``b`` on the test images both predicted.

    Classification: McNemar on correctness (accuracy), DeLong on AUC when binary.
    Segmentation: paired bootstrap of the pooled primary metric when it is one (``jaccard_set``: how ISIC
    scored globules and streaks), and of the per-image Jaccard difference (a - b) over the images whose
    truth holds the target only (none over images without it).
    """
    rows: list[dict] = []
    if kind == "segmentation":
        ids_a, jac_a = a.per_image_jaccard()
        ids_b, jac_b = b.per_image_jaccard()
        ia, ib = paired_indices(ids_a, ids_b)
        if metric.endswith("_set"):
            res = significance.paired_bootstrap_pooled(a.counts()[ia], b.counts()[ib], metric)
            lo, hi = res["ci"]
            rows.append({"test": f"paired bootstrap, {metric}", "n": len(ia),
                         "effect": f"Δ {metric} {res['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                         "p_value": res["p_value"]})
        # per-image Jaccard only on the images whose truth holds the target (the scorer's mean_over): on
        # the others an empty prediction is "perfect", which would make a test of predicting nothing
        held = mean_over(a.counts()[ia])
        ia, ib = ia[held], ib[held]
        if len(ia):
            res = significance.paired_bootstrap(jac_a[ia], jac_b[ib], n_boot=1000, seed=0)
            diff, (lo, hi) = res["difference"], res["ci"]
            rows.append({"test": "paired bootstrap, per-image Jaccard (images with the target)", "n": len(ia),
                         "effect": f"Δ mean Jaccard {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                         "p_value": res.get("p_value")})
        return rows
    ids_a, y_a, s_a = a.prediction_arrays()
    ids_b, y_b, s_b = b.prediction_arrays()
    ia, ib = paired_indices(ids_a, ids_b)
    y = y_a[ia]
    if not np.array_equal(y, y_b[ib]):
        raise ValueError(f"{a.approach} and {b.approach} disagree on the true labels of shared images")
    correct_a, correct_b = predict_labels(s_a[ia]) == y, predict_labels(s_b[ib]) == y
    res = significance.mcnemar(correct_a, correct_b)
    rows.append({"test": "McNemar, accuracy", "n": len(ia),
                 "effect": f"accuracy {correct_a.mean():.3f} vs {correct_b.mean():.3f}",
                 "p_value": res.get("p_value")})
    if s_a.shape[1] == 2 and len(np.unique(y)) == 2:
        res = significance.delong(y, s_a[ia, 1], s_b[ib, 1])
        rows.append({"test": "DeLong, ROC AUC", "n": len(ia),
                     "effect": f"AUC {res['auc_a']:.3f} vs {res['auc_b']:.3f} (z {res['z']:+.2f})",
                     "p_value": res.get("p_value")})
    return rows


def paired_seeds(a: RunRecord, b: RunRecord) -> str:
    """Which seed's test predictions a paired test of ``a`` against ``b`` uses: ``"0 vs 0"``."""
    return f"{MISSING if a.seed is None else a.seed} vs {MISSING if b.seed is None else b.seed}"


def fmt_p(p: float | None, missing: str = "n/a") -> str:
    """A p-value as every table of tests shows it (``missing`` where there is none)."""
    if p is None:
        return missing
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None): a table tests many deep rows at once."""
    known = sorted((p, k) for k, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, k) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[k] = running
    return adjusted


@dataclass
class PairedTests:
    """The rows of one table of paired tests and their p-values, Holm-adjusted together by :meth:`rows`.

    Each row starts with the caller's ``prefix`` (which table, which records) and goes on with the paired
    images, the test, its effect and its p-value; a pair that could not be tested says why in their place."""

    _rows: list[list[str]] = field(default_factory=list)
    _p_values: list[float | None] = field(default_factory=list)

    def test(self, prefix: list[str], a: RunRecord, b: RunRecord, kind: str, metric: str) -> None:
        """Test ``a`` against ``b`` (:func:`compare`): one row per test."""
        try:
            tests = compare(a, b, kind, metric)
        except (KeyError, ValueError) as err:
            self.untested(prefix + [MISSING, f"cannot pair predictions: {err}", "", ""])
            return
        for t in tests:
            self._rows.append(prefix + [str(t["n"]), t["test"], t["effect"], fmt_p(t["p_value"])])
            self._p_values.append(t["p_value"])

    def untested(self, row: list[str]) -> None:
        """A row without a test (no p-value, left out of the Holm adjustment)."""
        self._rows.append(row)
        self._p_values.append(None)

    def rows(self) -> list[list[str]]:
        """Every row with its Holm-adjusted p-value appended (empty where it has none)."""
        return [r + [fmt_p(p) if p is not None else ""] for r, p in zip(self._rows, holm(self._p_values))]
