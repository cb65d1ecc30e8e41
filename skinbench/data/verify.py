"""``skinbench data verify DATASET``: compare a data folder with its manifest.

Reports images of the manifest that are missing, image files the manifest does not list (extra), and
files whose sha256 (or size) differs from the manifest's checksum. Where the manifest holds the
*official* checksums (HAM10000) and every present file differs, the folder is a re-encoded copy: that
is reported as one note, not thousands of lines.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from skinbench import info
from skinbench.cache import file_digest
from skinbench.data import ham10000
from skinbench.data.manifests import read_index, read_manifest
from skinbench.errors import DataError
from skinbench.paths import data_root
from skinbench.progress import progress

_IMAGE = re.compile(r"^(ISIC_\d+)\.(jpe?g|png)$", re.IGNORECASE)
#: a dataset plugin's images: the generic layout's images/<image_id>.jpg|png, any id
_ANY_IMAGE = re.compile(r"^(.+)\.(jpe?g|png)$", re.IGNORECASE)
SHOW = 5
#: datasets whose mask files verify checks: name -> (target, mask folders in order, file name of an id)
MASK_LAYOUTS = {"ham10000": ("lesion", ham10000.MASK_DIRS, ham10000.MASK_FILE)}


@dataclass
class VerifyReport:
    name: str
    folder: Path
    n_expected: int
    n_found: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    checksums: str = ""  # "official" | "held" | ""
    notes: list[str] = field(default_factory=list)
    #: target -> ids of manifest images present without their mask file (datasets in MASK_LAYOUTS)
    missing_masks: dict[str, list[str]] = field(default_factory=dict)
    #: duplicate image pairs (``data.duplicates.DuplicatePair``) when verify ran with duplicates=True
    duplicates: list | None = None

    @property
    def ok(self) -> bool:
        """True when every manifest image is present with the expected checksum (extra files are fine)."""
        return not self.missing and not self.mismatched and not any(self.missing_masks.values())

    @property
    def reencoded(self) -> bool:
        """Every present image differs from the official checksums: a re-encoded copy, usable but not original."""
        present = self.n_expected - len(self.missing)
        return self.checksums == "official" and present > 0 and len(self.mismatched) == present

    @property
    def usable(self) -> bool:
        """Nothing missing, and any checksum difference is the documented whole-copy kind (re-encoded)."""
        present = self.n_expected - len(self.missing)
        whole = len(self.mismatched) == present and present > 0
        return not self.missing and not any(self.missing_masks.values()) and (
            not self.mismatched or self.reencoded or (self.checksums == "held" and whole))

    def __str__(self) -> str:
        return self.summary()

    def summary(self, show: int = SHOW) -> str:
        def items(xs: list[str]) -> str:
            return ", ".join(xs[:show]) + (f", ... ({len(xs) - show} more)" if len(xs) > show else "")

        lines = [f"{self.name}: {self.folder}", f"  manifest images: {self.n_expected}; found: {self.n_found}"]
        lines.append(f"  missing: {len(self.missing)}" + (f" ({items(self.missing)})" if self.missing else ""))
        lines.append(f"  extra (not in the manifest, ignored): {len(self.extra)}"
                     + (f" ({items(self.extra)})" if self.extra else ""))
        lines.append(f"  checksum mismatches ({self.checksums or 'no'} checksums): {len(self.mismatched)}"
                     + (f" ({items(self.mismatched)})" if self.mismatched else ""))
        for target, ids in self.missing_masks.items():
            lines.append(f"  missing {target} masks: {len(ids)}" + (f" ({items(ids)})" if ids else ""))
        lines += [f"  note: {n}" for n in self.notes]
        if self.duplicates is not None:
            lines.append(duplicates_line(self.duplicates, show))
        lines.append("  result: " + ("OK" if self.ok else "re-encoded copy (not the original files)"
                                     if self.reencoded and not self.missing and not any(self.missing_masks.values())
                                     else "PROBLEMS FOUND"))
        return "\n".join(lines)


def _find_images(folder: Path, pattern: re.Pattern = _IMAGE) -> dict[str, str]:
    found: dict[str, str] = {}
    for dirpath, _, files in os.walk(folder, followlinks=True):  # linked image folders count, as in the adapters
        for f in files:
            m = pattern.match(f)
            if m and m.group(1) not in found:
                found[m.group(1)] = os.path.join(dirpath, f)
    return found


def dataset_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    base = data_root(root)
    folder = base / info.dataset(name).folder
    return folder if folder.is_dir() else base


def verify(name: str, root: str | os.PathLike | None = None, manifest_dir: Path | None = None,
           duplicates: bool = False) -> VerifyReport:
    """Check the folder of dataset ``name`` (under ``root`` or the data root) against its manifest.

    ``duplicates=True`` also lists exact and near-duplicate image pairs (``data.duplicates``) among
    the manifest images present, with their split: reported, never a failure (``ok`` ignores them)."""
    meta = info.dataset(name)
    manifest = read_manifest(name, manifest_dir)
    if manifest is None:
        raise DataError(f"dataset {name} has no manifest", path=manifest_dir,
                        fix="verify works for " + ", ".join(n for n, d in info.DATASETS.items() if d.manifest))
    folder = dataset_folder(name, root)
    if not folder.is_dir():
        raise DataError(f"data folder is missing ({meta.title} expects: {'; '.join(meta.expected)})", path=folder,
                        fix=f"download it from {meta.source}")
    checksums = read_index(manifest_dir).get(name, {}).get("checksums", "")
    report = VerifyReport(name, folder, len(manifest), checksums=checksums)
    plugin = meta.origin != info.SUITE and (folder / "images").is_dir()  # generic layout (plugins.load_folder)
    found = _find_images(folder / "images", _ANY_IMAGE) if plugin else _find_images(folder)
    report.n_found = len(found)
    wanted = set(manifest["image_id"])
    report.extra = sorted(set(found) - wanted)
    has_sum = "sha256" in manifest.columns
    has_size = "size_bytes" in manifest.columns
    rows = manifest.to_dict("records")
    for row in progress(rows, desc=f"verify {name}", unit="image"):
        path = found.get(row["image_id"])
        if path is None:
            report.missing.append(row["image_id"])
        elif has_size and row["size_bytes"] and os.path.getsize(path) != int(row["size_bytes"]):
            report.mismatched.append(row["image_id"])  # cheap: no need to hash a file of another size
        elif has_sum and row["sha256"] and file_digest(path) != row["sha256"]:
            report.mismatched.append(row["image_id"])
    _check_masks(report, name, folder, [i for i in manifest["image_id"] if i in found])
    if report.reencoded:
        report.notes.append(f"all {len(report.mismatched)} present images differ from the official checksums "
                            "of the original release: this folder holds a re-encoded copy (e.g. ../shared/data), "
                            "fine for the benchmark's tables but not the original files")
    elif checksums == "held" and report.mismatched:
        report.notes.append("this manifest's checksums are of the re-encoded copy in ../shared/data; an "
                            "official download differs from them by design")
    if duplicates:
        _add_duplicates(report, manifest, found)
    return report


def _add_duplicates(report: VerifyReport, manifest, found: dict[str, str]) -> None:
    """Duplicate pairs among the manifest's images that are present (split and lesion ids from it);
    an unreadable image is skipped with a note (the checksum check names it too)."""
    from skinbench.data.duplicates import find_duplicates, fingerprint

    def text(v) -> str:
        return "" if v is None or v != v else str(v)  # NaN -> ""

    ids, prints, splits, lesions, unreadable = [], [], [], [], []
    for row in progress(manifest.to_dict("records"), desc="duplicates", unit="image"):
        if row["image_id"] not in found:
            continue
        try:
            prints.append(fingerprint(found[row["image_id"]]))
        except DataError:
            unreadable.append(row["image_id"])
            continue
        ids.append(row["image_id"])
        splits.append(text(row.get("split")))
        lesions.append(text(row.get("lesion_id")))
    report.duplicates = find_duplicates(ids, prints, splits, lesions)
    if unreadable:
        report.notes.append(f"duplicate scan skipped {len(unreadable)} unreadable images "
                            f"({', '.join(unreadable[:SHOW])})")


def duplicates_line(pairs: list, show: int = SHOW) -> str:
    """One summary line: how many pairs of each kind, and the pairs that cross the train/test split."""
    exact = sum(p.kind != "near" for p in pairs)
    crossing = [f"{p.id_a}/{p.id_b}" for p in pairs if p.crosses_split]
    listed = ", ".join(crossing[:show]) + (f", ... ({len(crossing) - show} more)" if len(crossing) > show else "")
    return (f"  duplicate pairs: {len(pairs)} ({exact} exact, {len(pairs) - exact} near); crossing train/test: "
            f"{len(crossing)}" + (f" ({listed})" if crossing else ""))


def _check_masks(report: VerifyReport, name: str, folder: Path, present: list[str]) -> None:
    """Mask files of the present manifest images (MASK_LAYOUTS): an absent one is reported as missing,
    because a segmentation run would otherwise have nothing to score that image against."""
    layout = MASK_LAYOUTS.get(name)
    if layout is None:
        return
    target, dirs, pattern = layout
    mask_dir = next((folder / d for d in dirs if (folder / d).is_dir()), None)
    if mask_dir is None:
        report.notes.append(f"no {target} mask folder ({' or '.join(d + '/' for d in dirs)}): {target} "
                            "segmentation cannot run on this folder")
        return
    names = set(os.listdir(mask_dir))
    report.missing_masks[target] = [i for i in present if pattern.format(i) not in names]
