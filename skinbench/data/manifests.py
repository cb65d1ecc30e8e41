"""Data manifests: the saved ids, labels, lesion ids and split every approach uses, plus checksums.

``data_manifests/<name>.csv`` (columns ``image_id,label,lesion_id,split,sha256[,size_bytes]``) is written
once by ``benchmarks/build_manifests.py`` and afterwards only read: adapters take the split from it, so
a split is never recomputed differently. ``data_manifests/index.json`` says, per manifest, where its
checksums come from (the official release, or the files as held in ../shared/data).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.data.base import frame_digest
from skinbench.errors import DataError
from skinbench.paths import MANIFEST_DIR

MANIFEST_COLUMNS = ("image_id", "label", "lesion_id", "split")
INDEX = "index.json"


def manifest_path(name: str, directory: Path | None = None) -> Path | None:
    meta = info.dataset(name)
    if meta.manifest_path and directory is None:  # a dataset plugin ships its manifest in its package
        return Path(meta.manifest_path)
    return None if meta.manifest is None else Path(directory or MANIFEST_DIR) / meta.manifest


def read_manifest(name: str, directory: Path | None = None) -> pd.DataFrame | None:
    """The manifest as strings, or None when the dataset has none (yet)."""
    path = manifest_path(name, directory)
    if path is None or not path.is_file():
        return None
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"manifest lacks columns {missing}", path=path,
                        fix="restore it with `git checkout -- data_manifests/` (it is part of the repository)")
    return frame


def manifest_digest(frame: pd.DataFrame) -> str:
    """Digest of ids, labels, lesion ids and split (the same function the Dataset uses)."""
    return frame_digest(frame[list(MANIFEST_COLUMNS)])


def read_index(directory: Path | None = None) -> dict:
    path = Path(directory or MANIFEST_DIR) / INDEX
    return json.loads(path.read_text()) if path.is_file() else {}


def write_manifest(name: str, frame: pd.DataFrame, note: dict, directory: Path | None = None) -> Path:
    """Write ``<name>.csv`` atomically and record ``note`` (seed, checksum source, ...) in index.json."""
    path = manifest_path(name, directory)
    assert path is not None, f"dataset {name} has no manifest file name in info.DATASETS"
    frame = frame.sort_values("image_id").reset_index(drop=True)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())
    index = read_index(directory)
    index[name] = dict(note, file=path.name, rows=len(frame), digest=manifest_digest(frame),
                       split_counts=frame["split"].value_counts().sort_index().to_dict())
    atomic_write_bytes(path.parent / INDEX, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
    return path


def apply_manifest(name: str, frame: pd.DataFrame, source: Path, directory: Path | None = None,
                   take_split: bool = True) -> tuple[pd.DataFrame, str]:
    """Check ``frame`` against the manifest (same ids and labels) and take its split; returns (frame, digest).

    Without a manifest the frame is returned unchanged with digest "" (the Dataset then digests its frame).
    """
    manifest = read_manifest(name, directory)
    if manifest is None:
        return frame, ""
    path = manifest_path(name, directory)
    m = manifest.set_index("image_id")
    ids = frame["image_id"]
    unknown = ids[~ids.isin(m.index)]
    if len(unknown):
        raise DataError(f"{len(unknown)} image(s) are not in the manifest {path} (first: "
                        f"{', '.join(unknown[:5])})", path=source,
                        fix="use the official release's files as downloaded; for data of your own, use "
                            "--dataset generic (a folder with labels.csv and images/)")
    absent = m.index[~m.index.isin(ids)]
    if len(absent):
        raise DataError(f"{len(absent)} image(s) of the manifest {path.name} are not listed (first: "
                        f"{', '.join(absent[:5])})", path=source,
                        fix="download the complete dataset (see `skinbench data verify " + name + "`)")
    labels = m.loc[ids, "label"].to_numpy()
    differ = ids[frame["label"].to_numpy() != labels]
    if len(differ):
        raise DataError(f"labels of {len(differ)} image(s) differ from the manifest {path.name} (first: "
                        f"{', '.join(differ[:5])})", path=source, fix="use the official label file")
    frame = frame.copy()
    if take_split:
        frame["split"] = m.loc[ids, "split"].to_numpy()
        frame["lesion_id"] = m.loc[ids, "lesion_id"].to_numpy()
    else:
        differ = ids[frame["split"].to_numpy() != m.loc[ids, "split"].to_numpy()]
        if len(differ):
            raise DataError(f"{len(differ)} image(s) are in another split than in the manifest {path.name} "
                            f"(first: {', '.join(differ[:5])})", path=source,
                            fix="put train and test images in the official folders")
    return frame, manifest_digest(manifest)
