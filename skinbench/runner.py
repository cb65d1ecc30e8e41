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
import shlex
import sys
import time
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.model_selection import train_test_split

from skinbench import cache, info, provenance
from skinbench.data import Dataset, load_dataset
from skinbench.data.base import check_for_task
from skinbench.environment import environment
from skinbench.errors import ConfigError
from skinbench.metrics.evaluate import evaluate_segmentation
from skinbench.params import validate_params
from skinbench.paths import cache_dir, check_writable, results_dir
from skinbench.provenance import RunSpec
from skinbench.results import submission
from skinbench.results.records import RunRecord, path_of, write_record
from skinbench.scoring import (fit_summary, full_columns, params_of, score_mask, scored_classification,
                               threshold_map, truth_mask)

#: how many test images get an overlay figure (image | truth | prediction) per segmentation run
N_OVERLAYS = 6
#: where finished records go instead of the disk, when set: the sweep's point executor collects them
#: (``sink(record, path) -> path``) and returns them to the client, which writes them under the results root
RECORD_SINK: ContextVar[Callable[[RunRecord, Path], Path] | None] = ContextVar("RECORD_SINK", default=None)


def resolve(task: str, approach: str, dataset: str | None = None) -> tuple[info.TaskInfo, info.ApproachInfo, str]:
    """Validate the names against the registry (clear ConfigError for anything unknown or unsupported)."""
    tinfo = info.task(task)
    ainfo = info.approach(approach, task)
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
        import keras  # only when already loaded: importing it costs TensorFlow's start-up

        keras.utils.set_random_seed(seed)


