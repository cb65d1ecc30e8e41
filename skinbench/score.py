"""``skinbench score``: score anyone's predictions against a task's test split, as the suite scores its own.

Input is what a challenge took: for classification an ISIC submission CSV (the 2016 Part 3 form
``ISIC_id,probability`` without a header, or a header ``image,<class>...``: the task's class names, the
ISIC 2018 codes ``MEL,NV,...`` for task2, or one score column = the positive class of a binary task);
for segmentation a folder of mask PNGs (``<id>_segmentation.png``, ``<id>_attribute_<target>.png``,
``<id>_<target>.png`` or ``<id>.png``, 0/255), at the truth mask's size or the image's (same aspect).

The numbers come from the same metrics module with the same bootstrap CIs, next to the task's trivial
baselines on the same images (``extras.baselines``), in one record marked external (family
``external``, status ok) under ``runs/<task>/<dataset>/<name>.json``, so tables list it beside the
suite's rows. Bad files get one clear error each, as the official ISIC scorer gives: missing ids,
extra ids, duplicate ids, a wrong mask size, NaN (or non-numeric) scores, probabilities outside [0, 1].

The CLI imports this module to register ``score``, so the rest of skinbench is imported inside the
functions that use it (start-up cost).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from skinbench import info
from skinbench.errors import ConfigError, DataError

#: ids shown in an error before "..."
SHOW = 5
ID_HEADERS = ("image", "image_id", "image_name", "isic_id", "id")


def _shown(ids: Sequence[str]) -> str:
    ids = list(ids)
    return ", ".join(ids[:SHOW]) + (f", ... ({len(ids)} in all)" if len(ids) > SHOW else "")


# ------------------------------------------------------------------------------ classification CSV

def _float(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"line {line}: {column} score {text!r} is not a number", path=path,
                        fix="write a probability in [0, 1] for every image and class") from None
    if math.isnan(value) or math.isinf(value):
        raise DataError(f"line {line}: {column} score is {text.strip()} (NaN or infinite)", path=path,
                        fix="write a probability in [0, 1] for every image and class")
    if not 0.0 <= value <= 1.0:
        raise DataError(f"line {line}: {column} probability {value:g} is outside [0, 1]", path=path,
                        fix="write probabilities (apply a sigmoid/softmax to raw scores)")
    return value


def _columns(header: list[str], class_names: Sequence[str], positive: str | None, path: Path) -> list[int | None]:
    """For each class, the CSV column holding it (None: 1 - the positive column, binary tasks)."""
    lookup = {h.strip().lower(): i for i, h in enumerate(header) if i > 0}
    found = [lookup.get(c.lower()) for c in class_names]
    if all(i is not None for i in found):
        return found  # type: ignore[return-value]
    if positive and len(class_names) == 2 and len(header) == 2:
        return [None, 1]  # one score column: the positive class
    missing = [c for c, i in zip(class_names, found) if i is None]
    raise DataError(f"no column for class(es) {missing} in the header {','.join(header)}", path=path,
                    fix=f"header: image,{','.join(class_names)} (or, for a binary task, image,<positive score>)")


def read_classification_csv(path: str | os.PathLike, test_ids: Sequence[str], class_names: Sequence[str],
                            positive: str | None) -> np.ndarray:
    """Scores ``(n_test, n_classes)`` in ``test_ids`` order; DataError for any bad row or id."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the predictions ({err})", path=path, fix="check the file") from None
    if not rows:
        raise DataError("the prediction file is empty", path=path, fix="write one row per test image")
    has_header = rows[0][0].strip().lower() in ID_HEADERS
    header = [c.strip() for c in rows[0]] if has_header else None
    body = rows[1:] if has_header else rows
    first_line = 2 if has_header else 1
    if header is None:
        if not positive or any(len(r) != 2 for r in body):
            raise DataError("no header: only the ISIC 2016 form ISIC_id,probability (a binary task) has none",
                            path=path, fix=f"add a header: image,{','.join(class_names)}")
        cols: list[int | None] = [None, 1]
        header = ["image", positive]
    else:
        cols = _columns(header, class_names, positive, path)
    by_id: dict[str, list[float]] = {}
    for k, row in enumerate(body):
        line = first_line + k
        image_id = row[0].strip()
        if len(row) < len(header):
            raise DataError(f"line {line}: {len(row)} values for {len(header)} columns", path=path,
                            fix="one value per header column")
        if image_id in by_id:
            raise DataError(f"line {line}: image {image_id} has a second row", path=path, fix="one row per image")
        pos = {i: _float(row[i], path, line, header[i]) for i in {c for c in cols if c is not None}}
        by_id[image_id] = [pos[c] if c is not None else 1.0 - pos[cols[1]] for c in cols]  # type: ignore[index]
    expected = [str(i) for i in test_ids]
    missing = [i for i in expected if i not in by_id]
    if missing:
        raise DataError(f"{len(missing)} test image(s) have no prediction: {_shown(missing)}", path=path,
                        fix="predict every image of the task's test split")
    extra = sorted(set(by_id) - set(expected))
    if extra:
        raise DataError(f"{len(extra)} row(s) name images that are not in the test split: {_shown(extra)}",
                        path=path, fix="remove them (or score against the dataset they belong to: --dataset)")
    return np.array([by_id[i] for i in expected], dtype=float)


