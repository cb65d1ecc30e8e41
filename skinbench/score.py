"""``skinbench score``: score anyone's predictions against a task's test split, as the suite scores its own.

Input is what a challenge took: for classification an ISIC submission CSV, either the 2016 Part 3 form
``ISIC_id,probability`` without a header (binary tasks), or a header whose columns are matched by name,
never by place: the task's class names (the ISIC 2018 codes ``MEL,NV,...`` for task2, any case); for a
binary task one column may stand for both classes: the positive class's, the negative class's (scored as
1 - p, said in one line on stderr), ``probability`` (ISIC 2016 Part 3's probability of malignancy) or, for
task1, the melanoma column of ISIC 2017 (``melanoma``) or 2018 (``MEL``). Any other header is refused
with the list of those accepted. The file is opened as ``labels.csv`` is (:mod:`skinbench.csvfile`:
UTF-8 with or without Excel's byte-order mark, ids stripped of surrounding spaces with a line saying so).
For segmentation a folder of masks (``<id>_segmentation.png``, ``<id>_attribute_<target>.png``,
``<id>_<target>.png`` or ``<id>.png``; ``.jpg``/``.jpeg`` too), read as the dataset's masks are
(:mod:`skinbench.data.images`: 0/255, 0/1, 16-bit, palette or colour; any size of the truth mask's aspect
ratio). A folder whose masks all read empty (or all full) is refused, unless the task declares empty
masks normal (task3).

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
import math
import os
import re
import sys
import time
import types
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from skinbench import info
from skinbench.csvfile import ID_HEADERS, read_rows, strip_ids
from skinbench.errors import DataError
from skinbench.progress import note

#: ids shown in an error before "..."
SHOW = 5
#: a lone score column named as ISIC 2016 Part 3 described it: the probability of the positive class
SCORE_HEADERS = ("probability", "probability_of_malignancy")


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


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _isic_mapping(class_names: Sequence[str], task: str | None) -> dict[str, str]:
    """``{code: class}`` by which ISIC diagnosis columns (``melanoma``, ``MEL``) score this task's classes:
    the task's mapping (:mod:`skinbench.data.isic_csv`) when the dataset has exactly its classes, else none."""
    from skinbench.data import isic_csv  # pandas: imported when a CSV is scored, not at CLI start-up

    mapping = isic_csv.TASK_MAPPINGS.get(task or "", {})
    return mapping if set(mapping.values()) == set(class_names) else {}


def _accepted_headers(class_names: Sequence[str], positive: str | None, task: str | None = None) -> str:
    """The headers a submission for these classes may have (for the error naming them)."""
    from skinbench.data import isic_csv

    forms = [f"image,{','.join(class_names)}"]
    if {c.upper() for c in class_names} == set(isic_csv.ISIC2018_TASK3_COLUMNS):
        forms[0] += f" (ISIC 2018 Task 3: image,{','.join(isic_csv.ISIC2018_TASK3_COLUMNS)})"
    if positive is not None and len(class_names) == 2:
        negative = class_names[0]
        forms += [f"image,{positive}", f"image,{negative} (scored as {positive} = 1 - {negative})",
                  f"image,probability (ISIC 2016 Part 3: the {positive} probability)"]
        mapping = _isic_mapping(class_names, task)
        codes = sorted(c for c, cls in mapping.items() if cls == positive)
        if codes == ["mel"]:
            forms += [f"image_id,melanoma,seborrheic_keratosis (ISIC 2017: melanoma is the {positive} score)",
                      f"image,{','.join(isic_csv.ISIC2018_TASK3_COLUMNS)} (ISIC 2018 Task 3: MEL is the "
                      f"{positive} score)"]
        forms.append(f"no header, rows <image id>,<{positive} probability> (ISIC 2016 Part 3)")
    return "; ".join(forms)


