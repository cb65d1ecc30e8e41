"""The one in-memory description of a dataset that every approach and metric reads.

Before any work on a task, the runner checks the data with :func:`check_for_task` (labels against the
task's classes, a declared positive class for binary tasks, at least two training classes, every mask
present, every listed image and mask readable, masks of their image's size or aspect ratio and not
all empty or all full).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from skinbench import info
from skinbench.data.images import check_mask_sizes, check_masks_vary, check_readable
from skinbench.errors import DataError

#: columns every adapter fills; ``mask_<target>`` columns are added per segmentation target
COLUMNS = ("image_id", "image", "label", "lesion_id", "split")
#: ids shown in an error before "..."
SHOW = 5


def check_unique_ids(ids: Sequence[str], path: str | os.PathLike, lines: Sequence[int] | None = None,
                     where: str = "", fix: str = "list every image once") -> None:
    """The one unique-image-id rule (a repeated id would be trained or scored twice, or land on both
    sides of the split): :class:`Dataset` checks it on every frame; a CSV reader that knows its rows'
    line numbers calls it first so the message names the line. Raises a DataError naming the first
    repeated id (``where``: e.g. the dataset) and, with ``lines``, the lines of its first two rows."""
    series = pd.Series([str(i) for i in ids])
    repeated = series.duplicated()
    if not repeated.any():
        return
    first = series[repeated].iloc[0]
    rows = np.flatnonzero((series == first).to_numpy())
    count = f" ({int(repeated.sum())} repeated row(s))" if repeated.sum() > 1 else ""
    if lines is not None:
        raise DataError(f"line {lines[rows[1]]}: duplicate image id {first!r} (first on line {lines[rows[0]]}){count}",
                        path=path, fix=fix)
    raise DataError(f"duplicate image id {first!r}{where}{count}", path=path, fix=fix)


@dataclass
class Dataset:
    """A table of images with labels, lesion ids, the fixed split and mask paths.

    ``frame`` columns: ``image_id`` (str), ``image`` (absolute path str), ``label`` (class name str,
    or "" when the dataset has no labels), ``lesion_id`` (str; equals image_id when unknown),
    ``split`` ("train" or "test"), and ``mask_<target>`` (absolute path str, "" when absent: reading it
    through :meth:`masks` is then an error, never an empty mask).

    ``positive_class``: for two classes, the class counted as positive (always ``class_names[1]``);
    None for one or more than two classes, or when the labels do not say which (an error for a binary
    task). ``classes_declared``: the class list was fixed by the adapter, the user (``--classes``) or a
    label convention (benign/malignant, 0/1, ...), not merely collected from the labels found.
    ``extra["label_file"]`` and ``extra["label_lines"]`` ({image_id: line}) let errors name the line.
    """

    name: str
    root: Path
    frame: pd.DataFrame
    class_names: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    #: sha256 of the manifest (ids, labels, split) this dataset was built from
    manifest_digest: str = ""
    extra: dict = field(default_factory=dict)
    #: the positive class of a two-class dataset (``class_names[1]``), None when not binary or not known
    positive_class: str | None = None
    #: True when the class list is fixed (adapter, user declaration or label convention), see the class doc
    classes_declared: bool = False

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"Dataset frame lacks columns {missing}")
        self.frame = self.frame.reset_index(drop=True)
        check_unique_ids(self.frame["image_id"], self.extra.get("label_file") or self.root,
                         where=f" in dataset {self.name!r}", fix="list every image once (one row, in one split)")
        if not self.manifest_digest:
            self.manifest_digest = frame_digest(self.frame)
        if self.positive_class is not None and tuple(self.class_names[1:2]) != (self.positive_class,):
            raise ValueError(f"positive_class {self.positive_class!r} must be class_names[1] of {self.class_names}")

    @property
    def data_slug(self) -> str:
        """Which data this is, for record paths and identities: the dataset name for a registered release
        (a manifest or the seeded generator fixes its content; a changed manifest digest makes its records
        stale); for a user's generic folder ``generic-<folder>-<digest8>``, so two different folders, or one
        folder whose content changed, never share a record path."""
        if self.name != "generic":
            return self.name
        folder = re.sub(r"[^A-Za-z0-9]+", "-", Path(self.root).name).strip("-")[:32] or "data"
        return f"{self.name}-{folder}-{self.manifest_digest[:8]}"

    def __len__(self) -> int:
        return len(self.frame)

    def split(self, which: str) -> "Dataset":
        """The train or test part (same class list, same digest)."""
        part = self.frame[self.frame["split"] == which]
        return replace(self, frame=part.copy(), extra=dict(self.extra))

    def subset(self, index: np.ndarray | list[int]) -> "Dataset":
        return replace(self, frame=self.frame.iloc[list(index)].copy(), extra=dict(self.extra))

    @property
    def ids(self) -> np.ndarray:
        return self.frame["image_id"].to_numpy(dtype=str)

    @property
    def paths(self) -> np.ndarray:
        """Image paths: the ``X`` every estimator's fit/predict takes."""
        return self.frame["image"].to_numpy(dtype=str)

    @property
    def y(self) -> np.ndarray:
        """Labels as integer indices into ``class_names`` (DataError naming the line for any other label)."""
        lookup = {c: i for i, c in enumerate(self.class_names)}
        unknown = [v for v in self.frame["label"] if v not in lookup]
        if unknown:
            raise self.label_error(unknown[0], f"is not one of the classes {', '.join(self.class_names) or '(none)'}")
        return np.array([lookup[v] for v in self.frame["label"]], dtype=np.int64)

    def where(self, image_id: str) -> str:
        """``labels.csv line 7`` (or the image id alone) for messages about one row."""
        line = (self.extra.get("label_lines") or {}).get(image_id)
        source = self.extra.get("label_file")
        if source and line:
            return f"{Path(source).name} line {line}"
        return f"image {image_id}"

    def label_error(self, label: str, why: str, fix: str | None = None) -> DataError:
        """DataError naming the file and first line of ``label``: ``labels.csv: line 7: label 'x' (image a) ...``."""
        rows = self.frame[self.frame["label"] == label]
        first = rows["image_id"].iloc[0] if len(rows) else "?"
        line = (self.extra.get("label_lines") or {}).get(first)
        source = self.extra.get("label_file") or self.root
        where = f"line {line}: " if line else ""
        count = f", {len(rows)} row(s)" if len(rows) > 1 else ""
        return DataError(f"{where}label {label!r} (image {first}{count}) {why}", path=source,
                         fix=fix or "correct the label")

    @property
    def groups(self) -> np.ndarray:
        return self.frame["lesion_id"].to_numpy(dtype=str)

    def masks(self, target: str, missing: str = "error") -> np.ndarray:
        """Mask paths for ``target``. An image without its mask file is a :class:`DataError` naming the
        ids (an absent file is not an empty lesion); ``missing="empty"`` returns "" for them instead,
        for callers that handle it themselves."""
        column = f"mask_{target}"
        if column not in self.frame.columns:
            raise DataError(f"dataset {self.name!r} has no {target!r} masks (targets: "
                            f"{', '.join(self.targets) or 'none'})", path=self.root,
                            fix=f"add {target} masks (see `python -m skinbench list`), or use another target/task")
        paths = self.frame[column].fillna("").to_numpy(dtype=str)
        if missing != "empty":
            absent = self.ids[paths == ""]
            if len(absent):
                raise self.missing_masks_error(target, absent)
        return paths

    def missing_masks_error(self, target: str, absent: Sequence[str]) -> DataError:
        """The error for images without a ``target`` mask file: count, first ids, where the masks go."""
        present = [p for p in self.frame.get(f"mask_{target}", pd.Series(dtype=str)) if p]
        folder = os.path.dirname(present[0]) if present else str(Path(self.root) / "masks")
        shown = ", ".join(list(absent)[:SHOW]) + (", ..." if len(absent) > SHOW else "")
        meta = info.DATASETS.get(self.name)
        if meta is not None and meta.manifest:  # an official release: rows cannot be dropped (manifest)
            fix = (f"download the missing {target} masks from {meta.source} into {folder} "
                   f"(`python -m skinbench data verify {self.name}` lists them)")
        else:
            fix = (f"add {folder}/<image_id>_{target}.png for each (an all-black PNG where the image shows no "
                   f"{target}), or remove those rows from the labels CSV")
        return DataError(f"{len(absent)} image(s) have no {target} mask file (first: {shown}); a missing mask "
                         "is not an empty one", path=folder, fix=fix)


