"""``python -m skinbench``: list, run, demo, table, predict, data verify.

User errors print one line (``skinbench: error: ...``) and exit 2; an interrupt exits 130 and leaves
nothing half-written (records are atomic, caches are per-item).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from skinbench import __version__, info
from skinbench.errors import ConfigError, SkinbenchError

#: approaches the demo runs on the synthetic default: fast on 2 CPU cores, no weights download
DEMO_APPROACHES = {
    "task1": ["majority", "stratified", "bovw"],
    "task2": ["majority", "stratified", "bovw"],
    "task3": ["all-background", "all-foreground"],
    "task4": ["all-background", "all-foreground", "ellipse", "classical-seg"],
}


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``--param k=v`` pairs; values parsed as JSON when they can be (numbers, lists, true/false)."""
    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param {item!r} is not KEY=VALUE", fix="write e.g. --param vocab_size=300")
        key, value = item.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="dataset name (default: the task's own; see `list`)")
    p.add_argument("--data-root", help="folder holding the datasets (default: $SKINBENCH_DATA or ../shared/data)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skinbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"skinbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="tasks, datasets and approaches")

    p = sub.add_parser("run", help="run approaches on a task, write records, regenerate its tables")
    p.add_argument("task", help="task1 | task2 | task3 | task4")
    p.add_argument("--approach", "-a", action="append", required=True,
                   help="approach name (repeatable), or 'all' for every approach of the task")
    _add_data_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="override an estimator hyper-parameter")
    p.add_argument("--target", help="segmentation target (default: all of the task's)")
    p.add_argument("--limit", type=int, help="at most N train and N test images (quick runs)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--results", help="results folder (default: results/ or $SKINBENCH_RESULTS)")
    p.add_argument("--predictions", help="also write ISIC submission files (CSV / mask PNGs) here")

    p = sub.add_parser("demo", help="every task on the built-in synthetic data (no download); prints tables")
    p.add_argument("--results", help="where to write (default: a temporary folder)")
    p.add_argument("--n-images", type=int, default=160, help="synthetic images to generate")

    p = sub.add_parser("smoke", help="every task x approach on tiny synthetic data (CI); non-zero if one fails")
    p.add_argument("--results", help="where to write (default: a temporary folder)")
    p.add_argument("--task", action="append", help="only these tasks")
    p.add_argument("--approach", "-a", action="append", help="only these approaches")

    p = sub.add_parser("table", help="regenerate comparison tables and plots from stored records")
    p.add_argument("task", nargs="?", help="only this task")
    p.add_argument("--results", help="results folder (default: results/)")

    p = sub.add_parser("predict", help="fit on train, write test predictions in the ISIC submission layout")
    p.add_argument("task")
    p.add_argument("--approach", "-a", required=True)
    p.add_argument("--out", required=True, help="folder for the CSV / PNG masks")
    _add_data_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--limit", type=int)

    p = sub.add_parser("data", help="dataset utilities")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    v = dsub.add_parser("verify", help="check a data folder against its manifest (missing, extra, checksums)")
    v.add_argument("dataset")
    v.add_argument("--data-root")
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    print(tabulate([(t.name, t.kind, t.title, t.default_dataset, ", ".join(t.targets) or "-")
                    for t in info.TASKS.values()], ["task", "kind", "title", "default dataset", "targets"]))
    print()
    print(tabulate([(d.name, d.title, d.source) for d in info.DATASETS.values()], ["dataset", "title", "source"]))
    print()
    print(tabulate([(a.name, a.family, ", ".join(a.tasks), a.title, a.needs or "-")
                    for a in info.APPROACHES.values()], ["approach", "family", "tasks", "title", "needs"]))
    return 0


def _approach_names(task: str, requested: Sequence[str]) -> list[str]:
    if "all" in requested:
        return info.approaches_for(task)
    return list(requested)


