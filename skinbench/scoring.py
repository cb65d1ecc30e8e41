"""How predictions become a record's numbers: one place for runs, cross-dataset runs, sweeps and external
predictions alike, so each scores a prediction the same way.

It holds no records and runs no estimator (it sits below :mod:`skinbench.runner` and beside
:mod:`skinbench.provenance`, which declares :data:`SCORING_VERSION` in every run key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import cv2
import numpy as np

from skinbench.data.base import Dataset
from skinbench.data.images import image_size, read_mask
from skinbench.errors import ConfigError
from skinbench.metrics.classification import classification_scores
from skinbench.metrics.evaluate import (
    evaluate_classification,
    evaluate_false_alarms,
    evaluate_segmentation,
    evaluate_surface,
)
from skinbench.metrics.segmentation import confusion_counts, has_target, segmentation_scores
from skinbench.metrics.surface import surface_distances

#: declared version of how the runner turns predictions into numbers (threshold 0.5, probability maps
#: resized to the truth mask's grid); enters every run key (skinbench.provenance).
#: 2: numbers are computed from the predictions as stored (scores rounded to STORED_DECIMALS, surface
#: distances to SURFACE_DECIMALS), and a segmentation's per-image means (``*_mean``, thresholded Jaccard,
#: HD95/ASSD) are taken over the images whose truth holds the target, the others scored by false alarms
SCORING_VERSION = 2
#: decimals a record keeps of a float (classification scores, metric values): the metrics are computed
#: from the scores rounded so, so re-scoring a record's stored predictions gives its numbers exactly
STORED_DECIMALS = 6
#: decimals a record keeps of a per-image surface distance (pixels); the boundary metrics use these
SURFACE_DECIMALS = 3
#: ``precision_set`` of a set where nothing is predicted: undefined (None), not the ISIC scorer's 1.0, with
#: which a baseline predicting nothing would score the best precision of every table
EMPTY_PRECISION = float("nan")


def as_stored(values: Any, decimals: int = STORED_DECIMALS) -> np.ndarray:
    """``values`` as a record stores them: the one rounding rule (numpy's half-to-even at ``decimals``),
    applied before any number is computed from them."""
    return np.round(np.asarray(values, dtype=np.float64), decimals)


def scored_classification(ids: Iterable[str], y: np.ndarray, scores: np.ndarray, class_names: Iterable[str],
                          positive_class: str | None, n_boot: int, seed: int) -> dict[str, Any]:
    """A classification record's ``metrics``, ``extras`` and ``predictions`` from per-image scores: one
    place for how scores become a record, for runs, cross-dataset runs, external predictions and re-scoring
    alike. The scores are rounded as stored first (:func:`as_stored`): rounding creates ties, which move
    AUC and AP, so numbers from unrounded scores could not be reproduced from the record."""
    names = list(class_names)
    stored = as_stored(scores)
    evaluation = evaluate_classification(y, stored, names, n_boot=n_boot, seed=seed)
    extras = {k: v for k, v in evaluation.items() if k != "metrics"}
    extras["class_names"] = names
    if positive_class:
        extras["positive_class"] = positive_class
    return {"metrics": evaluation["metrics"], "extras": extras,
            "predictions": {"image_id": [str(i) for i in ids], "y_true": np.asarray(y).tolist(),
                            "scores": stored.tolist()}}


def mean_over(counts: np.ndarray) -> np.ndarray:
    """The images a segmentation's per-image means are taken over: those whose truth holds the target
    (one rule for every segmentation task: on a lesion task that is every image, so nothing changes there;
    on a sparse attribute an empty prediction would otherwise "win" every image without it)."""
    return has_target(counts)


def segmentation_values(counts: np.ndarray) -> dict[str, float | None]:
    """The segmentation metrics' values (no CIs) under the scorer's rules (:func:`mean_over`,
    :data:`EMPTY_PRECISION`), e.g. for the baselines ``score`` prints beside external predictions."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    return segmentation_scores(c, mean_over(c), EMPTY_PRECISION)


def surface_metrics(counts: np.ndarray, surface: Any, shapes: Any, n_boot: int, seed: int) -> dict[str, dict]:
    """``{name: {"value", "ci"}}`` boundary metrics (HD95, ASSD, ...) from stored per-image ``surface``
    distances, over :func:`mean_over`'s images; ``hd95_norm_mean`` only with the truth-mask ``shapes``."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    known = shapes is not None and len(shapes) > 0
    out = evaluate_surface(as_stored(surface, SURFACE_DECIMALS), c, n_boot=n_boot, seed=seed,
                           shapes=shapes if known else None, over=mean_over(c))["metrics"]
    return out if known else {k: v for k, v in out.items() if k != "hd95_norm_mean"}


def scored_segmentation(ids: Iterable[str], counts: np.ndarray, surface: Any = None, shapes: Any = None,
                        n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """A segmentation record's ``metrics``, ``extras`` and ``predictions`` from per-image counts (and, when
    the run measured them, surface distances and truth-mask shapes): for runs, external predictions and
    re-scoring alike, so a record's numbers come from exactly what it stores.

    Pooled (``*_set``) metrics pool every image (``precision_set`` is None when nothing is predicted:
    :data:`EMPTY_PRECISION`); per-image means are over :func:`mean_over`'s images; the images without the
    target get ``false_alarm_images`` / ``false_alarm_area`` (only when there are
    any). ``extras.images_with_target`` says how many images the means are over."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    over = mean_over(c)
    metrics = evaluate_segmentation(c, n_boot=n_boot, seed=seed, over=over,
                                    empty_precision=EMPTY_PRECISION)["metrics"]
    if not over.all():
        metrics.update(evaluate_false_alarms(c, n_boot=n_boot, seed=seed)["metrics"])
    predictions: dict[str, Any] = {"image_id": [str(i) for i in ids], "counts": c.tolist()}
    if surface is not None and len(surface):
        stored = as_stored(np.reshape(np.asarray(surface, dtype=np.float64), (-1, 2)), SURFACE_DECIMALS)
        metrics.update(surface_metrics(c, stored, shapes, n_boot, seed))
        predictions["surface"] = stored.tolist()
        if shapes is not None and len(shapes):
            predictions["mask_shape"] = [[int(n) for n in s] for s in shapes]
    return {"metrics": metrics, "extras": {"images_with_target": int(over.sum())}, "predictions": predictions}


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


