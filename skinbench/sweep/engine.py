"""The client side: :func:`run_sweep` checks every point's currency, runs those not current in-process
(``engine="local"``, ``--workers 0``) or on Dask (a ``LocalCluster`` or a running scheduler), lands the
outputs and returns a :class:`Summary`.

Execution on Dask: one process per worker, one task at a time per worker, and the numeric libraries of
each worker limited to ``cores // workers`` threads (:func:`skinbench.sweep.work.thread_env`). Fault
tolerance comes from the engine: points are submitted with bounded ``retries`` (exceptions) and the
scheduler's ``allowed-failures`` (a worker that dies mid-point is rescheduled on a fresh worker). The
data must be reachable at the data root on every worker: that is checked up front, with one error naming
the workers that lack it. Nothing lands until a point has finished. Dask is imported only inside the
functions that use it (start-up cost). Like benchopt's ``runner.py`` + ``parallel_backends/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from skinbench import info
from skinbench import params as params_
from skinbench.environment import check_clean_tree
from skinbench.errors import ConfigError, DataError
from skinbench.provenance import RunSpec
from skinbench.sweep.points import Point
from skinbench.sweep import work
from skinbench.sweep.work import (PointResult, _first_line, _load, check_data_root, dataset_kwargs_for, thread_env,
                                  validation_key, validation_path)

DEFAULT_RETRIES = 2

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
    #: point id -> the user error (:class:`~skinbench.errors.SkinbenchError`) that failed it, so an
    #: in-process caller (``run``, regenerate) can raise it or act on its kind (a WeightsError)
    errors: dict[str, BaseException] = field(default_factory=dict)

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
    #: a learning-curve point's (fraction, seed, limit, digest of its training subset), made where the data
    #: is (:func:`skinbench.provenance.subset_digest` reads it); None for every other point
    train_subset: tuple[float, int, int | None, str] | None = None

    @classmethod
    def of(cls, ds: Any, spec: RunSpec | None = None) -> "DataRef":
        """The reference of a loaded Dataset; for ``spec`` with a fraction, also its training subset's digest."""
        from skinbench.provenance import subset_digest

        digest = subset_digest(spec, ds) if spec is not None else None
        subset = (spec.fraction, spec.seed, spec.limit, digest) if spec is not None and digest is not None else None
        return cls(ds.name, ds.manifest_digest, tuple(ds.class_names), ds.data_slug, subset)


class _Digests:
    """The :class:`DataRef` of each (dataset, adapter kwargs) and learning-curve subset, computed locally
    when the data is here (each dataset loaded once)."""

    def __init__(self, data_root: str | None, dataset_kwargs: Mapping[str, Any] | None):
        self.data_root, self.dataset_kwargs = data_root, dict(dataset_kwargs or {})
        self.known: dict[str, DataRef] = {}
        self.loaded: dict[str, Any] = {}

    def data_key(self, spec: RunSpec) -> str:
        """Which loaded data a point reads: its dataset and adapter kwargs."""
        kwargs = dataset_kwargs_for(spec.task, spec.dataset_name, self.dataset_kwargs)
        return json.dumps([spec.dataset_name, kwargs], sort_keys=True, default=str)

    def key(self, spec: RunSpec) -> str:
        """Which reference a point needs: its data, and a learning-curve point's subset."""
        subset = None if spec.fraction is None else [spec.fraction, spec.seed, spec.limit]
        return json.dumps([self.data_key(spec), subset], default=str)

    def local(self, spec: RunSpec, strict: bool = False) -> DataRef | None:
        """The data's reference, loaded here; None when it does not load (``strict``: its DataError)."""
        key = self.key(spec)
        if key not in self.known:
            data_key = self.data_key(spec)
            try:
                if data_key not in self.loaded:
                    self.loaded[data_key] = _load(spec.dataset_name, spec.task, self.data_root, self.dataset_kwargs)
                self.known[key] = DataRef.of(self.loaded[data_key], spec)
            except DataError:
                if strict:
                    raise
                return None
        return self.known[key]

    def remote(self, client: Any, spec: RunSpec) -> DataRef:
        key = self.key(spec)
        if key not in self.known:
            self.known[key] = client.submit(_remote_ref, spec.dataset_name, spec.task, self.data_root,
                                            self.dataset_kwargs, spec, pure=False).result()
        return self.known[key]