def _columns(header: list[str], class_names: Sequence[str], positive: str | None, task: str | None,
             path: Path) -> tuple[list[int | None], str | None]:
    """For each class, the CSV column holding its score, matched by the column's name, never by its place;
    None: 1 - the other class's score (binary). Also the line saying how a column was read when that is
    not what its name says (a negative-class column converted, an ISIC melanoma column), else None.
    A column that names no class is refused (which score it holds is a guess), except the other
    diagnoses of an ISIC header."""
    from skinbench.data import isic_csv

    names = [h.strip().lower() for h in header]
    where: dict[str, int] = {}
    for i, name in enumerate(names[1:], 1):
        if name in where:
            raise DataError(f"column {header[i]!r} appears twice in the header", path=path,
                            fix="one column per class")
        where[name] = i
    found = [where.get(c.lower()) for c in class_names]
    unknown = [header[i] for i in range(1, len(header)) if names[i] not in {c.lower() for c in class_names}]
    if not unknown and all(i is not None for i in found):
        return found, None  # type: ignore[return-value]
    if positive is not None and len(class_names) == 2:
        negative = class_names[0]
        if not unknown and found[1] is not None:
            return [None, found[1]], None
        if not unknown and found[0] is not None:
            col = header[found[0]]
            return [found[0], None], (f"{path}: column {col!r} holds {negative} probabilities: scored as "
                                      f"{positive} = 1 - {col}")
        if len(header) == 2 and names[1] in SCORE_HEADERS:
            return [None, 1], None
        mapping = _isic_mapping(class_names, task)
        codes = [isic_csv.column_code(h) for h in header[1:]]
        hits = [i for i, code in enumerate(codes, 1) if code and mapping.get(code) == positive]
        if len(hits) > 1:
            raise DataError(f"columns {', '.join(header[i] for i in hits)} all give the {positive} score", path=path,
                            fix="keep one of them")
        if hits and all(codes):
            col, code = header[hits[0]], codes[hits[0] - 1]
            return [None, hits[0]], (f"{path}: column {col!r} (ISIC diagnosis {code}) read as the {positive} "
                                     f"probability ({task} maps {code} to {positive}: skinbench/data/isic_csv.py)")
    fix = f"use one of these headers: {_accepted_headers(class_names, positive, task)}"
    if unknown:
        raise DataError(f"column(s) {', '.join(unknown)} of the header {','.join(header)} name no class "
                        f"({', '.join(class_names)})", path=path, fix=fix)
    missing = [c for c, i in zip(class_names, found) if i is None]
    raise DataError(f"no column for class(es) {', '.join(missing)} in the header {','.join(header)}", path=path,
                    fix=fix)


def read_classification_csv(path: str | os.PathLike, test_ids: Sequence[str], class_names: Sequence[str],
                            positive: str | None, task: str | None = None) -> np.ndarray:
    """Scores ``(n_test, n_classes)`` in ``test_ids`` order; DataError for any bad row or id.

    Columns are read by name (:func:`_columns`); ``task`` lets ISIC diagnosis columns score a task
    whose classes an ISIC mapping defines (task1: ``melanoma`` / ``MEL`` is the malignant score)."""
    path = Path(path)
    rows = read_rows(path, "prediction CSV")
    if not rows:
        raise DataError("the prediction file is empty", path=path, fix="write one row per test image")
    line1, first = rows[0]
    if first[0].strip().lower() in ID_HEADERS:
        header: list[str] = [c.strip() for c in first]
        cols, said = _columns(header, class_names, positive, task, path)
        body = rows[1:]
    elif not all(_is_number(c) for c in first[1:]):
        raise DataError(f"line {line1} is neither a header (its first column {first[0].strip()!r} is not one of "
                        f"{', '.join(ID_HEADERS)}) nor a row of scores", path=path,
                        fix=f"use one of these headers: {_accepted_headers(class_names, positive, task)}")
    else:
        bad = next((n for n, r in rows if len(r) != 2), None)
        if positive is None or len(class_names) != 2 or bad is not None:
            where = f" (line {bad} has another number of values)" if bad is not None else ""
            raise DataError(f"no header: only the ISIC 2016 form <image id>,<{positive or 'positive'} probability> "
                            f"(a binary task) has none{where}", path=path,
                            fix=f"add a header: image,{','.join(class_names)}")
        header, cols, said, body = ["image", positive], [None, 1], None, rows
    if not body:
        raise DataError("the prediction file has a header but no rows", path=path, fix="write one row per test image")
    ids = strip_ids([r[0] for _, r in body], [n for n, _ in body], path)
    used = sorted({c for c in cols if c is not None})
    by_id: dict[str, list[float]] = {}
    for (line, row), image_id in zip(body, ids):
        if len(row) != len(header):
            raise DataError(f"line {line}: {len(row)} values for {len(header)} columns", path=path,
                            fix="one value per header column")
        if not image_id:
            raise DataError(f"line {line}: empty image id", path=path, fix="fill in or remove that row")
        if image_id in by_id:
            raise DataError(f"line {line}: image {image_id} has a second row", path=path, fix="one row per image")
        values = {i: _float(row[i], path, line, header[i]) for i in used}
        given = [values[c] if c is not None else None for c in cols]
        rest = 1.0 - sum(v for v in given if v is not None)  # binary: 1 - the one score given
        by_id[image_id] = [v if v is not None else rest for v in given]
    expected = [str(i) for i in test_ids]
    missing = [i for i in expected if i not in by_id]
    if missing:
        raise DataError(f"{len(missing)} test image(s) have no prediction: {_shown(missing)}", path=path,
                        fix="predict every image of the task's test split")
    extra = sorted(set(by_id) - set(expected))
    if extra:
        raise DataError(f"{len(extra)} row(s) name images that are not in the test split: {_shown(extra)}",
                        path=path, fix="remove them (or score against the dataset they belong to: --dataset)")
    if said:
        note(said)
    return np.array([by_id[i] for i in expected], dtype=float)


