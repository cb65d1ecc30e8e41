"""Generic adapter: a folder of images plus a CSV, so any approach runs on the user's own data.

Layout (names configurable)::

    <folder>/labels.csv      image_id,label[,lesion_id][,split]   (extra columns are kept)
    <folder>/images/<image_id>.jpg|.jpeg|.png
    <folder>/masks/<image_id>_<target>.png                          (optional, any targets)

Without a ``split`` column the split is computed lesion-aware and stratified with ``seed``
(:func:`skinbench.data.splits.lesion_split`, 20% test). The synthetic dataset is read through
this same code path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from skinbench.data.base import Dataset
from skinbench.data.splits import lesion_split
from skinbench.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
SPLITS = ("train", "test")


def _index_files(folder: Path) -> dict[str, str]:
    """stem -> absolute path for image files in ``folder`` (first extension in IMAGE_EXTENSIONS wins)."""
    found: dict[str, str] = {}
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    best: dict[str, int] = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            if ext in rank and rank[ext] < best.get(stem, len(rank)):
                best[stem] = rank[ext]
                found[stem] = os.path.abspath(entry.path)
    return found


def find_images(ids: Sequence[str], folder: Path, source: Path) -> list[str]:
    """Absolute image path per id; DataError listing the absent ones (``source`` is the CSV naming them)."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist", path=source,
                        fix=f"put the images listed in {source.name} into {folder}")
    index = _index_files(folder)
    missing = [i for i in ids if i not in index]
    if missing:
        raise DataError(f"{len(missing)} image(s) listed but absent from {folder} (first: "
                        f"{', '.join(missing[:5])})", path=source,
                        fix="add the image files (.jpg/.jpeg/.png named <image_id>) or remove those rows")
    return [index[i] for i in ids]


def find_masks(ids: Sequence[str], folder: Path, targets: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``{target: [path or ""]}`` from ``<id>_<target>.png`` files; targets found automatically when None."""
    if not folder.is_dir():
        return {t: [""] * len(ids) for t in (targets or ())}
    idset = set(ids)
    table: dict[str, dict[str, str]] = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() != ".png":
                continue
            # ids may contain "_": try every split point, the longest matching id first
            parts = stem.split("_")
            for k in range(len(parts) - 1, 0, -1):
                image_id, target = "_".join(parts[:k]), "_".join(parts[k:])
                if image_id in idset:
                    table.setdefault(target, {})[image_id] = os.path.abspath(entry.path)
                    break
    wanted = sorted(table) if targets is None else list(targets)
    return {t: [table.get(t, {}).get(i, "") for i in ids] for t in wanted}


def read_table(csv: Path, label_column: str = "label") -> pd.DataFrame:
    """Read and validate the labels CSV (strings only; duplicate ids, empty labels and bad splits rejected)."""
    if not csv.is_file():
        raise DataError("labels CSV is missing", path=csv,
                        fix="create it with a header image_id,label[,lesion_id][,split]")
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot parse CSV ({' '.join(str(err).split())})", path=csv, fix="write a comma-separated file with a header") from None
    table.columns = [c.strip() for c in table.columns]
    for col in ("image_id", label_column):
        if col not in table.columns:
            raise DataError(f"CSV lacks column {col!r} (has {list(table.columns)})", path=csv,
                            fix="add a header line image_id,label[,lesion_id][,split]")
    if table.empty:
        raise DataError("CSV has a header but no rows", path=csv, fix="add one row per image")
    table["image_id"] = table["image_id"].str.strip()
    dup = table["image_id"][table["image_id"].duplicated()].unique()
    if len(dup):
        raise DataError(f"duplicate image_id {', '.join(dup[:5])}", path=csv, fix="list every image once")
    if (table["image_id"] == "").any():
        raise DataError("a row has an empty image_id", path=csv, fix="fill in or remove that row")
    empty = table["image_id"][table[label_column].str.strip() == ""]
    if len(empty):
        raise DataError(f"empty {label_column} for {', '.join(empty[:5])}", path=csv, fix="label every image")
    if "split" in table.columns:
        table["split"] = table["split"].str.strip()
        bad = sorted(set(table["split"]) - set(SPLITS))
        if bad:
            raise DataError(f"unknown split value(s) {bad}", path=csv, fix="use only 'train' and 'test'")
    return table


def build_dataset(name: str, root: Path, table: pd.DataFrame, label_column: str, images: list[str],
                  masks: dict[str, list[str]], class_names: Sequence[str] | None, seed: int,
                  source: Path, test_size: float = 0.2) -> Dataset:
    """Assemble a Dataset from a validated table (shared by the generic and synthetic adapters)."""
    frame = pd.DataFrame({"image_id": table["image_id"].to_numpy(),
                          "image": images,
                          "label": table[label_column].str.strip().to_numpy()})
    lesion = table["lesion_id"].str.strip() if "lesion_id" in table.columns else table["image_id"]
    frame["lesion_id"] = np.where(lesion == "", table["image_id"], lesion)
    if class_names is None:
        class_names = tuple(sorted(frame["label"].unique()))
    unknown = sorted(set(frame["label"]) - set(class_names))
    if unknown:
        raise DataError(f"unknown label(s) {unknown}; expected {list(class_names)}", path=source,
                        fix="correct those labels")
    if "split" in table.columns:
        frame["split"] = table["split"].to_numpy()
    else:
        lookup = {c: i for i, c in enumerate(class_names)}
        frame["split"] = lesion_split(frame["label"].map(lookup).to_numpy(), frame["lesion_id"].to_numpy(),
                                      test_size=test_size, seed=seed)
    leaked = set(frame.loc[frame["split"] == "train", "lesion_id"]) & set(frame.loc[frame["split"] == "test", "lesion_id"])
    if leaked:
        raise DataError(f"lesion(s) {', '.join(sorted(leaked)[:5])} appear in both train and test", path=source,
                        fix="put all images of one lesion on the same side of the split")
    for target, paths in masks.items():
        frame[f"mask_{target}"] = paths
    skip = {"image_id", "label", "lesion_id", "split", label_column, "image"} | {f"mask_{t}" for t in masks}
    for col in table.columns:
        if col not in skip:
            frame[col] = table[col].to_numpy()
    return Dataset(name, Path(root), frame, tuple(class_names), tuple(masks))


def load(folder: str | os.PathLike, csv: str = "labels.csv", images: str = "images", masks: str = "masks",
         seed: int = 0, label_column: str = "label", class_names: Sequence[str] | None = None,
         targets: Sequence[str] | None = None, name: str = "generic") -> Dataset:
    """Load ``folder`` in the generic layout (see module docstring); classes are the sorted labels
    unless ``class_names`` fixes their order (class 1 is the positive one for binary tasks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("data folder does not exist", path=folder,
                        fix=f"create it with {csv}, {images}/ and optionally {masks}/ (see `skinbench list`)")
    source = folder / csv
    table = read_table(source, label_column)
    ids = table["image_id"].tolist()
    paths = find_images(ids, folder / images, source)
    mask_paths = find_masks(ids, folder / masks, targets)
    return build_dataset(name, folder, table, label_column, paths, mask_paths, class_names, seed, source)
