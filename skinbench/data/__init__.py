"""Dataset adapters: each reads an official layout and returns a :class:`Dataset`."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from skinbench import info
from skinbench.data.base import Dataset
from skinbench.data.layout import MissingDataError, missing_data
from skinbench.paths import data_root

__all__ = ["Dataset", "load_dataset", "READ_VERSION"]

#: declared version of how pixels, masks, labels and splits are read (enters every run key, see
#: skinbench.provenance): bump it in a change that alters what an estimator or the scorer is given
READ_VERSION = 1


def load_dataset(name: str, root: str | os.PathLike | None = None, **kwargs) -> Dataset:
    """Load dataset ``name`` from ``root/<folder>`` (``root`` defaults to --data-root / $SKINBENCH_DATA).

    ``root`` may also point straight at the dataset folder itself.
    """
    meta = info.dataset(name)
    base = data_root(root)
    nested = base / meta.folder
    folder = nested if nested.is_dir() else base
    if name == "synthetic" and not (folder / "labels.csv").is_file():
        folder = None  # generated into the cache (never into a real data root)
    module, func = meta.adapter.split(":")
    try:
        return getattr(importlib.import_module(module), func)(None if folder is None else Path(folder), **kwargs)
    except MissingDataError:
        if folder == base:  # neither <root>/<folder>/ nor root itself holds the dataset: name the usual place
            raise missing_data(name, nested) from None
        raise
