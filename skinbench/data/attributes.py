"""Dermoscopic attribute masks (globules, streaks, ...) for task3.

* :func:`load_isic2018`: the ISIC 2018 Task 2 release (``images/``, ``<attr>/ISIC_x_attribute_<attr>.png``)
  with a 2016 Part 2B-style split from ``split_membership_2016_2017.csv``: 2016 training images ->
  train, 2016 test images -> test, every other image is dropped.
* :func:`load_isic2016_part2b`: the ISIC 2016 Part 2B layout (``train/`` and ``test/`` holding
  ``ISIC_x.jpg``, ``ISIC_x_globules.png``, ``ISIC_x_streaks.png``).

An image whose mask file is absent although the release says the attribute is present (ISIC 2018:
ISIC_0012481 has no streaks mask) cannot be scored: such an image is dropped from the dataset (for all
targets, because a Dataset has one table) and listed in ``extra["dropped"]``. "" as a mask path would
mean "no attribute", which would be wrong. ISIC_0012481 is not a 2016 image, so the 2016-style split
loses nothing. These datasets have no class labels (``label`` is "").
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from skinbench.data import layout
from skinbench.data.base import Dataset
from skinbench.data.generic import _index_files
from skinbench.data.manifests import apply_manifest
from skinbench.errors import DataError
from skinbench.info import DATASETS

ISIC2018 = "isic2018_task2"
PART2B = "isic2016_part2b"
MEMBERSHIP = "split_membership_2016_2017.csv"
PRESENCE = "attribute_presence_and_provenance.csv"


def _membership(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"image_id", "isic2016_split"} <= set(table.columns):
        raise DataError("membership CSV lacks columns image_id,isic2016_split", path=path,
                        fix="use the split_membership_2016_2017.csv shipped with the data")
    table = table[table["isic2016_split"].isin(["train", "test"])]
    dup = table["image_id"][table["image_id"].duplicated()].unique()
    if len(dup):
        raise DataError(f"duplicate image_id {', '.join(dup[:5])}", path=path, fix="list every image once")
    return table


def load_isic2018(folder: str | os.PathLike, targets: tuple[str, ...] | None = None,
                  manifest_dir: str | os.PathLike | None = None) -> Dataset:
    """ISIC 2018 Task 2 masks of the ISIC 2016 images, split as in 2016 (806 train / 339 test here)."""
    folder = layout.require_dir(ISIC2018, Path(folder))
    targets = tuple(targets or DATASETS[ISIC2018].targets)
    source = layout.require_file(ISIC2018, folder, MEMBERSHIP)
    table = _membership(source)
    image_dir = layout.first_dir(ISIC2018, folder, "images", "ISIC2018_Task1-2_Training_Input")
    index = _index_files(image_dir)
    ids = table["image_id"].tolist()
    absent = [i for i in ids if i not in index]
    if absent:
        raise DataError(f"{len(absent)} image(s) listed in {MEMBERSHIP} are absent from {image_dir} "
                        f"(first: {', '.join(absent[:5])})", path=source, fix="download the ISIC 2018 Task 1-2 images")
    presence = None
    if (folder / PRESENCE).is_file():
        presence = pd.read_csv(folder / PRESENCE, dtype=str, keep_default_na=False).set_index("image_id")
    frame = pd.DataFrame({"image_id": ids, "image": [index[i] for i in ids], "label": "",
                          "lesion_id": ids, "split": table["isic2016_split"].to_numpy()})
    dropped: dict[str, str] = {}
    for target in targets:
        mask_dir = layout.first_dir(ISIC2018, folder, target, f"ISIC2018_Task2_Training_GroundTruth_v3/{target}")
        names = set(os.listdir(mask_dir))
        paths = []
        for i in ids:
            name = f"{i}_attribute_{target}.png"
            if name in names:
                paths.append(str(mask_dir / name))
                continue
            paths.append("")
            says_present = presence is not None and i in presence.index and presence.at[i, target] == "1"
            dropped[i] = (f"{target} mask missing although the presence label says 1" if says_present
                          else f"{target} mask missing")
        frame[f"mask_{target}"] = paths
    frame = frame[~frame["image_id"].isin(dropped)].reset_index(drop=True)
    frame, digest = apply_manifest(ISIC2018, frame, source, manifest_dir, take_split=False) if not dropped \
        else (frame, "")
    return Dataset(ISIC2018, folder, frame, (), targets, digest, {"dropped": dropped})


def load_isic2016_part2b(folder: str | os.PathLike, targets: tuple[str, ...] = ("globules", "streaks")) -> Dataset:
    """ISIC 2016 Part 2B: ``train/`` and ``test/`` with ISIC_x.jpg and ISIC_x_<target>.png each."""
    folder = layout.require_dir(PART2B, Path(folder))
    rows = []
    for split in ("train", "test"):
        sub = layout.first_dir(PART2B, folder, split)
        files = set(os.listdir(sub))
        images = sorted(f for f in files if f.lower().endswith((".jpg", ".jpeg", ".png"))
                        and not any(f.endswith(f"_{t}.png") for t in targets))
        if not images:
            raise DataError(f"no images in {sub}", path=sub, fix="unpack the Part 2B data into train/ and test/")
        for name in images:
            image_id = os.path.splitext(name)[0]
            row = {"image_id": image_id, "image": str(sub / name), "label": "", "lesion_id": image_id,
                   "split": split}
            for t in targets:
                mask = f"{image_id}_{t}.png"
                if mask not in files:
                    raise DataError(f"{t} mask {mask} of {name} is missing", path=sub,
                                    fix=f"add {mask} (an all-black PNG if the image has no {t})")
                row[f"mask_{t}"] = str(sub / mask)
            rows.append(row)
    frame = pd.DataFrame(rows)
    dup = frame["image_id"][frame["image_id"].duplicated()].unique()
    if len(dup):
        raise DataError(f"image(s) {', '.join(dup[:5])} are in both train/ and test/", path=folder,
                        fix="keep each image in one split")
    return Dataset(PART2B, folder, frame, (), tuple(targets))
