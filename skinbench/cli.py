"""``python -m skinbench``: list, run, demo, smoke, table, predict, data verify, sweep, score.

User errors print one line (``skinbench: error: ...``) and exit 2; an interrupt exits 130 and leaves
nothing half-written (records are atomic, caches are per-item). Before any work a run checks its names,
its ``-p`` parameters (:mod:`skinbench.params`) and its data (:func:`skinbench.data.base.check_for_task`:
labels, positive class, masks, every file readable). Tables print compactly on the terminal
(``Table.to_terminal``); the wide markdown and CSV stay in ``<results>/tables/``.

Commands import the rest of skinbench inside their functions, for start-up cost: ``list`` and ``--help``
load no NumPy, OpenCV, scikit-learn or TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any, Sequence

from skinbench import __version__, info
from skinbench.errors import ConfigError, SkinbenchError, StorageError
from skinbench.paths import check_writable, user_results_root
from skinbench.sweep.engine import Reporter, add_allow_dirty  # the CLI registers `sweep` anyway: no start-up cost

#: approaches the demo runs on the synthetic default: fast on 2 CPU cores, nothing to download, and for
#: each kind of task a deep row trained from scratch beside the classical ones (classification: the small
#: CNN; segmentation: the Keras U-Net), so the first minute already shows classical vs deep
DEMO_APPROACHES = {
    "task1": ["majority", "stratified", "bovw", "cnn-scratch"],
    "task2": ["majority", "stratified", "bovw"],
    "task3": ["all-background", "all-foreground"],  # a U-Net finds no globules in seconds: none shown
    "task4": ["all-background", "all-foreground", "ellipse", "classical-seg", "unet"],
}
#: demo settings sized to the synthetic data. BoVW's reference settings (K = 300 words, C from 0.1 up, made
#: for 900 real 384 px images) do not fit 120 training images of 128x96 px with ~150 SIFT descriptors
#: each: the word histograms are sparse, the validation grid picks the strongest regularisation (C = 0.1)
#: whose SVM decision values are almost constant, Platt scaling then returns about the training prior for
#: every image and, balanced, every image scores ~0.56 malignant (task1 accuracy 0.275 = the malignant
#: share, balanced accuracy 0.5, although the ranking is fine: AUC 0.77). A 50-word vocabulary and C >= 1
#: give task1 balanced accuracy ~0.9 (AUC ~0.93) on the 160-image demo set, clearly above the baselines.
#: The deep rows are sized to train in seconds on 2 cores: the CNN at 64 px, 3 blocks, a higher learning
#: rate (AUC ~0.9 on the demo set; balanced accuracy stays low, its probabilities sit near 0.5), the U-Net
#: at 48 px, width 8, depth 2, 10 epochs at learning rate 0.01 (mean Jaccard ~0.85 on the demo set in ~20 s).
DEMO_PARAMS: dict[str, dict[str, Any]] = {
    "bovw": {"n_words": 50, "C_grid": [1.0, 10.0, 100.0]},
    "cnn-scratch": {"input_size": 64, "depth": 3, "epochs": 30, "learning_rate": 3e-3, "patience": 10,
                    "augment": False, "dropout": 0.0},
    "unet": {"input_size": 48, "base_filters": 8, "depth": 2, "epochs": 10, "batch_size": 8, "learning_rate": 0.01,
             "patience": 0},
}
DEMO_N_IMAGES = 160
#: the smoke run: synthetic images generated, at most this many train / test images per run, bootstrap draws
SMOKE_N_IMAGES, SMOKE_LIMIT, SMOKE_N_BOOT = 48, 24, 50

#: example commands shown by ``--help`` (and checked, like the README's, by tests/test_cli_docs.py)
EXAMPLES = """\
examples:
  python -m skinbench list                                  tasks, datasets, approaches
  python -m skinbench list bovw                             an approach's parameters, defaults, per-task values
  python -m skinbench demo                                  every task on built-in synthetic data (about 1 min)
  python -m skinbench run task1 --approach bovw             fit on train, score on test, write a record + tables
  python -m skinbench run task1 -a bovw -p n_words=500      override a hyper-parameter
  python -m skinbench run task4 --approach all --limit 200  every approach of a task on a subset
  python -m skinbench run task1 -a bovw --dataset generic --data-root my_images --positive melanoma
  python -m skinbench table task2                           re-render tables from stored records
  python -m skinbench data verify ham10000                  missing / extra / unreadable / mismatched files and masks
  python -m skinbench data verify generic --data-root my_images   your own folder, as a run checks it