def frame_digest(frame: pd.DataFrame) -> str:
    """Digest of what defines an experiment's data: ids, labels, lesion ids, split (not paths)."""
    cols = [c for c in ("image_id", "label", "lesion_id", "split") if c in frame.columns]
    text = frame[cols].sort_values("image_id").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------- checks before a run
def task_classes(task: str) -> tuple[tuple[str, ...], str | None]:
    """(class names, positive class) of ``task``: those of its default (official) dataset."""
    meta = info.dataset(info.task(task).default_dataset)
    return tuple(meta.class_names), meta.positive_class


def _label_counts(ds: Dataset) -> str:
    counts = ds.frame["label"].value_counts()
    shown = ", ".join(f"{label!r} ({n} row(s), first {ds.where(ds.frame.loc[ds.frame['label'] == label, 'image_id'].iloc[0])})"
                     for label, n in list(counts.items())[:8])
    return shown + (f", ... ({len(counts) - 8} more labels)" if len(counts) > 8 else "")


DECLARE_FIX = ("declare your classes: --classes NEG,POS on the command line (the second is the positive class) "
               "or --positive NAME; in Python generic.load(..., class_names=[...], positive_class=...)")


def check_labels(task: str, ds: Dataset) -> None:
    """Labels of ``ds`` (both splits) against ``task``'s classes, or the declared class list; for a binary
    task a declared positive class. DataError naming the file, line and the valid labels."""
    tinfo = info.task(task)
    if tinfo.kind != "classification":
        return
    source = ds.extra.get("label_file") or ds.root
    labels = [v for v in dict.fromkeys(ds.frame["label"])]
    if not ds.class_names or labels == [""]:
        raise DataError(f"{task} ({tinfo.title}) needs a label per image, but this dataset has none", path=source,
                        fix="add a label column to the CSV (image_id,label[,lesion_id][,split])")
    expected, positive = task_classes(task)
    binary = len(expected) == 2
    if "" in labels:
        raise ds.label_error("", "is empty", fix="label every image")
    if ds.classes_declared:
        unknown = [v for v in labels if v not in ds.class_names]
        if unknown:
            raise ds.label_error(unknown[0], f"is not a declared class (valid labels: {', '.join(ds.class_names)})")
    else:
        unknown = [v for v in labels if v not in expected]
        if unknown and len(unknown) < len(labels):  # some labels are the task's: the others are typos
            raise ds.label_error(unknown[0], f"is not a class of {task} (valid labels: {', '.join(expected)})",
                                 fix=f"correct the label, or {DECLARE_FIX}")
        if unknown and binary and len(labels) == 2:
            raise DataError(f"labels {labels[0]!r} and {labels[1]!r} do not say which class is positive for "
                            f"{task} (its classes: {', '.join(expected)})", path=source,
                            fix=f"{DECLARE_FIX}, e.g. --positive {sorted(labels)[0]}")
        if unknown:
            raise DataError(f"the labels are not {task}'s classes ({', '.join(expected)}): {_label_counts(ds)}",
                            path=source, fix=DECLARE_FIX)
    if binary:
        if len(ds.class_names) != 2:
            raise DataError(f"{task} is binary but the data has {len(ds.class_names)} classes: "
                            f"{_label_counts(ds)}", path=source,
                            fix=f"correct the labels (valid: {', '.join(ds.class_names if ds.classes_declared else expected)}), "
                                f"or {DECLARE_FIX}")
        if ds.positive_class is None:
            raise DataError(f"labels {ds.class_names[0]!r} and {ds.class_names[1]!r} do not say which class is "
                            f"positive for {task}", path=source, fix=f"{DECLARE_FIX}, e.g. --positive {ds.class_names[1]}")
    elif len(ds.class_names) < 2:
        raise DataError(f"{task} needs at least two classes; the data has {', '.join(ds.class_names)}", path=source,
                        fix="label images of at least two classes")


