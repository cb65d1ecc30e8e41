"""Cross-dataset evaluation: train on one dataset, test on another (honest generalisation).

* The foreign test set is any :class:`~skinbench.data.base.Dataset`: every image of it is scored (its own
  train/test split is ignored), e.g. an official ISIC download read by :func:`load_foreign` (the ground
  truth CSV as downloaded, mapped to the task's classes by :mod:`skinbench.data.isic_csv`).
* Overlap between the training images and the foreign test set is found twice, by image id and by
  content (sha256 of the file), and excluded; the counts go into the record (``extras.overlap``).
  Public ISIC releases reuse images across years (305 of the 379 ISIC 2016 test images are in the ISIC
  2017 training set). Re-encoded copies (another size or JPEG quality) are not found by a file hash.
* Input geometry (size and aspect ratio) of the training and the scored test images goes into the record
  (``extras.geometry``): a model can exploit acquisition differences that preprocessing leaves in. A
  marked difference (:func:`geometry_mismatch`) is also one warning line at run time.
* The fitted model is kept by its run key (:class:`ModelStore`, joblib), so scoring a second or third
  test set costs prediction only. A model that cannot be stored or loaded back is refitted, with a
  warning line and a note in the record (``extras.model.store_error``).

Records land at ``runs/<task>/<train>__on__<test>/<approach>[__<target>].json``: tables list them apart
from the in-dataset rows. Segmentation tasks score the test set's masks with the one per-image loop of
:class:`skinbench.scoring.Scorer` (counts and surface distances), a folder in the ISIC layout read by
:func:`load_mask_folder` (``<id>_segmentation.png`` beside or under the images, no CSV needed). Every
record is finished by :func:`skinbench.results.records.build_record`, so it carries what a run's record
does (``extras.fit``, ``params``, fit/predict/evaluate timings, cache look-ups, environment).

:func:`load_test_set` is the one way a foreign test set is named (the CLI's ``run --test-dataset``
and ``benchmarks/cross_dataset.py``): a user's folder through the generic adapter (which reads official
ISIC ground-truth CSVs as downloaded), or a registered dataset, its diagnosis labels mapped to the
task's classes (HAM10000 for task1: ``isic_csv.NAMED_MAPPINGS["melanoma-vs-rest"]``). With a ``limit``
(quick runs) the test set is subsampled like the training set. :func:`run_cross` runs several
approaches and seeds on one test set, its baselines included.
"""

from __future__ import annotations

import io
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import joblib
import numpy as np
import pandas as pd

from skinbench import info, provenance, runner
from skinbench.cache import atomic_write_bytes, file_digest
from skinbench.data import isic_csv, load_for_task
from skinbench.data.base import Dataset, check_for_task, frame_digest, task_classes
from skinbench.data.generic import IMAGE_EXTENSIONS, find_images, find_masks
from skinbench.data.images import image_size
from skinbench.data.layout import MissingDataError
from skinbench.data.splits import limit_images, training_set
from skinbench.errors import ConfigError, DataError, SkinbenchError
from skinbench.params import validate_params
from skinbench.paths import cache_dir
from skinbench.paths import data_root as resolved_data_root
from skinbench.provenance import RunSpec
from skinbench.results.headers import CROSS
from skinbench.results.records import RunRecord, build_record, path_of, write_record
from skinbench.scoring import Scorer, full_columns

#: version of how the model store pickles estimators (part of a stored model's file name)
STORE_VERSION = 1
#: median aspect ratios (width / height) of test and training images further apart than this factor (either
#: way) are warned about: one ISIC release already mixes 4:3 and 3:2 images (1.33 vs 1.5, a factor 1.13,
#: ISIC 2016's 5th-95th percentiles), so only more than that is marked; a squashed square set against 4:3
#: training images (1.33) stretches every lesion by a third once both are resized to the model's input
ASPECT_WARN_FACTOR = 1.15
#: median image scales (sqrt of width x height) further apart than this factor are warned about: one octave,
#: beyond which detail learnt at one scale reaches the model at another after resizing to its input size
#: (SIFT's octaves, CNN receptive fields); one release's sizes spread less (ISIC 2016: widths 440-578 px)
SIZE_WARN_FACTOR = 2.0