def _print_tables(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.suffix == ".md" and path.name != "README.md":
            print(path.read_text())


def cmd_run(args: argparse.Namespace) -> int:
    from skinbench import runner
    from skinbench.results.tables import render_tables

    info.task(args.task)
    names = _approach_names(args.task, args.approach)
    for name in names:  # validate every name before any work starts
        runner.resolve(args.task, name, args.dataset)
    params = _parse_params(args.param)
    failures = 0
    for name in names:
        print(f"== {args.task} / {name}", file=sys.stderr)
        try:
            paths = runner.run(args.task, name, dataset=args.dataset, data_root=args.data_root, seed=args.seed,
                               params=params or None, target=args.target, limit=args.limit, n_boot=args.n_boot,
                               results_root=args.results, predictions_dir=args.predictions)
        except SkinbenchError as err:
            if len(names) == 1:
                raise
            failures += 1
            print(f"skinbench: {name} skipped: {err}", file=sys.stderr)
            continue
        for path in paths:
            print(f"wrote {path}", file=sys.stderr)
    _print_tables(render_tables(args.results, task=args.task))
    return 1 if failures == len(names) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from skinbench import runner
    from skinbench.results.tables import render_tables

    root = Path(args.results or tempfile.mkdtemp(prefix="skinbench-demo-"))
    for task, names in DEMO_APPROACHES.items():
        dataset_kwargs = {"n_images": args.n_images}
        for name in names:
            print(f"== {task} / {name} (synthetic)", file=sys.stderr)
            runner.run(task, name, dataset="synthetic", results_root=root, n_boot=200,
                       dataset_kwargs=dataset_kwargs)
    _print_tables(render_tables(root))
    print(f"records, tables and plots: {root}", file=sys.stderr)
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """Seconds-long runs of everything registered, with each approach's ``smoke_params``."""
    from skinbench import runner
    from skinbench.results.tables import render_tables

    root = Path(args.results or tempfile.mkdtemp(prefix="skinbench-smoke-"))
    failed = []
    for task in args.task or list(info.TASKS):
        for name in info.approaches_for(task):
            if args.approach and name not in args.approach:
                continue
            print(f"== smoke {task} / {name}", file=sys.stderr)
            try:
                runner.run(task, name, dataset="synthetic", results_root=root, n_boot=50, limit=24,
                           params=info.approach(name).smoke_params or None, dataset_kwargs={"n_images": 48})
            except Exception as err:  # report every failure, then fail the whole smoke run
                failed.append(f"{task}/{name}: {type(err).__name__}: {err}")
                print(f"FAILED {failed[-1]}", file=sys.stderr)
    _print_tables(render_tables(root))
    for line in failed:
        print(f"skinbench smoke: FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def cmd_table(args: argparse.Namespace) -> int:
    from skinbench.results import render_all
    from skinbench.results.records import load_records

    if args.task:
        info.task(args.task)
    if not load_records(args.results, task=args.task):
        raise ConfigError("no records to tabulate", fix="run `python -m skinbench run TASK --approach NAME` first")
    _print_tables(render_all(args.results, task=args.task))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from skinbench import runner

    out = Path(args.out)
    with tempfile.TemporaryDirectory() as scratch:
        runner.run(args.task, args.approach, dataset=args.dataset, data_root=args.data_root, seed=args.seed,
                   params=_parse_params(args.param) or None, limit=args.limit, results_root=scratch,
                   predictions_dir=out)
    print(f"predictions written to {out}", file=sys.stderr)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from skinbench.data.verify import verify

    report = verify(args.dataset, args.data_root)
    print(report)
    return 0 if report.usable else 1


COMMANDS = {"list": cmd_list, "run": cmd_run, "demo": cmd_demo, "smoke": cmd_smoke, "table": cmd_table, "predict": cmd_predict,
            "data": cmd_data}


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM behaves like Ctrl-C: workers stop, nothing half-written, exit 130."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SkinbenchError as err:
        print(f"skinbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skinbench: interrupted; finished records and caches are intact, a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