def _remote_ref(dataset: str, task: str, data_root: str | None, dataset_kwargs: Mapping[str, Any],
                spec: RunSpec | None = None) -> DataRef:
    return DataRef.of(_load(dataset, task, data_root, dataset_kwargs), spec)


def point_currency(point: Point, root: Path, data: DataRef) -> Any:
    """The :class:`~skinbench.results.currency.Currency` of one point under the results root: the one
    currency check (:func:`skinbench.results.currency.check`) for ``run``, ``smoke``, ``sweep`` and
    regenerate. ``data``: its :class:`DataRef` (or the loaded Dataset), which names the records' data
    folder as the runner does."""
    from skinbench.results import currency

    base = root / point.out if point.out else root
    if point.work == "validation":
        path = base / validation_path(point.spec, data)
        key, _ = validation_key(point.spec, data)
        try:
            stored = json.loads(path.read_text()).get("run_key")
        except (OSError, ValueError):
            return currency.Currency(point.spec, "missing", [f"no row at {path}"], [path])
        return currency.Currency(point.spec, "current" if stored == key else "stale",
                                 [] if stored == key else ["run key differs"], [path])
    return currency.check(point.spec, base, data)


def point_status(point: Point, root: Path, data: DataRef) -> tuple[bool, list[str], list[Path]]:
    """(current, reasons, output paths) of one point under the results root (:func:`point_currency`)."""
    state = point_currency(point, root, data)
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


class Reporter:
    """What a sweep tells its caller as points run (every method a no-op here): the sweep's own bar
    (:class:`_Bar`), or a command's own lines (``run``'s ``== task / approach`` and ``wrote PATH``,
    regenerate's ``== task/approach`` and seconds). ``finished`` may raise to stop an in-process sweep
    (``run`` with one approach stops at its error, as a single run does)."""

    def begin(self, total: int) -> None:
        """``total`` points are about to run."""

    def set_running(self, n: int) -> None:
        """``n`` points are running now."""

    def started(self, point: Point) -> None:
        """``point`` starts (in-process) or is submitted (Dask)."""

    def finished(self, point: Point, result: PointResult | None, error: str | None, paths: Sequence[Path]) -> None:
        """``point`` finished: its result (None when the work function itself raised), the one-line cause
        of a failure, and the files that landed."""

    def close(self) -> None:
        """The sweep is over (or interrupted)."""


class _Bar(Reporter):
    """Points done / running / failed: a tqdm bar on a terminal, one line per finished point otherwise."""

    def __init__(self, enabled: bool = True):
        self.total, self.n, self.failed, self.running = 0, 0, 0, 0
        self.enabled = enabled
        self.bar: Any = None

    def begin(self, total: int) -> None:
        from skinbench.progress import is_tty

        self.total = total
        if self.enabled and is_tty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="sweep", unit=" point", file=sys.stderr)
            self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"running {self.running}, failed {self.failed}")

    def set_running(self, n: int) -> None:
        self.running = n
        self._postfix()

    def finished(self, point: Point, result: PointResult | None, error: str | None, paths: Sequence[Path]) -> None:
        pid, seconds = point.id, (result.seconds if result is not None else 0.0)
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


def add_allow_dirty(p: argparse.ArgumentParser) -> None:
    """``--allow-dirty`` (``sweep``, regenerate and the benchmark scripts built on sweeps): the escape of the
    clean-tree check :func:`run_sweep` makes (:func:`skinbench.environment.check_clean_tree`)."""
    p.add_argument("--allow-dirty", action="store_true",
                   help="write into the repository's results/ although the code has uncommitted changes "
                        "(records marked +dirty; for a scratch run)")


