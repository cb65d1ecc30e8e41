"""Run one approach on one task: load data -> fit -> predict -> evaluate -> one JSON record.

The same code path serves the CLI, the benchmarks and the tests, so a number in results/ and a number
in a test come from the same place. Nothing is written until the run has finished (records are atomic);
estimators cache their expensive work by content, so an interrupted run resumes cheaply.
"""

from __future__ import annotations

import importlib
import inspect
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from skinbench import info
from skinbench.data import Dataset, load_dataset
from skinbench.data.images import read_image, read_mask
from skinbench.errors import ConfigError
from skinbench.paths import cache_dir, results_dir

#: how many test images get an overlay figure (image | truth | prediction) per segmentation run
N_OVERLAYS = 6


@dataclass
class RunSpec:
    """Everything that defines a run (and so its record's identity)."""

    task: str
    approach: str
    dataset: str
    seed: int = 0
    params: dict[str, Any] | None = None
    target: str | None = None
    limit: int | None = None
    n_boot: int = 1000


#: code every run's numbers depend on (rendering, CLI and docs cannot change a number)
SHARED_CODE = ("runner.py", "cache.py", "data", "metrics", "approaches/base.py")


def approach_sources(approach: str | None = None) -> list[Path]:
    """The source files a record of ``approach`` depends on: the shared code, the estimator's module and
    every ``skinbench.approaches`` module it imports (transitively). ``None``: all numeric code.

    So an edit to the U-Net leaves the BoVW records current, and an edit to the metrics does not.
    """
    import ast

    pkg = Path(__file__).parent
    files = {p for name in SHARED_CODE
             for p in ([pkg / name] if name.endswith(".py") else (pkg / name).rglob("*.py"))}
    if approach is None:
        return sorted(files | set((pkg / "approaches").rglob("*.py")))
    todo = [info.approach(approach).estimator.split(":")[0]]
    while todo:
        path = pkg.parent / (todo.pop().replace(".", "/") + ".py")
        if path in files or not path.is_file():
            continue
        files.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("skinbench.approaches"):
                todo.append(node.module)
                todo.extend(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.startswith("skinbench.approaches"))
    return sorted(files)


def code_version(approach: str | None = None) -> str:
    """Digest of the source that produces ``approach``'s numbers: a record made by other code is stale."""
    import hashlib

    h = hashlib.sha256()
    pkg = Path(__file__).parent
    for path in approach_sources(approach):
        h.update(path.relative_to(pkg).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_key(task: str, approach: str, dataset: str, seed: int, params: dict | None, limit: int | None,
            manifest_digest: str) -> str:
    """What a record depends on; benchmarks/regenerate.py reruns only when it changes."""
    from skinbench.cache import make_key

    ainfo = info.approach(approach)
    merged = {**ainfo.params_for(task), **(params or {})}
    return make_key(task, approach, dataset, seed, ainfo.estimator, merged, limit, manifest_digest,
                    code_version(approach))[:20]


def resolve(task: str, approach: str, dataset: str | None = None) -> tuple[info.TaskInfo, info.ApproachInfo, str]:
    """Validate the names against the registry (clear ConfigError for anything unknown or unsupported)."""
    tinfo = info.task(task)
    ainfo = info.approach(approach)
    dataset = dataset or tinfo.default_dataset
    info.dataset(dataset)
    if task not in ainfo.tasks:
        raise ConfigError(f"approach {approach!r} does not do {task}",
                          fix=f"use one of: {', '.join(info.approaches_for(task))}")
    if dataset not in tinfo.datasets:
        raise ConfigError(f"dataset {dataset!r} does not serve {task}", fix=f"use one of: {', '.join(tinfo.datasets)}")
    return tinfo, ainfo, dataset


def build_estimator(ainfo: info.ApproachInfo, seed: int, params: dict[str, Any] | None = None,
                    task: str | None = None) -> Any:
    """Instantiate the registered estimator with its registry params (for ``task``), user overrides, seed, cache."""
    module, cls = ainfo.estimator.split(":")
    estimator_cls = getattr(importlib.import_module(module), cls)
    accepted = inspect.signature(estimator_cls.__init__).parameters
    kwargs = {**ainfo.params_for(task), **(params or {})}
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"approach {ainfo.name!r} has no parameter(s) {unknown}",
                          fix=f"valid: {', '.join(p for p in accepted if p != 'self')}")
    if "random_state" in accepted:
        kwargs.setdefault("random_state", seed)
    if "cache_dir" in accepted:
        kwargs.setdefault("cache_dir", str(cache_dir()))
    return estimator_cls(**kwargs)


