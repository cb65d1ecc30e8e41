"""Pure metric functions, bootstrap confidence intervals and paired significance tests.

The runner calls ``evaluate_classification`` / ``evaluate_segmentation``; the conventions for
undefined values are documented in ``classification.py`` and ``segmentation.py``.
"""

from skinbench.metrics.bootstrap import bootstrap_ci, bootstrap_ci_batch, percentile_ci
from skinbench.metrics.classification import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    classification_scores,
    classification_scores_batch,
    confusion_matrix,
    per_class_report,
    predict_labels,
)
from skinbench.metrics.evaluate import evaluate_classification, evaluate_segmentation
from skinbench.metrics.segmentation import (
    SEGMENTATION_METRICS,
    confusion_counts,
    per_image_scores,
    score_counts_batch,
    segmentation_scores,
)
from skinbench.metrics.significance import delong, mcnemar, paired_bootstrap

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "SEGMENTATION_METRICS",
    "bootstrap_ci",
    "bootstrap_ci_batch",
    "percentile_ci",
    "classification_scores",
    "classification_scores_batch",
    "confusion_matrix",
    "per_class_report",
    "predict_labels",
    "evaluate_classification",
    "evaluate_segmentation",
    "confusion_counts",
    "per_image_scores",
    "score_counts_batch",
    "segmentation_scores",
    "delong",
    "mcnemar",
    "paired_bootstrap",
]
