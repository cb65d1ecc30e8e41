"""``skinbench data verify DATASET``: compare a data folder with its manifest.

Reports images of the manifest that are missing, image files the manifest does not list (extra), files
that cannot be read (empty, truncated, not an image: :func:`skinbench.data.images.readable_files`, their
own class, never counted as checksum mismatches), and readable files whose sha256 (or size) differs from
the manifest's checksum. Where the manifest holds the *official* checksums (HAM10000) and every readable
present file differs, the folder is a re-encoded copy: that is reported as one note, not thousands of
lines.

``data verify generic --data-root FOLDER`` checks your own folder (no manifest) with the checks a run
makes before any work (:func:`verify_generic`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from skinbench import info
from skinbench.cache import file_digest
from skinbench.data import generic, ham10000, load_dataset
from skinbench.data.base import check_for_task
from skinbench.data.images import check_mask_sizes, readable_files
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
    #: manifest images found (extra files not counted), and of those the readable ones (checksums compared)
    n_found: int = 0
    n_readable: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    #: file name -> why it cannot be read (present manifest images and masks: empty, truncated, not an image)
    unreadable: dict[str, str] = field(default_factory=dict)
    checksums: str = ""  # "official" | "held" | ""
    notes: list[str] = field(default_factory=list)
    #: target -> ids of manifest images present without their mask file (datasets in MASK_LAYOUTS)
    missing_masks: dict[str, list[str]] = field(default_factory=dict)
    #: duplicate image pairs (``data.duplicates.DuplicatePair``) when verify ran with duplicates=True
    duplicates: list | None = None

    @property
    def ok(self) -> bool:
        """True when every manifest image is present, readable and with the expected checksum (extra files
        are fine)."""
        return (not self.missing and not self.mismatched and not self.unreadable
                and not any(self.missing_masks.values()))

    @property
    def reencoded(self) -> bool:
        """Every readable present image differs from the official checksums: a re-encoded copy, usable but
        not original."""
        return self.checksums == "official" and self.n_readable > 0 and len(self.mismatched) == self.n_readable

    @property
    def usable(self) -> bool:
        """Nothing missing or unreadable, and any checksum difference is the documented whole-copy kind."""
        whole = len(self.mismatched) == self.n_readable and self.n_readable > 0
        return not self.missing and not self.unreadable and not any(self.missing_masks.values()) and (
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
        lines.append(f"  unreadable (empty, truncated or not an image): {len(self.unreadable)}"
                     + (f" ({items([f'{k}: {v}' for k, v in self.unreadable.items()])})" if self.unreadable else ""))
        lines.append(f"  checksum mismatches of readable files ({self.checksums or 'no'} checksums): "
                     f"{len(self.mismatched)}" + (f" ({items(self.mismatched)})" if self.mismatched else ""))
        for target, ids in self.missing_masks.items():
            lines.append(f"  missing {target} masks: {len(ids)}" + (f" ({items(ids)})" if ids else ""))
        lines += [f"  note: {n}" for n in self.notes]
        if self.duplicates is not None:
            lines.append(duplicates_line(self.duplicates, show))
        lines.append("  result: " + ("OK" if self.ok else "re-encoded copy (not the original files)"
                                     if self.reencoded and self.usable else "PROBLEMS FOUND"))
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
    if name == "generic":
        return verify_generic(root, duplicates=duplicates)
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
    plugin = meta.origin != info.SUITE and (folder / "images").is_dir()  # generic layout (data.plugin_folder.load_folder)
    found = _find_images(folder / "images", _ANY_IMAGE) if plugin else _find_images(folder)
    wanted = set(manifest["image_id"])
    report.n_found = len(wanted & set(found))
    report.extra = sorted(set(found) - wanted)
    _, bad = readable_files([found[i] for i in manifest["image_id"] if i in found], "image")
    report.unreadable.update({os.path.basename(path): message for path, (message, _) in bad.items()})
    report.n_readable = report.n_found - len(bad)
    has_sum = "sha256" in manifest.columns
    has_size = "size_bytes" in manifest.columns
    rows = manifest.to_dict("records")
    for row in progress(rows, desc=f"verify {name}", unit="image"):
        path = found.get(row["image_id"])
        if path is None:
            report.missing.append(row["image_id"])
        elif path in bad:
            continue  # its own class above: a checksum mismatch would read as "a re-encoded copy"
        elif has_size and row["size_bytes"] and os.path.getsize(path) != int(row["size_bytes"]):
            report.mismatched.append(row["image_id"])  # cheap: no need to hash a file of another size
        elif has_sum and row["sha256"] and file_digest(path) != row["sha256"]:
            report.mismatched.append(row["image_id"])
    _check_masks(report, name, folder, [i for i in manifest["image_id"] if i in found])
    if report.reencoded:
        report.notes.append(f"all {len(report.mismatched)} readable present images differ from the official "
                            "checksums of the original release: this folder holds a re-encoded copy (e.g. "
                            "../shared/data), fine for the benchmark's tables but not the original files")
    elif checksums == "held" and report.mismatched:
        report.notes.append("this manifest's checksums are of the re-encoded copy in ../shared/data; an "
                            "official download differs from them by design")
    if duplicates:
        _add_duplicates(report, manifest, found)
    return report


def _add_duplicates(report: VerifyReport, manifest, found: dict[str, str]) -> None:
    """Duplicate pairs among the manifest's images that are present (split and lesion ids from it);
    an unreadable image is skipped with a note (the unreadable line names it too)."""
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
    masks = [str(mask_dir / pattern.format(i)) for i in present if pattern.format(i) in names]
    _, bad = readable_files(masks, "mask", desc=f"checking {target} masks")
    report.unreadable.update({os.path.basename(path): message for path, (message, _) in bad.items()})


# ------------------------------------------------------------------------------------- your own folder
@dataclass
class GenericReport(VerifyReport):
    """``data verify generic``: a folder in the generic layout checked as a run would check it, every
    problem listed (a run stops at the first): ids and images (loading), unreadable images and masks,
    masks present and of their image's size, and per task the labels, positive class and masks it needs
    (:func:`skinbench.data.base.check_for_task`)."""

    #: label -> images; the positive class (binary data), None when the labels do not say which
    classes: dict[str, int] = field(default_factory=dict)
    positive_class: str | None = None
    #: split -> images; target -> images with a mask file
    splits: dict[str, int] = field(default_factory=dict)
    masks: dict[str, int] = field(default_factory=dict)
    #: one line per problem found by a shared check (loading, mask sizes)
    problems: list[str] = field(default_factory=list)
    #: task -> "" when the folder serves it, else the reason (the line a run would stop with)
    tasks: dict[str, str] = field(default_factory=dict)
    #: the task asked for (--task), whose check decides the result; None: any task it serves
    task: str | None = None
    #: False when the folder could not be loaded (the problem says why; nothing else was checked)
    loaded: bool = False

    @property
    def ok(self) -> bool:
        """No file problem, and the asked task (or at least one task) can run on the folder."""
        if self.task:  # only what that task reads was checked (its masks, every image)
            return self.tasks.get(self.task) == "" and not self.problems
        return (not self.problems and not self.unreadable and not any(self.missing_masks.values())
                and any(reason == "" for reason in self.tasks.values()))

    @property
    def reencoded(self) -> bool:
        return False

    @property
    def usable(self) -> bool:
        return self.ok

    def summary(self, show: int = SHOW) -> str:
        def items(xs: list[str]) -> str:
            return ", ".join(xs[:show]) + (f", ... ({len(xs) - show} more)" if len(xs) > show else "")

        if not self.loaded:
            return "\n".join([f"{self.name}: {self.folder}", *(f"  problem: {p}" for p in self.problems),
                              "  result: PROBLEMS FOUND"])
        lines = [f"{self.name}: {self.folder}", f"  listed images: {self.n_expected}; found: {self.n_found}"]
        lines.append(f"  extra (in the image folder, not listed, ignored): {len(self.extra)}"
                     + (f" ({items(self.extra)})" if self.extra else ""))
        lines.append(f"  unreadable (empty, truncated or not an image): {len(self.unreadable)}"
                     + (f" ({items([f'{k}: {v}' for k, v in self.unreadable.items()])})" if self.unreadable else ""))
        if self.classes:
            counts = ", ".join(f"{c} {n}" for c, n in self.classes.items())
            positive = ("" if len(self.classes) != 2 else "; positive class: " + (
                self.positive_class or "not declared (a binary task needs --positive CLASS or --classes NEG,POS)"))
            lines.append(f"  classes: {counts}{positive}")
        else:
            lines.append("  classes: no labels (segmentation only)")
        if self.splits:
            lines.append("  split: " + ", ".join(f"{n} {s}" for s, n in self.splits.items()))
        if self.masks or not self.task:  # with --task only its own masks are checked
            lines.append("  masks: " + (", ".join(f"{t} {n}" for t, n in self.masks.items()) or "none"))
        for target, ids in self.missing_masks.items():
            if ids:
                lines.append(f"  missing {target} masks: {len(ids)} ({items(ids)})")
        lines += [f"  problem: {p}" for p in self.problems]
        for task, reason in self.tasks.items():
            lines.append(f"  {task}: " + ("OK" if not reason else f"cannot run: {reason}"))
        lines += [f"  note: {n}" for n in self.notes]
        if self.duplicates is not None:
            lines.append(duplicates_line(self.duplicates, show))
        lines.append("  result: " + ("OK" if self.ok else "PROBLEMS FOUND"))
        return "\n".join(lines)


def verify_generic(root: str | os.PathLike | None, task: str | None = None, duplicates: bool = False,
                   **dataset_kwargs) -> GenericReport:
    """Check a generic-layout folder (``root``: the folder itself, as ``run --dataset generic --data-root``
    takes it) with the checks a run makes before any work, listing every problem instead of stopping at
    the first. ``task`` limits the task checks to one (and decides the result); ``dataset_kwargs``
    (``class_names``, ``positive_class``) go to the adapter as with ``run``. A folder that does not exist
    raises :class:`DataError`; what cannot be loaded (absent images, duplicate ids, a lesion in both
    splits, a label outside the declared classes) is a problem of the report."""
    tasks = [task] if task else [t for t, meta in info.TASKS.items() if "generic" in meta.datasets]
    folder = dataset_folder("generic", root)
    if not folder.is_dir():
        raise DataError("data folder does not exist", path=folder,
                        fix="pass --data-root FOLDER holding labels.csv and images/ (see `skinbench list generic`)")
    kwargs = {**({"task": task} if task else {}), **dataset_kwargs}
    report = GenericReport("generic", folder, 0, task=task)
    try:
        ds = load_dataset("generic", folder, **{**(info.task(task).dataset_kwargs.get("generic", {}) if task
                                                    else {}), **kwargs})
    except DataError as err:
        report.problems.append(str(err))
        return report
    report.loaded = True
    report.n_expected = report.n_found = len(ds)  # loading found every listed image (else a problem above)
    image_dirs = {os.path.dirname(p) for p in ds.paths}
    report.extra = sorted({i for d in image_dirs for i in generic._index_files(Path(d))} - set(ds.ids))
    sizes, bad = readable_files(ds.paths, "image")
    unreadable_images = len(bad)
    wanted = {t for name in tasks for t in info.task(name).targets} if task else set(ds.targets)
    bad_targets: set[str] = set()
    for target in [t for t in ds.targets if t in wanted]:
        present = ds.frame[f"mask_{target}"].astype(str)
        report.masks[target] = int((present != "").sum())
        report.missing_masks[target] = ds.frame.loc[present == "", "image_id"].tolist()
        mask_sizes, mask_bad = readable_files(present[present != ""], "mask", desc=f"checking {target} masks")
        sizes.update(mask_sizes)
        bad.update(mask_bad)
        pairs = [(i, m) for i, m in zip(ds.paths, present) if m and i in sizes and m in sizes]
        try:
            check_mask_sizes(pairs, sizes)
        except DataError as err:
            report.problems.append(str(err))
            bad_targets.add(target)
        if mask_bad or report.missing_masks[target]:
            bad_targets.add(target)
    report.unreadable = {os.path.basename(p): message for p, (message, _) in bad.items()}
    labels = ds.frame["label"].astype(str)
    if (labels != "").any():
        report.classes = {c: int((labels == c).sum()) for c in ds.class_names}
        report.positive_class = ds.positive_class
    report.splits = {s: int((ds.frame["split"] == s).sum()) for s in ("train", "test")}
    train, test = ds.split("train"), ds.split("test")
    for name in tasks:
        targets = [t for t in info.task(name).targets if t in ds.targets] or None
        try:
            check_for_task(name, train, test, targets=targets, files=False)
        except DataError as err:
            report.tasks[name] = str(err)
            continue
        broken = [t for t in targets or () if t in bad_targets]
        report.tasks[name] = (f"{unreadable_images} unreadable image(s), listed above" if unreadable_images else
                              f"bad {', '.join(broken)} mask(s), listed above" if broken else "")
    if duplicates:
        _add_duplicates(report, ds.frame[["image_id", "split", "lesion_id"]],
                        {i: p for i, p in zip(ds.ids, ds.paths) if p not in bad})
    return report
