"""Official ISIC ground-truth CSVs of later years, read as downloaded, mapped explicitly to a task's classes.

So a user points the suite at an official download without converting anything. Formats (detected from
the header, case-insensitively):

* ``isic2017``: ``image_id,melanoma,seborrheic_keratosis`` (ISIC 2017 Part 3; 0/1 or 0.0/1.0). A row
  with both flags 0 is a naevus (``nv``); both flags 1 is an error.
* ``onehot``: ``image,MEL,NV,BCC,AKIEC|AK,BKL,DF,VASC[,SCC][,UNK]`` (ISIC 2018 Task 3, ISIC 2019, and
  the one-hot form of ISIC 2020): exactly one column is 1 per row.
* ``isic2020``: ``image_name,...,diagnosis,benign_malignant,target`` (ISIC 2020 training metadata):
  ``target`` 1 is melanoma; ``diagnosis`` names the rest (nevus, seborrheic keratosis, lentigo NOS, ...).
* ``isic2016``: no header, ``ISIC_id,benign|malignant`` or ``ISIC_id,0.0|1.0`` (ISIC 2016 Part 3, read by
  :func:`skinbench.data.isic2016.read_ground_truth`). Its labels are task1's own classes, not diagnoses:
  they are taken as given (mapping ``ISIC 2016 labels``), and no other task or mapping applies.

Every row becomes one diagnosis code (:data:`DX_CODES`), then :data:`TASK_MAPPINGS` maps codes to a
task's classes. The mapping is explicit and documented; codes it does not list are *excluded* (and
counted), never guessed:

* task1 (ISIC 2016 benign vs malignant, whose malignant class is melanoma): ``mel`` -> malignant;
  ``nv``, ``bkl``, ``sk`` (seborrheic keratosis), ``df``, ``vasc``, ``lentigo`` -> benign. ``bcc``,
  ``scc``, ``ak``/``akiec`` (malignant or pre-malignant, but not what the 2016 set called malignant) and
  ``unk`` are excluded.
* task2 (HAM10000's seven classes): each HAM code to itself, ``ak`` -> akiec, ``sk`` and ``lentigo``
  -> bkl (HAM10000's bkl groups solar lentigines and seborrheic keratoses); ``scc`` (invasive, not in
  HAM10000) and ``unk`` are excluded.

Pass ``mapping=`` to use another one: a ``{code: class}`` dict (e.g. ``{"bcc": "malignant", ...}``) or
a name from :data:`NAMED_MAPPINGS`:

* ``melanoma-vs-rest`` (task1): ``mel`` -> malignant, every other diagnosis (``bcc``, ``akiec``/``ak``
  and ``scc`` included) -> benign; only ``unk`` is excluded. ISIC 2016 ("Skin Lesion Analysis toward
  Melanoma Detection") was a melanoma-detection challenge: its Part 3 labels are read as melanoma vs
  the rest (the project's references do not define "malignant" further). Unlike the default, no image
  is dropped, so a model that calls a BCC malignant is counted wrong; ``benchmarks/cross_dataset.py``
  uses it for HAM10000 (and says so in its table).

A download is recognised as it unzips (:data:`OFFICIAL_FILES`: each release's ground-truth CSV and its
image folder): :func:`find_ground_truth` finds the one ground truth of a folder (several are an error
listing them: the user names one), :func:`image_folder` the images beside it, and
:func:`generic_table` is the hook the generic adapter (``skinbench.data.generic.load``) calls: an
official header is read here, any other CSV by the generic reader.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from skinbench.csvfile import ID_HEADERS, read_text, row_lines, strip_ids
from skinbench.data import isic2016
from skinbench.data.base import check_unique_ids
from skinbench.errors import DataError

#: diagnosis codes rows are read into (lowercase; HAM10000's where one exists)
DX_CODES = ("mel", "nv", "bcc", "akiec", "ak", "bkl", "sk", "lentigo", "df", "vasc", "scc", "unk")
#: one-hot column (upper case) -> code
ONEHOT_COLUMNS = {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AKIEC": "akiec", "AK": "ak", "BKL": "bkl",
                  "DF": "df", "VASC": "vasc", "SCC": "scc", "UNK": "unk"}
#: ISIC 2020 ``diagnosis`` text -> code (``target`` 1 is melanoma whatever the text says)
ISIC2020_DIAGNOSIS = {"melanoma": "mel", "nevus": "nv", "seborrheic keratosis": "sk", "lentigo nos": "lentigo",
                      "solar lentigo": "lentigo", "lichenoid keratosis": "bkl", "cafe-au-lait macule": "unk",
                      "atypical melanocytic proliferation": "unk", "unknown": "unk"}
#: ISIC 2017 Part 3 column (lower case) -> code (both 0: a naevus)
ISIC2017_COLUMNS = {"melanoma": "mel", "seborrheic_keratosis": "sk"}
#: ISIC 2018 Task 3 column order (HAM10000's seven dx codes, upper case)
ISIC2018_TASK3_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")

#: ground-truth CSV of an official ISIC classification release, as downloaded -> its image folder(s) as the
#: release's zip unzips (the ISIC 2018 ground truths unzip into a folder of the same name; ISIC 2020's
#: JPEG zip into ``train/``). Every name stays recognised by :func:`find_ground_truth` too, by "GroundTruth".
OFFICIAL_FILES: dict[str, tuple[str, ...]] = {
    isic2016.TRAIN_CSV: isic2016.TRAIN_DIRS, isic2016.TEST_CSV: isic2016.TEST_DIRS,
    "ISIC-2017_Training_Part3_GroundTruth.csv": ("ISIC-2017_Training_Data",),
    "ISIC-2017_Validation_Part3_GroundTruth.csv": ("ISIC-2017_Validation_Data",),
    "ISIC-2017_Test_v2_Part3_GroundTruth.csv": ("ISIC-2017_Test_v2_Data",),
    "ISIC2018_Task3_Training_GroundTruth.csv": ("ISIC2018_Task3_Training_Input",),
    "ISIC2018_Task3_Validation_GroundTruth.csv": ("ISIC2018_Task3_Validation_Input",),
    "ISIC2018_Task3_Test_GroundTruth.csv": ("ISIC2018_Task3_Test_Input",),
    "ISIC_2019_Training_GroundTruth.csv": ("ISIC_2019_Training_Input",),
    "ISIC_2019_Test_GroundTruth.csv": ("ISIC_2019_Test_Input",),
    "ISIC_2020_Training_GroundTruth.csv": ("train", "ISIC_2020_Training_JPEG"),
    "ISIC_2020_Training_GroundTruth_v2.csv": ("train", "ISIC_2020_Training_JPEG"),
}
#: the one "mapping" of an ISIC 2016 Part 3 ground truth: its labels are task1's classes already
ISIC2016_MAPPING = ("ISIC 2016 labels", {"benign": "benign", "malignant": "malignant"})
#: what the user passes to pick one of several ground truths (the CLI's option; Python: ``csv=``)
CHOOSE_FIX = ("name the one to score with --test-labels FILE (cross-dataset test data; in Python: "
              "skinbench.data.generic.load(folder, csv=FILE))")

TASK_MAPPINGS: dict[str, dict[str, str]] = {
    "task1": {"mel": "malignant", "nv": "benign", "bkl": "benign", "sk": "benign", "lentigo": "benign",
              "df": "benign", "vasc": "benign"},
    "task2": {"mel": "mel", "nv": "nv", "bcc": "bcc", "akiec": "akiec", "ak": "akiec", "bkl": "bkl",
              "sk": "bkl", "lentigo": "bkl", "df": "df", "vasc": "vasc"},
}


#: named alternatives to :data:`TASK_MAPPINGS` (``mapping="melanoma-vs-rest"``; see the module doc)
NAMED_MAPPINGS: dict[str, dict[str, str]] = {
    "melanoma-vs-rest": {"mel": "malignant", **{c: "benign" for c in DX_CODES if c not in ("mel", "unk")}},
}


def resolve_mapping(task: str, mapping: Mapping[str, str] | str | None = None) -> tuple[str, dict[str, str]]:
    """(name, ``{code: class}``) of ``mapping``: None is the task's default (:data:`TASK_MAPPINGS`), a
    string one of :data:`NAMED_MAPPINGS`, a dict itself ("custom")."""
    if mapping is None:
        if task not in TASK_MAPPINGS:
            raise DataError(f"no ISIC class mapping for {task} (a segmentation task?)",
                            fix="pass mapping={code: class} (codes: " + ", ".join(DX_CODES) + ")")
        return f"{task} default", dict(TASK_MAPPINGS[task])
    if isinstance(mapping, str):
        if mapping in ("default", f"{task} default"):
            return resolve_mapping(task, None)
        if mapping not in NAMED_MAPPINGS:
            raise DataError(f"unknown class mapping {mapping!r}",
                            fix=f"use default or one of: {', '.join(NAMED_MAPPINGS)}")
        return mapping, dict(NAMED_MAPPINGS[mapping])
    return "custom", dict(mapping)


def column_code(header: str) -> str | None:
    """The diagnosis code an official ISIC CSV column stands for (``melanoma`` and ``MEL`` -> ``mel``), or None."""
    name = header.strip()
    return ISIC2017_COLUMNS.get(name.lower()) or ONEHOT_COLUMNS.get(name.upper())


def describe_mapping(codes: Mapping[str, str]) -> str:
    """``benign: bkl, df, nv; malignant: mel`` (classes and codes sorted)."""
    by_class: dict[str, list[str]] = {}
    for code, cls in codes.items():
        by_class.setdefault(cls, []).append(code)
    return "; ".join(f"{cls}: {', '.join(sorted(v))}" for cls, v in sorted(by_class.items()))


def ground_truth_files(folder: str | os.PathLike) -> list[Path]:
    """Every ``*GroundTruth*.csv`` (any case) of an official download in ``folder``: beside the image
    folders, or inside a ``*GroundTruth*`` folder of its own (as the ISIC 2018 zips unzip)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    places = [folder] + sorted(d for d in folder.iterdir() if "groundtruth" in d.name.lower() and d.is_dir())
    return [p for d in places for p in sorted(d.glob("*.csv")) if "groundtruth" in p.name.lower()]


