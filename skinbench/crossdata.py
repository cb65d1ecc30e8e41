"""Cross-dataset evaluation: train on one dataset, test on another (honest generalisation).

* The foreign test set is any :class:`~skinbench.data.base.Dataset`: every image of it is scored (its own
  train/test split is ignored), e.g. an official ISIC download read by :func:`load_foreign` (the ground
  truth CSV as downloaded, mapped to the task's classes by :mod:`skinbench.data.isic_csv`).
* Overlap between the training images and the foreign test set is found twice, by image id and by
  content (sha256 of the file), and excluded; the counts go into the record (``extras.overlap``).
  Public ISIC releases reuse images across years (305 of the 379 ISIC 2016 test images are in the ISIC
  2017 training set). Re-encoded copies (another size or JPEG quality) are not found by a file hash.
* Input geometry (size and aspect ratio) of the training and the scored test images goes into the record
  (``extras.geometry``): a model can exploit acquisition differences that preprocessing leaves in.
* The fitted model is kept by its run key (:class:`ModelStore`, joblib), so scoring a second or third
  test set costs prediction only. Estimators that cannot be pickled are refitted (the record says so).

Records land at ``runs/<task>/<train>__on__<test>/<approach>.json``: tables list them apart from the
in-dataset rows. Classification tasks only (segmentation cross-dataset scoring is not done yet).
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from skinbench import info
from skinbench.data.base import Dataset, task_classes
from skinbench.errors import ConfigError, DataError
from skinbench.provenance import RunSpec

#: version of how the model store pickles estimators (part of a stored model's file name)
STORE_VERSION = 1


# ------------------------------------------------------------------------------ a foreign test set

def load_foreign(folder: str | os.PathLike, task: str, csv: str | os.PathLike | None = None,
                 images: str = "images", name: str = "foreign", mapping: Mapping[str, str] | None = None) -> Dataset:
    """An official ISIC download as a test set of ``task``: ``csv`` (default: the one ``*GroundTruth*.csv``
    in ``folder``) read as it is, images in ``folder/images`` (or ``folder`` itself). Rows whose diagnosis
    the task's mapping leaves out are dropped; ``extra["excluded"]`` counts them per diagnosis code."""
    from skinbench.data import isic_csv
    from skinbench.data.generic import find_images

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("test data folder does not exist", path=folder, fix="pass the folder of the download")
    if csv is None:
        found = sorted(folder.glob("*GroundTruth*.csv")) or sorted(folder.glob("*.csv"))
        if len(found) != 1:
            raise DataError(f"found {len(found)} ground-truth CSV files", path=folder,
                            fix="name the one to use (csv=...)")
        csv = found[0]
    csv = Path(csv) if Path(csv).is_absolute() else folder / csv
    rows, excluded = isic_csv.read_for_task(csv, task, mapping)
    if rows.empty:
        raise DataError(f"no row of the ground truth maps to {task}'s classes (excluded: {excluded})", path=csv,
                        fix="check the task, or pass a mapping")
    image_dir = folder / images if (folder / images).is_dir() else folder
    paths = find_images(rows["image_id"].tolist(), image_dir, csv)
    names, positive = task_classes(task)
    frame = pd.DataFrame({"image_id": rows["image_id"], "image": paths, "label": rows["label"],
                          "lesion_id": rows["image_id"], "split": "test"})
    return Dataset(name, folder, frame, tuple(names), (), positive_class=positive, classes_declared=True,
                   extra={"label_file": str(csv), "label_lines": dict(zip(rows["image_id"], rows["_line"])),
                          "excluded": excluded})


# ------------------------------------------------------------------------------ overlap and geometry

def overlap(train: Dataset, test: Dataset) -> tuple[np.ndarray, dict[str, int]]:
    """(mask over ``test``: image also in ``train``, counts). Same id, or same file content (sha256)."""
    from skinbench.cache import file_digest

    same_id = np.isin(test.ids, train.ids)
    train_hashes = {file_digest(p) for p in train.paths}
    same_content = np.array([file_digest(p) in train_hashes for p in test.paths], dtype=bool)
    both = same_id | same_content
    return both, {"n_foreign": int(len(test)), "same_id": int(same_id.sum()),
                  "same_content": int(same_content.sum()), "same_content_other_id": int((same_content & ~same_id).sum()),
                  "excluded": int(both.sum()), "n_scored": int((~both).sum())}


def geometry(paths: Sequence[str]) -> dict[str, Any]:
    """Size and aspect-ratio summary of images (from file headers; no decoding)."""
    from skinbench.data.images import image_size

    sizes = np.array([image_size(p) for p in paths], dtype=float).reshape(-1, 2)
    if not len(sizes):
        return {"n": 0}
    w, h = sizes[:, 0], sizes[:, 1]
    aspect = w / h
    q = lambda v: [round(float(x), 3) for x in np.percentile(v, [5, 50, 95])]  # noqa: E731
    return {"n": int(len(sizes)), "width_p5_50_95": q(w), "height_p5_50_95": q(h), "aspect_p5_50_95": q(aspect),
            "distinct_sizes": int(len({tuple(s) for s in sizes}))}


# ------------------------------------------------------------------------------ fitted models by run key

