"""Dataset adapters: each reads an official layout and returns a :class:`Dataset`."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from skinbench import info
from skinbench.data.base import Dataset
from skinbench.data.layout import MissingDataError, missing_data
from skinbench.paths import data_root

__all__ = ["Dataset", "load_dataset", "load_for_task", "READ_VERSION"]

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


def task_kwargs(task: str, dataset: str, /, **kwargs: Any) -> dict[str, Any]:
    """The adapter kwargs of ``dataset`` serving ``task``: the task's registered ones (e.g. task2 reads the
    synthetic set with diagnosis labels), for a user's generic folder the task (an official ISIC ground
    truth maps its diagnoses to the task's classes), then the caller's ``kwargs``, which win."""
    task_only = {"task": task} if dataset == "generic" else {}
    return {**info.task(task).dataset_kwargs.get(dataset, {}), **task_only, **kwargs}


def load_for_task(task: str, dataset: str, root: str | os.PathLike | None = None, /, **kwargs: Any) -> Dataset:
    """``dataset`` as ``task`` reads it: :func:`load_dataset` with :func:`task_kwargs` (the one place the
    CLI, the runner, ``score``, sweeps and cross-dataset runs load a task's data)."""
    return load_dataset(dataset, root, **task_kwargs(task, dataset, **kwargs))