def find_ground_truth(folder: str | os.PathLike, fix: str = CHOOSE_FIX) -> Path | None:
    """The one ground-truth CSV of an official download in ``folder`` (:func:`ground_truth_files`); None
    when there is none. Several (a release's train, validation and test files side by side) are one
    error listing them: which one is the test set is the user's choice (``fix`` says how to name it)."""
    found = ground_truth_files(folder)
    if len(found) > 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in found)
        raise DataError(f"found {len(found)} ground-truth CSVs and cannot choose: {names}", path=folder, fix=fix)
    return found[0] if found else None


def image_folder(csv: str | os.PathLike, root: str | os.PathLike | None = None) -> Path | None:
    """The image folder of an official ground truth (:data:`OFFICIAL_FILES`) as its release unzips: in
    ``root``, beside the CSV or beside the CSV's own folder; a folder unzipped into one of the same
    name is followed. None for a CSV of another name or when the folder is not there."""
    csv = Path(csv)
    names = {k.lower(): v for k, v in OFFICIAL_FILES.items()}.get(csv.name.lower(), ())
    bases = dict.fromkeys(([Path(root)] if root is not None else []) + [csv.parent, csv.parent.parent])
    for base in bases:
        for name in names:
            if (base / name).is_dir():
                return base / name / name if (base / name / name).is_dir() else base / name
    return None


