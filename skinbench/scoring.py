"""How predictions become a record's numbers: one place for runs, cross-dataset runs, sweeps and external
predictions alike, so each scores a prediction the same way.

It holds no records and runs no estimator (it sits below :mod:`skinbench.runner` and beside
:mod:`skinbench.provenance`, which declares :data:`SCORING_VERSION` in every run key).
"""

from __future__ import annotations

from typing import Any, Iterable

import cv2
import numpy as np

from skinbench.data.images import image_size, read_mask
from skinbench.errors import ConfigError
from skinbench.metrics.classification import classification_scores
from skinbench.metrics.evaluate import evaluate_classification
from skinbench.metrics.segmentation import confusion_counts
from skinbench.metrics.surface import surface_distances

#: declared version of how the runner turns predictions into numbers (threshold 0.5, probability maps
#: resized to the truth mask's grid); enters every run key (skinbench.provenance)
SCORING_VERSION = 1


def scored_classification(ids: Iterable[str], y: np.ndarray, scores: np.ndarray, class_names: Iterable[str],
                          positive_class: str | None, n_boot: int, seed: int) -> dict[str, Any]:
    """A classification record's ``metrics``, ``extras`` and ``predictions`` from per-image scores: one
    place for how scores become a record, for runs, cross-dataset runs and external predictions alike."""
    names = list(class_names)
    evaluation = evaluate_classification(y, scores, names, n_boot=n_boot, seed=seed)
    extras = {k: v for k, v in evaluation.items() if k != "metrics"}
    extras["class_names"] = names
    if positive_class:
        extras["positive_class"] = positive_class
    return {"metrics": evaluation["metrics"], "extras": extras,
            "predictions": {"image_id": [str(i) for i in ids], "y_true": np.asarray(y).tolist(),
                            "scores": np.round(scores, 6).tolist()}}


def fit_summary(est: Any) -> dict[str, Any]:
    """What a fit chose (a record's ``extras.fit``), from the fitted attributes estimators expose: ``best_params_``,
    the validation selection score and scores on the first validation split (``validation_``), Keras epochs
    (``history_``), a tuned threshold. Empty when it exposes none."""
    out: dict[str, Any] = {}
    best = getattr(est, "best_params_", None)
    if best is not None:
        out["best_params"] = list(best) if isinstance(best, tuple) else best
    val = getattr(est, "validation_", None)
    if isinstance(val, dict):
        if val.get("best_score") is not None:
            out["val_selection_score"] = float(val["best_score"])
        if val.get("y") is not None and val.get("proba") is not None:
            out["val_scores"] = classification_scores(val["y"], val["proba"])
            out["n_val"] = int(len(val["y"]))
    history = getattr(est, "history_", None)
    if isinstance(history, list) and history:
        out["epochs"] = [h.get("epochs") for h in history if isinstance(h, dict)]
    stages = getattr(est, "stage_log_", None)
    if isinstance(stages, list) and stages:
        out["stages"] = stages  # per stage: epochs, seconds, images/s, validation score, found in the cache
    tta = getattr(est, "tta_scores_", None)
    if isinstance(tta, dict):
        out["tta"] = {"validation": tta, "used": bool(getattr(est, "tta_", False))}
    training = getattr(est, "training_", None)
    if isinstance(training, dict):
        out["training"] = training  # epochs, seconds, images/s of the (possibly cached) training
    for attr in ("threshold_", "validation_jaccard_"):
        if getattr(est, attr, None) is not None:
            out[attr.rstrip("_")] = float(getattr(est, attr))
    return out


def full_columns(proba: np.ndarray, classes: Iterable[int], n_classes: int) -> np.ndarray:
    """Scores for every class of the task, even those absent from the training part (score 0)."""
    classes = np.asarray(list(classes), dtype=int)
    if classes.size and classes.max() >= n_classes:
        raise ConfigError(f"the model predicts {classes.max() + 1} classes but the dataset has {n_classes}",
                          fix=f"set its number of classes to the dataset's (-p n_classes={n_classes}, or 0: from "
                              "the labels)")
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes] = proba
    return full


def params_of(est: Any) -> dict[str, Any]:
    """The estimator's hyper-parameters a record keeps (JSON scalars; the cache folder is the machine's)."""
    params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    return {k: v for k, v in params.items() if k != "cache_dir" and isinstance(v, (int, float, str, bool, list, tuple, type(None)))}


def truth_mask(mask_path: str, image_path: str) -> np.ndarray:
    """The truth mask; an image without a mask file has no foreground (the image's own size)."""
    if mask_path:
        return read_mask(mask_path)
    w, h = image_size(image_path)
    return np.zeros((h, w), dtype=bool)


def to_shape(prob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize a probability map to the truth mask's shape (masks can be larger than the images)."""
    if prob.shape == shape:
        return prob
    return cv2.resize(prob, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def threshold_map(prob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The predicted mask on the truth's grid: the probability map resized to ``shape``, then >= 0.5."""
    return to_shape(np.asarray(prob, dtype=np.float32), shape) >= 0.5


def score_mask(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """One image's confusion counts (tp, fp, fn, tn) and boundary distances [hd95, assd] in truth pixels.

    The distances feed the tables' boundary columns: 10-14 ms per 450x600 HAM10000 mask (task4: 20-28 s per
    2004-image run, counted in predict_s), < 1 ms per task3 mask.
    """
    return confusion_counts(truth, pred), surface_distances(truth, pred)
