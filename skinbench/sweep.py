"""Sweeps: tasks x approaches x seeds x a parameter grid, run as points on Dask distributed.

A sweep is data (:class:`SweepConfig`, from command-line arguments or a small TOML file). It expands to
:class:`Point` s, each one :class:`~skinbench.provenance.RunSpec` with a stable id. Before anything runs,
every point is checked with :func:`skinbench.results.currency.check`; a current point is skipped, so an
interrupted sweep resumes where it stopped and a rerun of a finished one does no work (it does not even
start a cluster when the client can read the data).

Execution: a ``LocalCluster`` (one process per worker, one task at a time per worker, and the numeric
libraries of each worker limited to ``cores // workers`` threads through the usual environment
variables, so TensorFlow, OpenCV and BLAS do not oversubscribe the cores), or any running scheduler
(``--scheduler tcp://HOST:PORT``, e.g. started by dask-jobqueue on Slurm). Workers run the point into a
worker-local scratch folder and *return* the records and figures; the client writes them atomically
under the results root, so results need no shared filesystem. The data must be reachable at the data
root on every worker: that is checked up front, with one error naming the workers that lack it.

Fault tolerance comes from the engine: points are submitted with bounded ``retries`` (exceptions) and
the scheduler's ``allowed-failures`` (a worker that dies mid-point: the point is rescheduled on a fresh
worker). A user error (:class:`~skinbench.errors.SkinbenchError`) is deterministic, so it is reported,
not retried. Nothing lands until a point has finished; the summary lists every failed point with a
one-line cause.

This module imports no Dask (nor TensorFlow) at import time: the CLI registers ``sweep`` cheaply, so the
runner, data and results modules are imported inside the functions that use them (start-up cost).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from skinbench import info
from skinbench import params as params_
from skinbench.errors import ConfigError, DataError, SkinbenchError
from skinbench.provenance import RunSpec

#: environment variables that size the thread pools of the numeric libraries a worker may load
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENCV_FOR_THREADS_NUM")
#: point kinds: "run" (runner.execute -> records) and "validation" (fit on part of train, score the rest)
WORKS = ("run", "validation")
#: held-out share of the training images for "validation" points (lesion-aware, stratified)
VALIDATION_FRACTION = 0.15
DEFAULT_RETRIES = 2


# ===================================================================================== what a sweep is

@dataclass(frozen=True)
class Point:
    """One unit of work: a run spec, what to do with it, and where (under the results root) it lands.

    ``out`` is a folder relative to the results root ("" = the root itself: the point's records are the
    suite's ordinary rows). Grid points land in their own folder, because a record's path names task,
    dataset, approach, target and seed but not parameters (see :attr:`SweepConfig.out`).
    """

    spec: RunSpec
    work: str = "run"
    out: str = ""
    #: for tables: a short name of the point (not part of its identity)
    label: str = ""

    @property
    def id(self) -> str:
        head = f"{self.out}:" if self.out else ""
        kind = "" if self.work == "run" else f"{self.work}:"
        return f"{kind}{head}{self.spec.id}" + (f"/{self.spec.target}" if self.spec.target else "")


@dataclass
class SweepConfig:
    """A sweep as data: the product of tasks, approaches, seeds, targets and a parameter grid."""

    tasks: list[str]
    approaches: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    #: ``{name: [values]}``: every combination is one point (per task, approach, seed); values are typed
    #: per approach as ``-p`` values are (:func:`skinbench.params.validate_params`: text or typed)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    #: fixed parameter overrides for every point that takes them (no grid: they are the point's params)
    params: dict[str, Any] = field(default_factory=dict)
    #: one point per target (segmentation) instead of one point doing every target of the task
    targets: list[str] | None = None
    dataset: str | None = None
    limit: int | None = None
    n_boot: int = 1000
    name: str = "sweep"
    #: where points land, relative to the results root; ``str.format`` fields: name, label (``k=v,...`` of
    #: the point's parameters, fixed and grid), task, approach, seed and every grid key. None (the rule):
    #: a point with grid values lands in "sweeps/{name}/{label}" (one folder per grid point, which
    #: ``table`` shows as a sweep table, one row per point); a point without grid values (no grid, or an
    #: approach that has none of the grid's parameters) lands in the results root, as ``run`` with the
    #: same ``-p`` values would file it: fixed ``-p`` values alone do not make a grid point.
    out: str | None = None
    work: str = "run"

    def points(self) -> list[Point]:
        """Every point, in a stable order; approaches that do not do a task are left out of it."""
        if self.work not in WORKS:
            raise ConfigError(f"unknown sweep work {self.work!r}", fix=f"use one of: {', '.join(WORKS)}")
        for t in self.tasks:
            info.task(t)
        names = self._approaches()
        pairs = [(task, approach) for task in self.tasks
                 for approach in (names if names != ["all"] else info.approaches_for(task))
                 if task in info.approach(approach).tasks]
        # every name and value is checked before any point exists, as `run -p` checks them
        every = sorted({a for _, a in pairs})
        params_.check_names(every, self.tasks[0] if self.tasks else None, self.params)
        params_.check_names(every, self.tasks[0] if self.tasks else None,
                            {k: (v[0] if v else "") for k, v in self.grid.items()}, option="-g")
        for key, values in self.grid.items():
            if not values:
                raise ConfigError(f"grid axis {key!r} has no values", fix=f"write e.g. -g {key}=V1,V2")
        keys = sorted(self.grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))] or [{}]
        out: list[Point] = []
        for task, approach in pairs:
            targets = self.targets or [None]
            sig = params_.approach_signature(approach)
            # a parameter applies to the approaches that have it (baselines beside a BoVW grid run once);
            # values are typed per approach (`-g C_grid=1,10` is two points, [1.0] and [10.0])
            mine = list({json.dumps(c, sort_keys=True, default=str): c for c in (
                params_.validate_params(approach, task, {k: v for k, v in c.items() if k in sig}, option="-g")
                for c in combos)}.values())
            fixed = params_.validate_params(approach, task, {k: v for k, v in self.params.items() if k in sig})
            for combo, seed, target in itertools.product(mine, self.seeds, targets):
                params = {**fixed, **combo}
                spec = RunSpec(task, approach, self.dataset, int(seed), params, target, self.limit, self.n_boot)
                label = point_label(params)
                fields_ = {"name": self.name, "label": label, "task": task, "approach": approach,
                           "seed": seed, **{k: _slug(v) for k, v in combo.items()}}
                template = self.out if self.out is not None else ("sweeps/{name}/{label}" if combo else "")
                try:
                    folder = template.format(**fields_)
                except (KeyError, IndexError) as err:
                    raise ConfigError(f"output template {template!r} names an unknown field {err}",
                                      fix=f"use fields: {', '.join(fields_)}") from None
                out.append(Point(spec, self.work, _safe_folder(folder), label or approach))
        if not out:
            raise ConfigError("the sweep has no points (no approach does any of its tasks)",
                              fix="see `python -m skinbench list` for which approach does which task")
        ids = [p.id for p in out]
        if len(set(ids)) != len(ids):
            raise ConfigError("two sweep points share an id (repeated values in the grid or seeds?)",
                              fix="list each seed and grid value once")
        return out

    def _approaches(self) -> list[str]:
        if not self.approaches:
            raise ConfigError("a sweep needs at least one approach", fix="pass -a NAME (or -a all)")
        if "all" in self.approaches:
            return ["all"]
        for a in self.approaches:
            ainfo = info.approach(a)
            if not set(ainfo.tasks) & set(self.tasks):
                raise ConfigError(f"approach {a!r} does none of the sweep's tasks {self.tasks}",
                                  fix=f"it does: {', '.join(ainfo.tasks)}")
        return list(self.approaches)


def point_label(params: Mapping[str, Any]) -> str:
    """``k=v,k=v`` of a point's parameters (sorted): its folder name and table label."""
    return ",".join(f"{k}={_slug(v)}" for k, v in sorted(params.items()))


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-") or "x"


def _safe_folder(folder: str) -> str:
    parts = [p for p in Path(folder).parts if p not in ("", ".")]
    if any(p == ".." for p in parts) or Path(folder).is_absolute():
        raise ConfigError(f"sweep output folder {folder!r} must stay inside the results root",
                          fix="use a relative folder without '..'")
    return "/".join(parts)


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``-g key=v1,v2`` items -> ``{key: ["v1", "v2"]}`` as text (``-g x=[1,2],[3,4]`` gives two list
    values). The text is typed per approach by :func:`skinbench.params.validate_params` when the points
    are made, exactly as a ``-p`` value is (:func:`skinbench.params.parse_assignments`)."""
    grid: dict[str, list[str]] = {}
    for key, text in params_.parse_assignments(list(items), example="-g n_words=100,300").items():
        values = params_.split_values(text)
        if any(v == "" for v in values):
            raise ConfigError(f"-g {key}={text} has an empty value", fix="write e.g. -g n_words=100,300")
        grid[key] = values
    return grid


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep TOML file as a dict of :class:`SweepConfig` fields (plus run options: workers, ...)."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("sweep config file not found", path=path, fix="check the --config path") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML ({err})", path=path, fix="see the Sweeps section of README.md") from None
    known = set(SweepConfig.__dataclass_fields__) | set(RUN_OPTIONS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown sweep setting(s) {unknown}", path=path, fix=f"valid: {', '.join(sorted(known))}")
    for key in ("grid",):
        if key in data:
            data[key] = {k: (v if isinstance(v, list) else [v]) for k, v in data[key].items()}
    return data


#: settings of a TOML file that are about how to run, not what
RUN_OPTIONS = ("workers", "threads", "scheduler", "retries", "results", "data_root", "dataset_kwargs")


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
    result.seconds = time.perf_counter() - start
    return result


def _run_point(point: Point, scratch: Path, data_root: str | None, dataset_kwargs: Mapping[str, Any] | None,
               command: str, result: PointResult) -> None:
    from skinbench import runner
    from skinbench.results.records import RunRecord

    kwargs = dataset_kwargs_for(point.spec.task, point.spec.dataset_name, dataset_kwargs)
    paths = runner.execute(point.spec, data_root=data_root, results_root=scratch, command=command,
                           dataset_kwargs=kwargs)
    records = {Path(p).resolve() for p in paths}
    for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
        rel = path.relative_to(scratch).as_posix()
        if path.resolve() in records:
            result.records.append((rel, RunRecord.from_file(path)))
        else:
            result.files.append((rel, path.read_bytes()))


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


# ===================================================================================== the client side

@dataclass
class Summary:
    """What a sweep did: points run, kept (current), failed (with a one-line cause), and where outputs are."""

    total: int = 0
    done: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: point id -> the files that hold its results (records or validation rows), absolute paths
    outputs: dict[str, list[Path]] = field(default_factory=dict)
    #: point id -> why it had to run (missing / stale and which input changed)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    engine: str = ""
    point_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        head = (f"sweep: {self.total} points: {len(self.done)} run, {len(self.current)} current (kept), "
                f"{len(self.failed)} failed in {self.seconds:.0f} s ({self.engine})")
        out = [head]
        if self.failed:
            out.append("failed points (rerun the same command to retry them; finished points are kept):")
            out += [f"  {pid}: {cause}" for pid, cause in self.failed.items()]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True)
class DataRef:
    """What a point's currency check needs of its data, small enough to come back from a worker.

    ``data_slug`` is the loaded Dataset's own (:attr:`skinbench.data.base.Dataset.data_slug`, the name
    the runner files records under: ``generic-<folder>-<digest8>`` for a user's folder), so the check
    looks where the writer wrote; ``class_names`` because a generic folder's class order enters the
    run key. :func:`skinbench.results.currency.check` takes it in place of the Dataset.
    """

    name: str
    manifest_digest: str
    class_names: tuple[str, ...]
    data_slug: str

    @classmethod
    def of(cls, ds: Any) -> "DataRef":
        return cls(ds.name, ds.manifest_digest, tuple(ds.class_names), ds.data_slug)


class _Digests:
    """The :class:`DataRef` of each (dataset, adapter kwargs), computed locally when the data is here."""

    def __init__(self, data_root: str | None, dataset_kwargs: Mapping[str, Any] | None):
        self.data_root, self.dataset_kwargs = data_root, dict(dataset_kwargs or {})
        self.known: dict[str, DataRef] = {}

    def key(self, spec: RunSpec) -> str:
        kwargs = dataset_kwargs_for(spec.task, spec.dataset_name, self.dataset_kwargs)
        return json.dumps([spec.dataset_name, kwargs], sort_keys=True, default=str)

    def local(self, spec: RunSpec) -> DataRef | None:
        key = self.key(spec)
        if key not in self.known:
            try:
                self.known[key] = DataRef.of(_load(spec.dataset_name, spec.task, self.data_root, self.dataset_kwargs))
            except DataError:
                return None
        return self.known[key]

    def remote(self, client: Any, spec: RunSpec) -> DataRef:
        key = self.key(spec)
        if key not in self.known:
            self.known[key] = client.submit(_remote_ref, spec.dataset_name, spec.task, self.data_root,
                                            self.dataset_kwargs, pure=False).result()
        return self.known[key]


def dataset_kwargs_for(task: str, dataset: str, dataset_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Adapter kwargs of a point's data: the task's registered ones, the sweep's, and for a user's generic
    folder the task (an official ISIC ground truth maps its diagnoses to the task's classes, as ``run``
    passes it)."""
    task_kwargs = {"task": task} if dataset == "generic" else {}
    return {**info.task(task).dataset_kwargs.get(dataset, {}), **task_kwargs, **dict(dataset_kwargs or {})}


def _load(dataset: str, task: str, data_root: str | None, dataset_kwargs: Mapping[str, Any] | None) -> Any:
    from skinbench.data import load_dataset

    return load_dataset(dataset, data_root, **dataset_kwargs_for(task, dataset, dataset_kwargs))


def _remote_ref(dataset: str, task: str, data_root: str | None, dataset_kwargs: Mapping[str, Any]) -> DataRef:
    return DataRef.of(_load(dataset, task, data_root, dataset_kwargs))


def point_status(point: Point, root: Path, data: DataRef) -> tuple[bool, list[str], list[Path]]:
    """(current, reasons, output paths) of one point under the results root. ``data``: its
    :class:`DataRef` (or the loaded Dataset), which names the records' data folder as the runner does."""
    from skinbench.results import currency

    base = root / point.out if point.out else root
    if point.work == "validation":
        path = base / validation_path(point.spec, data)
        key, _ = validation_key(point.spec, data)
        try:
            stored = json.loads(path.read_text()).get("run_key")
        except (OSError, ValueError):
            return False, [f"no row at {path}"], [path]
        return stored == key, ([] if stored == key else ["run key differs"]), [path]
    state = currency.check(point.spec, base, data)
    return state.current, state.reasons, list(state.paths)


def validate_points(points: Sequence[Point]) -> None:
    """Names and parameters of every point checked before any work (one ConfigError for the first bad one)."""
    from skinbench import runner

    for p in points:
        runner.resolve(p.spec.task, p.spec.approach, p.spec.dataset)
        params_.validate_params(p.spec.approach, p.spec.task, dict(p.spec.params or {}))  # read from source
        known = info.task(p.spec.task).known_targets()
        if p.spec.target and p.spec.target not in known:
            raise ConfigError(f"{p.spec.task} has no target {p.spec.target!r}",
                              fix=f"targets: {', '.join(known) or '(none)'}")


def land(result: PointResult, point: Point, root: Path) -> list[Path]:
    """Write a finished point's outputs under the results root, each file atomically; figures first,
    records last, so a record (what :func:`point_status` reads) never lands without its figure."""
    from skinbench.cache import atomic_write_bytes
    from skinbench.results.records import dumps

    base = root / point.out if point.out else root
    written: list[Path] = []
    files = [(rel, data) for rel, data in result.files if _lands(rel, point.spec.seed)]
    staged = [(rel, dumps(rec)) for rel, rec in result.records]  # serialise everything before writing
    for rel, data in [*files, *staged]:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"point output {rel!r} escapes its folder")
    for rel, data in files:
        atomic_write_bytes(base / rel, data)
        if rel.endswith(".json"):
            written.append(base / rel)
    for rel, data in staged:
        atomic_write_bytes(base / rel, data)
        written.append(base / rel)
    return written


