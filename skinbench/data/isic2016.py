"""ISIC 2016 Part 3 (benign vs malignant) in its official layout, as downloaded.

Folder (either image-folder name works)::

    ISBI2016_ISIC_Part3_Training_GroundTruth.csv   no header, ``ISIC_id,benign|malignant``
    ISBI2016_ISIC_Part3_Test_GroundTruth.csv       no header, ``ISIC_id,0.0|1.0`` (1.0 = malignant)
    ISBI2016_ISIC_Part3_Training_Data/ or train/   ISIC_*.jpg
    ISBI2016_ISIC_Part3_Test_Data/ or test/        ISIC_*.jpg

The split is the official one (900 train / 379 test); there are no lesion ids, so each image is its
own lesion. Either label spelling is accepted in either file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from skinbench.data import layout
from skinbench.data.base import Dataset, check_unique_ids
from skinbench.data.generic import find_images
from skinbench.data.manifests import apply_manifest
from skinbench.errors import DataError

NAME = "isic2016_task3"
CLASSES = ("benign", "malignant")
TRAIN_CSV = "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
TEST_CSV = "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"
TRAIN_DIRS = ("ISBI2016_ISIC_Part3_Training_Data", "train")
TEST_DIRS = ("ISBI2016_ISIC_Part3_Test_Data", "test")
LABELS = {"benign": "benign", "malignant": "malignant", "0": "benign", "0.0": "benign",
          "1": "malignant", "1.0": "malignant"}
ID_PATTERN = re.compile(r"^ISIC_\d+$")
#: removing rows of an official ground-truth file would fail the manifest check: download instead
ABSENT_FIX = ("download the complete ISIC 2016 Part 3 images from https://challenge.isic-archive.com/data/#2016 "
              "(`python -m skinbench data verify isic2016_task3` lists what is missing); for a subset of your "
              "own, use --dataset generic")


def read_ground_truth(path: Path) -> pd.DataFrame:
    """``image_id,label`` from an official GroundTruth CSV (no header; a header line is tolerated)."""
    rows, lines = [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if n == 1 and not ID_PATTERN.match(parts[0]):
                continue  # a header someone added
            if len(parts) < 2:
                raise DataError(f"line {n} has no label: {line!r}", path=path,
                                fix="each line must be ISIC_id,benign|malignant or ISIC_id,0.0|1.0")
            label = LABELS.get(parts[1].lower())
            if label is None:
                raise DataError(f"line {n}: unknown label {parts[1]!r} for {parts[0]}", path=path,
                                fix="use benign|malignant (training file) or 0.0|1.0 (test file)")
            rows.append((parts[0], label))
            lines.append(n)
    table = pd.DataFrame(rows, columns=["image_id", "label"])
    if table.empty:
        raise DataError("ground-truth CSV has no rows", path=path, fix="download it again")
    check_unique_ids(table["image_id"], path, lines)
    return table


def load(folder: str | os.PathLike, manifest_dir: str | os.PathLike | None = None) -> Dataset:
    """The 1279 images with their official split (checked against data_manifests/isic2016_task3.csv)."""
    folder = layout.require_dir(NAME, Path(folder))
    parts = []
    for split, csv, dirs in (("train", TRAIN_CSV, TRAIN_DIRS), ("test", TEST_CSV, TEST_DIRS)):
        source = layout.require_file(NAME, folder, csv)
        table = read_ground_truth(source)
        image_dir = layout.first_dir(NAME, folder, *dirs)
        table["image"] = find_images(table["image_id"].tolist(), image_dir, source, fix=ABSENT_FIX)
        table["split"] = split
        parts.append(table)
    both = set(parts[0]["image_id"]) & set(parts[1]["image_id"])
    if both:
        raise DataError(f"image(s) {', '.join(sorted(both)[:5])} are in both the training and the test CSV",
                        path=folder / TEST_CSV, fix="use the official GroundTruth files")
    frame = pd.concat(parts, ignore_index=True)
    frame["lesion_id"] = frame["image_id"]
    frame = frame[["image_id", "image", "label", "lesion_id", "split"]]
    frame, digest = apply_manifest(NAME, frame, folder, manifest_dir, take_split=False)
    return Dataset(NAME, folder, frame, CLASSES, (), digest, positive_class="malignant", classes_declared=True)
