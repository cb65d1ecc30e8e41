"""Write data_manifests/<dataset>.csv once: ids, labels, lesion ids, the split every approach uses, checksums.

Run: ``python benchmarks/build_manifests.py [--data-root DIR] [--force] [DATASET ...]``.
An existing manifest is kept (its split is the benchmark's contract) unless ``--force`` is given.
HAM10000 carries the official sha256 of the original release JPEGs; the ISIC manifests carry the
sha256 of the files as held in the data root (re-encoded copies), as recorded in index.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from skinbench.cache import file_digest
from skinbench import info
from skinbench.data import attributes, ham10000, isic2016, layout
from skinbench.data.manifests import manifest_path, write_manifest
from skinbench.paths import data_root


def _held_checksums(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["image_id", "label", "lesion_id", "split"]].copy()
    paths = frame["image"].tolist()
    out["sha256"] = [file_digest(p) for p in tqdm(paths, desc="sha256", disable=not sys.stderr.isatty())]
    out["size_bytes"] = [os.path.getsize(p) for p in paths]
    return out


def build_ham10000(root: Path) -> tuple[pd.DataFrame, dict]:
    folder = root / "ham10000"
    table = ham10000.read_metadata(folder / ham10000.METADATA)
    frame = pd.DataFrame({"image_id": table["image_id"], "label": table["dx"], "lesion_id": table["lesion_id"],
                          "split": ham10000.compute_split(table, ham10000.SPLIT_SEED)})
    official = pd.read_csv(folder / "original_jpeg_sha256.csv", dtype=str).set_index("image_id")
    frame["sha256"] = official.loc[frame["image_id"], "sha256"].to_numpy()
    frame["size_bytes"] = official.loc[frame["image_id"], "size_bytes"].to_numpy()
    note = {"checksums": "official", "checksum_note": "sha256 and size of the ORIGINAL 600x450 JPEGs of the "
            "HAM10000 release (original_jpeg_sha256.csv); a re-encoded copy will not match",
            "split": f"lesion-aware StratifiedGroupKFold by dx, test 1/{round(1 / ham10000.TEST_SIZE)}, "
                     f"seed {ham10000.SPLIT_SEED}"}
    return frame, note


def build_isic2016(root: Path) -> tuple[pd.DataFrame, dict]:
    ds = isic2016.load(root / "isic2016_task3", manifest_dir=Path("/nonexistent"))
    note = {"checksums": "held", "checksum_note": "sha256 of the files as held in the data root (re-encoded "
            "copy, short side <= 384 px), not of the official release", "split": "official ISIC 2016 split"}
    return _held_checksums(ds.frame), note


def build_isic2018(root: Path) -> tuple[pd.DataFrame, dict]:
    ds = attributes.load_isic2018(root / "isic2018_task2", manifest_dir=Path("/nonexistent"))
    note = {"checksums": "held", "checksum_note": "sha256 of the images as held in the data root (re-encoded, "
            "long side 256 px), not of the official release",
            "split": "ISIC 2016 Part 3 membership (split_membership_2016_2017.csv): 2016 train -> train, "
                     "2016 test -> test, other images dropped"}
    return _held_checksums(ds.frame), note


def build_isic2018_all(root: Path) -> tuple[pd.DataFrame, dict]:
    folder = layout.require_dir(attributes.ISIC2018_ALL, root / "isic2018_task2")
    frame, dropped, _ = attributes.read_release(folder, info.dataset(attributes.ISIC2018_ALL).targets, every_image=True)
    frame["split"], reasons = attributes.isic2018_all_split(frame, dropped, progress=True)
    copies = {i: r for i, r in reasons.items() if i not in dropped}
    added = int(((frame["split"] == "train") & ~frame["image_id"].isin(attributes.load_isic2018(
        folder, manifest_dir=Path("/nonexistent")).ids)).sum())
    note = {"checksums": "held", "checksum_note": "sha256 of the images as held in the data root (re-encoded, "
            "long side 256 px), not of the official release",
            "split": "ISIC 2016 test images (split_membership_2016_2017.csv) -> test; every other release image -> "
                     f"train ({added} beyond the 806 ISIC 2016 training images), except '{attributes.EXCLUDED}': "
                     "exact or near copies of a test image (skinbench.data.duplicates rules) and images "
                     "with a missing mask",
            "excluded": dict(sorted(reasons.items())),
            "excluded_copies_of_test_images": len(copies)}
    return _held_checksums(frame), note


BUILDERS = {"ham10000": build_ham10000, "isic2016_task3": build_isic2016, "isic2018_task2": build_isic2018,
            "isic2018_task2_all": build_isic2018_all}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", metavar="DATASET", help=f"any of {', '.join(BUILDERS)} (default: all)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--force", action="store_true", help="overwrite existing manifests (changes the split!)")
    args = parser.parse_args(argv)
    root = data_root(args.data_root)
    unknown = sorted(set(args.datasets) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {', '.join(BUILDERS)}")
    for name in args.datasets or list(BUILDERS):
        path = manifest_path(name)
        if path.exists() and not args.force:
            print(f"{name}: {path} exists, kept (use --force to rebuild)")
            continue
        frame, note = BUILDERS[name](root)
        note["built_by"] = "benchmarks/build_manifests.py"
        out = write_manifest(name, frame, note)
        print(f"{name}: wrote {out} ({len(frame)} rows, {frame['split'].value_counts().to_dict()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