def _lands(rel: str, seed: int) -> bool:
    """Figures of a seed k > 0 run land only when their name says the seed
    (:func:`skinbench.results.plots.overlay_name` does), so the seed-0 figure stays the row's own."""
    return not seed or rel.endswith(".json") or f"seed{seed}" in Path(rel).name


class _Bar:
    """Points done / running / failed: a tqdm bar on a terminal, one line per finished point otherwise."""

    def __init__(self, total: int, enabled: bool = True):
        from skinbench.progress import is_tty

        self.total, self.n, self.failed, self.running = total, 0, 0, 0
        self.enabled = enabled
        self.bar = None
        if enabled and is_tty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="sweep", unit=" point", file=sys.stderr)
            self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"running {self.running}, failed {self.failed}")

    def set_running(self, n: int) -> None:
        self.running = n
        self._postfix()

    def finished(self, pid: str, seconds: float, error: str | None = None) -> None:
        self.n += 1
        self.failed += error is not None
        what = f"FAILED {pid}: {error}" if error else f"done {pid} ({seconds:.1f} s)"
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)
            if error:
                self.bar.write(f"skinbench sweep: {what}", file=sys.stderr)
        elif self.enabled:
            print(f"skinbench sweep: [{self.n}/{self.total}, running {self.running}, failed {self.failed}] {what}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def run_sweep(points: Sequence[Point], results_root: str | os.PathLike, *, workers: int | None = None,
              threads: int | None = None, scheduler: str | None = None, retries: int = DEFAULT_RETRIES,
              data_root: str | None = None, dataset_kwargs: Mapping[str, Any] | None = None,
              command: str | None = None, engine: str = "dask", progress: bool = True,
              work_fn: Callable[..., PointResult] | None = None, force: bool = False,
              dry_run: bool = False) -> Summary:
    """Run every point that is not current; write outputs under ``results_root``; return the summary.

    ``engine``: "dask" (a ``LocalCluster`` of ``workers`` processes, or the running ``scheduler``) or
    "local" (the same points one after another in this process: for debugging and the overhead
    benchmark). ``work_fn`` replaces :func:`execute_point` (tests use it to kill a worker). ``force``
    reruns current points too. ``dry_run`` runs nothing: the summary holds the outputs of the points that
    are current (a sweep table can show points it was not asked to train) and why each other one is not.
    """
    from skinbench.runner import command_as_typed

    start = time.perf_counter()
    root = Path(results_root)
    validate_points(points)
    command = command if command is not None else command_as_typed()
    work_fn = work_fn or execute_point
    summary = Summary(total=len(points))
    digests = _Digests(data_root, dataset_kwargs)

    def classify(point: Point, data: DataRef) -> bool:
        current, reasons, paths = point_status(point, root, data)
        summary.outputs[point.id] = paths
        if current and force:
            current, reasons = False, ["--force"]
        if current:
            summary.current.append(point.id)
        else:
            summary.reasons[point.id] = reasons
        return not current

    local_digests = {p.id: digests.local(p.spec) for p in points}
    pending = [p for p in points if local_digests[p.id] is not None and classify(p, local_digests[p.id])]
    unknown = [p for p in points if local_digests[p.id] is None]  # data not on the client: ask a worker
    if dry_run:
        for p in pending + unknown:
            summary.outputs.pop(p.id, None)
            summary.reasons.setdefault(p.id, ["data not reachable here"])
        summary.engine = "dry run"
        summary.seconds = time.perf_counter() - start
        return summary
    if not pending and not unknown:
        summary.engine = "nothing to run"
        summary.seconds = time.perf_counter() - start
        return summary

    datasets = sorted({p.spec.dataset_name for p in points})
    if engine == "local":
        summary.engine = "in-process"
        problem = check_data_root(data_root, datasets)
        if problem:
            raise DataError(f"data not reachable: {problem}", fix="pass --data-root or set $SKINBENCH_DATA")
        for p in unknown:  # the data is here (checked above) but does not load: the point reports why
            summary.reasons[p.id] = ["data not readable here"]
        pending += unknown
        _run_local(pending, root, work_fn, data_root, dataset_kwargs, command, summary, progress)
    elif engine == "dask":
        with _client(workers, threads, scheduler, retries) as client:
            summary.engine = _describe(client, scheduler)
            _check_workers(client, data_root, datasets)
            pending += [p for p in unknown if classify(p, digests.remote(client, p.spec))]
            _run_dask(client, pending, root, work_fn, data_root, dataset_kwargs, command, summary, progress,
                      retries)
    else:
        raise ConfigError(f"unknown sweep engine {engine!r}", fix="use 'dask' or 'local'")
    for pid in summary.failed:  # a failed point has no outputs of this sweep (a stale one may remain)
        summary.outputs.pop(pid, None)
    summary.seconds = time.perf_counter() - start
    return summary


