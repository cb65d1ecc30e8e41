"""``python -m skinbench sweep``: the sub-command's parser and handler (like benchopt's ``cli/``), and the
engine options (``--workers``, ``--scheduler``, ...) that ``smoke`` and the benchmark scripts share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from skinbench import params as params_
from skinbench.errors import ConfigError
from skinbench.sweep import engine
from skinbench.sweep.engine import DEFAULT_RETRIES, add_allow_dirty, _Digests, default_workers, point_status, validate_points
from skinbench.sweep.points import RUN_OPTIONS, SweepConfig, load_config, parse_grid

#: the command's one-line description (``sweep --help``)
DESCRIPTION = "Sweeps: tasks x approaches x seeds x a parameter grid, run as points on Dask distributed."



def add_engine_options(p: argparse.ArgumentParser, workers: int | None = 1) -> None:
    """How to run (not what): the options a benchmark script built on sweeps shares with ``sweep``."""
    p.add_argument("--workers", type=int, default=workers,
                   help="LocalCluster worker processes (0: in this process, without Dask)")
    p.add_argument("--scheduler", help="a running Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="retries of a failing point")
    p.add_argument("--data-root", help="folder holding the datasets, the same path on every worker")
    add_allow_dirty(p)


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run_sweep` keyword arguments from :func:`add_engine_options`' options."""
    local = args.workers == 0 and not args.scheduler
    return {"workers": args.workers or None, "scheduler": args.scheduler, "retries": args.retries,
            "data_root": args.data_root, "engine": "local" if local else "dask",
            "allow_dirty": getattr(args, "allow_dirty", False)}


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
                       description=DESCRIPTION)
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
    add_allow_dirty(p)
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
    summary = engine.run_sweep(points, root, workers=workers or None, threads=run.get("threads"),
                        scheduler=run.get("scheduler"), retries=run.get("retries", DEFAULT_RETRIES),
                        data_root=run.get("data_root"), dataset_kwargs=run.get("dataset_kwargs"),
                        command=getattr(args, "command_line", None) or None, allow_dirty=args.allow_dirty,
                        engine="local" if workers == 0 and not run.get("scheduler") else "dask")
    print(summary, file=sys.stderr)
    if summary.done and not args.no_render:
        from skinbench.results.render import render_all
        from skinbench.results.tables import print_sweep_tables

        # the suite's tables when a point landed in the root; the sweep tables show the grid points
        written = render_all(root, dashboard=any(not p.out for p in points), sweeps=True)
        for path in written:
            if path.suffix == ".md" and path.name != "README.md":
                print(f"table: {path}", file=sys.stderr)
        print_sweep_tables(written.sweep_tables, root, config.name)
    return 0 if summary.ok else 1