# ------------------------------------------------------------------------------ segmentation folder

def mask_candidates(image_id: str, target: str) -> list[str]:
    names = [f"{image_id}_{target}.png", f"{image_id}.png"]
    if target == "lesion":
        names.insert(0, f"{image_id}_segmentation.png")
    else:
        names.insert(0, f"{image_id}_attribute_{target}.png")
    return names


_ID_OF = re.compile(r"^(?P<id>.+?)(?:_segmentation|_attribute_[a-z_]+|_(?:lesion|globules|streaks|pigment_network|"
                    r"milia_like_cyst|negative_network))?\.png$", re.IGNORECASE)


def find_prediction_masks(folder: str | os.PathLike, test_ids: Sequence[str], target: str) -> list[Path]:
    """One predicted mask per test image (DataError for missing ones and for PNGs of other images)."""
    folder = Path(folder)
    files = {p.name: p for p in folder.iterdir() if p.suffix.lower() == ".png"}
    chosen, missing = [], []
    for image_id in test_ids:
        hit = next((files[n] for n in mask_candidates(str(image_id), target) if n in files), None)
        (chosen.append(hit) if hit is not None else missing.append(str(image_id)))
    if missing:
        raise DataError(f"{len(missing)} test image(s) have no predicted {target} mask: {_shown(missing)}",
                        path=folder, fix=f"write {mask_candidates('<id>', target)[0]} for every test image")
    ids = {str(i) for i in test_ids}
    extra = sorted(n for n in files if (m := _ID_OF.match(n)) and m.group("id") not in ids)
    if extra:
        raise DataError(f"{len(extra)} mask file(s) are for images not in the test split: {_shown(extra)}",
                        path=folder, fix="remove them (or score against the dataset they belong to: --dataset)")
    return chosen


def read_prediction_mask(path: Path, truth_shape: tuple[int, int], image_wh: tuple[int, int]) -> np.ndarray:
    """A predicted mask at the truth's size (a mask at the image's size, same aspect, is resized)."""
    import cv2

    from skinbench.data.images import binarise, same_aspect

    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if grey is None:
        raise DataError("not a readable PNG", path=path, fix="write 0/255 greyscale PNG masks")
    if grey.ndim == 3:
        grey = grey[..., 0]
    h, w = truth_shape
    size = (grey.shape[1], grey.shape[0])
    if size not in ((w, h), tuple(image_wh)) or not same_aspect(size, (w, h)):
        raise DataError(f"mask is {size[0]}x{size[1]}; its truth is {w}x{h} (image {image_wh[0]}x{image_wh[1]})",
                        path=path, fix="write each mask at its image's or its truth mask's size")
    mask = binarise(grey)
    if size != (w, h):
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return mask


# ------------------------------------------------------------------------------ scoring

