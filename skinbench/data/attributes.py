"""Dermoscopic attribute masks (globules, streaks, ...) for task3.

* :func:`load_isic2018`: the ISIC 2018 Task 2 release (``images/``, ``<attr>/ISIC_x_attribute_<attr>.png``)
  with a 2016 Part 2B-style split from ``split_membership_2016_2017.csv``: 2016 training images ->
  train, 2016 test images -> test, every other image is dropped.
* :func:`load_isic2018_all`: the same release, the same 339 test images, and every other image
  (about 2255) trains, except copies of a test image (checked with ``skinbench.data.duplicates``).
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
from skinbench.data.duplicates import fingerprints, find_duplicates
from skinbench.data.generic import _index_files
from skinbench.data.manifests import apply_manifest, read_index
from skinbench.errors import DataError
from skinbench.info import DATASETS

ISIC2018 = "isic2018_task2"
ISIC2018_ALL = "isic2018_task2_all"
PART2B = "isic2016_part2b"
MEMBERSHIP = "split_membership_2016_2017.csv"
PRESENCE = "attribute_presence_and_provenance.csv"
#: manifest split of a release image that no approach sees (near-duplicate of a test image, missing mask)
EXCLUDED = "excluded"


def _membership(path: Path, every_image: bool = False) -> pd.DataFrame:
    """The membership table; 2016 train/test rows only unless ``every_image`` (then "" counts as train)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"image_id", "isic2016_split"} <= set(table.columns):
        raise DataError("membership CSV lacks columns image_id,isic2016_split", path=path,
                        fix="use the split_membership_2016_2017.csv shipped with the data")
    if every_image:
        table = table.assign(isic2016_split=table["isic2016_split"].where(table["isic2016_split"] == "test", "train"))
    table = table[table["isic2016_split"].isin(["train", "test"])]
    return table


def read_release(folder: Path, targets: tuple[str, ...], every_image: bool) -> tuple[pd.DataFrame, dict[str, str], Path]:
    """The release's images (2016 split, or every image) with one mask column per target.

    Returns (frame, {image_id: why it has to be dropped}, membership CSV path).
    """
    source = layout.require_file(ISIC2018, folder, MEMBERSHIP)
    table = _membership(source, every_image)
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
    return frame, dropped, source


def load_isic2018(folder: str | os.PathLike, targets: tuple[str, ...] | None = None,
                  manifest_dir: str | os.PathLike | None = None) -> Dataset:
    """ISIC 2018 Task 2 masks of the ISIC 2016 images, split as in 2016 (806 train / 339 test here)."""
    folder = layout.require_dir(ISIC2018, Path(folder))
    targets = tuple(targets or DATASETS[ISIC2018].targets)
    frame, dropped, source = read_release(folder, targets, every_image=False)
    frame = frame[~frame["image_id"].isin(dropped)].reset_index(drop=True)
    frame, digest = apply_manifest(ISIC2018, frame, source, manifest_dir, take_split=False) if not dropped \
        else (frame, "")
    return Dataset(ISIC2018, folder, frame, (), targets, digest, {"dropped": dropped})


def copies_of_test_images(frame: pd.DataFrame, progress: bool = False) -> dict[str, str]:
    """Training images that are exact or near copies of a test image (``skinbench.data.duplicates``
    rules): {training image id: which test image it copies, and how closely}."""
    prints = fingerprints(frame["image"].tolist(), progress=progress, desc="near-duplicates of test images")
    pairs = find_duplicates(frame["image_id"].tolist(), prints, frame["split"].tolist())
    leaks: dict[str, str] = {}
    for p in pairs:
        if p.crosses_split:
            train_id, test_id = (p.id_a, p.id_b) if p.split_a == "train" else (p.id_b, p.id_a)
            leaks.setdefault(train_id, f"{p.kind} copy of test image {test_id} (pHash distance {p.distance}, "
                                       f"detail correlation {p.similarity:.2f}, structure correlation "
                                       f"{p.structure:.2f})")
    return leaks


def isic2018_all_split(frame: pd.DataFrame, dropped: dict[str, str], progress: bool = False) -> tuple[pd.Series, dict]:
    """The split of :func:`load_isic2018_all` before any manifest exists: 2016 test -> test, every other
    image -> train, except copies of a test image and images with a missing mask -> ``EXCLUDED``.
    Returns (split per row, {excluded id: reason})."""
    reasons = {**copies_of_test_images(frame, progress), **dropped}
    return frame["split"].where(~frame["image_id"].isin(reasons), EXCLUDED), reasons


def load_isic2018_all(folder: str | os.PathLike, targets: tuple[str, ...] | None = None,
                      manifest_dir: str | os.PathLike | None = None) -> Dataset:
    """Every ISIC 2018 Task 2 image: the 339 ISIC 2016 test images are the test split, all others train.

    The 2016 test split stays fixed, so rows are comparable with :func:`load_isic2018`; training
    images that copy a test image (exact or near duplicate) are excluded, as are images with a missing
    mask. The manifest (``benchmarks/build_manifests.py``) holds that decision; without one it is
    recomputed (about 10 s of fingerprints). ``extra["dropped"]``: every excluded id and why.
    """
    folder = layout.require_dir(ISIC2018, Path(folder))
    targets = tuple(targets or DATASETS[ISIC2018_ALL].targets)
    frame, dropped, source = read_release(folder, targets, every_image=True)
    frame, digest = apply_manifest(ISIC2018_ALL, frame, source, manifest_dir, take_split=True)
    if digest:
        excluded = set(frame["image_id"][frame["split"] == EXCLUDED])
        known = read_index(manifest_dir).get(ISIC2018_ALL, {}).get("excluded", {})
        reasons = {i: known.get(i, "excluded by the manifest") for i in excluded}
        unexpected = set(dropped) - excluded
        reasons.update(dropped)
        if unexpected:  # a mask the manifest expects is missing: these data are not the manifest's
            digest = ""
    else:
        frame["split"], reasons = isic2018_all_split(frame, dropped)
    frame = frame[~frame["image_id"].isin(reasons)].reset_index(drop=True)
    return Dataset(ISIC2018_ALL, folder, frame, (), targets, digest, {"dropped": reasons})


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
    return Dataset(PART2B, folder, frame, (), tuple(targets))
