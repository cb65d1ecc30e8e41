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
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from skinbench import cache, info, provenance
from skinbench.data import Dataset, load_for_task
from skinbench.data.base import check_for_task
from skinbench.data.splits import limit_images, subset_digest, training_set
from skinbench.errors import ConfigError
from skinbench.params import validate_params
from skinbench.paths import cache_dir, check_writable, results_dir
from skinbench.provenance import RunSpec
from skinbench.results import submission
from skinbench.results.records import RunRecord, build_record, command_as_typed, path_of, write_record
from skinbench.scoring import Scorer, full_columns

__all__ = ["resolve", "build_estimator", "seed_everything", "run", "execute", "fit_estimator", "timed", "timed_fit", "validation_record",
           "cpu_seconds", "cost_timings",
           "write_skipped",
           "command_as_typed", "limit_images"]  # the last two live below (records, data.splits): old import paths

#: how many test images get an overlay figure (image | truth | prediction) per segmentation run
N_OVERLAYS = 6
#: where finished records go instead of the disk, when set: the sweep's point executor collects them
#: (``sink(record, path) -> path``) and returns them to the client, which writes them under the results root
RECORD_SINK: ContextVar[Callable[[RunRecord, Path], Path] | None] = ContextVar("RECORD_SINK", default=None)


def resolve(task: str, approach: str | None, dataset: str | None = None,
            target: str | None = None) -> tuple[info.TaskInfo, info.ApproachInfo | None, str]:
    """Validate the names against the registry (clear ConfigError for anything unknown or unsupported): the
    one check of task, approach (None: external predictions, no approach), dataset and target."""
    tinfo = info.task(task)
    ainfo = info.approach(approach, task) if approach is not None else None
    dataset = dataset or tinfo.default_dataset
    info.dataset(dataset)
    if ainfo is not None and task not in ainfo.tasks:
        raise ConfigError(f"approach {approach!r} does not do {task}",
                          fix=f"use one of: {', '.join(info.approaches_for(task))}")
    if dataset not in tinfo.datasets and task not in info.dataset(dataset).tasks:
        raise ConfigError(f"dataset {dataset!r} does not serve {task}", fix=f"use one of: {', '.join(datasets_for(task))}")
    known = tinfo.known_targets()
    if target and target not in known:
        raise ConfigError(f"{task} has no target {target!r}", fix=f"targets: {', '.join(known) or '(none)'}")
    return tinfo, ainfo, dataset


def datasets_for(task: str) -> list[str]:
    """The datasets serving ``task``: the task's own, then plugin datasets declaring it."""
    own = list(info.task(task).datasets)
    return own + [d.name for d in info.DATASETS.values() if task in d.tasks and d.name not in own]


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
    tinfo, ainfo, dataset = resolve(spec.task, spec.approach, spec.dataset, spec.target)
    spec = replace(spec, params=validate_params(ainfo, spec.task, dict(spec.params)))
    # a read-only or full folder is refused now, not after the fit (the writes map what still fails)
    root = check_writable(results_root or results_dir())
    if predictions_dir:
        check_writable(predictions_dir, "predictions folder", "--predictions DIR")
    ds = load_for_task(spec.task, dataset, data_root, **(dataset_kwargs or {}))
    # the test split stays whole whatever the training fraction (learning curves)
    train, test = (training_set(ds, spec.seed, spec.limit, spec.fraction),
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
                     origin=ainfo.origin if ainfo.contributed else "",
                     run_key=provenance.run_key(inputs), key_inputs=inputs,
                     code_digest=provenance.code_digest(spec.approach),
                     split={"n_train": len(train), "n_test": len(test), "manifest_digest": ds.manifest_digest,
                            **_subset_fields(spec, train)})
    if tinfo.kind == "classification":
        return [_run_classification(tinfo, ainfo, base, train, test, spec, root, predictions_dir)]
    return [_run_segmentation(tinfo, ainfo, replace(base, target=t), train, test, spec, root, predictions_dir,
                              trained) for t in targets]