class ModelStore:
    """Fitted estimators kept by run key (joblib files, written atomically), so a second test set costs
    prediction only. Deep estimators are kept when they pickle (Keras 3 models do); otherwise ``put``
    returns False and the next cross-dataset run refits."""

    def __init__(self, root: str | os.PathLike | None = None):
        from skinbench.paths import cache_dir

        self.root = Path(root) if root is not None else cache_dir() / "models"

    def path(self, key: str) -> Path:
        return self.root / f"{key}-v{STORE_VERSION}.joblib"

    def get(self, key: str) -> Any | None:
        import joblib

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return joblib.load(path)
        except Exception:  # noqa: BLE001 - an unreadable stored model is refitted, never fatal
            return None

    def put(self, key: str, estimator: Any) -> bool:
        import joblib

        from skinbench.cache import atomic_write_bytes

        buf = io.BytesIO()
        try:
            joblib.dump(estimator, buf)
        except Exception:  # noqa: BLE001 - not picklable (a deep model holding graph state): refit next time
            return False
        atomic_write_bytes(self.path(key), buf.getvalue())
        return True


def fitted_model(spec: RunSpec, train: Dataset, manifest_digest: str, store: ModelStore | None = None
                 ) -> tuple[Any, dict[str, Any]]:
    """The estimator of ``spec`` fitted on ``train``: from the store when its run key is there, else
    fitted now (and stored). Returns (estimator, {"run_key", "reused", "stored", "fit_s"})."""
    from skinbench import provenance, runner

    key = provenance.run_key(provenance.key_inputs(spec, manifest_digest))
    store = store or ModelStore()
    est = store.get(key)
    if est is not None:
        return est, {"run_key": key, "reused": True, "stored": True, "fit_s": 0.0}
    ainfo = info.approach(spec.approach)
    est = runner.build_estimator(ainfo, spec.seed, dict(spec.params), spec.task)
    runner.seed_everything(spec.seed)
    start = time.perf_counter()
    est.fit(train.paths, train.y, groups=train.groups)
    fit_s = time.perf_counter() - start
    return est, {"run_key": key, "reused": False, "stored": store.put(key, est), "fit_s": round(fit_s, 3)}


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
                   store: ModelStore | None = None, command: str | None = None) -> Path:
    """Fit ``spec`` on its training data (or reuse the kept model), score every image of ``test`` not
    in the training set, and write one record; returns its path."""
    from skinbench import provenance, runner
    from skinbench.data import load_dataset
    from skinbench.metrics.evaluate import evaluate_classification
    from skinbench.results.records import RunRecord, environment, path_of, write_record

    tinfo, ainfo, dataset = runner.resolve(spec.task, spec.approach, spec.dataset)
    if tinfo.kind != "classification":
        raise ConfigError("cross-dataset evaluation scores classification tasks only (so far)",
                          fix="use task1 or task2")
    ds = load_dataset(dataset, data_root, **{**tinfo.dataset_kwargs.get(dataset, {}), **dict(dataset_kwargs or {})})
    train = runner._limit(ds.split("train"), spec.limit, spec.seed)
    seen, counts = overlap(train, test)
    scored = test.subset(np.flatnonzero(~seen))
    if len(scored) == 0:
        raise DataError(f"every one of the {len(test)} foreign test images is in the training set", path=test.root,
                        fix="choose a test set the model was not trained on")
    y = _labels_as(train, scored)
    est, model = fitted_model(spec, train, ds.manifest_digest, store)
    start = time.perf_counter()
    proba = np.asarray(est.predict_proba(scored.paths), dtype=float)
    predict_s = time.perf_counter() - start
    scores = runner._full_columns(proba, est.classes_, len(train.class_names))
    evaluation = evaluate_classification(y, scores, list(train.class_names), n_boot=spec.n_boot, seed=spec.seed)
    test_slug = getattr(test, "data_slug", test.name)
    inputs = {**provenance.key_inputs(spec, ds.manifest_digest), "test_dataset": test_slug,
              "test_manifest_digest": test.manifest_digest, "cross_dataset": 1}
    env = environment()
    record = RunRecord(
        task=spec.task, dataset=f"{dataset}__on__{test_slug}", approach=spec.approach, family=ainfo.family,
        title=ainfo.title, seed=spec.seed, limit=spec.limit, params=runner._params_of(est),
        split={"n_train": len(train), "n_test": len(scored), "manifest_digest": ds.manifest_digest,
               "test_manifest_digest": test.manifest_digest},
        metrics=evaluation["metrics"],
        extras={**{k: v for k, v in evaluation.items() if k != "metrics"}, "class_names": list(train.class_names),
                "train_dataset": dataset, "test_dataset": test_slug, "overlap": counts,
                "excluded_by_mapping": dict(test.extra.get("excluded", {})),
                "geometry": {"train": geometry(train.paths), "test": geometry(scored.paths)}, "model": model},
        predictions={"image_id": scored.ids.tolist(), "y_true": y.tolist(), "scores": np.round(scores, 6).tolist()},
        timings={"fit_s": model["fit_s"], "predict_s": predict_s,
                 "images_per_s_predict": len(scored) / max(predict_s, 1e-9)},
        versions=env["versions"], machine=env["machine"], created=datetime.now(timezone.utc).isoformat(),
        command=command or runner.command_as_typed(), run_key=provenance.run_key(inputs), key_inputs=inputs,
        code_digest=provenance.code_digest(spec.approach))
    root = Path(results_root) if results_root is not None else None
    return write_record(replace(record), path_of(record, root))
