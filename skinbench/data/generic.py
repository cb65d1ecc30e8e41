"""Generic adapter: a folder of images plus a CSV, so any approach runs on the user's own data.

Layout (names configurable)::

    <folder>/labels.csv      image_id[,label][,lesion_id][,split]   (extra columns are kept)
    <folder>/images/<image_id>.jpg|.jpeg|.png
    <folder>/masks/<image_id>_<target>.png|.jpg|.jpeg               (optional, any targets)

* ``label`` may be left out (or left empty on every row) for segmentation-only data.
* Mask names: ``<image_id>_<target>.png``; the official ISIC names map to targets without a flag:
  ``<image_id>_segmentation.png`` -> ``lesion`` (ISIC 2017/2018 Task 1, HAM10000) and
  ``<image_id>_attribute_<name>.png`` -> ``<name>`` (ISIC 2018 Task 2). An explicit
  ``<image_id>_lesion.png`` wins over ``_segmentation.png``. JPEG masks are read as PNG ones are (a PNG
  wins over a JPEG of the same name); how a mask's pixels are read: :mod:`skinbench.data.images`.
* Classes: ``class_names`` declares them (every label must be one of them, checked with the CSV line);
  otherwise they are the labels found. For two classes the positive one is ``class_names[1]``: declared
  by ``positive_class`` (``--positive``), by the order of ``class_names`` (``--classes NEG,POS``), or by a
  label convention (:data:`BINARY_CONVENTIONS`: benign/malignant, 0/1, negative/positive, no/yes,
  false/true, 0.0/1.0). Two other labels leave it undeclared, which a binary task reports as an error
  naming the fix (never "whichever sorts second"). Which labels a *task* accepts is checked before a
  run by :func:`skinbench.data.base.check_for_task`.

Without a ``split`` column the split is computed lesion-aware (20% test, ``seed``): stratified by
label (:func:`skinbench.data.splits.lesion_split`) when there are two or more classes, by lesion alone
otherwise. The synthetic dataset is read through this same code path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from skinbench.csvfile import read_text, row_lines, strip_ids
from skinbench.data.base import Dataset, check_unique_ids, task_classes
from skinbench.data.images import MASK_EXTENSIONS
from skinbench.data.splits import lesion_split
from skinbench.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
SPLITS = ("train", "test")
#: label pairs whose positive class is known (case-insensitive): (negative, positive)
BINARY_CONVENTIONS = (("benign", "malignant"), ("0", "1"), ("0.0", "1.0"), ("negative", "positive"),
                      ("no", "yes"), ("false", "true"), ("healthy", "disease"), ("normal", "abnormal"))
#: official mask-name suffixes -> target
MASK_ALIASES = {"segmentation": "lesion"}
ABSENT_ROWS_FIX = "add the image files (.jpg/.jpeg/.png named <image_id>) or remove those rows from {csv}"


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


def find_images(ids: Sequence[str], folder: Path, source: Path, fix: str | None = None) -> list[str]:
    """Absolute image path per id; DataError listing the absent ones (``source`` is the CSV naming them).

    ``fix`` is the advice for absent images: by default adding them or removing their rows, which is
    right for a user's own CSV; adapters of official releases pass a download hint instead (removing
    rows there fails the manifest check)."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist", path=source,
                        fix=f"put the images listed in {source.name} into {folder}")
    index = _index_files(folder)
    missing = [i for i in ids if i not in index]
    if missing:
        raise DataError(f"{len(missing)} image(s) listed but absent from {folder} (first: "
                        f"{', '.join(missing[:5])})", path=source,
                        fix=fix or ABSENT_ROWS_FIX.format(csv=source.name))
    return [index[i] for i in ids]


def _mask_target(suffix: str) -> str:
    if suffix in MASK_ALIASES:
        return MASK_ALIASES[suffix]
    if suffix.startswith("attribute_") and len(suffix) > len("attribute_"):
        return suffix[len("attribute_"):]
    return suffix