def _baselines_classification(train_y: np.ndarray, test_y: np.ndarray, n_classes: int) -> dict[str, dict]:
    """The trivial baseline on the same images: the training prior as every image's scores (majority)."""
    from skinbench.metrics.classification import classification_scores

    prior = np.bincount(train_y, minlength=n_classes) / max(len(train_y), 1)
    return {"majority": classification_scores(test_y, np.tile(prior, (len(test_y), 1)))}


def _baselines_segmentation(counts: np.ndarray) -> dict[str, dict]:
    """All-background and all-foreground on the same images (from the truth's pixel counts)."""
    from skinbench.metrics.segmentation import segmentation_scores

    pos = counts[:, 0] + counts[:, 2]
    neg = counts[:, 1] + counts[:, 3]
    zero = np.zeros_like(pos)
    return {"all-background": segmentation_scores(np.stack([zero, zero, pos, neg], axis=1)),
            "all-foreground": segmentation_scores(np.stack([pos, neg, zero, zero], axis=1))}


def _source_digest(path: Path) -> str:
    from skinbench.cache import digest_bytes, file_digest

    if path.is_file():
        return file_digest(path)
    return digest_bytes("".join(f"{p.name}:{file_digest(p)}\n" for p in sorted(path.glob("*.png"))).encode())


def score(task: str, source: str | os.PathLike, *, dataset: str | None = None, data_root: str | None = None,
          target: str | None = None, name: str | None = None, results_root: str | os.PathLike | None = None,
          n_boot: int = 1000, seed: int = 0, limit: int | None = None, dataset_kwargs: dict | None = None,
          command: str | None = None) -> list[Path]:
    """Score ``source`` (CSV or mask folder) on ``task``'s test split; write and return the record(s)."""
    from skinbench import runner, scoring
    from skinbench.data import load_dataset
    from skinbench.environment import environment
    from skinbench.metrics import METRICS_VERSION
    from skinbench.provenance import run_key
    from skinbench.results.records import RunRecord, path_of, write_record

    tinfo = info.task(task)
    dataset = dataset or tinfo.default_dataset
    if dataset not in tinfo.datasets:
        raise ConfigError(f"dataset {dataset!r} does not serve {task}", fix=f"use one of: {', '.join(tinfo.datasets)}")
    source = Path(source)
    if not source.exists():
        raise DataError("prediction file or folder not found", path=source, fix="check the path")
    if tinfo.kind == "classification" and not source.is_file():
        raise DataError(f"{task} is scored from a CSV file, not a folder", path=source,
                        fix="pass the submission CSV")
    if tinfo.kind == "segmentation" and not source.is_dir():
        raise DataError(f"{task} is scored from a folder of mask PNGs", path=source, fix="pass the folder")
    ds = load_dataset(dataset, data_root, **{**tinfo.dataset_kwargs.get(dataset, {}), **dict(dataset_kwargs or {})})
    test = runner.limit_images(ds.split("test"), limit, seed)
    train = ds.split("train")
    approach = name or "external-" + re.sub(r"[^A-Za-z0-9._-]+", "-", source.stem).strip("-")
    digest = _source_digest(source)
    inputs = {"task": task, "dataset": dataset, "source_sha256": digest, "manifest_digest": ds.manifest_digest,
              "n_boot": n_boot, "seed": seed, "limit": limit, "versions": {"metrics": METRICS_VERSION,
                                                                              "runner": scoring.SCORING_VERSION}}
    env = environment()
    base = RunRecord(task=task, dataset=dataset, approach=approach, status="ok", family="external",
                     title=f"External predictions ({source.name})", seed=seed, limit=limit,
                     params={"source": source.name, "source_sha256": digest},
                     split={"n_train": len(train), "n_test": len(test), "manifest_digest": ds.manifest_digest},
                     versions=env["versions"], machine=env["machine"], command=command or runner.command_as_typed(),
                     created=datetime.now(timezone.utc).isoformat())
    root = Path(results_root) if results_root is not None else None
    start = time.perf_counter()
    if tinfo.kind == "classification":
        scores = read_classification_csv(source, test.ids, ds.class_names, ds.positive_class)
        fields = scoring.scored_classification(test.ids, test.y, scores, ds.class_names, None, n_boot, seed)
        record = replace(base, metrics=fields["metrics"], predictions=fields["predictions"],
                         extras={**fields["extras"], "external": True,
                                 "baselines": _baselines_classification(train.y, test.y, len(ds.class_names))},
                         timings={"evaluate_s": time.perf_counter() - start},
                         run_key=run_key(inputs), key_inputs=inputs)
        return [write_record(record, path_of(record, root))]
    from skinbench.data.images import image_size
    from skinbench.metrics.evaluate import evaluate_segmentation
    from skinbench.metrics.segmentation import confusion_counts

    targets = [target] if target else list(tinfo.targets)
    known = tinfo.known_targets()
    if target and target not in known:
        raise ConfigError(f"{task} has no target {target!r}", fix=f"targets: {', '.join(known)}")
    written = []
    for t in targets:
        files = find_prediction_masks(source, test.ids, t)
        truths = test.masks(t)
        counts = []
        for pred_path, truth_path, image_path in zip(files, truths, test.paths):
            truth = scoring.truth_mask(truth_path, image_path)
            pred = read_prediction_mask(pred_path, truth.shape, image_size(image_path))
            counts.append(confusion_counts(truth, pred))
        c = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
        evaluation = evaluate_segmentation(c, n_boot=n_boot, seed=seed)
        record = replace(base, target=t, metrics=evaluation["metrics"],
                         extras={"external": True, "baselines": _baselines_segmentation(c)},
                         predictions={"image_id": test.ids.tolist(), "counts": c.tolist()},
                         timings={"evaluate_s": time.perf_counter() - start},
                         run_key=run_key({**inputs, "target": t}), key_inputs={**inputs, "target": t})
        written.append(write_record(record, path_of(record, root)))
    return written


