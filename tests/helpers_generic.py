"""Small generic-layout folders for bad-input tests: copies of the session's synthetic set, edited."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pandas as pd


def generic_copy(src: Path, dest: Path) -> Path:
    """A copy of a synthetic folder (labels.csv: image_id,label,dx,lesion_id,split; images/; masks/)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("synthetic.json"))
    return dest


def labels(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "labels.csv", dtype=str, keep_default_na=False)


def edit_labels(folder: Path, fn: Callable[[pd.DataFrame], pd.DataFrame | None]) -> pd.DataFrame:
    """Apply ``fn`` to labels.csv (in place or returning a new frame) and write it back."""
    table = labels(folder)
    out = fn(table)
    table = table if out is None else out
    table.to_csv(folder / "labels.csv", index=False)
    return table


def line_of(table: pd.DataFrame, image_id: str) -> int:
    """The file line of ``image_id``'s row (header = line 1)."""
    return int(table.index[table["image_id"] == image_id][0]) + 2


def first(table: pd.DataFrame, split: str, label: str | None = None) -> str:
    rows = table[(table["split"] == split) & ((table["label"] == label) if label else True)]
    return str(rows["image_id"].iloc[0])
