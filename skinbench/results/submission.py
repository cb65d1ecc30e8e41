"""Predictions in the official ISIC submission formats, so the challenge scorer can re-score them.

- task1: ISIC 2016 Part 3 CSV, rows ``ISIC_id,probability_of_malignancy``, no header (as 2016 took it);
  ``write_scorer_csv`` writes the same scores in the header format today's ``isic-challenge-scoring`` reads.
- task2: ISIC 2018 Task 3 CSV, header ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``.
- task3/task4: one 0/255 greyscale PNG per image and target: ``ISIC_x_segmentation.png`` (lesion) and
  ``ISIC_x_attribute_<name>.png`` (attributes), at the image's original size.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from skinbench.cache import atomic_write_bytes
from skinbench.data.isic_csv import ISIC2018_TASK3_COLUMNS
from skinbench.errors import ConfigError
from skinbench.results.records import RunRecord


def _csv_bytes(rows: list[list], header: Sequence[str] | None) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _probabilities(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    return np.clip(scores, 0.0, 1.0)


def _positive_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    return scores[:, 1] if scores.ndim == 2 else scores


def write_isic2016_task3_csv(path: str | os.PathLike, image_ids: Sequence[str], scores: np.ndarray) -> Path:
    """ISIC 2016 Part 3 submission: ``ISIC_id,probability_of_malignancy`` per row, no header.

    ``scores`` is the malignant probability (1-D) or ``(n, 2)`` probabilities with malignant in column 1.
    """
    p = _probabilities(_positive_scores(scores))
    rows = [[str(i), f"{v:.6f}"] for i, v in zip(image_ids, p)]
    atomic_write_bytes(Path(path), _csv_bytes(rows, None))
    return Path(path)


def write_isic2018_task3_csv(path: str | os.PathLike, image_ids: Sequence[str], proba: np.ndarray,
                             class_names: Sequence[str]) -> Path:
    """ISIC 2018 Task 3 submission (``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``) from dx-coded probabilities."""
    lookup = {c.upper(): i for i, c in enumerate(class_names)}
    missing = [c for c in ISIC2018_TASK3_COLUMNS if c not in lookup]
    if missing or len(lookup) != len(ISIC2018_TASK3_COLUMNS):
        raise ConfigError(f"ISIC 2018 Task 3 format needs exactly the seven HAM10000 classes, got {list(class_names)}",
                          fix="write task2 results of the ham10000 dataset (or use write_scorer_csv)")
    p = _probabilities(proba)
    rows = [[str(i), *(f"{p[k, lookup[c]]:.6f}" for c in ISIC2018_TASK3_COLUMNS)] for k, i in enumerate(image_ids)]
    atomic_write_bytes(Path(path), _csv_bytes(rows, ("image", *ISIC2018_TASK3_COLUMNS)))
    return Path(path)


def write_scorer_csv(path: str | os.PathLike, image_ids: Sequence[str], proba: np.ndarray,
                     class_names: Sequence[str]) -> Path:
    """``image,<class>...`` CSV as the current ``isic-challenge-scoring`` classification loader reads it."""
    p = _probabilities(proba)
    if p.ndim == 1:
        p = np.stack([1 - p, p], axis=1)
    rows = [[str(i), *(f"{v:.6f}" for v in p[k])] for k, i in enumerate(image_ids)]
    atomic_write_bytes(Path(path), _csv_bytes(rows, ("image", *class_names)))
    return Path(path)


def write_truth_csv(path: str | os.PathLike, image_ids: Sequence[str], y_true: Sequence[int],
                    class_names: Sequence[str]) -> Path:
    """One-hot ground truth in the scorer's ``image,<class>...`` layout (to re-score task1 with it)."""
    onehot = np.eye(len(class_names))[np.asarray(y_true, dtype=int)]
    return write_scorer_csv(path, image_ids, onehot, class_names)


def mask_filename(image_id: str, target: str) -> str:
    """Official file name of a predicted mask: lesion -> ``_segmentation``, attributes -> ``_attribute_<t>``."""
    return f"{image_id}_segmentation.png" if target == "lesion" else f"{image_id}_attribute_{target}.png"


def write_mask_png(folder: str | os.PathLike, image_id: str, mask: np.ndarray, target: str) -> Path:
    """Write a boolean (or 0..1 probability, thresholded at 0.5) mask as a 0/255 greyscale PNG."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask for {image_id} must be 2-D (H, W), got shape {mask.shape}")
    binary = mask if mask.dtype == bool else mask > 0.5
    ok, buf = cv2.imencode(".png", np.where(binary, 255, 0).astype(np.uint8))
    if not ok:
        raise RuntimeError(f"could not encode the mask of {image_id} as PNG")
    path = Path(folder) / mask_filename(image_id, target)
    atomic_write_bytes(path, buf.tobytes())
    return path


def submission_stem(task: str, dataset: str, approach: str) -> str:
    """``<task>__<dataset>__<approach>``: the start of a run's submission file names. The dataset is in
    the name because the files hold that dataset's test images: a task1 run on generic data is not an
    ISIC 2016 submission, whatever format suffix its files have."""
    return "__".join((task, dataset, approach))


def write_classification_csv(folder: str | os.PathLike, image_ids: Sequence[str], scores: np.ndarray,
                             class_names: Sequence[str], stem: str) -> list[Path]:
    """The official CSVs of one classification run under ``folder``; returns the files written.

    Always the scorer-format file (``<stem>_scorer.csv``); binary runs also get the ISIC 2016 Part 3
    no-header file (``<stem>_isic2016_part3.csv``), and runs on HAM10000's seven classes the ISIC 2018
    Task 3 file (``<stem>_isic2018_task3.csv``). ``stem``: :func:`submission_stem` of the run.
    """
    folder = Path(folder)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        scores = np.stack([1 - scores, scores], axis=1)
    ids = [str(i) for i in image_ids]
    written = [write_scorer_csv(folder / f"{stem}_scorer.csv", ids, scores, class_names)]
    if scores.shape[1] == 2:
        written.append(write_isic2016_task3_csv(folder / f"{stem}_isic2016_part3.csv", ids, scores))
    elif {str(n).upper() for n in class_names} == set(ISIC2018_TASK3_COLUMNS):
        written.append(write_isic2018_task3_csv(folder / f"{stem}_isic2018_task3.csv", ids, scores, class_names))
    return written


def write_record_submission(record: RunRecord, folder: str | os.PathLike) -> list[Path]:
    """:func:`write_classification_csv` from a stored classification record (named as its run named them).

    Segmentation records hold only per-image counts: their masks are written at predict time
    (``python -m skinbench predict`` / ``run --predictions``) with :func:`write_mask_png`.
    """
    ids, _, scores = record.prediction_arrays()
    names = record.class_names or [f"class_{i}" for i in range(scores.shape[1])]
    return write_classification_csv(folder, ids, scores, names, submission_stem(record.task, record.dataset,
                                                                                record.approach))