#: what the per-image loop does with each image besides scoring it: ``(index, truth, predicted mask)``
#: (the runner keeps overlays and writes submission masks there)
EachImage = Callable[[int, np.ndarray, np.ndarray], None]


class MaskScores(NamedTuple):
    """What the per-image loop gives a segmentation record: counts (n, 4), surface (n, 2), shapes [H, W]."""

    counts: np.ndarray
    surface: np.ndarray
    shapes: list[list[int]]


@dataclass(frozen=True)
class Scorer:
    """One scorer bound to a test set and its truth, as MedMNIST's ``Evaluator(flag, split)``: runs,
    cross-dataset runs, external predictions and sweeps hand it predictions and get a record's
    ``metrics``, ``extras`` and ``predictions`` back, so each is scored the same way.

    ``y``/``class_names``/``positive_class`` default to the test set's own; a foreign test set passes its
    labels as indices into the *training* classes, the model's columns.
    """

    test: Dataset
    n_boot: int = 1000
    seed: int = 0
    y: np.ndarray | None = None
    class_names: Sequence[str] | None = None
    positive_class: str | None = None

    def classification(self, scores: np.ndarray) -> dict[str, Any]:
        """Fields of a classification record from ``(n_test, n_classes)`` scores in test order."""
        names = list(self.class_names if self.class_names is not None else self.test.class_names)
        positive = self.positive_class if self.class_names is not None else self.test.positive_class
        y = self.test.y if self.y is None else self.y
        return scored_classification(self.test.ids, y, scores, names, positive, self.n_boot, self.seed)

    def score_masks(self, target: str, predictions: Iterable[Any],
                    to_mask: Callable[[Any, tuple[int, ...]], np.ndarray] = threshold_map,
                    each: EachImage | None = None) -> MaskScores:
        """The per-image loop of every segmentation score: truth mask -> the prediction on its grid
        (``to_mask``: a probability map thresholded by default, or a predicted mask file read) -> counts
        and surface distances. ``predictions`` come in test order (a generator is consumed lazily, so a
        model's maps are never all held). Returns counts ``(n, 4)``, surface ``(n, 2)`` and the truth masks'
        ``[H, W]`` (the tables divide HD95 by each mask's diagonal)."""
        masks, paths = self.test.masks(target), self.test.paths
        counts, surface, shapes = [], [], []
        for i, prediction in enumerate(predictions):
            if i >= len(paths):
                raise ConfigError(f"more {target} predictions than the {len(paths)} test images",
                                  fix="predict exactly one mask per test image")
            truth = truth_mask(masks[i], paths[i])
            pred = to_mask(prediction, truth.shape)
            image_counts, image_surface = score_mask(truth, pred)
            counts.append(image_counts)
            surface.append(image_surface)
            shapes.append([int(n) for n in truth.shape])
            if each is not None:
                each(i, truth, pred)
        if len(counts) != len(paths):
            raise ConfigError(f"{len(counts)} {target} predictions for {len(paths)} test images",
                              fix="predict exactly one mask per test image")
        return MaskScores(np.asarray(counts, dtype=np.int64).reshape(-1, 4),
                          np.reshape(np.asarray(surface, dtype=float), (-1, 2)), shapes)

    def segmentation(self, scores: MaskScores) -> dict[str, Any]:
        """Fields of a segmentation record from :meth:`score_masks`' counts, surface distances and shapes."""
        return scored_segmentation(self.test.ids, scores.counts, scores.surface, scores.shapes, self.n_boot,
                                   self.seed)