def _run_local(pending: Sequence[Point], root: Path, work_fn: Callable[..., PointResult], data_root: str | None,
               dataset_kwargs: Mapping[str, Any] | None, command: str, summary: Summary, progress: bool) -> None:
    bar = _Bar(len(pending), progress)
    try:
        for point in pending:
            bar.set_running(1)
            try:
                result = work_fn(point, data_root, dataset_kwargs, command)
            except Exception as err:  # noqa: BLE001 - a point's failure is reported, the sweep goes on
                _failed(summary, point, f"{type(err).__name__}: {_first_line(err)}")
                bar.finished(point.id, 0.0, summary.failed[point.id])
                continue
            _collect(result, point, root, summary)
            bar.set_running(0)
            bar.finished(point.id, result.seconds, summary.failed.get(point.id))
    finally:
        bar.close()


def _failed(summary: Summary, point: Point, cause: str) -> None:
    summary.failed[point.id] = cause


def _collect(result: PointResult, point: Point, root: Path, summary: Summary) -> None:
    if result.error:
        _failed(summary, point, result.error)
        return
    summary.outputs[point.id] = land(result, point, root)
    summary.done.append(point.id)
    summary.point_seconds[point.id] = result.seconds


def _cause(err: BaseException) -> str:
    """One line for a failed future: the exception, or what the engine says about a dying worker."""
    name = type(err).__name__
    if name == "KilledWorker":
        return ("KilledWorker: the worker running it died every time it was tried (out of memory, or a "
                "crash in native code); see the worker logs")
    if name == "CancelledError":
        return "cancelled (the cluster went away?)"
    return f"{name}: {_first_line(err)}"