def limit_images(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A deterministic, stratified subset of at most n images (smoke and quick runs)."""
    if n is None or len(ds) <= n:
        return ds
    idx = np.arange(len(ds))
    labels = ds.frame["label"].to_numpy(dtype=str)
    try:
        keep, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify: plain sample
        keep = np.random.default_rng(seed).choice(idx, n, replace=False)
    return ds.subset(np.sort(keep))


def run(task: str, approach: str, *, dataset: str | None = None, seed: int = 0,
        params: dict[str, Any] | None = None, target: str | None = None, limit: int | None = None,
        n_boot: int = 1000, **kwargs: Any) -> list[Path]:
    """Shorthand for ``execute(RunSpec(task, approach, ...), **kwargs)``."""
    spec = RunSpec(task, approach, dataset, seed, dict(params or {}), target, limit, n_boot)
    return execute(spec, **kwargs)


def execute(spec: RunSpec, *, data_root: str | os.PathLike | None = None,
            results_root: str | os.PathLike | None = None, predictions_dir: str | os.PathLike | None = None,
            command: str | None = None, dataset_kwargs: dict[str, Any] | None = None) -> list[Path]:
    """Run ``spec`` and write one record per segmentation target (or one for classification).

    Returns the record paths. ``predictions_dir`` additionally receives the ISIC submission files;
    ``dataset_kwargs`` go to the dataset adapter (e.g. ``n_images`` for the synthetic data).
    """
    tinfo, ainfo, dataset = resolve(spec.task, spec.approach, spec.dataset)
    spec = replace(spec, params=validate_params(ainfo, spec.task, dict(spec.params)))
    # a read-only or full folder is refused now, not after the fit (the writes map what still fails)
    root = check_writable(results_root or results_dir())
    if predictions_dir:
        check_writable(predictions_dir, "predictions folder", "--predictions DIR")
    ds = load_dataset(dataset, data_root, **{**tinfo.dataset_kwargs.get(dataset, {}), **(dataset_kwargs or {})})
    train, test = (limit_images(ds.split("train"), spec.limit, spec.seed),
                   limit_images(ds.split("test"), spec.limit, spec.seed))
    if len(train) == 0 or len(test) == 0:
        raise ConfigError(f"dataset {dataset!r} has an empty train or test split",
                          fix="check the split column of its manifest / CSV")
    scored = info.segmentation_targets(spec.task, spec.approach, dataset)
    targets = [spec.target] if spec.target else list(scored)
    trained = list(scored) if ainfo.multi_target else []  # one model for all of them, whichever is scored
    check_for_task(spec.task, train, test, targets=list(dict.fromkeys(targets + trained)) or None, limit=spec.limit)
    inputs = provenance.dataset_key_inputs(spec, ds)
    base = RunRecord(task=spec.task, dataset=ds.data_slug, approach=spec.approach, family=ainfo.family,
                     title=ainfo.title, seed=spec.seed, limit=spec.limit, command=command or command_as_typed(),
                     run_key=provenance.run_key(inputs), key_inputs=inputs,
                     code_digest=provenance.code_digest(spec.approach),
                     split={"n_train": len(train), "n_test": len(test), "manifest_digest": ds.manifest_digest})
    if tinfo.kind == "classification":
        return [_run_classification(tinfo, ainfo, base, train, test, spec, root, predictions_dir)]
    return [_run_segmentation(tinfo, ainfo, replace(base, target=t), train, test, spec, root, predictions_dir,
                              trained) for t in targets]


def command_as_typed(argv: list[str] | None = None) -> str:
    """The command line as a user would type it again (``python -m skinbench run ...``, not a file path)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    head = Path(argv[0])
    if head.name == "__main__.py" and head.parent.name == "skinbench":
        first = "python -m skinbench"
    elif head.name == "skinbench":
        first = "skinbench"
    elif head.suffix == ".py":
        try:
            first = "python " + head.resolve().relative_to(Path(__file__).resolve().parents[1]).as_posix()
        except ValueError:
            first = "python " + head.name
    else:
        first = head.name
    return " ".join([first, *map(shlex.quote, argv[1:])])


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _fit(est: Any, *args: Any, **kwargs: Any) -> tuple[float, dict[str, dict[str, int]]]:
    """Fit, returning wall seconds and the cache look-ups it made (work found vs work done)."""
    before = cache.ledger()
    _, seconds = _timed(est.fit, *args, **kwargs)
    return seconds, cache.ledger_since(before)


def _finish(record: RunRecord, root: Path, timings: dict[str, Any]) -> Path:
    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    env = environment()
    record = replace(record, status="ok", timings=timings, created=datetime.now(timezone.utc).isoformat(),
                     versions=env["versions"], machine=env["machine"])
    sink = RECORD_SINK.get()
    return sink(record, path_of(record, root)) if sink is not None else write_record(record, path_of(record, root))


def _run_classification(tinfo: info.TaskInfo, ainfo: info.ApproachInfo, base: RunRecord, train: Dataset,
                        test: Dataset, spec: RunSpec, root: Path, predictions_dir) -> Path:
    if not train.class_names:
        raise ConfigError(f"dataset {train.name!r} has no labels", fix="add a label column to its CSV")
    est = build_estimator(ainfo, spec.seed, dict(spec.params), tinfo.name)
    declared = getattr(est, "n_classes", 0)
    if declared and declared != len(train.class_names):  # checked before hours of training, not after
        raise ConfigError(f"{spec.approach} is set to {declared} classes but dataset {train.name!r} has "
                          f"{len(train.class_names)} ({', '.join(train.class_names)})",
                          fix=f"-p n_classes={len(train.class_names)} (or 0: from the labels)")
    seed_everything(spec.seed)
    fit_kwargs: dict[str, Any] = {"groups": train.groups}
    if ainfo.needs_masks:
        fit_kwargs["masks"] = train.masks(ainfo.needs_masks)
    fit_s, cache_use = _fit(est, train.paths, train.y, **fit_kwargs)
    proba, predict_s = _timed(est.predict_proba, test.paths)
    scores = full_columns(np.asarray(proba, dtype=float), est.classes_, len(train.class_names))
    fields, eval_s = _timed(scored_classification, test.ids, test.y, scores, train.class_names,
                            train.positive_class, spec.n_boot, spec.seed)
    chosen = fit_summary(est)
    if chosen:
        fields["extras"]["fit"] = chosen
    record = replace(base, params=params_of(est), **fields)
    if predictions_dir:
        submission.write_classification_csv(Path(predictions_dir), test.ids, scores, list(train.class_names),
                                            submission.submission_stem(base.task, base.dataset, base.approach))
    return _finish(record, root, {"fit_s": fit_s, "predict_s": predict_s, "evaluate_s": eval_s,
                                  "images_per_s_predict": len(test) / max(predict_s, 1e-9), "cache": cache_use})


def _run_segmentation(tinfo: info.TaskInfo, ainfo: info.ApproachInfo, base: RunRecord, train: Dataset,
                      test: Dataset, spec: RunSpec, root: Path, predictions_dir, trained: list[str]) -> Path:
    """Fit, predict and score one target (``trained``: every target of a multi-output model, else empty)."""
    from skinbench.results.plots import overlay_panel  # matplotlib: start-up cost, only for segmentation runs

    target = base.target
    train_masks, test_masks = train.masks(target), test.masks(target)
    est = build_estimator(ainfo, spec.seed, dict(spec.params), tinfo.name)
    if trained:
        est.set_params(output=trained.index(target))
        train_masks = np.stack([train.masks(t) for t in trained], axis=1)
    seed_everything(spec.seed)
    labels = train.y if train.class_names else None
    fit_s, cache_use = _fit(est, train.paths, train_masks, y=labels, groups=train.groups)
    counts, overlays, surface = [], [], []
    start = time.perf_counter()
    for i, prob in enumerate(est.predict_proba(test.paths)):
        truth = truth_mask(test_masks[i], test.paths[i])
        pred = threshold_map(prob, truth.shape)
        image_counts, image_surface = score_mask(truth, pred)
        counts.append(image_counts)
        surface.append(image_surface)
        if i < N_OVERLAYS:  # kept at display size: a huge image's full-size copies would wait for the figure
            overlays.append(overlay_panel(test.paths[i], truth, pred))
        if predictions_dir:
            submission.write_mask_png(Path(predictions_dir), test.ids[i], pred, target)
    predict_s = time.perf_counter() - start
    counts_arr = np.asarray(counts, dtype=np.int64)
    evaluation, eval_s = _timed(evaluate_segmentation, counts_arr, n_boot=spec.n_boot, seed=spec.seed)
    chosen = fit_summary(est)
    record = replace(base, params=params_of(est), metrics=evaluation["metrics"],
                     extras={**{k: v for k, v in evaluation.items() if k != "metrics"},
                             **({"fit": chosen} if chosen else {})},
                     predictions={"image_id": test.ids.tolist(), "counts": counts_arr.tolist(),
                                  "surface": np.round(np.reshape(surface, (-1, 2)), 3).tolist()})
    path = _finish(record, root, {"fit_s": fit_s, "predict_s": predict_s, "evaluate_s": eval_s,
                                  "images_per_s_predict": len(test) / max(predict_s, 1e-9), "cache": cache_use})
    _overlay_figure(overlays, test.ids[:N_OVERLAYS], record, root)
    return path


def _overlay_figure(overlays, ids, record: RunRecord, root: Path) -> None:
    if not overlays:
        return
    from skinbench.results.plots import overlay_path, plot_overlays  # here: matplotlib's start-up cost

    images, truths, preds = zip(*overlays)
    plot_overlays(list(images), list(truths), list(preds), [str(i) for i in ids], overlay_path(root, record))


def write_skipped(task: str, approach: str, reason: str, *, dataset: str | None = None,
                  results_root: str | os.PathLike | None = None) -> Path:
    """A record saying plainly why an approach has no numbers (e.g. weights not available offline)."""
    tinfo, ainfo, dataset = resolve(task, approach, dataset)
    root = Path(results_root) if results_root else results_dir()
    record = RunRecord(task=task, dataset=dataset, approach=approach, status="skipped", reason=reason,
                       family=ainfo.family, title=ainfo.title, created=datetime.now(timezone.utc).isoformat(),
                       **environment())
    return write_record(record, path_of(record, root))