# ------------------------------------------------------------------------------ a foreign test set

def load_foreign(folder: str | os.PathLike, task: str, csv: str | os.PathLike | None = None,
                 images: str = "images", name: str = "foreign", mapping: Mapping[str, str] | None = None) -> Dataset:
    """An official ISIC download as a test set of ``task``: ``csv`` (default: the folder's one ground truth,
    :func:`skinbench.data.isic_csv.find_ground_truth`) read as it is, images in the release's own folder
    (``isic_csv.image_folder``), ``folder/images`` or ``folder`` itself. Rows whose diagnosis the task's
    mapping leaves out are dropped; ``extra["excluded"]`` counts them per diagnosis code."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("test data folder does not exist", path=folder, fix="pass the folder of the download")
    if csv is None:
        csv = isic_csv.find_ground_truth(folder, fix="name the one to use (csv=...)")
        if csv is None:
            raise DataError("found no ground-truth CSV (*GroundTruth*.csv)", path=folder,
                            fix="name the one to use (csv=...)")
    csv = Path(csv) if Path(csv).is_absolute() else folder / csv
    official = isic_csv.generic_table(csv, task, mapping)
    if official is None:
        raise DataError("not an official ISIC ground truth", path=csv,
                        fix="read your own labels with load_test_set('generic', ...)")
    rows, meta = official
    image_dir = isic_csv.image_folder(csv, folder) or (folder / images if (folder / images).is_dir() else folder)
    paths = find_images(rows["image_id"].tolist(), image_dir, csv, fix=isic_csv.absent_images_fix(csv, folder))
    names, positive = task_classes(task)
    frame = pd.DataFrame({"image_id": rows["image_id"], "image": paths, "label": rows["label"],
                          "lesion_id": rows["image_id"], "split": "test"})
    return Dataset(name, folder, frame, tuple(names), (), positive_class=positive, classes_declared=True,
                   extra={"label_file": str(csv), "label_lines": dict(zip(rows["image_id"], rows["_line"])),
                          "excluded": meta["excluded"], "mapping": meta["mapping"]})


def relabel(ds: Dataset, task: str, mapping: Mapping[str, str] | str | None = None) -> Dataset:
    """``ds`` with its diagnosis labels (e.g. HAM10000's ``dx``) mapped to ``task``'s classes by
    :mod:`skinbench.data.isic_csv` (``mapping``: None for the task's default, a name, or a dict); rows
    the mapping leaves out are dropped and counted in ``extra["excluded"]``."""
    name, codes = isic_csv.resolve_mapping(task, mapping)
    truth = pd.DataFrame({"dx": ds.frame["label"].astype(str).str.lower()})
    label = truth["dx"].map(codes)
    keep = label.notna().to_numpy()
    excluded = {str(k): int(v) for k, v in truth.loc[~keep, "dx"].value_counts().items()}
    frame = ds.frame.loc[keep].assign(dx=ds.frame.loc[keep, "label"], label=label[keep]).reset_index(drop=True)
    names, positive = task_classes(task)
    return replace(ds, frame=frame, class_names=tuple(names), positive_class=positive, classes_declared=True,
                   manifest_digest=frame_digest(frame),
                   extra={**ds.extra, "mapping": {"name": name, "codes": codes}, "excluded": excluded})


def load_test_set(name: str, task: str, root: str | os.PathLike | None = None, *, split: str | None = None,
                  mapping: Mapping[str, str] | str | None = None, data_root: str | os.PathLike | None = None,
                  labels: str | os.PathLike | None = None, **kwargs: Any) -> Dataset:
    """A foreign test set of ``task``: ``name`` "generic" (``root`` the folder: ``labels.csv``, or an official
    ISIC download as it unzips, :func:`generic_labels`; ``labels`` names the CSV) or a registered dataset
    (``root`` its data root or folder). ``split``: "all" (default for generic: a download is one test set)
    or "test" (default for a registered dataset: its own official or lesion-aware test split, so the rows
    compare with that dataset's in-dataset ones). Labels that are not the task's classes are mapped
    (:func:`relabel`). ``extra["slug"]`` names it in record paths: the data slug, plus the split for a
    registered dataset (``ham10000-test``). A registered dataset without ``root`` is looked for under
    ``data_root`` resolved as always (:func:`skinbench.paths.data_root`: None is $SKINBENCH_DATA, else
    ../shared/data); the CLI passes None when ``--data-root`` is a generic training folder."""
    tinfo = info.task(task)
    segmentation = tinfo.kind == "segmentation"
    meta = info.dataset(name)
    generic = name == "generic"
    if labels is not None and not generic:
        raise ConfigError(f"--test-labels names the ground truth of a folder (--test-dataset generic); {name} "
                          "reads its own official files", fix="drop --test-labels, or use --test-dataset generic")
    split = split or ("all" if generic else "test")
    if split not in ("all", "train", "test"):
        raise ConfigError(f"unknown test split {split!r}", fix="use all or test")
    if generic and segmentation and labels is None and root is not None and not (Path(root) / "labels.csv").is_file():
        ds = load_mask_folder(root, task)  # an ISIC segmentation download: images and masks, no CSV
        return replace(ds, manifest_digest=frame_digest(ds.frame),
                       extra={**ds.extra, "slug": ds.data_slug, "split": split, "mapping": None})
    if generic:
        root, csv = generic_labels(root, labels)
        kwargs = {**kwargs, "mapping": mapping, "csv": str(csv)}
    where = root if root is not None else data_root
    try:
        ds = load_for_task(task, name, where, **kwargs)
    except MissingDataError as err:
        if generic:
            raise
        base = resolved_data_root(where)
        source = ("--test-root" if root is not None else "--data-root" if data_root is not None
                  else "$SKINBENCH_DATA" if os.environ.get("SKINBENCH_DATA") else "the default ../shared/data")
        raise MissingDataError(f"test dataset {name} not found under {base} (from {source}): {err.path} is missing",
                               fix=f"pass the folder holding {meta.folder}/ (or {meta.folder}/ itself) with "
                                   f"--test-root DIR, or set $SKINBENCH_DATA; it comes from {meta.source}") from None
    slug = ds.data_slug + ("" if generic and split == "all" else f"-{split}")
    if split != "all":
        ds = ds.split(split)
        if len(ds) == 0:
            raise DataError(f"the {split} split of {name} is empty", path=ds.root, fix="use --test-split all")
    names, _ = task_classes(task)
    if segmentation:  # scored on masks: labels, if any, are kept as they are
        ds = replace(ds, extra={**ds.extra, "mapping": None})
    elif "mapping" not in ds.extra:  # not read from an official ISIC CSV by the generic adapter
        if mapping is not None or not set(ds.frame["label"]) <= set(names):
            ds = relabel(ds, task, mapping)
        else:
            ds = replace(ds, extra={**ds.extra, "mapping": None})  # the task's own labels, as given
    ds = replace(ds, manifest_digest=frame_digest(ds.frame), extra={**ds.extra, "slug": slug, "split": split})
    return ds


def load_mask_folder(folder: str | os.PathLike, task: str, name: str = "generic") -> Dataset:
    """A segmentation test set of ``task`` as an ISIC download unzips, without a labels CSV: images and
    their masks (``<id>_segmentation.png`` for lesions, ``<id>_attribute_<target>.png``, ``<id>_<target>.png``;
    named as :func:`skinbench.data.generic.find_masks` reads them) beside the images or in any folder under
    ``folder`` (ISIC 2018: ``ISIC2018_Task1-2_Test_Input/`` beside ``ISIC2018_Task1_Test_GroundTruth/``).
    Every other image file under ``folder`` is a test image, except companions named after one
    (``<id>_superpixels.png`` of ISIC 2017, any ``<id>_<suffix>``), hidden files and ``__MACOSX``; an image
    without a mask is refused before any work (:func:`skinbench.data.base.check_for_task`)."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DataError("test data folder does not exist", path=folder, fix="pass an existing folder with --test-root")
    targets = list(info.task(task).targets)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in IMAGE_EXTENSIONS
                   and not p.name.startswith(".") and "__MACOSX" not in p.relative_to(folder).parts)
    stems = {p.stem for p in files}

    def companion(stem: str) -> bool:  # <an image's id>_<suffix>: its mask, superpixels, ...
        parts = stem.split("_")
        return any("_".join(parts[:k]) in stems for k in range(1, len(parts)))

    images = [p for p in files if not companion(p.stem)]
    seen: dict[str, Path] = {}
    for path in images:
        if path.stem in seen:
            raise DataError(f"image {path.stem} is there twice: {seen[path.stem]} and {path}", path=folder,
                            fix="keep one copy of each test image")
        seen[path.stem] = path
    if not images:
        raise DataError("found no test images (.jpg/.jpeg/.png) beside their masks", path=folder,
                        fix=f"pass the folder holding the images and their {targets[0]} masks "
                            f"(<id>_segmentation.png), or add a labels.csv naming the images")
    ids = [p.stem for p in images]
    found = {t: [""] * len(ids) for t in targets}
    for d in sorted({p.parent for p in files}):
        for t, paths in find_masks(ids, d, targets).items():
            found[t] = [old or new for old, new in zip(found[t], paths)]
    frame = pd.DataFrame({"image_id": ids, "image": [str(p) for p in images], "label": "", "lesion_id": ids,
                          "split": "test", **{f"mask_{t}": found[t] for t in targets}})
    return Dataset(name, folder, frame, (), tuple(targets), frame_digest(frame))


def generic_labels(root: str | os.PathLike | None, labels: str | os.PathLike | None) -> tuple[Path, Path]:
    """(folder, labels CSV) of a generic test set. ``labels`` (``--test-labels``): as given, else relative
    to ``root``; the folder defaults to the CSV's. Without it: ``root/labels.csv``, else the one official
    ground truth of the download (:func:`skinbench.data.isic_csv.find_ground_truth`; several are an
    error listing them, so the user picks the test file, never one guessed)."""
    if labels is not None:
        csv = Path(labels).expanduser()
        if not csv.is_file() and not csv.is_absolute() and root is not None:
            csv = Path(root).expanduser() / labels
        if not csv.is_file():
            raise DataError("test labels CSV not found", path=csv,
                            fix="pass an existing CSV with --test-labels (a path, or relative to --test-root)")
        csv = csv.resolve()
        return (Path(root).expanduser().resolve() if root is not None else csv.parent), csv
    if root is None:
        raise ConfigError("a generic test set needs its folder",
                          fix="pass --test-root DIR or --test-labels FILE (test_root=..., labels=...)")
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise DataError("test data folder does not exist", path=folder, fix="pass an existing folder with --test-root")
    if (folder / "labels.csv").is_file():
        return folder, folder / "labels.csv"
    candidates = isic_csv.ground_truth_files(folder)
    example = next((c for c in candidates if "test" in c.name.lower()), candidates[0]) if candidates else None
    found = isic_csv.find_ground_truth(folder, fix="pick the one to score with --test-labels FILE" + (
        f" (e.g. --test-labels {example.relative_to(folder).as_posix()})" if example else ""))
    if found is None:
        raise DataError("no labels.csv and no official ISIC ground truth (*GroundTruth*.csv) found", path=folder,
                        fix="name the labels CSV with --test-labels FILE, or add a labels.csv (image_id,label)")
    return folder, found


# ------------------------------------------------------------------------------ overlap and geometry

def overlap(train: Dataset, test: Dataset) -> tuple[np.ndarray, dict[str, int]]:
    """(mask over ``test``: image also in ``train``, counts). Same id, or same file content (sha256)."""
    same_id = np.isin(test.ids, train.ids)
    train_hashes = {file_digest(p) for p in train.paths}
    same_content = np.array([file_digest(p) in train_hashes for p in test.paths], dtype=bool)
    both = same_id | same_content
    return both, {"n_foreign": int(len(test)), "same_id": int(same_id.sum()),
                  "same_content": int(same_content.sum()), "same_content_other_id": int((same_content & ~same_id).sum()),
                  "excluded": int(both.sum()), "n_scored": int((~both).sum())}


def geometry(paths: Sequence[str]) -> dict[str, Any]:
    """Size and aspect-ratio summary of images (from file headers; no decoding)."""
    sizes = np.array([image_size(p) for p in paths], dtype=float).reshape(-1, 2)
    if not len(sizes):
        return {"n": 0}
    w, h = sizes[:, 0], sizes[:, 1]
    aspect = w / h
    q = lambda v: [round(float(x), 3) for x in np.percentile(v, [5, 50, 95])]  # noqa: E731
    return {"n": int(len(sizes)), "width_p5_50_95": q(w), "height_p5_50_95": q(h), "aspect_p5_50_95": q(aspect),
            "distinct_sizes": int(len({tuple(s) for s in sizes}))}


def geometry_mismatch(train: Mapping[str, Any] | None, test: Mapping[str, Any] | None) -> str | None:
    """One line saying how the test images' geometry differs markedly from the training images'
    (:data:`ASPECT_WARN_FACTOR`, :data:`SIZE_WARN_FACTOR` on the medians of :func:`geometry`), or None."""
    if not train or not test or not train.get("n") or not test.get("n"):
        return None

    def medians(g: Mapping[str, Any]) -> tuple[float, float, float]:
        w, h = g["width_p5_50_95"][1], g["height_p5_50_95"][1]
        return w, h, g["aspect_p5_50_95"][1]

    (tw, th, ta), (sw, sh, sa) = medians(train), medians(test)
    aspect = max(ta, sa) / min(ta, sa)
    scale = max(tw * th, sw * sh) ** 0.5 / min(tw * th, sw * sh) ** 0.5
    found = []
    if aspect > ASPECT_WARN_FACTOR:
        found.append(f"aspect {sa:.2f} vs {ta:.2f} (x{aspect:.2f} > {ASPECT_WARN_FACTOR})")
    if scale > SIZE_WARN_FACTOR:
        found.append(f"scale x{scale:.1f} > {SIZE_WARN_FACTOR:g}")
    if not found:
        return None
    return (f"test images differ in geometry from the training images: median {sw:.0f}x{sh:.0f} px vs "
            f"{tw:.0f}x{th:.0f} px, {', '.join(found)}; scores may reflect the acquisition, not the lesions")


# ------------------------------------------------------------------------------ fitted models by run key

class ModelStore:
    """Fitted estimators kept by run key (joblib files, written atomically), so a second test set costs
    prediction only. Every registered approach's fitted estimator stores and loads back (tests/
    test_model_store.py). A model that cannot be stored or loaded is never passed over in silence: a
    warning line names the file and the cause, the record says so (``extras.model``), and it is fitted
    again."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "models"
        #: run key -> why its stored file could not be loaded (or stored), for the record
        self.errors: dict[str, str] = {}

    def path(self, key: str) -> Path:
        return self.root / f"{key}-v{STORE_VERSION}.joblib"

    def get(self, key: str) -> Any | None:
        """The stored estimator, or None when there is none or it cannot be loaded (then a warning)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return joblib.load(path)
        except Exception as err:  # noqa: BLE001 - any unreadable stored model is refitted, with a warning
            self._warn(key, f"cannot load the stored model {path} ({_cause(err)}); fitting it again")
            return None

    def put(self, key: str, estimator: Any) -> bool:
        """Store ``estimator``; False (and a warning) when it cannot be pickled."""
        buf = io.BytesIO()
        try:
            joblib.dump(estimator, buf)
        except Exception as err:  # noqa: BLE001 - not picklable: the next cross-dataset run fits it again
            self._warn(key, f"cannot store the fitted {type(estimator).__name__} in {self.path(key)} "
                            f"({_cause(err)}); the next cross-dataset run fits it again")
            return False
        atomic_write_bytes(self.path(key), buf.getvalue())
        return True

    def _warn(self, key: str, text: str) -> None:
        self.errors[key] = text
        print(f"skinbench: warning: {text}", file=sys.stderr, flush=True)


def _cause(err: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def fitted_model(spec: RunSpec, train: Dataset, manifest_digest: str | Dataset, store: ModelStore | None = None,
                 target: str | None = None, trained: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """The estimator of ``spec`` fitted on ``train``: from the store when its run key is there, else
    fitted now (:func:`skinbench.runner.fit_estimator`, as a run fits) and stored. ``manifest_digest``: the
    training data's digest, or the loaded Dataset (as :func:`skinbench.results.currency.check` takes it).
    ``target``: the segmentation target it predicts (part of the stored model's key; ``trained``: every
    target of a multi-output model). Returns (estimator, {"run_key", "reused", "stored", "fit_s", "fit_cpu_s", "cache"},
    plus "store_error" when a stored model could not be loaded or the fitted one stored)."""
    inputs = (provenance.key_inputs(spec, manifest_digest) if isinstance(manifest_digest, str)
              else provenance.dataset_key_inputs(spec, manifest_digest))
    key = provenance.run_key({**inputs, "target": target} if target else inputs)
    store = store or ModelStore()
    est = store.get(key)
    if est is not None:
        return est, {"run_key": key, "reused": True, "stored": True, "fit_s": 0.0, "fit_cpu_s": 0.0, "cache": {}}
    tinfo, ainfo, _ = runner.resolve(spec.task, spec.approach, spec.dataset)
    cpu0 = runner.cpu_seconds()
    est, fit_s, cache_use = runner.fit_estimator(tinfo, ainfo, spec, train, target, trained)
    fit_cpu = runner.cpu_seconds() - cpu0
    load_error = store.errors.pop(key, None)
    stored = store.put(key, est)
    error = "; ".join(e for e in (load_error, store.errors.pop(key, None)) if e)
    return est, {"run_key": key, "reused": False, "stored": stored, "fit_s": round(fit_s, 3), "fit_cpu_s": fit_cpu,
                 "cache": cache_use, **({"store_error": error} if error else {})}


# ------------------------------------------------------------------------------ the evaluation

def _labels_as(train: Dataset, test: Dataset) -> np.ndarray:
    """Test labels as indices into the training classes (a class the model never saw is an error)."""
    lookup = {c: i for i, c in enumerate(train.class_names)}
    unknown = sorted(set(test.frame["label"]) - set(lookup))
    if unknown:
        raise DataError(f"test labels {unknown} are not classes of the training data {list(train.class_names)}",
                        fix="map the test set to the task's classes (skinbench.data.isic_csv mapping)")
    return test.frame["label"].map(lookup).to_numpy(dtype=np.int64)


def cross_evaluate(spec: RunSpec, test: Dataset, *, data_root: str | os.PathLike | None = None,
                   results_root: str | os.PathLike | None = None, dataset_kwargs: Mapping[str, Any] | None = None,
                   store: ModelStore | None = None, command: str | None = None,
                   warn: Callable[[str], None] | None = None) -> Path:
    """Fit ``spec`` on its training data (or reuse the kept model), score every image of ``test`` not
    in the training set, and write one record; returns its path. ``warn`` gets one line when the test
    images' geometry differs markedly from the training images' (:func:`geometry_mismatch`).

    A segmentation task scores ``spec.target`` (default: the task's one target; :func:`run_cross` runs
    each target of a task with several) on the test set's masks, as a run scores its own test split."""
    tinfo, ainfo, dataset = runner.resolve(spec.task, spec.approach, spec.dataset, spec.target)
    spec = replace(spec, params=validate_params(ainfo, spec.task, dict(spec.params)))
    segmentation = tinfo.kind == "segmentation"
    targets = list(info.segmentation_targets(spec.task, spec.approach, dataset)) if segmentation else []
    target = spec.target or (targets[0] if len(targets) == 1 else None)
    if segmentation and target is None:
        raise ConfigError(f"{spec.task} has several targets ({', '.join(targets)}): a cross-dataset record scores one",
                          fix="name it (--target, RunSpec.target), or use run_cross, which scores each")
    ds = load_for_task(spec.task, dataset, data_root, **dict(dataset_kwargs or {}))
    train = training_set(ds, spec.seed, spec.limit, spec.fraction)  # the run's rule, fractions included
    test = limit_images(test, spec.limit, spec.seed)  # quick runs: a subset of the foreign set too
    seen, counts = overlap(train, test)
    scored = test.subset(np.flatnonzero(~seen))
    if len(scored) == 0:
        raise DataError(f"every one of the {len(test)} foreign test images is in the training set", path=test.root,
                        fix="choose a test set the model was not trained on")
    y = None if segmentation else _labels_as(train, scored)
    trained = targets if segmentation and ainfo.multi_target else []
    check_for_task(spec.task, train, scored, targets=list(dict.fromkeys([target, *trained])) if segmentation else None,
                   limit=spec.limit)  # labels, classes, masks, every file readable
    shapes = {"train": geometry(train.paths), "test": geometry(scored.paths)}
    mismatch = geometry_mismatch(shapes["train"], shapes["test"])
    if mismatch and warn is not None:
        warn(mismatch)
    est, model = fitted_model(spec, train, ds, store, target, trained)
    fit_s, fit_cpu, cache_use = model.pop("fit_s"), model.pop("fit_cpu_s"), model.pop("cache")
    model["fit_s"] = fit_s  # as it always was in extras.model; timings say it too, beside the cache look-ups
    if segmentation:
        scorer = Scorer(scored, spec.n_boot, spec.seed)
        start, cpu0 = time.perf_counter(), runner.cpu_seconds()
        mask_scores = scorer.score_masks(target, est.predict_proba(scored.paths))
        predict_s, predict_cpu = time.perf_counter() - start, runner.cpu_seconds() - cpu0
        fields, eval_s = runner.timed(scorer.segmentation, mask_scores)
        about: dict[str, Any] = {}
    else:
        start, cpu0 = time.perf_counter(), runner.cpu_seconds()
        proba = np.asarray(est.predict_proba(scored.paths), dtype=float)
        predict_s, predict_cpu = time.perf_counter() - start, runner.cpu_seconds() - cpu0
        scores = full_columns(proba, est.classes_, len(train.class_names))
        scorer = Scorer(scored, spec.n_boot, spec.seed, y=y, class_names=train.class_names,
                        positive_class=train.positive_class)
        fields, eval_s = runner.timed(scorer.classification, scores)
        about = {"mapping": test.extra.get("mapping"), "excluded_by_mapping": dict(test.extra.get("excluded", {})),
                 "test_class_counts": {c: int((y == i).sum()) for i, c in enumerate(train.class_names)},
                 **({"test_dx_counts": {str(k): int(v) for k, v in scored.frame["dx"].value_counts().items()}}
                    if "dx" in scored.frame.columns else {})}
    test_slug = test.extra.get("slug") or test.data_slug
    inputs = {**provenance.dataset_key_inputs(spec, ds), "test_dataset": test_slug,
              "test_manifest_digest": test.manifest_digest, "cross_dataset": 1, **({"target": target} if target else {})}
    base = RunRecord(
        task=spec.task, dataset=f"{ds.data_slug}{CROSS}{test_slug}", approach=spec.approach, family=ainfo.family,
        title=ainfo.title, target=target, seed=spec.seed, limit=spec.limit,
        origin=ainfo.origin if ainfo.contributed else "",
        split={"n_train": len(train), "n_test": len(scored), "manifest_digest": ds.manifest_digest,
               "test_manifest_digest": test.manifest_digest})
    record = build_record(base, fields, est=est, key_inputs=inputs, command=command,
                          extras={"train_dataset": ds.data_slug, "test_dataset": test_slug,
                                  "test_split": test.extra.get("split", "all"), "overlap": counts, **about,
                                  "geometry": shapes, "model": model},
                          timings={"fit_s": fit_s, "predict_s": predict_s, "evaluate_s": eval_s,
                                   "images_per_s_predict": len(scored) / max(predict_s, 1e-9), "cache": cache_use,
                                   **runner.cost_timings(fit_cpu, predict_cpu, predict_s, len(scored))})
    root = Path(results_root) if results_root is not None else None
    return write_record(record, path_of(record, root))


def _targets(spec: RunSpec) -> list[str | None]:
    """The targets :func:`cross_evaluate` scores for ``spec``: its own, each one the approach scores on a
    segmentation task, or None (classification)."""
    tinfo, _, dataset = runner.resolve(spec.task, spec.approach, spec.dataset, spec.target)
    if spec.target or tinfo.kind != "segmentation":
        return [spec.target]
    return list(info.segmentation_targets(spec.task, spec.approach, dataset))


def run_cross(task: str, approaches: Sequence[str], test: Dataset, *, dataset: str | None = None,
              seeds: Sequence[int] = (0,), params: Mapping[str, Mapping[str, Any]] | None = None,
              limit: int | None = None, n_boot: int = 1000, data_root: str | os.PathLike | None = None,
              results_root: str | os.PathLike | None = None, dataset_kwargs: Mapping[str, Any] | None = None,
              store: ModelStore | None = None, command: str | None = None, baselines: bool = True,
              log: Any = None, target: str | None = None) -> tuple[list[Path], list[str]]:
    """:func:`cross_evaluate` for each approach x seed on one foreign test set (the CLI's ``run
    --test-dataset`` and ``benchmarks/cross_dataset.py``). ``baselines``: the task's trivial baselines
    are added (milliseconds), as every table shows them. ``params``: ``{approach: overrides}``. With one
    approach its error propagates; with several a failing one is reported (``log``, e.g. ``print`` to
    stderr) and listed in the returned failures. A segmentation task scores ``target``, default each
    target the approach scores (one record each). Returns (record paths, failures)."""
    names = list(dict.fromkeys(approaches))
    if baselines:
        names += [b for b in info.baselines_for(task) if b not in names]
    store = store or ModelStore()
    say = log or (lambda *_: None)
    warned: list[str] = []

    def warn(line: str) -> None:  # once per test set, not per approach and seed
        if not warned:
            warned.append(line)
            say(f"skinbench: warning: {line}")

    paths: list[Path] = []
    failures: list[str] = []
    slug = test.extra.get("slug") or test.data_slug
    for name in names:
        for seed in seeds:
            say(f"== {task} / {name} (seed {seed}) on {slug}")
            spec = RunSpec(task, name, dataset, seed, dict((params or {}).get(name) or {}), target, limit, n_boot)
            try:
                for t in _targets(spec):
                    paths.append(cross_evaluate(replace(spec, target=t), test, data_root=data_root,
                                                results_root=results_root, dataset_kwargs=dataset_kwargs, store=store,
                                                command=command, warn=warn))
            except SkinbenchError as err:
                if len([n for n in names if n in approaches]) <= 1 and name in approaches:
                    raise
                failures.append(f"{name}: {err}")
                say(f"skinbench: {name} skipped: {err}")
                break
            say(f"wrote {paths[-1]}")
    return paths, failures