def _run_dask(client: Any, pending: Sequence[Point], root: Path, work_fn: Callable[..., PointResult],
              data_root: str | None, dataset_kwargs: Mapping[str, Any] | None, command: str, summary: Summary,
              progress: bool, retries: int) -> None:
    from distributed import as_completed

    bar = _Bar(len(pending), progress)
    run_id = uuid.uuid4().hex[:8]
    futures = {}
    for i, point in enumerate(pending):
        fut = client.submit(work_fn, point, data_root, dataset_kwargs, command, retries=retries, pure=False,
                            key=f"skinbench-point-{run_id}-{i:05d}")
        futures[fut.key] = (fut, point)
    try:
        for fut in as_completed([f for f, _ in futures.values()]):
            point = futures[fut.key][1]
            if fut.status == "finished":
                result = fut.result()
                _collect(result, point, root, summary)
                seconds = result.seconds
            else:
                _failed(summary, point, _cause(fut.exception()))
                seconds = 0.0
            fut.release()
            bar.set_running(_running(client))
            bar.finished(point.id, seconds, summary.failed.get(point.id))
    except KeyboardInterrupt:
        client.cancel([f for f, _ in futures.values()])
        raise
    finally:
        bar.close()


def _running(client: Any) -> int:
    """Points running now: those assigned to workers, at most one per worker thread."""
    try:
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        return min(threads, sum(len(v) for v in client.processing().values()))
    except Exception:  # noqa: BLE001 - only the progress display depends on it
        return 0


