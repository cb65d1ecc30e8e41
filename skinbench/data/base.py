"""The one in-memory description of a dataset that every approach and metric reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: columns every adapter fills; ``mask_<target>`` columns are added per segmentation target
COLUMNS = ("image_id", "image", "label", "lesion_id", "split")


@dataclass
class Dataset:
    """A table of images with labels, lesion ids, the fixed split and mask paths.

    ``frame`` columns: ``image_id`` (str), ``image`` (absolute path str), ``label`` (class name str,
    or "" when the dataset has no labels), ``lesion_id`` (str; equals image_id when unknown),
    ``split`` ("train" or "test"), and ``mask_<target>`` (absolute path str, "" when absent).
    """

    name: str
    root: Path
    frame: pd.DataFrame
    class_names: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    #: sha256 of the manifest (ids, labels, split) this dataset was built from
    manifest_digest: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"Dataset frame lacks columns {missing}")
        self.frame = self.frame.reset_index(drop=True)
        if not self.manifest_digest:
            self.manifest_digest = frame_digest(self.frame)

    def __len__(self) -> int:
        return len(self.frame)

    def split(self, which: str) -> "Dataset":
        """The train or test part (same class list, same digest)."""
        part = self.frame[self.frame["split"] == which]
        return Dataset(self.name, self.root, part.copy(), self.class_names, self.targets,
                       self.manifest_digest, dict(self.extra))

    def subset(self, index: np.ndarray | list[int]) -> "Dataset":
        return Dataset(self.name, self.root, self.frame.iloc[list(index)].copy(), self.class_names,
                       self.targets, self.manifest_digest, dict(self.extra))

    @property
    def ids(self) -> np.ndarray:
        return self.frame["image_id"].to_numpy(dtype=str)

    @property
    def paths(self) -> np.ndarray:
        """Image paths: the ``X`` every estimator's fit/predict takes."""
        return self.frame["image"].to_numpy(dtype=str)

    @property
    def y(self) -> np.ndarray:
        """Labels as integer indices into ``class_names``."""
        lookup = {c: i for i, c in enumerate(self.class_names)}
        return np.array([lookup[v] for v in self.frame["label"]], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return self.frame["lesion_id"].to_numpy(dtype=str)

    def masks(self, target: str) -> np.ndarray:
        """Mask paths for ``target`` ("" where the image has no mask file)."""
        return self.frame[f"mask_{target}"].fillna("").to_numpy(dtype=str)


def frame_digest(frame: pd.DataFrame) -> str:
    """Digest of what defines an experiment's data: ids, labels, lesion ids, split (not paths)."""
    cols = [c for c in ("image_id", "label", "lesion_id", "split") if c in frame.columns]
    text = frame[cols].sort_values("image_id").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