def find_masks(ids: Sequence[str], folder: Path, targets: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``{target: [path or ""]}`` from ``<id>_<target>.png`` files (official names mapped, see the module
    doc; ``.jpg``/``.jpeg`` masks read too, a PNG preferred: :data:`MASK_EXTENSIONS`); targets found
    automatically when None."""
    if not folder.is_dir():
        return {t: [""] * len(ids) for t in (targets or ())}
    idset = set(ids)
    table: dict[str, dict[str, str]] = {}
    #: (target, id) -> (0 for an explicit <id>_<target> name else 1, extension rank) of the file kept
    kept: dict[tuple[str, str], tuple[int, int]] = {}
    with os.scandir(folder) as it:
        for entry in sorted(it, key=lambda e: e.name):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() not in MASK_EXTENSIONS:
                continue
            # ids may contain "_": try every split point, the longest matching id first
            parts = stem.split("_")
            for k in range(len(parts) - 1, 0, -1):
                image_id, suffix = "_".join(parts[:k]), "_".join(parts[k:])
                if image_id in idset:
                    target = _mask_target(suffix)
                    # <id>_lesion.* given explicitly wins over <id>_segmentation.*; then PNG over JPEG
                    rank = (0 if target == suffix else 1, MASK_EXTENSIONS.index(ext.lower()))
                    if rank < kept.get((target, image_id), (2, 0)):
                        kept[(target, image_id)] = rank
                        table.setdefault(target, {})[image_id] = os.path.abspath(entry.path)
                    break
    wanted = sorted(table) if targets is None else list(targets)
    return {t: [table.get(t, {}).get(i, "") for i in ids] for t in wanted}


def read_table(csv: Path, label_column: str = "label", require_label: bool = False) -> pd.DataFrame:
    """Read and validate the labels CSV (strings only; duplicate ids, empty labels and bad splits rejected).

    The label column may be absent (segmentation-only data) unless ``require_label``; the returned table
    has a ``_line`` column: each row's line in the file, for messages."""
    if not csv.is_file():
        raise DataError("labels CSV is missing", path=csv,
                        fix="create it with a header image_id,label[,lesion_id][,split]")
    text = read_text(csv, "labels CSV")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"cannot parse CSV ({' '.join(str(err).split())})", path=csv, fix="write a comma-separated file with a header") from None
    table.columns = [c.strip() for c in table.columns]
    for col in ("image_id",) + ((label_column,) if require_label else ()):
        if col not in table.columns:
            raise DataError(f"CSV lacks column {col!r} (has {list(table.columns)})", path=csv,
                            fix="add a header line image_id,label[,lesion_id][,split]")
    if table.empty:
        raise DataError("CSV has a header but no rows", path=csv, fix="add one row per image")
    table["_line"] = row_lines(text, len(table))
    table["image_id"] = strip_ids(table["image_id"].tolist(), table["_line"].tolist(), csv)
    check_unique_ids(table["image_id"], csv, table["_line"].tolist())
    if (table["image_id"] == "").any():
        line = table.loc[table["image_id"] == "", "_line"].iloc[0]
        raise DataError(f"line {line}: empty image_id", path=csv, fix="fill in or remove that row")
    if label_column in table.columns:
        empty = table[table[label_column].str.strip() == ""]
        if len(empty) and len(empty) < len(table):  # all empty: unlabelled (segmentation-only) data
            raise DataError(f"line {empty['_line'].iloc[0]}: empty {label_column} for "
                            f"{', '.join(empty['image_id'][:5])}", path=csv,
                            fix=f"label every image, or leave the {label_column} column out for segmentation-only data")
    if "split" in table.columns:
        table["split"] = table["split"].str.strip()
        bad = sorted(set(table["split"]) - set(SPLITS))
        if bad:
            line = table.loc[~table["split"].isin(SPLITS), "_line"].iloc[0]
            raise DataError(f"line {line}: unknown split value(s) {bad}", path=csv, fix="use only 'train' and 'test'")
    return table


def _classes(labels: Sequence[str], class_names: Sequence[str] | None, positive_class: str | None,
             lines: dict[str, int], ids: Sequence[str], source: Path) -> tuple[tuple[str, ...], str | None, bool]:
    """(class_names, positive_class, declared) from the labels and what the caller declared (module doc)."""
    found = list(dict.fromkeys(labels))
    if found == [""]:  # unlabelled
        if class_names:
            raise DataError(f"classes {list(class_names)} were declared but the CSV has no labels", path=source,
                            fix="add a label column (image_id,label,...), or do not declare classes")
        return (), None, False

    def first_line(label: str) -> str:
        i = next(k for k, v in enumerate(labels) if v == label)
        return f"line {lines.get(ids[i], i + 2)}: "

    def image_of(label: str) -> str:
        return ids[next(k for k, v in enumerate(labels) if v == label)]

    if class_names:
        names = tuple(class_names)
        unknown = [v for v in found if v not in names]
        if unknown:
            raise DataError(f"{first_line(unknown[0])}label {unknown[0]!r} (image {image_of(unknown[0])}) is not a "
                            f"declared class (valid labels: "
                            f"{', '.join(names)})", path=source, fix="correct the label, or declare that class too")
        if positive_class is not None:
            if positive_class not in names:
                raise DataError(f"positive class {positive_class!r} is not a declared class ({', '.join(names)})",
                                path=source, fix="name one of the declared classes")
            if len(names) == 2:
                names = tuple(c for c in names if c != positive_class) + (positive_class,)
        return names, (names[1] if len(names) == 2 else None), True
    names = tuple(sorted(found))
    if positive_class is not None:
        if positive_class not in names:
            raise DataError(f"positive class {positive_class!r} is not among the labels (valid labels: "
                            f"{', '.join(names)})", path=source, fix="name one of the labels in the CSV")
        if len(names) == 2:
            return tuple(c for c in names if c != positive_class) + (positive_class,), positive_class, True
        return names, None, False
    if len(names) == 2:
        low = {v.lower(): v for v in names}
        for negative, positive in BINARY_CONVENTIONS:
            if set(low) == {negative, positive}:
                return (low[negative], low[positive]), low[positive], True
    return names, None, False


