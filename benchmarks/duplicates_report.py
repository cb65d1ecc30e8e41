"""Exact and near-duplicate images in the real datasets, and which pairs cross the train/test split.

    python benchmarks/duplicates_report.py [--data-root DIR] [--results DIR] [--datasets NAME ...]

For each dataset (default: isic2016_task3, ham10000, isic2018_task2 and the task3 default training set
isic2018_task2_all, as ``load_dataset`` gives them with their fixed split) runs
``skinbench.data.duplicates.find_duplicates`` and writes ``<results>/data_hygiene/duplicates.md`` (summary,
every pair that crosses the split or joins two lesion ids, the recall of the rules on known re-processed
copies and every pair only the structure test finds, what a rebuilt task3 manifest would exclude, probable
same-lesion pairs across the official ISIC 2016 split), ``duplicates.csv`` (every pair) and
``duplicates.md.key.json`` (the key of the records and manifests it read: ``regenerate.py --status`` says
when the report is stale, see ``skinbench/results/derived.py``). Rules and thresholds:
``skinbench/data/duplicates.py``.

What the tables do about pairs that cross the split: nothing. They keep the official split as published
(so numbers stay comparable with other work on it); the report shows, for every committed record of such a
dataset (``<results>/runs``, first seed of each approach), the primary metric with and without the test
images that duplicate a training image, re-scored from the record's stored per-image predictions
(``skinbench.results.subgroups_report.primary_on_subset``), and writes those rows to
``duplicates_effect.csv``. ``python -m skinbench data verify NAME --duplicates`` lists the pairs of one dataset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench.data.manifests import read_index  # noqa: E402
from skinbench.results.derived import HYGIENE_DATASETS as DATASETS  # noqa: E402

#: re-processed copies (colour, contrast and framing changed) of ISIC 2016 test images in the task3 default
#: training set, found by eye (issue #31): the near-duplicate rules' recall is measured on them
KNOWN_COPIES = {"isic2018_task2_all": (("ISIC_0000165", "ISIC_0014788"), ("ISIC_0000201", "ISIC_0015023"),
                                       ("ISIC_0000227", "ISIC_0015034"), ("ISIC_0000226", "ISIC_0014949"))}

#: probable photos of one lesion on both sides of the official ISIC 2016 split (found by eye, issue #31;
#: other photos, not copies, so no duplicate rule finds them): (test image, training image)
PROBABLE_SAME_LESION = {"isic2016_task3": (("ISIC_0010016", "ISIC_0001134"), ("ISIC_0009930", "ISIC_0009929"))}

#: the dataset whose manifest excludes training copies of test images, and the command that rebuilds it
TASK3_ALL = "isic2018_task2_all"
REBUILD_TASK3 = "python benchmarks/build_manifests.py --force isic2018_task2_all"


def _versions() -> dict[str, str]:
    import cv2
    import PIL

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "skinbench", "benchmarks"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"skinbench commit": commit, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "opencv": cv2.__version__, "pillow": PIL.__version__}


def _closest(ids: list[str], prints: list, splits: list[str], lesions: list[str], k: int = 3) -> list[dict]:
    """The ``k`` pHash candidates of two lesion ids that no rule flags with the highest structure
    correlation: how close the next pair is to the structure threshold (for a human to check)."""
    from skinbench.data.duplicates import find_duplicates

    flagged = {(p.id_a, p.id_b) for p in find_duplicates(ids, prints, splits, lesions)}
    every = find_duplicates(ids, prints, splits, lesions, min_similarity=2.0, min_structure=-2.0)
    rest = [p for p in every if p.kind == "near" and not p.same_lesion and (p.id_a, p.id_b) not in flagged]
    return [{"id_a": p.id_a, "id_b": p.id_b, "distance": p.distance, "similarity": p.similarity,
             "structure": p.structure} for p in sorted(rest, key=lambda p: -p.structure)[:k]]


def known_rows(name: str, ds, prints: dict[str, object]) -> list[dict]:
    """Per known re-processed copy of this dataset: its scores and whether the old (detail only) and the
    current rules find it."""
    from skinbench.data.duplicates import (DETAIL_THRESHOLD, NEAR_THRESHOLD, STRUCTURE_THRESHOLD, hamming,
                                           structure_similarity)

    rows = []
    for test_id, train_id in KNOWN_COPIES.get(name, ()):
        a, b = prints.get(test_id), prints.get(train_id)
        if a is None or b is None:
            rows.append({"dataset": name, "test": test_id, "train": train_id, "distance": "n/a", "similarity": "n/a",
                         "structure": "n/a", "old_rule": "image absent", "found": "image absent"})
            continue
        d = hamming(a.phash, b.phash)
        sim = float(a.detail @ b.detail)
        struct = float(structure_similarity(a.structure[None], b.structure[None])[0])
        gate = d <= NEAR_THRESHOLD
        rows.append({"dataset": name, "test": test_id, "train": train_id, "distance": d, "similarity": round(sim, 4),
                     "structure": round(struct, 4), "old_rule": "yes" if gate and sim >= DETAIL_THRESHOLD else "no",
                     "found": "yes" if gate and (sim >= DETAIL_THRESHOLD or struct >= STRUCTURE_THRESHOLD) else "no"})
    return rows


def scan(name: str, data_root: str | None) -> tuple[pd.DataFrame, dict]:
    """All pairs of one dataset as a frame (with labels), and its summary row (``known``: the rules'
    recall on :data:`KNOWN_COPIES`; ``margin``: see :func:`_margin`)."""
    from skinbench.data import load_dataset
    from skinbench.data.duplicates import find_duplicates, fingerprints, pairs_frame

    ds = load_dataset(name, data_root)
    fr = ds.frame
    ids, splits, lesions = fr["image_id"].tolist(), fr["split"].tolist(), fr["lesion_id"].tolist()
    start = time.perf_counter()
    prints = fingerprints(fr["image"].tolist(), progress=True, desc=f"duplicates {name}")
    pairs = find_duplicates(ids, prints, splits, lesions)
    seconds = time.perf_counter() - start
    frame = pairs_frame(pairs, name)
    label = dict(zip(ds.frame["image_id"], ds.frame["label"].fillna("")))
    frame.insert(frame.columns.get_loc("lesion_a"), "label_a", frame["id_a"].map(label))
    frame.insert(frame.columns.get_loc("lesion_a"), "label_b", frame["id_b"].map(label))
    exact = frame["kind"] != "near"
    summary = {
        "dataset": name, "images": len(ds), "manifest_digest": ds.manifest_digest, "pairs": len(frame),
        "exact": int(exact.sum()), "near": int((~exact).sum()), "same_lesion": int(frame["same_lesion"].sum()),
        "different_lesion": int((~frame["same_lesion"]).sum()), "crossing_split": int(frame["crosses_split"].sum()),
        "label_conflicts": int((frame["label_a"] != frame["label_b"]).sum()),
        "seconds": round(seconds, 1), "ms_per_image": round(1000 * seconds / max(len(ds), 1), 2),
        "known": known_rows(name, ds, dict(zip(ids, prints))), "closest": _closest(ids, prints, splits, lesions),
        "splits": dict(zip(ids, splits)),
    }
    return frame, summary



PAIR_COLS = ["dataset", "id_a", "id_b", "kind", "distance", "similarity", "structure", "split_a", "split_b",
             "label_a", "label_b", "lesion_a", "lesion_b"]


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return out


def markdown(frame: pd.DataFrame, summaries: list[dict], command: str, data_root: str, versions: dict,
             effect: list[str] | None = None, sections: list[str] | None = None) -> str:
    from skinbench.data.duplicates import DETAIL_THRESHOLD, NEAR_THRESHOLD, STRUCTURE_THRESHOLD

    lines = [
        "# Duplicate images (data hygiene)", "",
        f"Generated by `{command}` on {dt.datetime.now().astimezone().isoformat(timespec='seconds')}.",
        f"Data: the data root `{data_root}` (datasets as `skinbench.data.load_dataset` gives them, fixed "
        "train/test split; manifest digests below). Versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", "",
        f"Rule (`skinbench/data/duplicates.py`): **exact** = same file sha256 or same decoded pixels; **near** = "
        f"64-bit DCT pHash within {NEAR_THRESHOLD} bits *and* either the high-pass detail correlation >= "
        f"{DETAIL_THRESHOLD} or the structure correlation >= {STRUCTURE_THRESHOLD} (band-pass map of the "
        "histogram-equalised grey centre, best over shifts of +-3 px of 32: copies whose colour, contrast or "
        "framing were re-processed). pHash alone matches thousands of different lesions: dermoscopy images "
        "share one layout. `distance` = pHash Hamming bits, `similarity` = detail correlation, `structure` = "
        "structure correlation. Rotated or flipped copies are not detected. Every pair is in `duplicates.csv`.",
        "",
        "## Summary", "",
        *_table(summaries, ["dataset", "images", "manifest_digest", "pairs", "exact", "near", "same_lesion",
                            "different_lesion", "crossing_split", "label_conflicts", "seconds", "ms_per_image"]),
        "",
        "`same_lesion`: both images carry one lesion id (HAM10000 has several photos per lesion; its split is "
        "lesion-aware, so these never cross it). `crossing_split`: one image in train, the other in test, so a "
        "model is tested on a picture it was trained on. `seconds`: fingerprints (decoding dominates) + pair "
        "search, on one core.", "",
        "## Pairs that cross the train/test split", "",
    ]
    crossing = frame[frame["crosses_split"]]
    lines += [f"{len(crossing)} pairs in all.", ""]
    lines += (_table(crossing.to_dict("records"), PAIR_COLS) if len(crossing) else ["None."]) + [""]
    lines += effect or []
    lines += sections or []
    lines += ["## Pairs within one split that join two lesion ids", ""]
    other = frame[~frame["crosses_split"] & ~frame["same_lesion"]]
    lines += (_table(other.to_dict("records"), PAIR_COLS) if len(other) else ["None."]) + [""]
    same = frame[frame["same_lesion"]]
    lines += ["## Same-lesion pairs", "",
              f"{len(same)} pairs of images of one lesion id (by kind: "
              + (", ".join(f"{k} {v}" for k, v in same["kind"].value_counts().sort_index().items()) or "none")
              + f"), {int(same['crosses_split'].sum())} of them crossing the split; listed in the CSV only.", ""]
    return "\n".join(lines)


def crossing_test_ids(frame: pd.DataFrame) -> dict[str, list[str]]:
    """dataset -> the test-side image id of every pair that crosses the train/test split."""
    out: dict[str, list[str]] = {}
    for row in frame[frame["crosses_split"]].itertuples():
        test_id = row.id_a if row.split_a == "test" else row.id_b
        out.setdefault(row.dataset, [])
        if test_id not in out[row.dataset]:
            out[row.dataset].append(test_id)
    return out


def effect_rows(frame: pd.DataFrame, results_root: Path) -> list[dict]:
    """Per committed record of a dataset with crossing pairs: its primary metric on all test images and
    without the crossing ones (first seed of each approach, every task and target, table order)."""
    return effect_rows_for(crossing_test_ids(frame), results_root)


def effect_rows_for(leave_out: dict[str, list[str]], results_root: Path) -> list[dict]:
    """:func:`effect_rows` for given test images per dataset (e.g. probable same-lesion pairs)."""
    from skinbench import info
    from skinbench.results.records import load_records
    from skinbench.results.subgroups_report import first_seed_per_target, primary_on_subset

    rows = []
    for dataset, test_ids in leave_out.items():
        records = load_records(results_root, dataset=dataset)
        for task in info.TASKS:
            for r in first_seed_per_target(records, task, dataset):
                res = primary_on_subset(r, test_ids)
                delta = (None if res["value"] is None or res["value_kept"] is None
                         else res["value_kept"] - res["value"])
                lo, hi = r.ci(res["metric"])
                rows.append({"dataset": dataset, "task": task, "target": r.target or "", "approach": r.approach,
                             "metric": res["metric"], "n_test": res["n"], "value": res["value"],
                             "ci_lo": lo, "ci_hi": hi, "n_without": res["n_kept"],
                             "value_without": res["value_kept"], "delta": delta,
                             "left_out": " ".join(res["left_out"])})
    return rows


def _num(x: float | None, sign: bool = False) -> str:
    return "n/a" if x is None else (f"{x:+.4f}" if sign else f"{x:.4f}")


def effect_markdown(frame: pd.DataFrame, rows: list[dict]) -> list[str]:
    """The section saying what the tables do about pairs crossing the split, with the effect per record."""
    crossing = crossing_test_ids(frame)
    lines = ["## What the tables do about pairs crossing the split", ""]
    if not crossing:
        return lines + ["No pair crosses a split: nothing to do.", ""]
    listed = "; ".join(f"{d}: {', '.join(ids)}" for d, ids in crossing.items())
    lines += [
        "**They keep the official split as published**: every test image stays in the test set, so the numbers "
        "remain comparable with other work on these splits, and nothing is retrained. The test images that "
        f"duplicate a training image ({listed}) are reported here instead, with the effect of leaving them "
        "out: each committed record's primary metric on all its test images and without them, re-scored "
        "from the record's stored per-image predictions (first seed of each approach; `delta` = without - "
        "with; also in `duplicates_effect.csv`).", ""]
    return lines + _effect_table(rows)


def _effect_table(rows: list[dict]) -> list[str]:
    """The with / without table of effect rows and the largest change (against each record's own CI)."""
    if not rows:
        return ["No committed records of these datasets yet.", ""]
    lines: list[str] = []
    shown = [{**r, "task": r["task"] + (f" / {r['target']}" if r["target"] else ""), "value": _num(r["value"]),
              "value_without": _num(r["value_without"]), "delta": _num(r["delta"], sign=True)} for r in rows]
    lines += _table(shown, ["dataset", "task", "approach", "metric", "n_test", "value", "n_without",
                            "value_without", "delta"])
    deltas = [abs(r["delta"]) for r in rows if r["delta"] is not None]
    if deltas:
        outside = [f"{r['task']} {r['approach']}" for r in rows if r["value_without"] is not None
                   and r["ci_lo"] is not None  # records keep 6 decimals: allow their rounding
                   and not r["ci_lo"] - 1e-6 <= r["value_without"] <= r["ci_hi"] + 1e-6]
        lines += ["", f"Largest change: {max(deltas):.4f} (in the metric's units). "
                  + (f"Outside the record's own 95% CI: {', '.join(outside)}." if outside else
                     "Every value without them lies inside the record's own 95% CI.")]
    return lines + [""]


def rules_markdown(frame: pd.DataFrame, summaries: list[dict]) -> list[str]:
    """How well the near rules do: recall on the known re-processed copies, every pair only the structure
    test finds (for a human to check), and the closest candidate left unflagged per dataset."""
    from skinbench.data.duplicates import DETAIL_THRESHOLD, STRUCTURE_THRESHOLD

    known = [r for s in summaries for r in s.get("known", [])]
    lines = ["## How the near rules do", "",
             "**Recall on known re-processed copies** (training copies of test images in the task3 default "
             "training set, found by eye; `old_rule`: the detail test alone, as before issue #31):", ""]
    if known:
        found = sum(r["found"] == "yes" for r in known)
        old = sum(r["old_rule"] == "yes" for r in known)
        lines += _table(known, ["dataset", "test", "train", "distance", "similarity", "structure", "old_rule", "found"])
        lines += ["", f"Found: {found} of {len(known)} (the detail test alone: {old} of {len(known)}).", ""]
    else:
        lines += ["None of the scanned datasets holds them.", ""]
    added = frame[(frame["kind"] == "near") & (frame["similarity"] < DETAIL_THRESHOLD)]
    other = added[~added["same_lesion"]]
    lines += [f"**Pairs only the structure test finds** (detail correlation < {DETAIL_THRESHOLD}, structure >= "
              f"{STRUCTURE_THRESHOLD}): {len(added)}, of which {int(added['same_lesion'].sum())} join photos of "
              f"one lesion id (in the CSV) and {int(added['crosses_split'].sum())} cross the split. Those of two "
              "lesion ids (below) are false alarms unless the two images are one photograph: check them by eye.", ""]
    if len(other):
        lines += _table(other.to_dict("records"), PAIR_COLS) + [""]
    closest = [{"dataset": s["dataset"], **c} for s in summaries for c in s.get("closest", [])]
    lines += [f"**Closest unflagged candidates** (pHash candidates of two lesion ids that no rule flags, highest "
              f"structure correlation first; the threshold is {STRUCTURE_THRESHOLD}): copies among them are "
              "missed, others show the margin.", ""]
    lines += (_table(closest, ["dataset", "id_a", "id_b", "distance", "similarity", "structure"]) if closest
              else ["None."]) + [""]
    return lines


def task3_markdown(frame: pd.DataFrame, summaries: list[dict]) -> list[str]:
    """What a rebuilt task3 manifest would exclude: the training images of the task3 default training set
    that still copy a test image (the manifest excludes copies found by the rules it was built with)."""
    if not any(s["dataset"] == TASK3_ALL for s in summaries):
        return []
    crossing = frame[(frame["dataset"] == TASK3_ALL) & frame["crosses_split"]]
    train_ids = sorted({row.id_a if row.split_a == "train" else row.id_b for row in crossing.itertuples()})
    lines = [f"## The task3 default training set ({TASK3_ALL})", ""]
    if not train_ids:
        excluded = (read_index().get(TASK3_ALL) or {}).get("excluded") or {}
        copies = {i: why for i, why in sorted(excluded.items()) if "copy of test image" in why}
        return lines + [f"Its manifest (`data_manifests/{TASK3_ALL}.csv`, built by `{REBUILD_TASK3}`) excludes every "
                        f"training copy of a test image the rules find: {len(copies)} images, so no pair above "
                        "crosses its split. As `data_manifests/index.json` records them:", "",
                        *_table([{"excluded training image": i, "why": why} for i, why in copies.items()],
                                ["excluded training image", "why"]), ""]
    return lines + [
        f"Its committed manifest (`data_manifests/{TASK3_ALL}.csv`) keeps {len(train_ids)} training images that copy "
        f"a test image (listed above under the pairs crossing the split): {', '.join(train_ids)}. Rebuilding it "
        f"with today's rules (`{REBUILD_TASK3}`) would mark them `excluded`; that changes the manifest digest, so "
        "every task3 record on it becomes stale and must be retrained (hours on 2 CPU cores). Until then the "
        "effect of those test images is in the table above.", ""]


def probable_markdown(summaries: list[dict], results_root: Path) -> tuple[list[str], list[dict]]:
    """Probable same-lesion pairs across the official ISIC 2016 split, and how far leaving their test
    images out moves each committed record's primary metric."""
    lines = ["## Probable same-lesion pairs across the official ISIC 2016 split", ""]
    by_name = {s["dataset"]: s for s in summaries}
    listed, leave_out = [], {}
    for dataset, pairs in PROBABLE_SAME_LESION.items():
        splits = by_name.get(dataset, {}).get("splits", {})
        for test_id, train_id in pairs:
            listed.append({"dataset": dataset, "test": test_id, "split_test": splits.get(test_id, "absent"),
                           "train": train_id, "split_train": splits.get(train_id, "absent")})
            if splits.get(test_id) == "test" and splits.get(train_id) == "train":
                leave_out.setdefault(dataset, []).append(test_id)
    if not listed:
        return lines + ["None listed.", ""], []
    lines += ["Two photographs of (probably) one lesion, one in the official test set, one in training, found by "
              "eye (no duplicate rule finds them: they are other photographs, not copies). The official split "
              "stays; the effect of leaving the test images out, per committed record (first seed; `delta` = "
              "without - with):", "", *_table(listed, ["dataset", "test", "split_test", "train", "split_train"]), ""]
    rows = effect_rows_for(leave_out, results_root) if leave_out else []
    return lines + _effect_table(rows), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="data root (default: --data-root > $SKINBENCH_DATA > ../shared/data)")
    parser.add_argument("--results", help="results folder (default: the repository's results/)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args(argv)
    from skinbench.cache import atomic_write_bytes
    from skinbench.paths import DATA_ROOT_NAME, committed_results_dir, portable
    from skinbench.results.derived import derived, write_key

    results_root = Path(args.results) if args.results else committed_results_dir()
    out = results_root / "data_hygiene"
    frames, summaries = [], []
    for name in args.datasets:
        print(f"scanning {name} ...", file=sys.stderr)
        frame, summary = scan(name, args.data_root)
        frames.append(frame)
        summaries.append(summary)
        print(f"  {summary['pairs']} pairs ({summary['crossing_split']} crossing the split) in "
              f"{summary['seconds']} s", file=sys.stderr)
    frame = pd.concat(frames, ignore_index=True)
    command = " ".join(["python benchmarks/duplicates_report.py", *(sys.argv[1:] if argv is None else argv)])
    atomic_write_bytes(out / "duplicates.csv", frame.to_csv(index=False).encode())
    effect = effect_rows(frame, results_root)
    probable, probable_rows = probable_markdown(summaries, results_root)
    sections = rules_markdown(frame, summaries) + task3_markdown(frame, summaries) + probable
    text = markdown(frame, summaries, command, DATA_ROOT_NAME if not args.data_root else portable(args.data_root),
                    _versions(), effect_markdown(frame, effect), sections)
    atomic_write_bytes(out / "duplicates.md", text.encode())
    rows = ([{"why": "copy crossing the split", **r} for r in effect]
            + [{"why": "probable same lesion", **r} for r in probable_rows])
    # 10 significant digits: the means' last bits follow the summation order, which would churn the file
    atomic_write_bytes(out / "duplicates_effect.csv",
                       pd.DataFrame(rows).to_csv(index=False, lineterminator="\n", float_format="%.10g").encode())
    key = write_key(derived("data_hygiene/duplicates"), results_root,
                    {**derived("data_hygiene/duplicates").params, "datasets": list(args.datasets)})
    print(f"wrote {out / 'duplicates.md'}, {out / 'duplicates.csv'}, {out / 'duplicates_effect.csv'} and {key}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