def check_training_classes(train: Dataset, limit: int | None = None) -> None:
    """At least two classes among the training images, and none with a single training image (no
    validation split or calibration can use it). DataError naming the label and the file (line)."""
    source = train.extra.get("label_file") or train.root
    counts = train.frame["label"].value_counts()
    hint = f", or a larger --limit (now {limit})" if limit else ""
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else "(none)"
        raise DataError(f"the training split holds one class only: {only!r} ({int(counts.sum())} image(s)); "
                        f"a classifier needs at least two (valid labels: {', '.join(train.class_names)})", path=source,
                        fix=f"add training images of another class (split column 'train'){hint}")
    single = [label for label, n in counts.items() if n == 1]
    if single:
        label = single[0]
        image_id = train.frame.loc[train.frame["label"] == label, "image_id"].iloc[0]
        path = train.frame.loc[train.frame["label"] == label, "image"].iloc[0]
        raise DataError(f"class {label!r} has a single training image, {os.path.basename(path)} ({train.where(image_id)}); "
                        "validation splits and score calibration need at least two per class", path=source,
                        fix=f"add another training image labelled {label!r}, or relabel that image{hint}")


def check_files(datasets: Sequence[Dataset], targets: Sequence[str] = (), empty_masks_normal: bool = False) -> None:
    """Every image (and every ``targets`` mask) of ``datasets`` readable, checked from headers only, each
    mask of its image's size or aspect ratio (:mod:`skinbench.data.images` rule 4), and each target's
    masks not all empty (unless ``empty_masks_normal``) nor all full (rule 2: decodes a mask or two on
    good data)."""
    images = [p for ds in datasets for p in ds.paths]
    sizes = check_readable(images, "image")
    for target in targets:
        pairs = [(i, m) for ds in datasets for i, m in zip(ds.paths, ds.masks(target))]
        sizes.update(check_readable([m for _, m in pairs], "mask", desc=f"checking {target} masks"))
        check_mask_sizes(pairs, sizes)
        check_masks_vary([m for _, m in pairs], f"{target} masks", empty_normal=empty_masks_normal)