def _subset_fields(spec: RunSpec, train: Dataset) -> dict[str, Any]:
    """A learning-curve record's ``split`` says which fraction of the training split it trained on and the
    subset's digest (the one in its run key); other records are unchanged."""
    return {} if spec.fraction is None else {"fraction": spec.fraction, "subset_digest": subset_digest(train)}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and its wall seconds (a record's ``*_s`` timings)."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished, waited-for children so far.

    Why: wall seconds vary with the machine's load and its other tenants; CPU seconds (every core's work
    summed) vary less across machines, so the equal-cost view compares rows by them (issue 32). Threads
    of this process count (BLAS, TensorFlow's pools); the sweep's Dask workers run one point per process
    (``threads_per_worker=1``), so a span holds its own point's work only."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cost_timings(fit_cpu: float, predict_cpu: float, predict_s: float, n_test: int) -> dict[str, Any]:
    """A record's CPU costs: ``cpu`` {fit_s, predict_s} (a dict, so ``*_s`` wall sums leave it out) and
    ``predict_ms_per_image`` (wall milliseconds of prediction per test image)."""
    return {"cpu": {"fit_s": fit_cpu, "predict_s": predict_cpu},
            "predict_ms_per_image": 1000.0 * predict_s / max(n_test, 1)}


def timed_fit(est: Any, *args: Any, **kwargs: Any) -> tuple[float, dict[str, dict[str, int]]]:
    """Fit, returning wall seconds and the cache look-ups it made (work found vs work done): what every
    record's ``timings`` say about the fit (``fit_s``, ``cache``), cross-dataset ones too."""
    before = cache.ledger()
    _, seconds = timed(est.fit, *args, **kwargs)
    return seconds, cache.ledger_since(before)


def fit_estimator(tinfo: info.TaskInfo, ainfo: info.ApproachInfo, spec: RunSpec, train: Dataset,
                  target: str | None = None, trained: Sequence[str] = ()) -> tuple[Any, float, dict[str, Any]]:
    """Build, seed and fit ``spec``'s estimator on ``train``: a classifier on the labels (and the masks it
    needs), a segmenter on ``target``'s masks (``trained``: every target of a multi-output model, which
    then predicts ``target``). One place for how a run fits, in-dataset and cross-dataset alike.
    Returns (estimator, fit seconds, cache look-ups of the fit)."""
    est = build_estimator(ainfo, spec.seed, dict(spec.params), tinfo.name)
    if tinfo.kind == "classification":
        declared = getattr(est, "n_classes", 0)
        if declared and declared != len(train.class_names):  # checked before hours of training, not after
            raise ConfigError(f"{spec.approach} is set to {declared} classes but dataset {train.name!r} has "
                              f"{len(train.class_names)} ({', '.join(train.class_names)})",
                              fix=f"-p n_classes={len(train.class_names)} (or 0: from the labels)")
        seed_everything(spec.seed)
        fit_kwargs: dict[str, Any] = {"groups": train.groups}
        if ainfo.needs_masks:
            fit_kwargs["masks"] = train.masks(ainfo.needs_masks)
        fit_s, cache_use = timed_fit(est, train.paths, train.y, **fit_kwargs)
        return est, fit_s, cache_use
    masks = train.masks(target)
    if trained:
        est.set_params(output=list(trained).index(target))
        masks = np.stack([train.masks(t) for t in trained], axis=1)
    seed_everything(spec.seed)
    labels = train.y if train.class_names else None
    fit_s, cache_use = timed_fit(est, train.paths, masks, y=labels, groups=train.groups)
    return est, fit_s, cache_use


def _finish(record: RunRecord, root: Path, **kwargs: Any) -> Path:
    """Stamp the record (:func:`build_record`) and write it, or hand it to :data:`RECORD_SINK` (the sweep's
    worker, which lands records itself)."""
    record = build_record(record, **kwargs)
    sink = RECORD_SINK.get()
    return sink(record, path_of(record, root)) if sink is not None else write_record(record, path_of(record, root))


def _run_classification(tinfo: info.TaskInfo, ainfo: info.ApproachInfo, base: RunRecord, train: Dataset,
                        test: Dataset, spec: RunSpec, root: Path, predictions_dir) -> Path:
    if not train.class_names:
        raise ConfigError(f"dataset {train.name!r} has no labels", fix="add a label column to its CSV")
    cpu0 = cpu_seconds()
    est, fit_s, cache_use = fit_estimator(tinfo, ainfo, spec, train)
    cpu1 = cpu_seconds()
    proba, predict_s = timed(est.predict_proba, test.paths)
    cpu2 = cpu_seconds()
    scores = full_columns(np.asarray(proba, dtype=float), est.classes_, len(train.class_names))
    scorer = Scorer(test, spec.n_boot, spec.seed, class_names=train.class_names, positive_class=train.positive_class)
    scored, eval_s = timed(scorer.classification, scores)
    if predictions_dir:
        submission.write_classification_csv(Path(predictions_dir), test.ids, scores, list(train.class_names),
                                            submission.submission_stem(base.task, base.dataset, base.approach))
    return _finish(base, root, scored=scored, est=est,
                   timings={"fit_s": fit_s, "predict_s": predict_s, "evaluate_s": eval_s,
                            "images_per_s_predict": len(test) / max(predict_s, 1e-9), "cache": cache_use,
                            **cost_timings(cpu1 - cpu0, cpu2 - cpu1, predict_s, len(test))})


def _run_segmentation(tinfo: info.TaskInfo, ainfo: info.ApproachInfo, base: RunRecord, train: Dataset,
                      test: Dataset, spec: RunSpec, root: Path, predictions_dir, trained: list[str]) -> Path:
    """Fit, predict and score one target (``trained``: every target of a multi-output model, else empty)."""
    from skinbench.results.plots import overlay_panel  # matplotlib: start-up cost, only for segmentation runs

    target = base.target
    cpu0 = cpu_seconds()
    est, fit_s, cache_use = fit_estimator(tinfo, ainfo, spec, train, target, trained)
    cpu1 = cpu_seconds()
    overlays: list[Any] = []

    def each(i: int, truth: np.ndarray, pred: np.ndarray) -> None:
        if i < N_OVERLAYS:  # kept at display size: a huge image's full-size copies would wait for the figure
            overlays.append(overlay_panel(test.paths[i], truth, pred))
        if predictions_dir:
            submission.write_mask_png(Path(predictions_dir), test.ids[i], pred, target)

    scorer = Scorer(test, spec.n_boot, spec.seed)
    start = time.perf_counter()  # predicting and the per-image scoring (surface distances) alike
    mask_scores = scorer.score_masks(target, est.predict_proba(test.paths), each=each)
    predict_s = time.perf_counter() - start
    cpu2 = cpu_seconds()
    scored, eval_s = timed(scorer.segmentation, mask_scores)
    path = _finish(base, root, scored=scored, est=est,
                   timings={"fit_s": fit_s, "predict_s": predict_s, "evaluate_s": eval_s,
                            "images_per_s_predict": len(test) / max(predict_s, 1e-9), "cache": cache_use,
                            **cost_timings(cpu1 - cpu0, cpu2 - cpu1, predict_s, len(test))})
    _overlay_figure(overlays, test.ids[:N_OVERLAYS], base, root)
    return path


def _overlay_figure(overlays, ids, record: RunRecord, root: Path) -> None:
    if not overlays:
        return
    from skinbench.results.plots import overlay_path, plot_overlays  # here: matplotlib's start-up cost

    images, truths, preds = zip(*overlays)
    plot_overlays(list(images), list(truths), list(preds), [str(i) for i in ids], overlay_path(root, record))


def validation_record(spec: RunSpec, ds: Dataset, fraction: float, key_inputs: dict[str, Any],
                      label: str = "") -> RunRecord:
    """Fit ``spec`` on ``ds``'s training images less a lesion-aware validation split (``fraction``) and score
    that split, never the test split: a RunRecord (a sweep's ``work="validation"`` point), scored by the
    one :class:`~skinbench.scoring.Scorer` without bootstrap intervals (choices are made on the values),
    stamped by :func:`~skinbench.results.records.build_record`. ``split`` keeps ``n_fit``/``n_val`` and
    ``how`` beside ``n_train``/``n_test`` (the validation part is the part scored)."""
    from skinbench.data.splits import validation_split  # here: only validation sweeps need it

    tinfo, ainfo, dataset = resolve(spec.task, spec.approach, spec.dataset)
    if tinfo.kind != "classification":
        raise ConfigError("validation sweeps score classifiers only", fix='use work = "run" for segmentation')
    spec = replace(spec, params=validate_params(ainfo, spec.task, dict(spec.params)))
    train = training_set(ds, spec.seed, spec.limit, spec.fraction)
    fit_idx, val_idx = validation_split(train.y, train.groups, fraction, spec.seed)
    fitted, val = train.subset(fit_idx), train.subset(val_idx)
    est, fit_s, cache_use = fit_estimator(tinfo, ainfo, spec, fitted)
    proba, predict_s = timed(est.predict_proba, val.paths)
    scores = full_columns(np.asarray(proba, dtype=float), est.classes_, len(train.class_names))
    scored = Scorer(val, 0, spec.seed, class_names=train.class_names, positive_class=train.positive_class
                    ).classification(scores)
    base = RunRecord(task=spec.task, dataset=ds.data_slug, approach=spec.approach, family=ainfo.family,
                     title=ainfo.title, seed=spec.seed, limit=spec.limit,
                     split={"n_train": len(fitted), "n_test": len(val), "n_fit": len(fitted), "n_val": len(val),
                            "manifest_digest": ds.manifest_digest,
                            "how": f"{fraction:.0%} lesion-aware stratified validation split of the training set"},
                     code_digest=provenance.code_digest(spec.approach))
    return build_record(base, scored, est=est, key_inputs=key_inputs,
                        extras={"validation": True, **({"label": label} if label else {})},
                        timings={"fit_s": fit_s, "predict_s": predict_s, "cache": cache_use,
                                 "images_per_s_predict": len(val) / max(predict_s, 1e-9)})


def write_skipped(task: str, approach: str, reason: str, *, dataset: str | None = None,
                  results_root: str | os.PathLike | None = None) -> Path:
    """A record saying plainly why an approach has no numbers (e.g. weights not available offline)."""
    tinfo, ainfo, dataset = resolve(task, approach, dataset)
    root = Path(results_root) if results_root else results_dir()
    record = build_record(RunRecord(task=task, dataset=dataset, approach=approach, reason=reason, family=ainfo.family,
                                    title=ainfo.title, origin=ainfo.origin if ainfo.contributed else ""),
                          status="skipped")
    return write_record(record, path_of(record, root))
