"""HAM10000 (seven diagnoses, lesion masks) in the layouts users download.

Folder::

    HAM10000_metadata.csv                                        lesion_id,image_id,dx,...
    images/ISIC_*.jpg  or  HAM10000_images_part_1/ + HAM10000_images_part_2/
    masks/ISIC_*_segmentation.png  or  HAM10000_segmentations_lesion_tschandl/   (optional)

The split is the lesion-aware one saved in ``data_manifests/ham10000.csv`` (stratified by dx, 20%
test, seed 0, built once by ``benchmarks/build_manifests.py``); without the manifest it is computed the
same way. Masks are 600x450 for 200x150 or 600x450 images and are read with
:func:`skinbench.data.images.read_mask` (inverted palette masks fixed). Without a mask folder the
dataset has no ``lesion`` target; an image without its mask file gets "" and is counted in
``extra["masks_missing"]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from skinbench.data import layout
from skinbench.data.base import Dataset
from skinbench.data.generic import _index_files
from skinbench.data.manifests import apply_manifest
from skinbench.data.splits import lesion_split
from skinbench.errors import DataError
from skinbench.info import HAM_CLASSES

NAME = "ham10000"
METADATA = "HAM10000_metadata.csv"
IMAGE_DIRS = (("images",), ("HAM10000_images_part_1", "HAM10000_images_part_2"), ("HAM10000_images",))
MASK_DIRS = ("masks", "HAM10000_segmentations_lesion_tschandl")
#: file name of an image's lesion mask in MASK_DIRS (ISIC 2018 Task 1 naming); the one copy of this rule
MASK_FILE = "{}_segmentation.png"
TEST_SIZE = 0.2
SPLIT_SEED = 0


def read_metadata(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot parse metadata ({err})", path=path, fix="download it again") from None
    missing = [c for c in ("lesion_id", "image_id", "dx") if c not in table.columns]
    if missing:
        raise DataError(f"metadata lacks columns {missing}", path=path,
                        fix="use the official HAM10000_metadata.csv (lesion_id,image_id,dx,...)")
    bad = table[~table["dx"].isin(HAM_CLASSES)]
    if len(bad):
        raise DataError(f"unknown dx {sorted(set(bad['dx']))[:5]} (e.g. {bad['image_id'].iloc[0]})", path=path,
                        fix=f"dx must be one of {', '.join(HAM_CLASSES)}")
    return table


def _image_index(folder: Path) -> dict[str, str]:
    for names in IMAGE_DIRS:
        dirs = [folder / n for n in names if (folder / n).is_dir()]
        if dirs:
            index: dict[str, str] = {}
            for d in dirs:
                index.update(_index_files(d))
            return index
    raise layout.missing_data(NAME, folder / "images", what="image folder images/ (or HAM10000_images_part_1/2)")


def mask_file_name(image_id: str) -> str:
    """``<image_id>_segmentation.png``: the lesion mask of ``image_id`` in a HAM10000 mask folder."""
    return MASK_FILE.format(image_id)


def compute_split(table: pd.DataFrame, seed: int = SPLIT_SEED) -> np.ndarray:
    """The lesion-aware split stratified by dx (what build_manifests.py saved once)."""
    y = table["dx"].map({c: i for i, c in enumerate(HAM_CLASSES)}).to_numpy()
    return lesion_split(y, table["lesion_id"].to_numpy(), test_size=TEST_SIZE, seed=seed)


def load(folder: str | os.PathLike, manifest_dir: str | os.PathLike | None = None) -> Dataset:
    """All HAM10000 images with labels (dx), lesion ids, the manifest split and lesion masks."""
    folder = layout.require_dir(NAME, Path(folder))
    source = layout.require_file(NAME, folder, METADATA)
    table = read_metadata(source)
    index = _image_index(folder)
    ids = table["image_id"].tolist()
    absent = [i for i in ids if i not in index]
    if absent:
        raise DataError(f"{len(absent)} image(s) listed in {METADATA} are absent (first: {', '.join(absent[:5])})",
                        path=folder, fix="download both HAM10000 image archives into images/ (or part_1/part_2)")
    frame = pd.DataFrame({"image_id": ids, "image": [index[i] for i in ids], "label": table["dx"].to_numpy(),
                          "lesion_id": table["lesion_id"].to_numpy(), "split": ""})
    frame, digest = apply_manifest(NAME, frame, source, manifest_dir, take_split=True)
    if (frame["split"] == "").any():  # no manifest: compute it the way the manifest was made
        frame["split"] = compute_split(table)
    extra: dict = {}
    targets: tuple[str, ...] = ()
    mask_dir = next((folder / d for d in MASK_DIRS if (folder / d).is_dir()), None)
    if mask_dir is not None:
        names = set(os.listdir(mask_dir))
        frame["mask_lesion"] = [str(mask_dir / mask_file_name(i)) if mask_file_name(i) in names else "" for i in ids]
        extra["masks_missing"] = int((frame["mask_lesion"] == "").sum())
        targets = ("lesion",)
    for col in ("dx_type", "age", "sex", "localization"):
        if col in table.columns:
            frame[col] = table[col].to_numpy()
    return Dataset(NAME, folder, frame, HAM_CLASSES, targets, digest, extra)
