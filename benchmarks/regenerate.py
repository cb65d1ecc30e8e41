"""Regenerate every committed result under results/ from the real data, in one command.

    python benchmarks/regenerate.py            # everything (hours on 2 CPU cores; caches make reruns cheap)
    python benchmarks/regenerate.py --quick    # a 200-image subset per split, into results/quick/
    python benchmarks/regenerate.py --only task1 --only task4 --force

A run is skipped when its record already holds the same run key (task, approach, data manifest, seed,
params and the digest of the code that approach runs); estimators cache their expensive work by content,
so a rerun after an interruption resumes. Approaches the registry marks as needing a GPU on a task
(``gpu_tasks``: the Y-Net on 8011 images, fine-tuning) are not retrained on a machine without one: their
records stay as made (each names its command and commit); ``--allow-cpu`` trains them anyway.
Approaches that cannot run here (ImageNet weights not available offline) get a record that says why. The extra benchmarks (sweeps, performance) run after the records, then the tables,
plots and the dashboard results/README.md are rendered from the records alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import info, runner  # noqa: E402
from skinbench.errors import SkinbenchError, WeightsError  # noqa: E402
from skinbench.paths import REPO_ROOT, results_dir  # noqa: E402

#: extra benchmark scripts (sweeps, performance), run after the full records; each writes under results/
EXTRA_SCRIPTS = ("bovw_sweep.py", "task3_losses.py", "perf_classical.py", "perf_deep_features.py",
                 "perf_pipeline.py", "scaling.py")


def planned_runs(only: list[str] | None) -> list[tuple[str, str]]:
    """Every (task, approach) the registry declares, on each task's default (real) dataset."""
    return [(t, a) for t in info.TASKS if not only or t in only for a in info.approaches_for(t)]


@lru_cache(maxsize=None)
def _manifest_digest(task: str) -> str:
    """Load each task's dataset once per regeneration, not once per approach."""
    from skinbench.data import load_dataset

    dataset = info.task(task).default_dataset
    return load_dataset(dataset, **info.task(task).dataset_kwargs.get(dataset, {})).manifest_digest


def is_current(task: str, approach: str, root: Path, seed: int, limit: int | None) -> bool:
    """True when the stored record was made by this code on this data with these settings."""
    dataset = info.task(task).default_dataset
    targets = info.task(task).targets or (None,)
    from skinbench.results.records import record_path

    key = runner.run_key(task, approach, dataset, seed, None, limit, _manifest_digest(task))
    for target in targets:
        path = record_path(task, dataset, approach, target, root=root)
        try:
            if json.loads(path.read_text()).get("run_key") != key:
                return False
        except (OSError, ValueError):
            return False
    return True


def gpu_present() -> bool:
    """A CUDA device node or driver tool is visible (checked without importing a framework)."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 train/test images per task, into results/quick")
    parser.add_argument("--only", action="append", help="only these tasks")
    parser.add_argument("--approach", action="append", help="only these approaches")
    parser.add_argument("--force", action="store_true", help="rerun even when a record is current")
    parser.add_argument("--no-extras", action="store_true", help="skip the sweep and performance scripts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-cpu", action="store_true", help="also train the GPU-marked approaches here")
    args = parser.parse_args(argv)
    gpu = args.allow_cpu or gpu_present()
    _manifest_digest.cache_clear()  # data may have changed since an earlier call in this process
    root = results_dir() / "quick" if args.quick else results_dir()
    limit = 200 if args.quick else None
    failures: list[str] = []
    for task, approach in planned_runs(args.only):
        if args.approach and approach not in args.approach:
            continue
        if not args.force and is_current(task, approach, root, args.seed, limit):
            print(f"== {task} / {approach}: current, kept", file=sys.stderr)
            continue
        if task in info.approach(approach).gpu_tasks and not gpu and not args.quick:
            print(f"== {task} / {approach}: needs a GPU, none found: record kept as made "
                  "(benchmarks/train_segmenters.py on a GPU, or --allow-cpu)", file=sys.stderr)
            continue
        print(f"== {task} / {approach}", file=sys.stderr)
        start = time.perf_counter()
        try:
            runner.run(task, approach, seed=args.seed, limit=limit, results_root=root,
                       command=f"python benchmarks/regenerate.py{' --quick' if args.quick else ''}")
        except WeightsError as err:
            runner.write_skipped(task, approach, str(err), results_root=root)
            print(f"   skipped: {err}", file=sys.stderr)
        except SkinbenchError as err:
            failures.append(f"{task}/{approach}: {err}")
            print(f"   FAILED: {err}", file=sys.stderr)
        print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if not (args.no_extras or args.quick):
        for script in EXTRA_SCRIPTS:
            path = REPO_ROOT / "benchmarks" / script
            if path.exists():
                cmd = [sys.executable, str(path)]
                print(f"== {' '.join(cmd)}", file=sys.stderr)
                env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
                if subprocess.call(cmd, env=env) != 0:
                    failures.append(script)
    from skinbench.results.dashboard import render_dashboard
    from skinbench.results.tables import render_tables

    render_tables(root)
    print(f"dashboard: {render_dashboard(root)}", file=sys.stderr)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
