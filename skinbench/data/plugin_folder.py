"""A dataset plugin's adapter in one call: a folder in the generic layout read as a registered dataset.

Here, in the data floor, rather than in :mod:`skinbench.plugins` (which the registry loads and which may
not import the data adapters: see the import-linter layers).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from skinbench import info
from skinbench.data import generic, manifests
from skinbench.errors import DataError


def load_folder(name: str, folder: str | os.PathLike | None, **kwargs: Any) -> Any:
    """What a dataset plugin's adapter may simply call: ``folder`` in the generic layout (labels.csv,
    images/, masks/; :mod:`skinbench.data.generic`) read as dataset ``name``, its classes the registered
    ones, checked against its manifest (same ids and labels, split and lesion ids taken from it). Records
    and tables then name it ``name``, not ``generic-<folder>-<digest>``."""
    meta = info.dataset(name)
    if folder is None:
        raise DataError(f"dataset {name} has no data folder", fix=f"pass --data-root (the folder holding {meta.folder}/)")
    if meta.class_names:
        kwargs.setdefault("class_names", list(meta.class_names))
    ds = generic.load(folder, name=name, **kwargs)
    if manifests.manifest_path(name) is None:
        return ds
    frame, digest = manifests.apply_manifest(name, ds.frame, Path(folder) / "labels.csv")
    return replace(ds, frame=frame, manifest_digest=digest)