def _group_split(groups: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Lesion-aware, unstratified split (unlabelled or one-class data)."""
    from sklearn.model_selection import GroupShuffleSplit

    if len(set(groups)) < 2:
        raise DataError(f"cannot split {len(groups)} image(s) of a single lesion into train and test",
                        fix="add a split column (train/test) or images of more lesions")
    _, test = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(groups, groups=groups))
    split = np.full(len(groups), "train", dtype=object)
    split[test] = "test"
    return split


def build_dataset(name: str, root: Path, table: pd.DataFrame, label_column: str, images: list[str],
                  masks: dict[str, list[str]], class_names: Sequence[str] | None, seed: int,
                  source: Path, test_size: float = 0.2, positive_class: str | None = None) -> Dataset:
    """Assemble a Dataset from a validated table (shared by the generic and synthetic adapters)."""
    has_labels = label_column in table.columns
    labels = table[label_column].str.strip().to_numpy() if has_labels else np.full(len(table), "", dtype=object)
    frame = pd.DataFrame({"image_id": table["image_id"].to_numpy(), "image": images, "label": labels})
    lesion = table["lesion_id"].str.strip() if "lesion_id" in table.columns else table["image_id"]
    frame["lesion_id"] = np.where(lesion == "", table["image_id"], lesion)
    ids = frame["image_id"].tolist()
    line_of = dict(zip(ids, table["_line"].tolist())) if "_line" in table.columns else {}
    names, positive, declared = _classes(frame["label"].tolist(), class_names, positive_class, line_of, ids, source)
    if "split" in table.columns:
        frame["split"] = table["split"].to_numpy()
    elif len(names) >= 2:
        lookup = {c: i for i, c in enumerate(names)}
        frame["split"] = lesion_split(frame["label"].map(lookup).to_numpy(), frame["lesion_id"].to_numpy(),
                                      test_size=test_size, seed=seed)
    else:
        frame["split"] = _group_split(frame["lesion_id"].to_numpy(), test_size, seed)
    leaked = set(frame.loc[frame["split"] == "train", "lesion_id"]) & set(frame.loc[frame["split"] == "test", "lesion_id"])
    if leaked:
        raise DataError(f"lesion(s) {', '.join(sorted(leaked)[:5])} appear in both train and test", path=source,
                        fix="put all images of one lesion on the same side of the split")
    for target, paths in masks.items():
        frame[f"mask_{target}"] = paths
    skip = {"image_id", "label", "lesion_id", "split", label_column, "image", "_line"} | {f"mask_{t}" for t in masks}
    for col in table.columns:
        if col not in skip:
            frame[col] = table[col].to_numpy()
    extra = {"label_file": str(source), "label_lines": line_of}
    return Dataset(name, Path(root), frame, names, tuple(masks), extra=extra, positive_class=positive,
                   classes_declared=declared)


def load(folder: str | os.PathLike, csv: str = "labels.csv", images: str = "images", masks: str = "masks",
         seed: int = 0, label_column: str = "label", class_names: Sequence[str] | None = None,
         targets: Sequence[str] | None = None, name: str = "generic",
         positive_class: str | None = None, task: str | None = None, mapping=None) -> Dataset:
    """Load ``folder`` in the generic layout (see the module doc). ``class_names`` declares the classes in
    order (for two, the second is the positive one); ``positive_class`` declares the positive one alone.

    An official ISIC ground truth (2017, one-hot 2018/2019/2020, 2020 metadata) is read as downloaded:
    ``csv`` itself, or the folder's one ``*GroundTruth*.csv`` when ``csv`` is absent; its diagnoses map
    to ``task``'s classes by :mod:`skinbench.data.isic_csv` (``mapping``: a dict or a named mapping;
    excluded rows counted in ``extra["excluded"]``); images in the release's own folder as it unzips
    (``isic_csv.image_folder``), else ``images/`` or the folder itself."""
    from skinbench.data import isic_csv  # here: isic_csv -> isic2016 -> generic would be an import circle

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("data folder does not exist", path=folder,
                        fix=f"create it with {csv}, {images}/ and optionally {masks}/ (see `skinbench list`)")
    source = folder / csv
    if not source.is_file():  # an official download as it is
        source = isic_csv.find_ground_truth(folder) or source
    official = isic_csv.generic_table(source, task, mapping)  # None unless an official ISIC header
    table = read_table(source, label_column) if official is None else official[0]
    if official is not None and class_names is None:
        class_names = task_classes(task)[0]
    image_dir = folder / images if official is None else (
        isic_csv.image_folder(source, folder) or (folder / images if (folder / images).is_dir() else folder))
    ids = table["image_id"].tolist()
    fix = None if official is None else isic_csv.absent_images_fix(source, folder)  # never edit an official file
    paths = find_images(ids, image_dir, source, fix=fix)
    mask_paths = find_masks(ids, folder / masks, targets)
    ds = build_dataset(name, folder, table, label_column if official is None else "label", paths, mask_paths,
                       class_names, seed, source, positive_class=positive_class)
    if official is not None:
        ds.extra.update(official[1])
    return ds
