"""Regenerate every committed result under results/ from the real data, in one command.

    python benchmarks/regenerate.py            # everything (hours on 2 CPU cores; caches make reruns cheap)
    python benchmarks/regenerate.py --quick    # a 200-image subset per split, into results/quick/
    python benchmarks/regenerate.py --only task1 --only task4 --force
    python benchmarks/regenerate.py --status   # current / stale (and why) / missing, in seconds, no training
    python benchmarks/regenerate.py --verify --only task4 --approach ellipse   # same key, same numbers?

A run is skipped when its record already holds the same run key (task, approach, data manifest, seed,
params and the declared algorithm versions: see skinbench/provenance.py); estimators cache their expensive work by content,
so a rerun after an interruption resumes. Approaches the registry marks as needing a GPU on a task
(``gpu_tasks``: today the end-to-end MobileNetV2 fine-tuning on task2) are not retrained on a machine without one: their
records stay as made (each names its command and commit); ``--allow-cpu`` trains them anyway.
Approaches that cannot run here (ImageNet weights not available offline) get a record that says why. The extra benchmarks (sweeps, performance) run after the records, then the tables,
plots and the dashboard results/README.md are rendered from the records alone. The derived reports
(``results/subgroups/``, ``results/data_hygiene/``) are keyed on the records and manifests they read
(skinbench/results/derived.py): ``--status`` lists them after the records, and their scripts rerun only when
one is stale or missing (or with ``--force``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import info, provenance, runner  # noqa: E402
from skinbench.results.currency import Currency, check  # noqa: E402
from skinbench.errors import SkinbenchError, WeightsError  # noqa: E402
from skinbench.paths import REPO_ROOT, committed_results_dir  # noqa: E402

#: extra benchmark scripts (sweeps, performance), run after the full records; each writes under results/
EXTRA_SCRIPTS = ("bovw_sweep.py", "perf_finetune.py", "task3_losses.py", "task3_selection.py", "perf_classical.py",
                 "perf_deep_features.py", "perf_pipeline.py", "scaling.py", "seeds.py", "subgroups.py",
                 "duplicates_report.py")


Run = tuple[str, str, str]  # (task, approach, dataset)


def planned_runs(only: list[str] | None) -> list[Run]:
    """Every (task, approach) the registry declares, on each task's default (real) dataset and its
    variants (``TaskInfo.variants``)."""
    return [(t, a, d) for t in info.TASKS if not only or t in only
            for d in info.task(t).regenerated_datasets() for a in info.approaches_for(t, suite_only=True)]


@lru_cache(maxsize=None)
def _manifest_digest(task: str, dataset: str) -> str:
    """Load each dataset once per regeneration, not once per approach."""
    from skinbench.data import load_dataset

    return load_dataset(dataset, **info.task(task).dataset_kwargs.get(dataset, {})).manifest_digest


def _name(task: str, approach: str, dataset: str) -> str:
    return f"{task}/{approach}" + ("" if dataset == info.task(task).default_dataset else f" [{dataset}]")


def currency(task: str, approach: str, dataset: str, root: Path, seed: int,
             limit: int | None) -> Currency:
    """Whether the stored records of (task, approach, dataset) were made with today's inputs and versions."""
    spec = provenance.RunSpec(task, approach, dataset=dataset, seed=seed, limit=limit)
    return check(spec, root, _manifest_digest(task, dataset))


def print_status(runs: list[Run], root: Path, seed: int, limit: int | None) -> int:
    """``--status``: one line per expected record set; exit 0 when every one is current."""
    counts: dict[str, int] = {}
    for task, approach, dataset in runs:
        c = currency(task, approach, dataset, root, seed, limit)
        counts[c.status] = counts.get(c.status, 0) + 1
        gpu = " [GPU-marked]" if task in info.approach(approach).gpu_tasks else ""
        print(f"{c.status:8s} {_name(task, approach, dataset)}{gpu}")
        for reason in c.reasons:
            print(f"         - {reason}")
    print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    derived_ok = print_derived_status(root) if root == committed_results_dir() else True
    return 0 if set(counts) <= {"current"} and derived_ok else 1