def absent_images_fix(csv: str | os.PathLike, root: str | os.PathLike) -> str:
    """The advice when images an official ground truth lists are absent: get the release's images (an
    official file is never edited; a subset is the user's own labels.csv)."""
    names = {k.lower(): v for k, v in OFFICIAL_FILES.items()}.get(Path(csv).name.lower())
    where = (f"unzip the release's image archive {names[0]}.zip into {root}" if names
             else f"put every image the ground truth lists into {Path(root) / 'images'} or beside the CSV")
    return (f"{where}; to score a subset, list it in a labels.csv of your own (image_id,label) and pass that "
            "with --test-labels")


def generic_table(path: str | os.PathLike, task: str | None, mapping: Mapping[str, str] | str | None = None
                  ) -> tuple[pd.DataFrame, dict] | None:
    """The generic adapter's hook: None unless ``path`` has an official ISIC ground-truth header; else
    (``image_id, label, dx, _line`` rows of ``task``'s classes, ``{"format", "mapping", "excluded"}``)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        header = _header(path)
    except DataError:
        return None  # the generic reader reports an unreadable file
    fmt = detect_format(header)
    if fmt is None:
        return None
    if task is None:
        raise DataError(f"an official ISIC ground truth ({fmt} format) needs a task to map its diagnoses to",
                        path=path, fix="pass task='task1' or 'task2' (the command line passes its task)")
    name, codes = format_mapping(fmt, task, mapping, path)
    rows, excluded = to_task_labels(read_ground_truth(path), task, codes)
    if rows.empty:
        raise DataError(f"no row of the ground truth maps to {task}'s classes (excluded: {excluded})", path=path,
                        fix="check the task, or pass another mapping")
    columns = ["image_id", "label", "_line"] if fmt == "isic2016" else ["image_id", "label", "dx", "_line"]
    table = rows[columns].astype({"_line": int})  # ISIC 2016 has no diagnoses: no dx column
    return table, {"format": fmt, "mapping": {"name": name, "codes": codes}, "excluded": excluded}


def format_mapping(fmt: str, task: str, mapping: Mapping[str, str] | str | None, path: Path
                   ) -> tuple[str, dict[str, str]]:
    """(name, codes) that map a ground truth of format ``fmt`` to ``task``: :func:`resolve_mapping`, except
    for ISIC 2016, whose benign/malignant labels are task1's classes (:data:`ISIC2016_MAPPING`) and
    carry no diagnosis another task or mapping could use."""
    if fmt != "isic2016":
        return resolve_mapping(task, mapping)
    if task != "task1":
        raise DataError(f"an ISIC 2016 Part 3 ground truth holds benign/malignant only: no diagnoses to map to "
                        f"{task}'s classes", path=path, fix="score it for task1")
    if mapping is not None and mapping not in ("default", f"{task} default"):
        raise DataError("an ISIC 2016 Part 3 ground truth holds task1's classes already: a diagnosis mapping "
                        "does not apply", path=path, fix="drop the mapping (--test-mapping)")
    return ISIC2016_MAPPING[0], dict(ISIC2016_MAPPING[1])


def _header(path: Path) -> list[str]:
    rows = csv.reader(io.StringIO(read_text(path, "ground-truth CSV")))
    return [h.strip() for h in next((r for r in rows if r), [])]


def detect_format(header: list[str]) -> str | None:
    """"isic2017", "onehot", "isic2020", "isic2016" (headerless: the first line is a row) or None (not
    an official ISIC ground-truth header)."""
    lower = [h.lower() for h in header]
    if len(lower) == 2 and isic2016.ID_PATTERN.match(header[0]) and lower[1] in isic2016.LABELS:
        return "isic2016"
    if not lower or lower[0] not in ID_HEADERS:
        return None
    if set(ISIC2017_COLUMNS) <= set(lower):
        return "isic2017"
    if "target" in lower and "diagnosis" in lower:
        return "isic2020"
    upper = {h.upper() for h in header[1:]}
    if {"MEL", "NV"} <= upper and upper <= set(ONEHOT_COLUMNS) | {"SCORE_WEIGHT", "VALIDATION_WEIGHT"}:
        return "onehot"
    return None


def _numbers(table: pd.DataFrame, columns: list[str], path: Path, lines: list[int]) -> np.ndarray:
    try:
        values = table[columns].astype(float).to_numpy()
    except ValueError:
        bad = next(k for k, (_, row) in enumerate(table[columns].iterrows()) if not _all_float(row))
        raise DataError(f"line {lines[bad]}: non-numeric value in {columns}", path=path,
                        fix="the official files hold 0/1 (or 0.0/1.0) in these columns") from None
    return values


def _all_float(row: pd.Series) -> bool:
    try:
        [float(v) for v in row]
        return True
    except ValueError:
        return False


def read_ground_truth(path: str | os.PathLike) -> pd.DataFrame:
    """``image_id, dx, _line`` (one diagnosis code per row, line numbers for errors) from an official CSV."""
    path = Path(path)
    header = _header(path)
    fmt = detect_format(header)
    if fmt is None:
        raise DataError(f"not an ISIC ground-truth header: {','.join(header[:8])}", path=path,
                        fix="expected image_id,melanoma,seborrheic_keratosis (2017), image,MEL,NV,... (one-hot, "
                            "2018/2019/2020) or image_name,...,diagnosis,...,target (2020)")
    if fmt == "isic2016":  # no header, labels not diagnoses: the registered adapter's reader
        rows = isic2016.read_ground_truth(path)
        return pd.DataFrame({"image_id": rows["image_id"], "dx": rows["label"], "_line": np.arange(len(rows)) + 1})
    text = read_text(path, "ground-truth CSV")
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    lines = row_lines(text, len(table))
    ids = pd.Series(strip_ids(table[table.columns[0]].tolist(), lines, path), index=table.index)
    if (ids == "").any():
        raise DataError(f"line {lines[int(np.flatnonzero(ids == '')[0])]}: empty image id", path=path,
                        fix="every row needs an image id")
    check_unique_ids(ids, path, lines)
    cols = {c.lower(): c for c in table.columns}
    if fmt == "isic2017":
        flags = _numbers(table, [cols[c] for c in ISIC2017_COLUMNS], path, lines)
        both = np.flatnonzero((flags > 0.5).all(axis=1))
        if len(both):
            raise DataError(f"line {lines[both[0]]}: both melanoma and seborrheic_keratosis are 1", path=path,
                            fix="each image has one diagnosis")
        dx = np.where(flags[:, 0] > 0.5, "mel", np.where(flags[:, 1] > 0.5, "sk", "nv"))
    elif fmt == "onehot":
        classes = [c for c in table.columns[1:] if c.upper() in ONEHOT_COLUMNS]
        values = _numbers(table, classes, path, lines)
        hot = (values > 0.5).sum(axis=1)
        bad = np.flatnonzero(hot != 1)
        if len(bad):
            raise DataError(f"line {lines[bad[0]]}: {hot[bad[0]]} diagnosis columns are 1 (one-hot needs exactly one)",
                            path=path, fix="each row of a one-hot ground truth has a single 1")
        dx = np.array([ONEHOT_COLUMNS[classes[i].upper()] for i in values.argmax(axis=1)])
    else:  # isic2020
        target = _numbers(table, [cols["target"]], path, lines)[:, 0]
        diagnosis = table[cols["diagnosis"]].str.strip().str.lower()
        dx = np.where(target > 0.5, "mel", diagnosis.map(lambda t: ISIC2020_DIAGNOSIS.get(t, "unk")).to_numpy())
    return pd.DataFrame({"image_id": ids.to_numpy(), "dx": dx, "_line": lines})


def to_task_labels(truth: pd.DataFrame, task: str, mapping: Mapping[str, str] | None = None
                   ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows mapped to ``task``'s classes (``label`` column) and the count of excluded rows per code."""
    if mapping is None:
        if task not in TASK_MAPPINGS:
            raise DataError(f"no ISIC class mapping for {task} (a segmentation task?)",
                            fix="pass mapping={code: class} (codes: " + ", ".join(DX_CODES) + ")")
        mapping = TASK_MAPPINGS[task]
    label = truth["dx"].map(dict(mapping))
    keep = label.notna()
    excluded = truth.loc[~keep, "dx"].value_counts().to_dict()
    out = truth.loc[keep].assign(label=label[keep]).reset_index(drop=True)
    return out, {str(k): int(v) for k, v in excluded.items()}


def read_for_task(path: str | os.PathLike, task: str, mapping: Mapping[str, str] | None = None
                  ) -> tuple[pd.DataFrame, dict[str, int]]:
    """An official ground-truth CSV as ``image_id, dx, label, _line`` rows of ``task``'s classes, plus
    the excluded rows per diagnosis code (see the module doc for the mapping; an ISIC 2016 file takes
    its labels as given, :func:`format_mapping`)."""
    truth = read_ground_truth(path)
    if detect_format(_header(Path(path))) == "isic2016":
        mapping = format_mapping("isic2016", task, mapping, Path(path))[1]
    return to_task_labels(truth, task, mapping)