"""

#: the width `list` fits its tables to when the output is not a terminal (and $COLUMNS is unset)
DEFAULT_WIDTH = 100
#: exit status after the reader of stdout went away (`... | head`): what a process killed by SIGPIPE reports
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


# ------------------------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _int_at_least(low: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number ({what}), got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} ({what}), got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected two or more distinct class names separated by commas, got {text!r}")
    return names


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="dataset name (default: the task's own; see `list`)")
    p.add_argument("--data-root", help="folder holding the datasets (default: $SKINBENCH_DATA or ../shared/data)")
    p.add_argument("--classes", type=_names, metavar="A,B[,...]",
                   help="generic data: the class list in order (for two classes the second is the positive one)")
    p.add_argument("--positive", metavar="CLASS", help="generic data: the positive class of a binary label set")


def _add_task_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", help=" | ".join(info.TASKS) + " (see `list`)")


def _add_seed_option(p: argparse.ArgumentParser) -> None:
    """``run`` and ``predict`` take seeds alike: one record (one submission) per seed."""
    p.add_argument("--seed", type=int, nargs="+", default=[0], metavar="SEED",
                   help="one or more seeds (default 0): one record, or one submission, per seed")


_LIMIT = _int_at_least(1, "at most N train and N test images")


def _add_limit_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=_LIMIT, help="at most N train and N test images (quick runs)")


def _add_param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="override an estimator hyper-parameter, e.g. -p n_words=500 (see `list APPROACH`)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="skinbench", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"skinbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="tasks, datasets, approaches; `list NAME` for one")
    p.add_argument("name", nargs="?", help="an approach (its parameters), a task or a dataset")

    p = sub.add_parser("run", help="fit and score approaches on a task; records, tables")
    _add_task_argument(p)
    p.add_argument("--approach", "-a", action="append", required=True,
                   help="approach name (repeatable), or 'all' for every approach of the task")
    _add_data_options(p)
    _add_seed_option(p)
    _add_param_option(p)
    p.add_argument("--target", help="segmentation target (default: all of the task's)")
    _add_limit_option(p)
    p.add_argument("--n-boot", type=_int_at_least(1, "bootstrap resamples"), default=1000,
                   help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--results", help="results folder (default: $SKINBENCH_RESULTS or ./skinbench-results)")
    add_allow_dirty(p)  # run refuses, as sweep does, to write into the repository's results/ from dirty code
    p.add_argument("--predictions", help="also write ISIC submission files (CSV / mask PNGs) here")
    p.add_argument("--ci", action="store_true", help="show 95%% CIs in the printed table")
    p.add_argument("--test-dataset", metavar="DATASET", help="cross-dataset: fit on --dataset's train split, "
                   "score on this data (registered, or generic with --test-root); own records and table")
    p.add_argument("--test-root", metavar="DIR", help="cross-dataset test data: a generic folder (labels.csv, or an "
                   "official ISIC release as it unzips), or a registered dataset's data root")
    p.add_argument("--test-labels", metavar="FILE", help="cross-dataset generic test data: the labels CSV to score "
                   "(e.g. ISIC-2017_Test_v2_Part3_GroundTruth.csv beside its images; relative to --test-root or not)")
    p.add_argument("--test-split", choices=("test", "all"),
                   help="cross-dataset images scored (default: a registered dataset's test split, a folder's all)")
    p.add_argument("--test-mapping", metavar="NAME", help="cross-dataset diagnosis -> class mapping (default: the "
                   "task's, see skinbench/data/isic_csv.py; or melanoma-vs-rest)")

    p = sub.add_parser("demo", help="every task on built-in synthetic data (no download)")
    p.add_argument("--results", help="keep records, tables and plots here (default: a temporary folder, removed)")
    p.add_argument("--n-images", type=_int_at_least(8, "synthetic images"), default=DEMO_N_IMAGES,
                   help="synthetic images to generate")
    p.add_argument("--task", action="append", help="only these tasks")
    p.add_argument("--ci", action="store_true", help="show 95%% CIs in the printed tables")

    p = sub.add_parser("smoke", help="every task x approach on tiny synthetic data (CI)")
    p.add_argument("--results", help="keep the records here (default: a temporary folder, removed)")
    p.add_argument("--task", action="append", help="only these tasks")
    p.add_argument("--approach", "-a", action="append", help="only these approaches")
    __import__("skinbench.sweep").sweep.add_engine_options(p, workers=0)  # `--workers 2`: CI's two cores

    p = sub.add_parser("table", help="re-render tables and plots from stored records")
    p.add_argument("task", nargs="?", help="only this task")
    p.add_argument("--results", help="results folder (default: $SKINBENCH_RESULTS or ./skinbench-results)")
    p.add_argument("--ci", action="store_true", help="show 95%% CIs in the printed tables")

    p = sub.add_parser("predict", help="fit on train, write ISIC submission files for test")
    _add_task_argument(p)
    p.add_argument("--approach", "-a", required=True, help="approach name (see `list TASK`)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the CSV / PNG masks (several seeds: one seed<k>/ sub-folder each)")
    _add_data_options(p)
    _add_seed_option(p)
    _add_param_option(p)
    _add_limit_option(p)

    p = sub.add_parser("data", help="dataset utilities")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    v = dsub.add_parser("verify", help="check a data folder against its manifest (missing, extra, unreadable, "
                        "checksums, masks), or your own folder: `data verify generic --data-root FOLDER`")
    v.add_argument("dataset", help="a registered dataset, or generic (your own folder, named by --data-root)")
    v.add_argument("--data-root", help="folder holding the datasets; for generic the folder itself")
    v.add_argument("--task", help="generic: check only what this task needs (default: report every task)")
    v.add_argument("--classes", type=_names, metavar="A,B[,...]", help="generic: the class list in order, as `run`")
    v.add_argument("--positive", metavar="CLASS", help="generic: the positive class of a binary label set, as `run`")
    v.add_argument("--duplicates", action="store_true",
                   help="also list exact and near-duplicate images, and the pairs crossing the train/test split")
    __import__("skinbench.sweep").sweep.add_parser(sub)  # `sweep`: all its logic is in skinbench/sweep.py
    __import__("skinbench.score").score.add_parser(sub)  # `score`: all its logic is in skinbench/score.py
    for name in ("list", "run", "sweep", "smoke", "predict"):  # --approach package.module:Class (plugins.py)
        sub.choices[name].add_argument("--family", choices=("classical", "deep"),
                                       help="the family of an --approach package.module:Class (your own estimator)")
    return parser


def _adhoc_approaches(args: argparse.Namespace) -> None:
    """``--approach package.module:Class`` registered as an approach (its name replaces the spec)."""
    from skinbench import plugins

    if not hasattr(args, "family"):
        return
    if args.command == "list":
        if args.name and ":" in args.name:
            args.name = plugins.resolve_names([args.name], args.family)[0]
        return
    if isinstance(args.approach, str):
        args.approach = plugins.resolve_names([args.approach], args.family)[0]
    else:
        args.approach = plugins.resolve_names(args.approach or [], args.family) or args.approach


# ------------------------------------------------------------------------------------ checks before work
def approach_params(task: str, names: Sequence[str], items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``-p`` items checked against each approach's signature and typed: ``{approach: params}``.

    With several approaches a parameter goes to those that take it; one that none takes is an error
    (with a did-you-mean), as is a value of the wrong type (:func:`skinbench.params.params_for_approaches`,
    which ``sweep`` uses too).
    """
    from skinbench.params import params_for_approaches, parse_assignments

    raw = parse_assignments(list(items), example_param(names[0], task))
    out = params_for_approaches(names, task, raw)  # one reading of -p for run and sweep
    for key in raw:
        skipped = [n for n in names if key not in out[n]]
        if skipped:
            print(f"skinbench: -p {key} applies to {', '.join(n for n in names if key in out[n])} "
                  f"(not a parameter of {', '.join(skipped)})", file=sys.stderr)
    return out


