"""Finding a dataset's files in the layouts users download, and the error when they are missing."""

from __future__ import annotations

from pathlib import Path

from skinbench import info
from skinbench.errors import DataError


class MissingDataError(DataError):
    """An expected file or folder of a dataset is absent (as opposed to present but malformed)."""


def missing_data(name: str, path: Path, what: str = "dataset folder") -> MissingDataError:
    """MissingDataError naming the expected files and the official source of dataset ``name``."""
    meta = info.dataset(name)
    return MissingDataError(f"{what} is missing ({meta.title} expects: {'; '.join(meta.expected)})", path=path,
                     fix=f"download it from {meta.source} and pass the folder holding {meta.folder}/ "
                         "with --data-root or $SKINBENCH_DATA")


def require_dir(name: str, folder: Path) -> Path:
    if not Path(folder).is_dir():
        raise missing_data(name, Path(folder))
    return Path(folder)


def require_file(name: str, folder: Path, filename: str) -> Path:
    path = Path(folder) / filename
    if not path.is_file():
        raise missing_data(name, path, what=f"file {filename}")
    return path


def first_dir(name: str, folder: Path, *candidates: str) -> Path:
    """The first existing sub-folder among ``candidates`` (official name first, short name second)."""
    for c in candidates:
        if (Path(folder) / c).is_dir():
            return Path(folder) / c
    raise missing_data(name, Path(folder) / candidates[0], what=f"folder {' or '.join(candidates)}")