@contextmanager
def _client(workers: int | None, threads: int | None, scheduler: str | None, retries: int) -> Iterator[Any]:
    """A Dask client: on the running ``scheduler``, or on a LocalCluster started (and closed) here."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as err:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({_first_line(err)})",
                              fix="start it (dask scheduler / dask-jobqueue) or drop --scheduler") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or default_workers()
    per_worker = threads or max(1, (os.cpu_count() or 1) // n)
    # a worker that dies mid-point: the scheduler reschedules the point up to this many times
    with dask.config.set({"distributed.scheduler.allowed-failures": max(1, retries),
                          "distributed.worker.memory.target": False, "distributed.worker.memory.spill": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR, env=thread_env(per_worker))
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


def _describe(client: Any, scheduler: str | None) -> str:
    n = len(client.scheduler_info().get("workers", {}))
    return f"{n} worker{'s' if n != 1 else ''} at {scheduler}" if scheduler else \
        f"LocalCluster, {n} worker process{'es' if n != 1 else ''}"


def _check_workers(client: Any, data_root: str | None, datasets: Sequence[str]) -> None:
    """Every worker must reach the data: one DataError naming those that do not."""
    if not client.scheduler_info().get("workers"):
        client.wait_for_workers(1, timeout=60)
    answers = client.run(check_data_root, data_root, list(datasets))
    bad = {w: msg for w, msg in answers.items() if msg}
    if bad:
        worker, msg = next(iter(bad.items()))
        raise DataError(f"data not reachable on {len(bad)} of {len(answers)} workers ({worker}: {msg})",
                        fix="make the data root the same path on every worker (a shared filesystem or a "
                            "copy), or pass --data-root / set $SKINBENCH_DATA for the workers")


# ===================================================================================== the command

def add_engine_options(p: argparse.ArgumentParser, workers: int | None = 1) -> None:
    """How to run (not what): the options a benchmark script built on sweeps shares with ``sweep``."""
    p.add_argument("--workers", type=int, default=workers,
                   help="LocalCluster worker processes (0: in this process, without Dask)")
    p.add_argument("--scheduler", help="a running Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="retries of a failing point")
    p.add_argument("--data-root", help="folder holding the datasets, the same path on every worker")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run_sweep` keyword arguments from :func:`add_engine_options`' options."""
    local = args.workers == 0 and not args.scheduler
    return {"workers": args.workers or None, "scheduler": args.scheduler, "retries": args.retries,
            "data_root": args.data_root, "engine": "local" if local else "dask"}