# ------------------------------------------------------------------------------ the command

def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``score`` on the CLI's sub-parsers (its handler is set as ``args.handler``)."""
    p = sub.add_parser("score", help="score an ISIC submission CSV or a mask folder against a task's test split",
                       description=__doc__.splitlines()[0])
    p.add_argument("task", help="task1 | task2 | task3 | task4")
    p.add_argument("source", metavar="FILE_OR_DIR", help="submission CSV (classification) or folder of mask PNGs")
    p.add_argument("--dataset", help="dataset whose test split is scored (default: the task's own)")
    p.add_argument("--data-root", help="folder holding the datasets")
    p.add_argument("--target", help="segmentation target (default: every target of the task)")
    p.add_argument("--name", help="the row's name in tables (default: external-<file name>)")
    p.add_argument("--results", help="results folder (default: $SKINBENCH_RESULTS or ./skinbench-results)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (and --limit subset seed)")
    p.add_argument("--limit", type=int, help="score the same N-image test subset a `run --limit N` used")
    p.set_defaults(handler=cmd_score)
    return p


def cmd_score(args: argparse.Namespace) -> int:
    from skinbench.paths import user_results_dir
    from skinbench.results.records import RunRecord

    root = Path(args.results) if args.results else user_results_dir()
    paths = score(args.task, args.source, dataset=args.dataset, data_root=args.data_root, target=args.target,
                  name=args.name, results_root=root, n_boot=args.n_boot, seed=args.seed, limit=args.limit,
                  command=getattr(args, "command_line", None))
    metric = info.task(args.task).primary_metric
    for path in paths:
        r = RunRecord.from_file(path)
        lo, hi = r.ci(metric)
        ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
        label = f"{r.approach}" + (f" ({r.target})" if r.target else "")
        value = r.value(metric)
        print(f"{label}: {metric} {value:.3f}{ci} on {r.split['n_test']} test images" if value is not None
              else f"{label}: {metric} undefined")
        for name, scores in r.extras.get("baselines", {}).items():
            v = scores.get(metric)
            print(f"  baseline {name}: {metric} {v:.3f}" if v is not None else f"  baseline {name}: undefined")
        print(f"wrote {path}", file=sys.stderr)
    return 0
