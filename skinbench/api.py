"""The Python API: run, score and compare approaches from a script or notebook, as the CLI does.

``import skinbench`` re-exports these lazily (:mod:`skinbench.__init__`), so importing the package stays
cheap (no TensorFlow, no pandas until used)::

    import skinbench
    rec = skinbench.run("task1", MyClassifier, dataset="synthetic", results="out")  # a class, instance or name
    df = skinbench.load_results("out")          # tidy: one row per record x metric
    df[df.metric == "ap"].plot.barh(x="approach", y="value")

Every call goes through the CLI's code paths (:func:`skinbench.runner.execute`, :func:`skinbench.score.score`,
:func:`skinbench.results.records.load_records`): the same splits, metrics, bootstrap CIs, run keys and
records, so a notebook's number and a table's number are the same number.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skinbench import info
from skinbench.errors import ConfigError

if TYPE_CHECKING:  # pandas only when load_results is called
    import pandas as pd

    from skinbench.results.records import RunRecord

#: constructor arguments the runner sets itself (from ``seed`` and the cache), dropped from an instance's
_RUNNER_SET = ("random_state", "cache_dir")
#: cost columns of :func:`load_results` (from each record's ``timings``; absent ones are empty)
COST_COLUMNS = ("fit_s", "predict_s", "evaluate_s", "peak_rss_mb", "images_per_s_predict", "predict_ms_per_image")
#: CPU seconds (user + sys, the process and its children): ``timings.cpu`` -> column
CPU_COLUMNS = {"fit_s": "fit_cpu_s", "predict_s": "predict_cpu_s"}


def _approach_name(approach: Any, family: str | None) -> tuple[str, dict[str, Any]]:
    """A registered name, and the parameters an estimator instance carries."""
    from skinbench import plugins

    if isinstance(approach, str):
        return (plugins.register_class(approach, family) if ":" in approach else approach), {}
    if isinstance(approach, type):
        return plugins.register_class(approach, family), {}
    if hasattr(approach, "fit") and hasattr(approach, "predict_proba") and hasattr(approach, "get_params"):
        params = {k: v for k, v in approach.get_params(deep=False).items() if k not in _RUNNER_SET}
        return plugins.register_class(type(approach), family), params
    raise ConfigError(f"approach {approach!r} is neither a registered name, an estimator class nor an instance "
                      "following the estimator contract (fit, predict_proba, get_params)",
                      fix="see skinbench/approaches/base.py and docs/plugins.md")


def run(task: str, approach: Any, *, dataset: str | None = None, params: dict[str, Any] | None = None,
        seed: int = 0, results: str | os.PathLike | None = None, family: str | None = None,
        target: str | None = None, limit: int | None = None, n_boot: int = 1000,
        data_root: str | os.PathLike | None = None, dataset_kwargs: dict[str, Any] | None = None,
        render: bool = False) -> "RunRecord | list[RunRecord]":
    """Fit ``approach`` on ``task``'s training split, score it on the test split, write its record; return it.

    ``approach``: a registered name (``skinbench list``), an estimator class, or an instance following the
    estimator contract (:mod:`skinbench.approaches.base`; its parameters are the run's, ``params`` on
    top); a class or instance needs ``family`` ("classical" or "deep") unless it declares a ``family``
    attribute. ``results``: the results folder (default: ``$SKINBENCH_RESULTS`` or ./skinbench-results);
    ``render``: also write the task's tables and plots there. A segmentation task scoring several targets
    returns one record per target (a list), unless ``target`` picks one.
    """
    from skinbench import runner
    from skinbench.results.records import RunRecord

    name, own = _approach_name(approach, family)
    paths = runner.run(task, name, dataset=dataset, seed=seed, params={**own, **(params or {})} or None,
                       target=target, limit=limit, n_boot=n_boot, data_root=data_root, results_root=results,
                       dataset_kwargs=dataset_kwargs, command=f"skinbench.run({task!r}, {name!r})")
    if render:
        from skinbench.paths import results_dir
        from skinbench.results.render import render_all

        render_all(results if results is not None else results_dir(), task=task)
    records = [RunRecord.from_file(p) for p in paths]
    return records[0] if len(records) == 1 else records


def score(task: str, predictions: Any, *, name: str | None = None, dataset: str | None = None,
          results: str | os.PathLike | None = None, target: str | None = None, n_boot: int = 1000,
          seed: int = 0, data_root: str | os.PathLike | None = None,
          dataset_kwargs: dict[str, Any] | None = None) -> "RunRecord | list[RunRecord]":
    """Score external predictions on ``task``'s test split, as ``skinbench score`` does (same checks, CIs).

    ``predictions``: a submission CSV or a folder of masks (:mod:`skinbench.score`), or for classification
    a pandas DataFrame with an ``image_id`` column and one column per class (or the positive class's
    probability), written to a temporary CSV and read exactly as a file would be.
    """
    from skinbench import score as score_mod
    from skinbench.results.records import RunRecord

    with tempfile.TemporaryDirectory(prefix="skinbench-score-") as tmp:
        source = predictions
        if hasattr(predictions, "to_csv"):
            source = Path(tmp) / f"{name or 'predictions'}.csv"
            predictions.to_csv(source, index=False, na_rep="NaN")  # a missing score is refused as NaN
        paths = score_mod.score(task, source, dataset=dataset, data_root=data_root, target=target, name=name,
                                results_root=results, n_boot=n_boot, seed=seed, dataset_kwargs=dataset_kwargs,
                                command=f"skinbench.score({task!r}, ...)")
        records = [RunRecord.from_file(p) for p in paths]
    return records[0] if len(records) == 1 else records


def load_dataset(name: str, root: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """:func:`skinbench.data.load_dataset` (a :class:`skinbench.data.base.Dataset`)."""
    from skinbench.data import load_dataset as _load

    return _load(name, root, **kwargs)


def load_results(folder: str | os.PathLike | None = None, *, sweeps: bool = True) -> "pd.DataFrame":
    """Every record under ``folder`` as a tidy DataFrame: one row per record x metric (skipped records: one
    row with metric None), for pandas / seaborn / matplotlib.

    Columns:

    - ``task``, ``dataset`` (the training data's slug; a cross-dataset record's ``<train>__on__<test>``),
      ``test_set`` (the data scored: the part after ``__on__``, else the dataset), ``target`` (segmentation
      target or None), ``approach``, ``family`` (baseline | classical | deep | external), ``origin``
      ("skinbench" for the suite's own rows, else the plugin's "package version"), ``title``, ``status``
      (ok | skipped), ``reason`` (why skipped);
    - ``metric``, ``value``, ``ci_low``, ``ci_high`` (95% bootstrap CI over test images; None when undefined),
      ``primary`` (True for the task's primary metric);
    - ``seed``, ``limit`` (subset size or None), ``n_train``, ``n_test``, ``params`` (the estimator's as run);
    - costs from the record's timings: wall seconds ``fit_s``, ``predict_s``, ``evaluate_s``, ``peak_rss_mb``,
      ``images_per_s_predict``, ``predict_ms_per_image``, and CPU seconds ``fit_cpu_s``, ``predict_cpu_s``
      (user + sys: steadier across machines than wall time); None when not recorded;
    - ``run_key``, ``git_commit``, ``created`` (ISO time), ``sweep`` and ``point`` (a sweep's name and grid
      point folder; None for ``<folder>/runs`` records).

    ``folder``: a results folder (default: ``$SKINBENCH_RESULTS`` or ./skinbench-results); ``sweeps``: also
    the sweep grid points under ``<folder>/sweeps/``.
    """
    import pandas as pd

    from skinbench.paths import results_dir
    from skinbench.results.records import load_records
    from skinbench.results.tables import CROSS, contributed_by, load_sweep_records

    root = Path(folder) if folder is not None else results_dir()
    if not root.is_dir():
        raise ConfigError(f"no results folder {root}", fix="pass the folder given to run(..., results=...) or --results")
    entries = [(r, None, None) for r in load_records(root)]
    if sweeps:
        entries += [(p.record, p.sweep, p.point) for p in load_sweep_records(root)]
    rows = []
    for r, sweep, point in entries:
        primary = info.TASKS[r.task].primary_metric if r.task in info.TASKS else None
        base = {"task": r.task, "dataset": r.dataset,
                "test_set": r.dataset.split(CROSS, 1)[1] if CROSS in r.dataset else r.dataset,
                "target": r.target, "approach": r.approach, "family": r.family,
                "origin": contributed_by(r) or info.SUITE, "title": r.title, "status": r.status,
                "reason": r.reason or None, "seed": r.seed, "limit": r.limit, "n_train": r.split.get("n_train"),
                "n_test": r.split.get("n_test"), "params": r.params,
                **{c: r.timings.get(c) for c in COST_COLUMNS},
                **{c: (r.timings.get("cpu") or {}).get(k) for k, c in CPU_COLUMNS.items()},
                "run_key": r.run_key, "git_commit": r.versions.get("git_commit"), "created": r.created or None,
                "sweep": sweep, "point": point}
        metrics = r.metrics if r.ok else {}
        if not metrics:
            rows.append({**base, "metric": None, "value": None, "ci_low": None, "ci_high": None, "primary": False})
        for m in metrics:
            lo, hi = r.ci(m)
            rows.append({**base, "metric": m, "value": r.value(m), "ci_low": lo, "ci_high": hi,
                         "primary": m == primary})
    columns = ["task", "dataset", "test_set", "target", "approach", "family", "origin", "title", "status", "reason",
               "metric", "value", "ci_low", "ci_high", "primary", "seed", "limit", "n_train", "n_test", "params",
               *COST_COLUMNS, *CPU_COLUMNS.values(), "run_key", "git_commit", "created", "sweep", "point"]
    return pd.DataFrame(rows, columns=columns)