# ------------------------------------------------------------------------------ segmentation folder

def mask_candidates(image_id: str, target: str) -> list[str]:
    """File names a predicted ``target`` mask of ``image_id`` may have, most specific name first and, for
    each name, PNG before JPEG (:data:`skinbench.data.images.MASK_EXTENSIONS`)."""
    from skinbench.data.images import MASK_EXTENSIONS

    stems = [f"{image_id}_{target}", image_id]
    stems.insert(0, f"{image_id}_segmentation" if target == "lesion" else f"{image_id}_attribute_{target}")
    return [stem + ext for stem in stems for ext in MASK_EXTENSIONS]


_ID_OF = re.compile(r"^(?P<id>.+?)(?:_segmentation|_attribute_[a-z_]+|_(?:lesion|globules|streaks|pigment_network|"
                    r"milia_like_cyst|negative_network))?\.(?:png|jpe?g)$", re.IGNORECASE)


def _mask_files(folder: Path) -> list[Path]:
    """The mask files of a prediction folder (any of MASK_EXTENSIONS, any case), sorted by name."""
    from skinbench.data.images import MASK_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MASK_EXTENSIONS)


def find_prediction_masks(folder: str | os.PathLike, test_ids: Sequence[str], target: str) -> list[Path]:
    """One predicted mask per test image (DataError for missing ones and for masks of other images)."""
    from skinbench.data.images import MASK_EXTENSIONS

    folder = Path(folder)
    files = {p.stem + p.suffix.lower(): p for p in _mask_files(folder)}
    chosen, missing = [], []
    for image_id in test_ids:
        hit = next((files[n] for n in mask_candidates(str(image_id), target) if n in files), None)
        (chosen.append(hit) if hit is not None else missing.append(str(image_id)))
    if missing:
        from PIL import Image

        kinds = set(Image.registered_extensions()) - set(MASK_EXTENSIONS)
        others = sorted({p.suffix for p in folder.iterdir() if p.is_file() and p.suffix.lower() in kinds})
        found = f" (the folder also holds {', '.join(others)} files, which are not read as masks)" if others else ""
        raise DataError(f"{len(missing)} test image(s) have no predicted {target} mask: {_shown(missing)}{found}",
                        path=folder, fix=f"write {mask_candidates('<id>', target)[0]} (or .jpg) for every test image")
    ids = {str(i) for i in test_ids}
    extra = sorted(n for n in files if (m := _ID_OF.match(n)) and m.group("id") not in ids)
    if extra:
        raise DataError(f"{len(extra)} mask file(s) are for images not in the test split: {_shown(extra)}",
                        path=folder, fix="remove them (or score against the dataset they belong to: --dataset)")
    return chosen


def read_prediction_mask(path: Path, truth_shape: tuple[int, int]) -> np.ndarray:
    """A predicted mask at its truth's size, read by the dataset masks' rules (one place,
    :mod:`skinbench.data.images`: rule 1 for its encoding, rule 4 for its size: another size of the same
    aspect ratio is resized, as ``run`` fits masks to their images; another aspect is a DataError)."""
    from skinbench.data.images import decode_mask, fit_to

    h, w = truth_shape
    return fit_to(decode_mask(path)[0], (w, h), str(path), of="its truth mask")


# ------------------------------------------------------------------------------ scoring

def _baselines_classification(train_y: np.ndarray, test_y: np.ndarray, n_classes: int) -> dict[str, dict]:
    """The trivial baseline on the same images: the training prior as every image's scores (majority)."""
    from skinbench.metrics.classification import classification_scores

    prior = np.bincount(train_y, minlength=n_classes) / max(len(train_y), 1)
    return {"majority": classification_scores(test_y, np.tile(prior, (len(test_y), 1)))}


def _baselines_segmentation(counts: np.ndarray) -> dict[str, dict]:
    """All-background and all-foreground on the same images (from the truth's pixel counts), scored by the
    same rules as the record (:func:`skinbench.scoring.segmentation_values`)."""
    from skinbench.scoring import segmentation_values

    pos = counts[:, 0] + counts[:, 2]
    neg = counts[:, 1] + counts[:, 3]
    zero = np.zeros_like(pos)
    return {"all-background": segmentation_values(np.stack([zero, zero, pos, neg], axis=1)),
            "all-foreground": segmentation_values(np.stack([pos, neg, zero, zero], axis=1))}