def example_param(approach: str, task: str) -> str:
    """A ``-p KEY=VALUE`` that ``approach`` accepts: a registered value for ``task``, else a default."""
    from skinbench.params import approach_signature

    sig = approach_signature(approach)
    simple = (int, float, str)
    candidates = list(info.approach(approach).params_for(task).items()) + [(k, p.default) for k, p in sig.items()]
    for key, value in candidates:
        if key in sig and key not in ("cache_dir", "random_state") and isinstance(value, simple):
            text = str(value).lower() if isinstance(value, bool) else str(value)
            return f"-p {key}={text}"
    return "-p KEY=VALUE"


def _dataset_kwargs(args: argparse.Namespace, dataset: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if getattr(args, "classes", None) or getattr(args, "positive", None):
        if dataset != "generic":
            raise ConfigError(f"--classes/--positive apply to your own data (--dataset generic), not {dataset!r}, "
                              "whose classes are fixed", fix="drop --classes/--positive, or use --dataset generic")
        if args.classes:
            kwargs["class_names"] = list(args.classes)
        if args.positive:
            kwargs["positive_class"] = args.positive
    if dataset == "generic":
        kwargs["task"] = args.task  # an official ISIC ground-truth CSV is mapped to this task's classes
    return kwargs


def preflight(task: str, dataset: str, data_root: str | None, dataset_kwargs: dict[str, Any],
              target: str | None = None) -> None:
    """Load the data once and check it for ``task`` before any approach runs (labels, positive class,
    training classes, masks, every listed file of both splits): :func:`skinbench.data.base.check_for_task`."""
    from skinbench.data import load_dataset
    from skinbench.data.base import check_for_task

    tinfo = info.task(task)
    ds = load_dataset(dataset, data_root, **{**tinfo.dataset_kwargs.get(dataset, {}), **dataset_kwargs})
    check_for_task(task, ds.split("train"), ds.split("test"), targets=[target] if target else None)


# ---------------------------------------------------------------------------------------- tables
def terminal_width() -> int:
    """Columns of the terminal ($COLUMNS first), :data:`DEFAULT_WIDTH` when piped."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def wrap_text(text: str, indent: str = "") -> str:
    """A paragraph folded to the terminal width at word boundaries (long names and URLs kept whole)."""
    return textwrap.fill(text, terminal_width(), subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def fit_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], width: int | None = None) -> str:
    """A plain-text table no wider than ``width`` (default: the terminal's, :data:`DEFAULT_WIDTH` when
    piped) where that is possible: the widest columns are wrapped at word boundaries (never inside a
    word or a URL), so free-text titles fold into several lines instead of 400-character rows."""
    from tabulate import tabulate

    width = width or terminal_width()
    cells = [[str(c) for c in row] for row in rows]
    cols = list(zip(*cells)) if cells else [()] * len(headers)
    head = [len(h) + 2 for h in headers]  # tabulate pads a header by two
    longest = [max([head[i]] + [len(c) for c in col]) for i, col in enumerate(cols)]
    floor = [max([head[i]] + [len(w) for c in col for w in c.split()]) for i, col in enumerate(cols)]
    widths = list(longest)
    while sum(widths) + 2 * (len(widths) - 1) > width:
        shrinkable = [i for i in range(len(widths)) if widths[i] > floor[i]]
        if not shrinkable:
            break  # every column is down to its longest word: wider than the terminal, words kept whole
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    wrapped = [["\n".join(textwrap.wrap(c, widths[i], break_long_words=False, break_on_hyphens=False)) or c
                for i, c in enumerate(row)] for row in cells]
    return tabulate(wrapped, headers=list(headers), disable_numparse=True)


def _print_tables(rendered: Any, ci: bool = False, root: Path | None = None, ran_only: bool = False) -> None:
    """The compact terminal tables of what :func:`skinbench.results.render.render_all` rendered (each table
    and its calibration table, from the table objects: nothing read back), then where the files are."""
    for table in rendered.tables:
        for shown in (table, table.clinical):
            if shown is not None:
                print(shown.to_terminal(ci=ci, ran_only=ran_only))
    if rendered.tables and root is not None:
        print(f"full tables (markdown, CSV) and plots: {root / 'tables'}", file=sys.stderr)


def _results_root(explicit: str | None) -> Path:
    """``--results`` or the default, checked writable before any work (:func:`skinbench.paths.user_results_root`)."""
    return user_results_root(explicit)


def _command_line(argv: Sequence[str]) -> str:
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = argv0 if argv0 and argv0 not in ("__main__.py", "-c", "-m") and not argv0.startswith("pytest") \
        else "python -m skinbench"
    if prog.endswith(".py"):
        prog = "python -m skinbench"
    return " ".join([prog, shlex.join(list(argv))])


# --------------------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    if args.name:
        return _list_one(args.name)
    print(fit_table([(t.name, t.kind, t.title, t.default_dataset, ", ".join(t.targets) or "-")
                     for t in info.TASKS.values()], ["task", "kind", "title", "default dataset", "targets"]))
    print()
    print(fit_table([(d.name, (f"[plugin: {d.origin}] " if d.origin != info.SUITE else "") + d.title, d.source)
                     for d in info.DATASETS.values()], ["dataset", "title", "source"]))
    print()
    print(fit_table([(a.name, a.family, ", ".join(a.tasks), (f"[plugin: {a.origin}] " if a.contributed else "") + a.title)
                     for a in info.APPROACHES.values()], ["approach", "family", "tasks", "title"]))
    needs: dict[str, list[str]] = {}  # beside the table: one long column of "-" would starve the titles
    for a in info.APPROACHES.values():
        if a.needs_for(None):
            needs.setdefault(a.needs_for(None), []).append(a.name)
    if needs:
        print("\nneeds beyond the data:")
        for what, names in needs.items():
            print(wrap_text(f"  {', '.join(names)}: {what}", indent="    "))
    print("\n`python -m skinbench list APPROACH` shows an approach's parameters.")
    return 0


def _list_one(name: str) -> int:
    from skinbench.params import describe_approach

    if name in info.APPROACHES:
        a = info.APPROACHES[name]
        print(wrap_text(f"{a.name} ({a.family}): {a.title}"))
        needs = a.needs_for(None)
        print(wrap_text(f"estimator {a.estimator}; tasks {', '.join(a.tasks)}" + (f"; needs {needs}" if needs else "")))
        if a.contributed:
            print(f"plugin: {a.origin} (not part of the skinbench suite)")
        print()
        headers = ["parameter", "type", "default", *(f"{t} value" for t in a.tasks), "smoke"]
        print(fit_table(describe_approach(name), headers))
        print("\nA task's value is what a run uses (blank: the default); override with -p KEY=VALUE.")
        return 0
    if name in info.TASKS:
        t = info.TASKS[name]
        print(f"{t.name} ({t.kind}): {t.title}")
        print(wrap_text(f"datasets: {', '.join(t.datasets)} (default {t.default_dataset})", indent="  "))
        if t.targets:
            print(f"targets: {', '.join(t.targets)}")
        if t.more_targets:
            print(f"more targets (multi-output models and baselines): {', '.join(t.more_targets)}")
        print(f"primary metric: {t.primary_metric}")
        print(wrap_text(f"approaches: {', '.join(info.approaches_for(name))}", indent="  "))
        return 0
    if name in info.DATASETS:
        d = info.DATASETS[name]
        print(f"{d.name}: {d.title}")
        print(wrap_text(f"source: {d.source}", indent="  "))
        print(f"folder: $SKINBENCH_DATA/{d.folder}/ holding:")
        for item in d.expected:
            print(f"  {item}")
        return 0
    info._lookup({**info.APPROACHES, **info.TASKS, **info.DATASETS}, name, "name")  # raises, with a did-you-mean
    return 2


def _approach_names(task: str, requested: Sequence[str]) -> list[str]:
    if "all" in requested:
        return info.approaches_for(task)
    return list(dict.fromkeys(requested))


def cmd_run(args: argparse.Namespace) -> int:
    """Each approach x seed, and the baselines beside them, as the points of one in-process sweep (the
    one point executor and currency check of ``smoke``, ``sweep`` and regenerate); exit 1 when every
    asked approach failed."""
    from skinbench import runner
    from skinbench.results.render import render_all
    from skinbench.sweep import engine

    info.task(args.task)
    names = _approach_names(args.task, args.approach)
    dataset = None
    for name in names:  # validate every name, parameter and the data before any work starts
        _, _, dataset = runner.resolve(args.task, name, args.dataset)
    params = approach_params(args.task, names, args.param)
    kwargs = _dataset_kwargs(args, dataset)
    preflight(args.task, dataset, args.data_root, kwargs, args.target)
    root = _results_root(args.results)
    if args.test_dataset or args.test_root or args.test_labels:  # cross-dataset: logic in skinbench/crossdata.py
        from skinbench import crossdata

        if args.predictions:
            raise ConfigError("--predictions writes a submission for the task's own test split",
                              fix="drop --predictions, or --test-dataset/--test-root/--test-labels")
        # --data-root of generic training data is its folder, not a root of registered datasets
        test = crossdata.load_test_set(args.test_dataset or "generic", args.task, args.test_root,
                                       split=args.test_split, mapping=args.test_mapping, labels=args.test_labels,
                                       data_root=None if dataset == "generic" else args.data_root)
        _, crossed = crossdata.run_cross(args.task, names, test, dataset=args.dataset, seeds=args.seed,
                                         params=params, limit=args.limit, n_boot=args.n_boot,
                                         data_root=args.data_root, results_root=root, dataset_kwargs=kwargs or None,
                                         command=args.command_line, log=lambda line: print(line, file=sys.stderr))
        _print_tables(render_all(root, task=args.task), ci=args.ci, root=root)
        return 1 if len(crossed) >= len(names) else 0
    points, forced = run_points(args, names, params)
    lines = _RunLines(args.task, single=len(names) == 1)
    engine.run_sweep(points, root, engine="local", data_root=args.data_root, dataset_kwargs=kwargs or None,
                     command=args.command_line, force=lambda p: p.id in forced, progress=lines,
                     allow_dirty=args.allow_dirty)
    _print_tables(render_all(root, task=args.task), ci=args.ci, root=root)
    return 1 if len(lines.failed) == len(names) else 0


def run_points(args: argparse.Namespace, names: list[str],
               params: dict[str, dict[str, Any]]) -> tuple[list[Any], set[str]]:
    """``run``'s work as sweep points: each approach x seed (rerun whatever its records say), then the
    trivial baselines that sit beside every row (milliseconds; run only where not current in this
    folder). Returns (points, the ids of the points to rerun)."""
    from skinbench.provenance import RunSpec
    from skinbench.sweep import Point

    asked = [Point(RunSpec(args.task, name, args.dataset, seed, params[name] or {}, args.target, args.limit,
                           args.n_boot), label=name, predictions=args.predictions or "")
             for name in names for seed in dict.fromkeys(args.seed)]
    baselines = [Point(RunSpec(args.task, b, args.dataset, args.seed[0], {}, args.target, args.limit, args.n_boot),
                       label=BASELINE_LABEL)
                 for b in info.baselines_for(args.task) if b not in names]
    return asked + baselines, {p.id for p in asked}


#: the label of the baseline points ``run`` adds beside the rows it was asked for
BASELINE_LABEL = "baseline, beside every row"


class _RunLines(Reporter):
    """``run``'s lines as its points go: ``== task / approach`` once per approach, ``wrote PATH`` per
    record; a failed approach is skipped with one line when others were asked for, and is the command's
    error (one line, exit 2) when it was the only one, or when the disk refuses writes."""

    def __init__(self, task: str, single: bool):
        self.task, self.single = task, single
        self.failed: set[str] = set()
        self.announced: set[str] = set()

    def started(self, point: Any) -> None:
        name = point.spec.approach
        if name not in self.announced:
            self.announced.add(name)
            extra = f" ({point.label})" if point.label == BASELINE_LABEL else ""
            print(f"== {self.task} / {name}{extra}", file=sys.stderr)

    def finished(self, point: Any, result: Any, error: str | None, paths: Sequence[Path]) -> None:
        name = point.spec.approach
        err = result.exception if result is not None else None
        if error:
            # a full disk fails every later approach too; a programming error keeps its traceback
            if point.label == BASELINE_LABEL or self.single or not isinstance(err, SkinbenchError) \
                    or isinstance(err, StorageError):
                raise err if err is not None else SkinbenchError(error)
            if name not in self.failed:
                print(f"skinbench: {name} skipped: {err if err is not None else error}", file=sys.stderr)
            self.failed.add(name)
            return
        if point.label != BASELINE_LABEL:
            for path in paths:
                if path.suffix == ".json":
                    print(f"wrote {path}", file=sys.stderr)


def _scratch(explicit: str | None, prefix: str) -> tuple[Path, bool]:
    """(folder, temporary?): ``--results`` as given, else a new temporary folder the caller removes."""
    if explicit:
        return check_writable(explicit, "results folder", "--results DIR"), False
    return Path(tempfile.mkdtemp(prefix=prefix)), True


def cmd_demo(args: argparse.Namespace) -> int:
    from skinbench import runner
    from skinbench.results.render import render_all

    tasks = args.task or list(DEMO_APPROACHES)
    for task in tasks:
        if task not in DEMO_APPROACHES:
            raise ConfigError(f"unknown task {task!r}", fix=f"use one of: {', '.join(DEMO_APPROACHES)}")
    root, temporary = _scratch(args.results, "skinbench-demo-")
    try:
        for task in tasks:
            for name in DEMO_APPROACHES[task]:
                print(f"== {task} / {name} (synthetic)", file=sys.stderr)
                runner.run(task, name, dataset="synthetic", results_root=root, n_boot=200,
                           params=DEMO_PARAMS.get(name), dataset_kwargs={"n_images": args.n_images},
                           command=args.command_line)
        _print_tables(render_all(root), ci=args.ci, root=None if temporary else root, ran_only=True)
        print(demo_left_out(tasks))
        if temporary:
            print("(demo results were temporary; pass --results DIR to keep records, tables and plots)",
                  file=sys.stderr)
        else:
            print(f"records, tables and plots: {root}", file=sys.stderr)
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def demo_left_out(tasks: Sequence[str]) -> str:
    """One line: how many registered approaches the demo did not run, and the command that runs one."""
    left = sorted({name for task in tasks for name in info.approaches_for(task) if name not in DEMO_APPROACHES[task]})
    if not left:
        return "the demo ran every registered approach of these tasks"
    return f"not in the demo: {len(left)} approaches (`list`); run one: skinbench run TASK -a NAME --dataset synthetic"


def smoke_points(tasks: list[str] | None = None, approaches: list[str] | None = None) -> list[Any]:
    """Every registered task x approach (or the chosen ones) as sweep points with its ``smoke_params``."""
    from skinbench import sweep
    from skinbench.provenance import RunSpec

    return [sweep.Point(RunSpec(task, name, "synthetic", 0, dict(info.approach(name).smoke_params or {}), None,
                                SMOKE_LIMIT, SMOKE_N_BOOT), label=name)
            for task in tasks or list(info.TASKS) for name in info.approaches_for(task)
            if not approaches or name in approaches]


def cmd_smoke(args: argparse.Namespace) -> int:
    """Seconds-long runs of everything registered, with each approach's ``smoke_params``: a sweep (so
    ``--workers 2`` spreads them over a Dask LocalCluster), always rerun, every failure listed."""
    from skinbench import sweep
    from skinbench.results.render import render_all
    from skinbench.sweep import engine

    for task in args.task or []:
        info.task(task)
    for name in args.approach or []:
        info.approach(name)
    points = smoke_points(args.task, args.approach)
    if not points:
        raise ConfigError("no registered approach matches the smoke selection",
                          fix="see `python -m skinbench list` for which approach does which task")
    root, temporary = _scratch(args.results, "skinbench-smoke-")
    try:
        summary = engine.run_sweep(points, root, dataset_kwargs={"n_images": SMOKE_N_IMAGES},
                                  command=args.command_line, force=True, **sweep.engine_options(args))
        _print_tables(render_all(root))  # the rows that ran; a failed point's row says "not run"
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    print(summary, file=sys.stderr)  # last: the failed points, each with its one-line cause
    return 0 if summary.ok else 1


def cmd_table(args: argparse.Namespace) -> int:
    from skinbench.results.records import load_records
    from skinbench.results.render import render_all
    from skinbench.results.tables import load_sweep_records, print_sweep_tables

    if args.task:
        info.task(args.task)
    root = _results_root(args.results)
    runs = bool(load_records(root, task=args.task))
    if not runs and not load_sweep_records(root, task=args.task):
        raise ConfigError(f"no records to tabulate in {root}",
                          fix="run `python -m skinbench run TASK --approach NAME` first, or pass --results DIR")
    written = render_all(root, task=args.task, dashboard=None if runs else False, sweeps=True)
    _print_tables(written, ci=args.ci, root=root)
    print_sweep_tables(written.sweep_tables, root)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from skinbench import runner

    _, _, dataset = runner.resolve(args.task, args.approach, args.dataset)
    params = approach_params(args.task, [args.approach], args.param)[args.approach]
    kwargs = _dataset_kwargs(args, dataset)
    preflight(args.task, dataset, args.data_root, kwargs)
    out = check_writable(args.out, "predictions folder", "--out DIR")
    seeds = list(dict.fromkeys(args.seed))
    with tempfile.TemporaryDirectory() as scratch:
        for seed in seeds:
            dest = out if len(seeds) == 1 else out / f"seed{seed}"  # one submission per seed, never mixed
            runner.run(args.task, args.approach, dataset=args.dataset, data_root=args.data_root, seed=seed,
                       params=params or None, limit=args.limit, results_root=scratch, predictions_dir=dest,
                       command=args.command_line, dataset_kwargs=kwargs or None)
            print(f"predictions written to {dest}", file=sys.stderr)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from skinbench.data.verify import verify, verify_generic

    info.dataset(args.dataset)
    kwargs = _dataset_kwargs(args, args.dataset)  # --classes/--positive: generic only, as for `run`
    if args.dataset == "generic":
        if args.task:
            info.task(args.task)
        report = verify_generic(args.data_root, duplicates=args.duplicates, **kwargs)
    elif args.task:
        raise ConfigError(f"--task applies to your own data (generic), not {args.dataset!r}",
                          fix="drop --task, or verify with `data verify generic --data-root FOLDER`")
    else:
        report = verify(args.dataset, args.data_root, duplicates=args.duplicates)
    print(report)
    return 0 if report.usable else 1


COMMANDS = {"list": cmd_list, "run": cmd_run, "demo": cmd_demo, "smoke": cmd_smoke, "table": cmd_table,
            "predict": cmd_predict, "data": cmd_data, "sweep": lambda args: args.handler(args),
            "score": lambda args: args.handler(args)}


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM behaves like Ctrl-C: workers stop, nothing half-written, exit 130."""
    raise KeyboardInterrupt


def _reader_gone() -> int:
    """The reader of stdout left (``skinbench table | head -1``): stop quietly, as a program killed by
    SIGPIPE does, without a traceback. SIGPIPE itself stays ignored (Python's default) so that a closed
    socket in Dask or TensorFlow is an error there, not a silent death; stdout is pointed at /dev/null
    so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout replaced by an object without a descriptor (tests)
        pass
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    from skinbench import quiet

    quiet.install()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser().parse_args(argv)
    args.command_line = _command_line(argv)
    try:
        from skinbench.approaches import engines  # light: imports no engine

        engines.setting()
        _adhoc_approaches(args)
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except SkinbenchError as err:
        print(f"skinbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skinbench: interrupted; finished records and caches are intact, a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