def seed_everything(seed: int) -> None:
    """Seed numpy, and TensorFlow/Keras only if an estimator already imported them (listing stays light)."""
    np.random.seed(seed)
    if "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)


def _limit(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A deterministic, stratified subset of at most n images (smoke and quick runs)."""
    if n is None or len(ds) <= n:
        return ds
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds))
    labels = ds.frame["label"].to_numpy(dtype=str)
    try:
        keep, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify: plain sample
        keep = np.random.default_rng(seed).choice(idx, n, replace=False)
    return ds.subset(np.sort(keep))


def run(task: str, approach: str, *, dataset: str | None = None, data_root: str | os.PathLike | None = None,
        seed: int = 0, params: dict[str, Any] | None = None, target: str | None = None,
        limit: int | None = None, n_boot: int = 1000, results_root: str | os.PathLike | None = None,
        predictions_dir: str | os.PathLike | None = None, command: str | None = None,
        dataset_kwargs: dict[str, Any] | None = None) -> list[Path]:
    """Run ``approach`` on ``task`` and write one record per segmentation target (or one for classification).

    Returns the record paths. ``predictions_dir`` additionally receives the ISIC submission files;
    ``dataset_kwargs`` go to the dataset adapter (e.g. ``n_images`` for the synthetic data).
    """
    tinfo, ainfo, dataset = resolve(task, approach, dataset)
    root = Path(results_root) if results_root else results_dir()
    ds = load_dataset(dataset, data_root, **{**tinfo.dataset_kwargs.get(dataset, {}), **(dataset_kwargs or {})})
    train, test = _limit(ds.split("train"), limit, seed), _limit(ds.split("test"), limit, seed)
    if len(train) == 0 or len(test) == 0:
        raise ConfigError(f"dataset {dataset!r} has an empty train or test split",
                          fix="check the split column of its manifest / CSV")
    base = dict(task=task, dataset=dataset, approach=approach, family=ainfo.family, title=ainfo.title, seed=seed,
                limit=limit, run_key=run_key(task, approach, dataset, seed, params, limit, ds.manifest_digest), command=command or " ".join(sys.argv),
                split={"n_train": len(train), "n_test": len(test), "manifest_digest": ds.manifest_digest})
    if tinfo.kind == "classification":
        return [_run_classification(tinfo, ainfo, base, train, test, seed, params, n_boot, root, predictions_dir)]
    targets = [target] if target else list(tinfo.targets)
    for t in targets:
        if t not in ds.targets:
            raise ConfigError(f"dataset {dataset!r} has no {t!r} masks", fix=f"targets: {', '.join(ds.targets)}")
    return [_run_segmentation(tinfo, ainfo, dict(base, target=t), train, test, seed, params, n_boot, root,
                              predictions_dir) for t in targets]


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _finish(record: dict[str, Any], root: Path, timings: dict[str, float]) -> Path:
    from skinbench.results.records import environment, record_path, write_record

    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record.update(schema=1, status="ok", timings=timings, created=datetime.now(timezone.utc).isoformat(),
                  **environment())
    path = record_path(record["task"], record["dataset"], record["approach"], record.get("target"), root=root)
    return write_record(record, path)


def _run_classification(tinfo, ainfo, base, train: Dataset, test: Dataset, seed, params, n_boot, root,
                        predictions_dir) -> Path:
    from skinbench.metrics.evaluate import evaluate_classification

    if not train.class_names:
        raise ConfigError(f"dataset {train.name!r} has no labels", fix="add a label column to its CSV")
    est = build_estimator(ainfo, seed, params, tinfo.name)
    seed_everything(seed)
    _, fit_s = _timed(est.fit, train.paths, train.y, groups=train.groups)
    proba, predict_s = _timed(est.predict_proba, test.paths)
    scores = _full_columns(np.asarray(proba, dtype=float), est.classes_, len(train.class_names))
    evaluation, eval_s = _timed(evaluate_classification, test.y, scores, list(train.class_names),
                                n_boot=n_boot, seed=seed)
    extras = {k: v for k, v in evaluation.items() if k != "metrics"}
    record = dict(base, params=_params_of(est), metrics=evaluation["metrics"],
                  extras=dict(extras, class_names=list(train.class_names)),
                  predictions={"image_id": test.ids.tolist(), "y_true": test.y.tolist(),
                               "scores": np.round(scores, 6).tolist()})
    if predictions_dir:
        from skinbench.results import submission

        submission.write_classification_csv(Path(predictions_dir), tinfo.name, test.ids, scores,
                                            list(train.class_names))
    return _finish(record, root, {"fit_s": fit_s, "predict_s": predict_s, "evaluate_s": eval_s,
                                  "images_per_s_predict": len(test) / max(predict_s, 1e-9)})


def _full_columns(proba: np.ndarray, classes: Iterable[int], n_classes: int) -> np.ndarray:
    """Scores for every class of the task, even those absent from the training part (score 0)."""
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(list(classes), dtype=int)] = proba
    return full


def _params_of(est: Any) -> dict[str, Any]:
    params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    return {k: v for k, v in params.items() if k != "cache_dir" and isinstance(v, (int, float, str, bool, list, tuple, type(None)))}


def _run_segmentation(tinfo, ainfo, base, train: Dataset, test: Dataset, seed, params, n_boot, root,
                      predictions_dir) -> Path:
    from skinbench.metrics.evaluate import evaluate_segmentation
    from skinbench.metrics.segmentation import confusion_counts

    target = base["target"]
    train_masks, test_masks = train.masks(target), test.masks(target)
    est = build_estimator(ainfo, seed, params, tinfo.name)
    seed_everything(seed)
    labels = train.y if train.class_names else None
    _, fit_s = _timed(est.fit, train.paths, train_masks, y=labels)
    counts, overlays = [], []
    start = time.perf_counter()
    for i, prob in enumerate(est.predict_proba(test.paths)):
        truth = _truth(test_masks[i], test.paths[i])
        pred = _to_shape(np.asarray(prob, dtype=np.float32), truth.shape) >= 0.5
        counts.append(confusion_counts(truth, pred))
        if i < N_OVERLAYS:
            overlays.append((read_image(test.paths[i], size=(truth.shape[1], truth.shape[0])), truth, pred))
        if predictions_dir:
            from skinbench.results import submission

            submission.write_mask_png(Path(predictions_dir), test.ids[i], pred, target)
    predict_s = time.perf_counter() - start
    counts_arr = np.asarray(counts, dtype=np.int64)
    evaluation, eval_s = _timed(evaluate_segmentation, counts_arr, n_boot=n_boot, seed=seed)
    record = dict(base, params=_params_of(est), metrics=evaluation["metrics"],
                  extras={k: v for k, v in evaluation.items() if k != "metrics"},
                  predictions={"image_id": test.ids.tolist(), "counts": counts_arr.tolist()})
    path = _finish(record, root, {"fit_s": fit_s, "predict_s": predict_s, "evaluate_s": eval_s,
                                  "images_per_s_predict": len(test) / max(predict_s, 1e-9)})
    _overlay_figure(overlays, test.ids[:N_OVERLAYS], base, root)
    return path


def _truth(mask_path: str, image_path: str) -> np.ndarray:
    """The truth mask; an image without a mask file has no foreground (the image's own size)."""
    if mask_path:
        return read_mask(mask_path)
    from skinbench.data.images import image_size

    w, h = image_size(image_path)
    return np.zeros((h, w), dtype=bool)


def _to_shape(prob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize a probability map to the truth mask's shape (masks can be larger than the images)."""
    if prob.shape == shape:
        return prob
    return cv2.resize(prob, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _overlay_figure(overlays, ids, base, root: Path) -> None:
    if not overlays:
        return
    from skinbench.results.plots import plot_overlays

    images, truths, preds = zip(*overlays)
    name = f"overlay_{base['task']}_{base['dataset']}_{base['approach']}__{base['target']}.png"
    plot_overlays(list(images), list(truths), list(preds), [str(i) for i in ids], root / "plots" / name)


def write_skipped(task: str, approach: str, reason: str, *, dataset: str | None = None,
                  results_root: str | os.PathLike | None = None) -> Path:
    """A record saying plainly why an approach has no numbers (e.g. weights not available offline)."""
    from skinbench.results.records import environment, record_path, write_record

    tinfo, ainfo, dataset = resolve(task, approach, dataset)
    root = Path(results_root) if results_root else results_dir()
    record = dict(schema=1, status="skipped", reason=reason, task=task, dataset=dataset, approach=approach,
                  family=ainfo.family, title=ainfo.title, created=datetime.now(timezone.utc).isoformat(),
                  **environment())
    return write_record(record, record_path(task, dataset, approach, None, root=root))