def _source_digest(path: Path) -> str:
    from skinbench.cache import digest_bytes, file_digest

    if path.is_file():
        return file_digest(path)
    return digest_bytes("".join(f"{p.name}:{file_digest(p)}\n" for p in _mask_files(path)).encode())


def score(task: str, source: str | os.PathLike, *, dataset: str | None = None, data_root: str | None = None,
          target: str | None = None, name: str | None = None, results_root: str | os.PathLike | None = None,
          n_boot: int = 1000, seed: int = 0, limit: int | None = None, dataset_kwargs: dict | None = None,
          command: str | None = None) -> list[Path]:
    """Score ``source`` (CSV or mask folder) on ``task``'s test split; write and return the record(s).

    Scored by :class:`skinbench.scoring.Scorer` and finished by :func:`skinbench.results.records.build_record`,
    as the runner's records are: the same metric fields, a segmentation record's surface distances too."""
    from skinbench import runner
    from skinbench.data import load_for_task
    from skinbench.data.splits import limit_images
    from skinbench.metrics import METRICS_VERSION
    from skinbench.results.records import RunRecord, build_record, path_of, write_record
    from skinbench.scoring import SCORING_VERSION, Scorer

    tinfo, _, dataset = runner.resolve(task, None, dataset, target)
    source = Path(source)
    if not source.exists():
        raise DataError("prediction file or folder not found", path=source, fix="check the path")
    if tinfo.kind == "classification" and not source.is_file():
        raise DataError(f"{task} is scored from a CSV file, not a folder", path=source,
                        fix="pass the submission CSV")
    if tinfo.kind == "segmentation" and not source.is_dir():
        raise DataError(f"{task} is scored from a folder of mask PNGs", path=source, fix="pass the folder")
    ds = load_for_task(task, dataset, data_root, **dict(dataset_kwargs or {}))
    test = limit_images(ds.split("test"), limit, seed)
    train = ds.split("train")
    approach = name or "external-" + re.sub(r"[^A-Za-z0-9._-]+", "-", source.stem).strip("-")
    digest = _source_digest(source)
    inputs = {"task": task, "dataset": dataset, "source_sha256": digest, "manifest_digest": ds.manifest_digest,
              "n_boot": n_boot, "seed": seed, "limit": limit, "versions": {"metrics": METRICS_VERSION,
                                                                              "runner": SCORING_VERSION}}
    base = RunRecord(task=task, dataset=dataset, approach=approach, family="external",
                     title=f"External predictions ({source.name})", seed=seed, limit=limit,
                     params={"source": source.name, "source_sha256": digest},
                     split={"n_train": len(train), "n_test": len(test), "manifest_digest": ds.manifest_digest},
                     extras={"external": True}, command=command or "")
    root = Path(results_root) if results_root is not None else None
    scorer = Scorer(test, n_boot, seed)
    start = time.perf_counter()
    if tinfo.kind == "classification":
        scores = read_classification_csv(source, test.ids, ds.class_names, ds.positive_class, task)
        scored = scorer.classification(scores)
        record = build_record(base, scored, key_inputs=inputs, timings={"evaluate_s": time.perf_counter() - start},
                              extras={"baselines": _baselines_classification(train.y, test.y, len(ds.class_names))})
        return [write_record(record, path_of(record, root))]
    from skinbench.data.images import check_masks_vary

    written = []
    for t in [target] if target else list(tinfo.targets):
        files = find_prediction_masks(source, test.ids, t)
        check_masks_vary(test.masks(t), f"{t} truth masks", empty_normal=tinfo.empty_masks_normal)
        check_masks_vary(files, f"predicted {t} masks", empty_normal=tinfo.empty_masks_normal)
        mask_scores = scorer.score_masks(t, files, to_mask=read_prediction_mask)
        record = build_record(replace(base, target=t), scorer.segmentation(mask_scores),
                              key_inputs={**inputs, "target": t}, timings={"evaluate_s": time.perf_counter() - start},
                              extras={"baselines": _baselines_segmentation(mask_scores.counts)})
        written.append(write_record(record, path_of(record, root)))
        start = time.perf_counter()
    return written


# ------------------------------------------------------------------------------ the command

def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``score`` on the CLI's sub-parsers (its handler is set as ``args.handler``)."""
    p = sub.add_parser("score", help="score ISIC submission files against a test split",
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
    from skinbench.paths import user_results_root
    from skinbench.results.records import RunRecord

    root = user_results_root(args.results)  # checked writable before any scoring
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


class _CallableModule(types.ModuleType):
    """``skinbench.score(task, predictions, ...)`` is the Python API's :func:`skinbench.api.score`, although
    ``skinbench.score`` is also this module (a package attribute cannot be both): calling the module calls it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from skinbench.api import score as api_score

        return api_score(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