def check_for_task(task: str, train: Dataset, test: Dataset, targets: Sequence[str] | None = None,
                   limit: int | None = None, files: bool = True) -> None:
    """Everything about the data a run of ``task`` needs, before any work: labels and the positive class
    (classification), at least two training classes with two images each, every ``targets`` mask present
    (default: the task's targets), and (``files``) every listed image and mask readable and of a fitting
    size, and each target's masks not all empty (unless the task declares empty masks normal) nor all
    full. Raises one :class:`DataError` naming the file (and line) and the fix."""
    tinfo = info.task(task)
    both = Dataset(train.name, train.root, pd.concat([train.frame, test.frame], ignore_index=True),
                   train.class_names, train.targets, train.manifest_digest, dict(train.extra),
                   train.positive_class, train.classes_declared)
    wanted: list[str] = []
    if tinfo.kind == "classification":
        check_labels(task, both)
        check_training_classes(train, limit)
    else:
        wanted = list(targets or tinfo.targets)
        for target in wanted:
            if f"mask_{target}" not in both.frame.columns:
                raise DataError(f"dataset {train.name!r} has no {target!r} masks (it has: "
                                f"{', '.join(train.targets) or 'none'})", path=train.root,
                                fix=f"add masks/<image_id>_{target}.png files, or pick a target with --target")
            both.masks(target)  # missing files: one error for both splits
    if files:
        check_files([both], wanted, empty_masks_normal=tinfo.empty_masks_normal)
