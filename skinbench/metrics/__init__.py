"""Pure metric functions, bootstrap confidence intervals and paired significance tests.

The runner calls ``evaluate_classification`` / ``evaluate_segmentation``; the conventions for
undefined values are documented in ``classification.py`` and ``segmentation.py``.
"""

#: declared version of the metric arithmetic (enters every run key, see skinbench.provenance): bump it
#: in a change that alters a stored number, not for a new metric or a refactor
METRICS_VERSION = 1

from skinbench.metrics.bootstrap import bootstrap_ci, bootstrap_ci_batch, percentile_ci
from skinbench.metrics.calibration import (
    CALIBRATION_METRICS,
    CLINICAL_METRICS_BINARY,
    CLINICAL_METRICS_MULTICLASS,
    brier_score,
    calibration_scores,
    calibration_scores_batch,
    clinical_scores,
    clinical_scores_from_predictions,
    expected_calibration_error,
    reliability_curve,
)
from skinbench.metrics.classification import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    balanced_accuracy,
    classification_scores,
    classification_scores_batch,
    confusion_matrix,
    per_class_report,
    predict_labels,
)
from skinbench.metrics.evaluate import evaluate_classification, evaluate_segmentation
from skinbench.metrics.operating_points import (
    OPERATING_POINT_METRICS,
    operating_point_scores,
    operating_point_scores_batch,
    partial_auc_above_tpr,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from skinbench.metrics.segmentation import (
    SEGMENTATION_METRICS,
    confusion_counts,
    per_image_scores,
    score_counts_batch,
    segmentation_scores,
)
from skinbench.metrics.significance import delong, mcnemar, paired_bootstrap
from skinbench.metrics.subgroups import age_band, load_ham10000_metadata, subgroup_scores
from skinbench.metrics.surface import (
    SURFACE_METRICS,
    surface_distances,
    surface_scores,
    surface_scores_batch,
    surface_scores_from_predictions,
)

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "SEGMENTATION_METRICS",
    "balanced_accuracy",
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
    "CALIBRATION_METRICS",
    "CLINICAL_METRICS_BINARY",
    "CLINICAL_METRICS_MULTICLASS",
    "brier_score",
    "calibration_scores",
    "calibration_scores_batch",
    "clinical_scores",
    "clinical_scores_from_predictions",
    "expected_calibration_error",
    "reliability_curve",
    "OPERATING_POINT_METRICS",
    "operating_point_scores",
    "operating_point_scores_batch",
    "partial_auc_above_tpr",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
    "age_band",
    "load_ham10000_metadata",
    "subgroup_scores",
    "SURFACE_METRICS",
    "surface_distances",
    "surface_scores",
    "surface_scores_batch",
    "surface_scores_from_predictions",
]