def print_derived_status(root: Path) -> bool:
    """The derived reports (subgroups, data hygiene): current / stale (and why) / missing, on a line of their
    own after the records' count (skinbench/results/derived.py); True when all are current."""
    from skinbench.results.derived import DERIVED, check

    counts: dict[str, int] = {}
    for d in DERIVED:
        c = check(d, root)
        counts[c.status] = counts.get(c.status, 0) + 1
        print(f"{c.status:8s} derived {d.name}")
        for reason in c.reasons:
            print(f"         - {reason}")
    print("derived reports: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return set(counts) <= {"current"}


def stale_extras(root: Path, force: bool) -> dict[str, list[str] | None]:
    """Extra scripts to run -> their arguments: every extra script, except that a script writing derived
    reports runs only for its stale or missing ones (None: skip it), with the arguments rebuilding just
    those (all of them with ``force``)."""
    from skinbench.results.derived import DERIVED, check

    plan: dict[str, list[str] | None] = {script: [] for script in EXTRA_SCRIPTS}
    owned: dict[str, list] = {}
    for d in DERIVED:
        owned.setdefault(d.script, []).append(d)
    for script, items in owned.items():
        todo = items if force else [d for d in items if not check(d, root).current]
        if not todo:
            plan[script] = None
        elif script == "subgroups.py" and len(todo) < len(items):
            plan[script] = ["--tasks", *(d.args[-1] for d in todo)]
    return plan


def verify(runs: list[Run], root: Path, seed: int, limit: int | None) -> int:
    """``--verify``: rerun current records into a scratch folder; fail if a number moved under the same
    run key (a change that alters numbers must bump a declared version: skinbench/provenance.py)."""
    import tempfile

    from skinbench.results.records import RunRecord

    moved = 0
    with tempfile.TemporaryDirectory(prefix="skinbench-verify-") as scratch:
        for task, approach, dataset in runs:
            c = currency(task, approach, dataset, root, seed, limit)
            if not c.current:
                print(f"-- {_name(task, approach, dataset)}: {c.status}, not verified", file=sys.stderr)
                continue
            spec = provenance.RunSpec(task, approach, dataset=dataset, seed=seed, limit=limit)
            for new_path in runner.execute(spec, results_root=scratch, command="regenerate.py --verify"):
                old = RunRecord.from_file(root / new_path.relative_to(scratch))
                new = RunRecord.from_file(new_path)
                diffs = {m: (old.value(m), new.value(m)) for m in new.metrics
                         if old.value(m) != new.value(m) and not (old.value(m) is not None and new.value(m)
                                                                 is not None and abs(old.value(m) - new.value(m)) < 1e-6)}
                moved += bool(diffs)
                print(f"{'MOVED' if diffs else 'same '} {new_path.relative_to(scratch)} {diffs or ''}")
    return 1 if moved else 0


def gpu_present() -> bool:
    """A CUDA device node or driver tool is visible (checked without importing a framework)."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 train/test images per task, into results/quick")
    parser.add_argument("--only", action="append", help="only these tasks")
    parser.add_argument("--approach", action="append", help="only these approaches")
    parser.add_argument("--dataset", action="append", help="only these datasets (default: each task's default "
                                                           "and its variants)")
    parser.add_argument("--force", action="store_true", help="rerun even when a record is current")
    parser.add_argument("--no-extras", action="store_true", help="skip the sweep and performance scripts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-cpu", action="store_true", help="also train the GPU-marked approaches here")
    parser.add_argument("--status", action="store_true",
                        help="list every expected record: current, stale (and why) or missing; train nothing")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="write records although the code has uncommitted changes (marked +dirty)")
    parser.add_argument("--verify", action="store_true",
                        help="rerun the current records (use --approach / --only to choose; deterministic ones) "
                             "into a scratch folder and fail if a number moved under the same run key")
    args = parser.parse_args(argv)
    gpu = args.allow_cpu or gpu_present()
    _manifest_digest.cache_clear()  # data may have changed since an earlier call in this process
    root = committed_results_dir() / "quick" if args.quick else committed_results_dir()
    limit = 200 if args.quick else None
    runs = [(t, a, d) for t, a, d in planned_runs(args.only)
            if (not args.approach or a in args.approach) and (not args.dataset or d in args.dataset)]
    if args.status:
        return print_status(runs, root, args.seed, limit)
    if args.verify:
        return verify(runs, root, args.seed, limit)
    from skinbench.environment import code_is_dirty

    if code_is_dirty() and not args.allow_dirty:
        print("regenerate: the code has uncommitted changes, so its records could not be traced to a commit. "
              "Fix: commit first (or pass --allow-dirty for a scratch run).", file=sys.stderr)
        return 2
    failures: list[str] = []
    for task, approach, dataset in runs:
        name = _name(task, approach, dataset)
        if not args.force and currency(task, approach, dataset, root, args.seed, limit).current:
            print(f"== {name}: current, kept", file=sys.stderr)
            continue
        if task in info.approach(approach).gpu_tasks and not gpu and not args.quick:
            print(f"== {name}: needs a GPU, none found: record kept as made "
                  "(benchmarks/train_segmenters.py on a GPU, or --allow-cpu)", file=sys.stderr)
            continue
        print(f"== {name}", file=sys.stderr)
        start = time.perf_counter()
        try:
            runner.run(task, approach, dataset=dataset, seed=args.seed, limit=limit, results_root=root,
                       command=runner.command_as_typed([__file__, *argv]))
        except WeightsError as err:
            runner.write_skipped(task, approach, str(err), dataset=dataset, results_root=root)
            print(f"   skipped: {err}", file=sys.stderr)
        except SkinbenchError as err:
            failures.append(f"{name}: {err}")
            print(f"   FAILED: {err}", file=sys.stderr)
        print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if not (args.no_extras or args.quick):
        for script, extra_args in stale_extras(root, args.force).items():
            path = REPO_ROOT / "benchmarks" / script
            if extra_args is None:
                print(f"== {script}: its reports are current, kept", file=sys.stderr)
            elif path.exists():
                cmd = [sys.executable, str(path), *extra_args]
                print(f"== {' '.join(cmd)}", file=sys.stderr)
                env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
                if subprocess.call(cmd, env=env) != 0:
                    failures.append(script)
    from skinbench.results.render import render_all

    render_all(root)
    print(f"dashboard: {root / 'README.md'}", file=sys.stderr)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "regenerate")