def run_sweep(points: Sequence[Point], results_root: str | os.PathLike, *, workers: int | None = None,
              threads: int | None = None, scheduler: str | None = None, retries: int = DEFAULT_RETRIES,
              data_root: str | None = None, dataset_kwargs: Mapping[str, Any] | None = None,
              command: str | None = None, engine: str = "dask", progress: bool | Reporter = True,
              work_fn: Callable[..., PointResult] | None = None, force: bool | Callable[[Point], bool] = False,
              dry_run: bool = False, allow_dirty: bool = False) -> Summary:
    """Run every point that is not current; write outputs under ``results_root``; return the summary.

    ``engine``: "dask" (a ``LocalCluster`` of ``workers`` processes, or the running ``scheduler``) or
    "local" (the same points one after another in this process: for debugging and the overhead
    benchmark, ``run``, ``smoke`` and regenerate with ``--workers 0``). ``work_fn`` replaces
    :func:`~skinbench.sweep.work.execute_point` (tests use it to kill a worker). ``force`` reruns current
    points too (a predicate: those it is true for; ``run`` reruns what it is asked, not the baselines it
    adds). ``progress``: the sweep's bar (True), nothing (False), or a :class:`Reporter`. ``dry_run``
    runs nothing: the summary holds the outputs of the points that
    are current (a sweep table can show points it was not asked to train) and why each other one is not.
    Writing into the repository's results/ from uncommitted code is refused unless ``allow_dirty``
    (:func:`skinbench.environment.check_clean_tree`, the check regenerate makes).
    """
    from skinbench.runner import command_as_typed

    start = time.perf_counter()
    root = Path(results_root)
    if not dry_run:
        check_clean_tree(root, allow_dirty)
    validate_points(points)
    command = command if command is not None else command_as_typed()
    work_fn = work_fn or work.execute_point  # looked up per call: one executor, which tests can spy on
    summary = Summary(total=len(points))
    digests = _Digests(data_root, dataset_kwargs)

    def classify(point: Point, data: DataRef) -> bool:
        current, reasons, paths = point_status(point, root, data)
        summary.outputs[point.id] = paths
        if current and (force(point) if callable(force) else force):
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
               dataset_kwargs: Mapping[str, Any] | None, command: str, summary: Summary,
               progress: bool | Reporter) -> None:
    bar = _reporter(progress, len(pending))
    try:
        for point in pending:
            bar.set_running(1)
            bar.started(point)
            try:
                result = work_fn(point, data_root, dataset_kwargs, command)
            except Exception as err:  # noqa: BLE001 - a point's failure is reported, the sweep goes on
                failed = PointResult(point.id, error=f"{type(err).__name__}: {_first_line(err)}", exception=err)
                _collect(failed, point, root, summary)
                bar.finished(point, failed, failed.error, [])
                continue
            _collect(result, point, root, summary)
            bar.set_running(0)
            bar.finished(point, result, summary.failed.get(point.id), _landed(summary, point))
    finally:
        bar.close()


def _landed(summary: Summary, point: Point) -> list[Path]:
    """The files a finished point landed (none when it failed)."""
    return [] if point.id in summary.failed else list(summary.outputs.get(point.id, []))


def _reporter(progress: bool | Reporter, total: int) -> Reporter:
    bar = progress if isinstance(progress, Reporter) else _Bar(bool(progress))
    bar.begin(total)
    return bar


def _failed(summary: Summary, point: Point, cause: str) -> None:
    summary.failed[point.id] = cause


def _collect(result: PointResult, point: Point, root: Path, summary: Summary) -> None:
    if result.error:
        _failed(summary, point, result.error)
        if result.exception is not None:
            summary.errors[point.id] = result.exception
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
              progress: bool | Reporter, retries: int) -> None:
    from distributed import as_completed

    bar = _reporter(progress, len(pending))
    run_id = uuid.uuid4().hex[:8]
    futures = {}
    for i, point in enumerate(pending):
        fut = client.submit(work_fn, point, data_root, dataset_kwargs, command, retries=retries, pure=False,
                            key=f"skinbench-point-{run_id}-{i:05d}")
        futures[fut.key] = (fut, point)
        bar.started(point)
    try:
        for fut in as_completed([f for f, _ in futures.values()]):
            point = futures[fut.key][1]
            result = None
            if fut.status == "finished":
                result = fut.result()
                _collect(result, point, root, summary)
            else:
                _failed(summary, point, _cause(fut.exception()))
            fut.release()
            bar.set_running(_running(client))
            bar.finished(point, result, summary.failed.get(point.id), _landed(summary, point))
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


def iter_records(summary: Summary, points: Iterable[Point]) -> Iterator[tuple[Point, Any]]:
    """``(point, RunRecord)`` for every record a sweep's points hold now (run now or kept as current)."""
    from skinbench.results.records import read_record

    for point in points:
        for path in summary.outputs.get(point.id, []):
            if path.suffix == ".json" and path.is_file() and point.work == "run":
                record = read_record(path)
                if record is not None:
                    yield point, record