def config_from_args(args: argparse.Namespace) -> tuple[SweepConfig, dict[str, Any]]:
    """The sweep and run options from ``--config`` (if any) overlaid with the command-line arguments."""
    data = load_config(args.config) if args.config else {}
    run = {k: data.pop(k) for k in RUN_OPTIONS if k in data}
    cli = {"tasks": args.tasks or None, "approaches": args.approach or None, "seeds": args.seeds,
           "dataset": args.dataset, "limit": args.limit, "n_boot": args.n_boot, "name": args.name,
           "out": args.out, "targets": args.target}
    if args.grid:
        data["grid"] = {**data.get("grid", {}), **parse_grid(args.grid)}
    if args.param:  # the same reading of -p as `run` (text, typed per approach when the points are made)
        data["params"] = {**data.get("params", {}), **params_.parse_assignments(args.param)}
    data.update({k: v for k, v in cli.items() if v is not None})
    if not data.get("tasks"):
        raise ConfigError("a sweep needs at least one task", fix="pass TASK... or tasks = [...] in --config")
    data.setdefault("approaches", [])
    try:
        config = SweepConfig(**data)
    except TypeError as err:
        raise ConfigError(f"bad sweep settings ({err})", fix="see the Sweeps section of README.md") from None
    for k in ("workers", "threads", "scheduler", "retries", "results", "data_root"):
        value = getattr(args, k, None)
        if value is not None:
            run[k] = value
    return config, run


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``sweep`` on the CLI's sub-parsers (its handler is set as ``args.handler``)."""
    p = sub.add_parser("sweep", help="tasks x approaches x seeds x grid; resumable, on Dask",
                       description=__doc__.splitlines()[0])
    p.add_argument("tasks", nargs="*", metavar="TASK", help="task1 ... task4 (or tasks = [...] in --config)")
    p.add_argument("--approach", "-a", nargs="+", action="extend", help="approach names, or 'all'")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default 0)")
    p.add_argument("--grid", "-g", action="append", default=[], metavar="KEY=V1,V2",
                   help="a parameter grid axis (repeatable; every combination is a point; each value is read "
                        "as a -p value: -g C_grid=[1,10],[0.1,1] is two points)")
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed override, read as `run -p` reads it (-p C_grid=1,10 is the list [1.0, 10.0]); "
                        "without a grid the point is filed in the results root, as `run -p` files it")
    p.add_argument("--target", nargs="+", help="one point per segmentation target")
    p.add_argument("--config", help="a TOML file with the same settings (command-line values win)")
    p.add_argument("--name", help="sweep name (default 'sweep'): grid points land in "
                                  "<results>/sweeps/<name>/<k=v,...>/, tabulated in <results>/tables/sweeps/")
    p.add_argument("--out", help="output folder template for points (fields: name, label, task, approach, seed, "
                                 "grid keys; default: grid points in sweeps/{name}/{label}, others in the root)")
    p.add_argument("--workers", type=int, help=f"LocalCluster worker processes (default {default_workers()}; "
                                               "0: run in this process without Dask)")
    p.add_argument("--threads", type=int, help="threads per worker for TensorFlow/OpenCV/BLAS (default cores // workers)")
    p.add_argument("--scheduler", help="a running Dask scheduler, tcp://HOST:PORT (e.g. started by dask-jobqueue)")
    p.add_argument("--retries", type=int, help=f"retries of a failing point (default {DEFAULT_RETRIES})")
    p.add_argument("--results", help="results folder (default: ./skinbench-results or $SKINBENCH_RESULTS)")
    p.add_argument("--dataset", help="dataset name (default: each task's own)")
    p.add_argument("--data-root", help="folder holding the datasets, the same path on every worker")
    p.add_argument("--limit", type=int, help="at most N train and N test images per point (quick runs)")
    p.add_argument("--n-boot", type=int, help="bootstrap resamples for the 95%% CIs (default 1000)")
    p.add_argument("--dry-run", action="store_true", help="list the points and whether each is current; run nothing")
    p.add_argument("--no-render", action="store_true", help="do not regenerate tables and the dashboard afterwards")
    p.set_defaults(handler=cmd_sweep)
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    """``python -m skinbench sweep``: exit 0 when every point is current or ran, 1 when any failed."""
    from skinbench.paths import user_results_root

    config, run = config_from_args(args)
    points = config.points()
    root = user_results_root(run.get("results"), check=not args.dry_run)  # a dry run only reads
    if args.dry_run:
        validate_points(points)
        digests = _Digests(run.get("data_root"), run.get("dataset_kwargs"))
        for p in points:
            data = digests.local(p.spec)
            state = "unknown (data not here)" if data is None else \
                ("current" if point_status(p, root, data)[0] else "to run")
            print(f"{p.id}\t{state}")
        return 0
    workers = run.get("workers")
    summary = run_sweep(points, root, workers=workers or None, threads=run.get("threads"),
                        scheduler=run.get("scheduler"), retries=run.get("retries", DEFAULT_RETRIES),
                        data_root=run.get("data_root"), dataset_kwargs=run.get("dataset_kwargs"),
                        command=getattr(args, "command_line", None) or None, engine="local" if workers == 0 and not run.get("scheduler") else "dask")
    print(summary, file=sys.stderr)
    if summary.done and not args.no_render:
        from skinbench.results.render import render_all
        from skinbench.results.tables import print_sweep_tables

        # the suite's tables when a point landed in the root; the sweep tables show the grid points
        written = render_all(root, dashboard=any(not p.out for p in points), sweeps=True)
        for path in written:
            if path.suffix == ".md" and path.name != "README.md":
                print(f"table: {path}", file=sys.stderr)
        print_sweep_tables(written, config.name)
    return 0 if summary.ok else 1


def iter_records(summary: Summary, points: Iterable[Point]) -> Iterator[tuple[Point, Any]]:
    """``(point, RunRecord)`` for every record a sweep's points hold now (run now or kept as current)."""
    from skinbench.results.records import read_record

    for point in points:
        for path in summary.outputs.get(point.id, []):
            if path.suffix == ".json" and path.is_file() and point.work == "run":
                record = read_record(path)
                if record is not None:
                    yield point, record
