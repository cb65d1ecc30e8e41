"""The worker side: :func:`execute_point`, the one point executor of ``run``, ``smoke``, ``sweep`` and
``benchmarks/regenerate.py`` (on a Dask worker or in-process), and the validation work.

A point's records come back from the runner as objects (:data:`skinbench.runner.RECORD_SINK`, never
written on the worker) and its figures through a worker-local scratch folder; both are *returned*
(:class:`PointResult`) and the client lands them (:func:`skinbench.sweep.engine.land`), so results need no
shared filesystem and the results root is the only place a record is written. A user error (:class:`~skinbench.errors.SkinbenchError`) is deterministic: it is
reported in the result, not raised, so the engine does not retry it.

Runner, data and results modules are imported inside the functions (start-up cost: the CLI imports
this package to register ``sweep``).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from skinbench import info
from skinbench.errors import SkinbenchError
from skinbench.provenance import RunSpec
from skinbench.sweep.points import Point

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENCV_FOR_THREADS_NUM")
#: point kinds: "run" (runner.execute -> records) and "validation" (fit on part of train, score the rest)
#: held-out share of the training images for "validation" points (lesion-aware, stratified)
VALIDATION_FRACTION = 0.15

# ===================================================================================== the worker side

@dataclass
class PointResult:
    """What a worker sends back: the records and other files of one point (paths relative to its folder)."""

    point_id: str
    records: list[tuple[str, Any]] = field(default_factory=list)  # (relative path, RunRecord)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    seconds: float = 0.0
    worker: str = ""
    #: a user error (deterministic: reported, not retried)
    error: str | None = None
    #: that error itself (a SkinbenchError pickles by its message), for callers that act on its kind
    exception: BaseException | None = None


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a worker process whose numeric libraries may use ``threads`` threads."""
    env = {name: str(threads) for name in THREAD_VARS}
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["SKINBENCH_WORKER_THREADS"] = str(threads)
    env["SKINBENCH_PROGRESS"] = "0"  # the sweep's own bar reports progress, not every worker's stages
    # the client's level, else skinbench.quiet's 3: at 2 a worker prints oneDNN's ERROR-level
    # "DT_INT32 only on platforms with AVX-512" fallback line on CPUs without AVX-512
    env["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _limit_threads() -> None:
    """OpenCV's pool is sized at import; also size it from the environment once the worker runs.
    The CLI's start-up noise filter (TensorFlow banners) applies in workers too."""
    import warnings

    from skinbench import quiet

    quiet.install()
    # joblib inside a (daemonic) worker runs its loops in-process: what we want, workers are the parallelism
    warnings.filterwarnings("ignore", message="Inside a Dask worker with daemon=True", category=UserWarning)
    n = os.environ.get("SKINBENCH_WORKER_THREADS")
    if n:
        import cv2

        cv2.setNumThreads(int(n))


def execute_point(point: Point, data_root: str | None = None, dataset_kwargs: Mapping[str, Any] | None = None,
                  command: str = "") -> PointResult:
    """Run one point (on a worker or in-process) into a scratch folder and return its outputs.

    The scratch folder is deleted afterwards: nothing is written anywhere the client reads.
    """
    start = time.perf_counter()
    _limit_threads()
    result = PointResult(point.id, worker=_worker_name())
    try:
        with tempfile.TemporaryDirectory(prefix="skinbench-point-") as scratch:
            if point.work == "validation":
                rel, data = _validation_point(point, data_root, dataset_kwargs)
                result.files.append((rel, data))
            else:
                _run_point(point, Path(scratch), data_root, dataset_kwargs, command, result)
    except SkinbenchError as err:
        result.error = f"{type(err).__name__}: {_first_line(err)}"
        result.exception = err
    result.seconds = time.perf_counter() - start
    return result


def _run_point(point: Point, scratch: Path, data_root: str | None, dataset_kwargs: Mapping[str, Any] | None,
               command: str, result: PointResult) -> None:
    """The runner's records come back as objects (:data:`skinbench.runner.RECORD_SINK`: never written
    here, so the results root is the only place a record is written); figures (and any other file the
    run writes) are read from the scratch folder."""
    from skinbench import runner

    made: list[tuple[str, Any]] = []

    def keep(record: Any, path: Path) -> Path:
        made.append((path.relative_to(scratch).as_posix(), record))
        return path

    kwargs = dataset_kwargs_for(point.spec.task, point.spec.dataset_name, dataset_kwargs)
    token = runner.RECORD_SINK.set(keep)
    try:
        runner.execute(point.spec, data_root=data_root, results_root=scratch, command=command,
                       dataset_kwargs=kwargs, predictions_dir=point.predictions or None)
    finally:
        runner.RECORD_SINK.reset(token)
    result.records.extend(sorted(made, key=lambda item: item[0]))
    for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
        result.files.append((path.relative_to(scratch).as_posix(), path.read_bytes()))


def validation_key(spec: RunSpec, data: Any) -> tuple[str, dict[str, Any]]:
    """Run key of a validation point: the run's key inputs plus how the validation split is made.
    ``data``: the loaded Dataset or its :class:`DataRef` (a generic folder's classes enter the key)."""
    from skinbench import provenance

    inputs = {**provenance.dataset_key_inputs(spec, data), "work": "validation",
              "validation_fraction": VALIDATION_FRACTION}
    return provenance.run_key(inputs), inputs


def validation_path(spec: RunSpec, data: Any) -> str:
    """Where a validation point's row lands, relative to the point's folder: under the data's folder
    name (``data_slug`` of the Dataset or its :class:`DataRef`, the name its run records use)."""
    from skinbench.cache import make_key

    suffix = f"__seed{spec.seed}" if spec.seed else ""
    return f"{spec.task}/{data.data_slug}/{spec.approach}__{make_key(dict(spec.params), spec.limit)[:8]}{suffix}.json"


def _validation_point(point: Point, data_root: str | None,
                      dataset_kwargs: Mapping[str, Any] | None) -> tuple[str, bytes]:
    """Fit on the training images less a lesion-aware validation split, score that split (never test).

    Classification only; the row is a RunRecord (:func:`skinbench.runner.validation_record`: every score,
    what the fit chose, the split sizes), stored as records are, under :func:`validation_path`.
    """
    from skinbench import runner
    from skinbench.results.records import dumps

    spec = point.spec
    _, _, dataset = runner.resolve(spec.task, spec.approach, spec.dataset)
    ds = _load(dataset, spec.task, data_root, dataset_kwargs)
    _, inputs = validation_key(spec, ds)
    record = runner.validation_record(spec, ds, VALIDATION_FRACTION, inputs, label=point.label)
    return validation_path(spec, ds), dumps(record)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def check_data_root(data_root: str | None, datasets: Sequence[str]) -> str | None:
    """None when every dataset's folder is reachable from this process, else what is missing."""
    from skinbench.paths import data_root as resolve

    needed = [d for d in datasets if d != "synthetic"]
    if not needed:
        return None
    root = resolve(data_root)
    if not root.is_dir():
        return f"no data root {root}"
    missing = [d for d in needed if d != "generic" and not (root / info.dataset(d).folder).is_dir()
               and root.name != info.dataset(d).folder]
    return f"{root} has no {', '.join(info.dataset(d).folder + '/' for d in missing)}" if missing else None


def dataset_kwargs_for(task: str, dataset: str, dataset_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Adapter kwargs of a point's data: the task's registered ones, the sweep's, and for a user's generic
    folder the task (an official ISIC ground truth maps its diagnoses to the task's classes, as ``run``
    passes it)."""
    task_kwargs = {"task": task} if dataset == "generic" else {}
    return {**info.task(task).dataset_kwargs.get(dataset, {}), **task_kwargs, **dict(dataset_kwargs or {})}


def _load(dataset: str, task: str, data_root: str | None, dataset_kwargs: Mapping[str, Any] | None) -> Any:
    from skinbench.data import load_dataset

    return load_dataset(dataset, data_root, **dataset_kwargs_for(task, dataset, dataset_kwargs))
