"""The logic of ``benchmarks/regenerate.py`` (a thin script over :func:`main`): every registered record
kept current, as the points of one in-process sweep.

The plan is :func:`skinbench.sweep.points.registered_points`; whether a record is current is the
sweep's one currency check (:func:`skinbench.sweep.engine.point_currency`, i.e.
:func:`skinbench.results.currency.check`); the points that must run go through
:func:`skinbench.sweep.engine.run_sweep` (``engine="local"``) and so through the one point executor,
:func:`skinbench.sweep.work.execute_point`, as ``run``, ``smoke`` and ``sweep`` do. Records name the
command as typed (``python benchmarks/regenerate.py ...``). See the script's docstring for the flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from skinbench import info, runner
from skinbench.environment import ALLOW_DIRTY_ENV, LOCK_FILE, check_clean_tree, lock_mismatches
from skinbench.errors import ConfigError, SkinbenchError, WeightsError
from skinbench.paths import REPO_ROOT, committed_results_dir
from skinbench.results.cost import rebuild_cost
from skinbench.results.currency import Currency, data_drift, version_drift
from skinbench.results.derived import DERIVED
from skinbench.results.derived import check as derived_check
from skinbench.results.records import RunRecord, compare_reproduction
from skinbench.results.tables import load_sweep_records
from skinbench.sweep import curves
from skinbench.sweep.engine import PointResult, Reporter, add_allow_dirty, _Digests, point_currency, run_sweep
from skinbench.sweep.points import Point, registered_points
from skinbench.sweep.work import execute_point

#: the script whose command records name (``python benchmarks/regenerate.py ...``)
SCRIPT = REPO_ROOT / "benchmarks" / "regenerate.py"
#: extra benchmark scripts (sweeps, performance), run after the full records; each writes under results/
EXTRA_SCRIPTS = ("bovw_sweep.py", "perf_finetune.py", "task3_losses.py", "task3_selection.py", "perf_classical.py",
                 "perf_deep_features.py", "perf_pipeline.py", "scaling.py", "seeds.py", "subgroups.py",
                 "duplicates_report.py", "fusion.py")
#: ``--quick``: at most this many train and test images per run, into ``results/quick/``
QUICK_LIMIT = 200


def name_of(point: Point) -> str:
    """``task/approach``, with ``[dataset]`` for a task's variant dataset: how every line names a point."""
    spec = point.spec
    return f"{spec.task}/{spec.approach}" + (
        "" if spec.dataset_name == info.task(spec.task).default_dataset else f" [{spec.dataset_name}]")


def currencies(points: Sequence[Point], root: Path) -> list[Currency]:
    """Each point's currency under ``root`` (each dataset loaded once; a dataset that does not load is
    its DataError)."""
    digests = _Digests(None, None)
    return [point_currency(p, root, digests.local(p.spec, strict=True)) for p in points]


def print_status(points: Sequence[Point], root: Path) -> int:
    """``--status``: one line per expected record set; exit 0 when every one is current."""
    counts: dict[str, int] = {}
    for point, c in zip(points, currencies(points, root)):
        counts[c.status] = counts.get(c.status, 0) + 1
        gpu = " [GPU-marked]" if point.spec.task in info.approach(point.spec.approach).gpu_tasks else ""
        print(f"{c.status:8s} {name_of(point)}{gpu}")
        for reason in c.reasons:
            print(f"         - {reason}")
    print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    derived_ok = print_derived_status(root) if root == committed_results_dir() else True
    curves_ok = print_curve_status(curves.points(), root) == 0 if root == committed_results_dir() else True
    sweeps_ok = print_sweep_status(root) == 0 if root == committed_results_dir() else True
    return 0 if set(counts) <= {"current"} and derived_ok and curves_ok and sweeps_ok else 1


def print_sweep_status(root: Path) -> int:
    """The sweeps' grid-point records (``<root>/sweeps/<name>/``, remade by their own benchmarks script, not
    planned here): one line per sweep with its records' counts, stale when a record's algorithm versions or
    data manifest are no longer today's (read from the record alone), and the first record's reasons; then
    their total; 0 when none is stale."""
    by_sweep: dict[str, dict[str, int]] = {}
    why: dict[str, list[str]] = {}
    for p in load_sweep_records(root):
        drift = (version_drift(p.record) + data_drift(p.record)) if p.record.ok else []
        status = "stale" if drift else ("current" if p.record.ok else "skipped")
        counts = by_sweep.setdefault(p.sweep, {})
        counts[status] = counts.get(status, 0) + 1
        if drift and p.sweep not in why:
            why[p.sweep] = drift
    total: dict[str, int] = {}
    for name, counts in sorted(by_sweep.items()):
        worst = "stale" if "stale" in counts else "current"
        print(f"{worst:8s} sweep {name}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        for reason in why.get(name, []):
            print(f"         - {reason}")
        for k, n in counts.items():
            total[k] = total.get(k, 0) + n
    print("sweep records: " + (", ".join(f"{n} {k}" for k, n in sorted(total.items())) or "none"))
    return 1 if "stale" in total else 0


def print_curve_status(points: Sequence[Point], root: Path) -> int:
    """The learning-curve records (:mod:`skinbench.sweep.curves`): one line per task and row with its
    points' counts (current / stale / missing; a 100 % point is the row's ordinary record of that seed),
    then their total on a line of its own; 0 when every one is current."""
    by_row: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {}
    for point, c in zip(points, currencies(points, root)):
        row = by_row.setdefault(f"{point.spec.task}/{point.spec.approach}", {})
        row[c.status] = row.get(c.status, 0) + 1
        total[c.status] = total.get(c.status, 0) + 1
    for name, counts in by_row.items():
        worst = next((s for s in ("stale", "missing", "skipped") if s in counts), "current")
        print(f"{worst:8s} curve {name}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print("learning-curve points: " + ", ".join(f"{n} {k}" for k, n in sorted(total.items())))
    return 0 if set(total) <= {"current"} else 1


def print_derived_status(root: Path) -> bool:
    """The derived reports (subgroups, data hygiene): current / stale (and why) / missing, on a line of their
    own after the records' count (skinbench/results/derived.py); True when all are current."""
    counts: dict[str, int] = {}
    for d in DERIVED:
        c = derived_check(d, root)
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
    plan: dict[str, list[str] | None] = {script: [] for script in EXTRA_SCRIPTS}
    owned: dict[str, list] = {}
    for d in DERIVED:
        owned.setdefault(d.script, []).append(d)
    for script, items in owned.items():
        todo = items if force else [d for d in items if not derived_check(d, root).current]
        if not todo:
            plan[script] = None
        elif len(todo) < len(items) and all(d.args[:1] == ("--tasks",) for d in items):
            plan[script] = ["--tasks", *(d.args[-1] for d in todo)]
    return plan


def verify(points: Sequence[Point], root: Path) -> int:
    """``--verify``: rerun current records with the point executor (its records come back, nothing is
    written) and compare each under its reproducibility rule (:func:`compare_reproduction`): a ``bitwise``
    record must be identical, a ``bitwise-same-cpu`` one identical on the record's CPU and instruction set
    and otherwise within its stated tolerance. Prints "same", "within tolerance (max diff X; ...)" or
    "differs ..." per record; fails if any differs (a change that alters numbers must bump a declared
    version: skinbench/provenance.py)."""
    moved = 0
    for point, c in zip(points, currencies(points, root)):
        if not c.current:
            print(f"-- {name_of(point)}: {c.status}, not verified", file=sys.stderr)
            continue
        result = execute_point(point, command="regenerate.py --verify")
        if result.exception is not None:
            raise result.exception
        if result.error:
            raise RuntimeError(result.error)
        for rel, new in result.records:
            verdict, line = compare_reproduction(RunRecord.from_file(root / rel), new)
            moved += verdict == "differs"
            print(f"{rel}: {line}")
    return 1 if moved else 0


def record_files(root: Path) -> list[Path]:
    """Every committed record a re-scoring reads: ``runs/`` (rows, seed rows, cross-dataset ``X__on__Y``)
    and the sweeps' grid points (``sweeps/<name>/<point>/runs/``). The validation rows
    (``validation/``) hold scores, not per-image predictions, so nothing there can be re-scored."""
    return sorted({*root.glob("runs/*/*/*.json"), *root.glob("sweeps/*/**/runs/*/*/*.json")})


def registered_inputs(root: Path, paths: Sequence[Path], seeds: Sequence[int]) -> dict[Path, dict]:
    """Today's key inputs of each registered row (at each of ``seeds``) that has a record among ``paths``,
    by record path, so a re-scoring checks a row's params and data as ``--status`` does; the data of those
    rows only is loaded, once per dataset."""
    from skinbench.results.currency import expected_inputs
    from skinbench.results.records import record_path

    digests = _Digests(None, None)
    present = set(paths)
    out: dict[Path, dict] = {}
    for seed in sorted(set(seeds)):
        for point in registered_points(seed=seed):
            spec = point.spec
            mine = [record_path(spec.task, spec.dataset_name, spec.approach, target, root=root, seed=spec.seed)
                    for target in spec.targets()]  # a registered dataset's records are filed under its name
            if not present.intersection(mine):
                continue
            inputs, _ = expected_inputs(spec, digests.local(spec, strict=True))
            out.update(dict.fromkeys(mine, inputs))
    return out


def _changes(old: "RunRecord", new: "RunRecord") -> tuple[float, str, list[str]]:
    """The largest change of any metric value or CI bound between two versions of a record, its metric,
    and the metrics whose value became undefined (n/a) or was dropped."""
    worst, name = 0.0, ""
    for m in sorted(set(old.metrics) & set(new.metrics)):
        for a, b in [(old.value(m), new.value(m)), *zip(old.ci(m), new.ci(m))]:
            if a is not None and b is not None and abs(a - b) > worst:
                worst, name = abs(a - b), m
    gone = [m for m in sorted(old.metrics) if old.value(m) is not None and new.value(m) is None]
    return worst, name, gone


def rescore(root: Path, command: str, dry_run: bool = False, only: Sequence[str] | None = None,
            approaches: Sequence[str] | None = None) -> int:
    """``--rescore``: every record whose run key differs from today's only by the scoring version is scored
    again by today's scorer from its stored predictions (:func:`skinbench.results.records.rescored_record`:
    same n_boot and seed, the fit's provenance kept, a ``rescored`` field) and written atomically; one line
    per record, old -> new of the primary metric. A record stale for any other reason is refused (one line,
    left as it is). ``dry_run``: print, write nothing. Exit 1 when a record was refused."""
    from skinbench.environment import environment
    from skinbench.results.currency import rescore_blockers
    from skinbench.results.records import RunRecord, dumps, read_record, rescored_record, write_record
    from skinbench.scoring import SCORING_VERSION

    files = record_files(root)
    records = {path: read_record(path) for path in files}
    records = {p: r for p, r in records.items() if r is not None and (not only or r.task in only)
               and (not approaches or r.approach in approaches)}
    rows = {p: r for p, r in records.items() if p.parent.parent.parent == root / "runs"}  # not the sweeps' points
    known = registered_inputs(root, list(rows), [r.seed or 0 for r in rows.values()])
    commit = str(environment()["versions"].get("git_commit") or "unknown")
    counts = {"rescored": 0, "current": 0, "refused": 0, "skipped": 0}
    worst, worst_at = 0.0, ""
    for path, record in records.items():
        rel = path.relative_to(root).as_posix()
        if not record.ok:
            counts["skipped"] += 1
            continue
        version = ((record.key_inputs or {}).get("versions") or {}).get("runner")
        blockers = rescore_blockers(record, known.get(path))
        if blockers:
            counts["refused"] += 1
            print(f"refused  {rel}: stale for another reason ({'; '.join(blockers)}): left as it is; rerun it "
                  f"(python benchmarks/regenerate.py, or its sweep)")
            continue
        if version == SCORING_VERSION:
            counts["current"] += 1
            continue
        new = rescored_record(record, command, commit)
        stored = RunRecord.from_dict(json.loads(dumps(new)))  # as it will read back: rounded like every record
        metric = info.task(record.task).primary_metric if record.task in info.TASKS else ""
        change, name, gone = _changes(record, stored)
        if change > worst:
            worst, worst_at = change, f"{rel} {name}"
        old_v, new_v = record.value(metric), stored.value(metric)
        fmt = (lambda v: "n/a" if v is None else f"{v:.6f}")
        print(f"{'would rescore' if dry_run else 'rescored'} {rel}: {metric} {fmt(old_v)} -> {fmt(new_v)}"
              f" (largest change {change:.2g}{f' in {name}' if name else ''}"
              f"{'; now n/a: ' + ', '.join(gone) if gone else ''})")
        counts["rescored"] += 1
        if not dry_run:
            write_record(new, path)
    verb = "would rescore" if dry_run else "rescored"
    print(f"{verb} {counts['rescored']}, already scoring version {SCORING_VERSION} {counts['current']}, refused "
          f"{counts['refused']}, skipped records {counts['skipped']}; largest change of any metric value or CI "
          f"bound: {worst:.3g}" + (f" ({worst_at})" if worst_at else ""))
    if counts["rescored"] and not dry_run:
        from skinbench.results.render import render_all

        render_all(root)
        print(f"dashboard: {root / 'README.md'}", file=sys.stderr)
    return 1 if counts["refused"] else 0


def gpu_present() -> bool:
    """A CUDA device node or driver tool is visible (checked without importing a framework)."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


class _Lines(Reporter):
    """regenerate's lines: ``== task/approach`` before a run, then ``skipped`` / ``FAILED`` and its seconds;
    a WeightsError (ImageNet weights not here) becomes a record saying why."""

    def __init__(self, root: Path):
        self.root = root
        self.failures: list[str] = []

    def started(self, point: Point) -> None:
        print(f"== {name_of(point)}", file=sys.stderr)

    def finished(self, point: Point, result: PointResult | None, error: str | None, paths: Sequence[Path]) -> None:
        err = result.exception if result is not None else None
        if isinstance(err, WeightsError):
            spec = point.spec
            runner.write_skipped(spec.task, spec.approach, str(err), dataset=spec.dataset, results_root=self.root)
            print(f"   skipped: {err}", file=sys.stderr)
        elif error:
            text = str(err) if isinstance(err, SkinbenchError) else error
            self.failures.append(f"{name_of(point)}: {text}")
            print(f"   FAILED: {text}", file=sys.stderr)
        print(f"   {result.seconds if result is not None else 0.0:.0f} s", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    """The script's options (its docstring is the help's description)."""
    p = argparse.ArgumentParser(description="Regenerate every committed result under results/ from the real data, "
                                            "in one command.")
    p.add_argument("--quick", action="store_true", help="200 train/test images per task, into results/quick")
    p.add_argument("--only", action="append", help="only these tasks")
    p.add_argument("--approach", action="append", help="only these approaches")
    p.add_argument("--dataset", action="append", help="only these datasets (default: each task's default "
                                                      "and its variants)")
    p.add_argument("--force", action="store_true", help="rerun even when a record is current")
    p.add_argument("--no-extras", action="store_true", help="skip the sweep and performance scripts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-cpu", action="store_true", help="also train the GPU-marked approaches here")
    p.add_argument("--status", action="store_true",
                   help="list every expected record: current, stale (and why) or missing; train nothing")
    p.add_argument("--cost", action="store_true",
                   help="sum the committed run records' timings: the README's full-rebuild figure; train nothing")
    add_allow_dirty(p)
    p.add_argument("--rescore", action="store_true",
                   help="score every record whose key differs from today's only by the scoring version again from "
                        "its stored predictions (no retraining), then re-render the tables; refuses any other "
                        "stale record")
    p.add_argument("--dry-run", action="store_true", help="with --rescore: print old -> new, write nothing")
    p.add_argument("--verify", action="store_true",
                   help="rerun the current records (use --approach / --only to choose; deterministic ones) "
                        "and fail if a number moved under the same run key")
    return p


def warn_lock() -> None:
    """One line on stderr when a package the records name runs at another version than the lock pins
    (``constraints.txt``): new records would be made with other software than the committed ones."""
    differ = lock_mismatches()
    if differ:
        print(f"regenerate: warning: installed versions differ from {LOCK_FILE.name}: {', '.join(differ)} "
              f"(records made now name them; `pip install -c {LOCK_FILE.name} -e \".[test]\"` installs the "
              f"lock's)", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/regenerate.py [options]``: exit 0 when everything is current or ran."""
    from skinbench.results.render import render_all

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    warn_lock()
    gpu = args.allow_cpu or gpu_present()
    root = committed_results_dir() / "quick" if args.quick else committed_results_dir()
    points = registered_points(args.only, approaches=args.approach, datasets=args.dataset, seed=args.seed,
                               limit=QUICK_LIMIT if args.quick else None)
    if args.status:
        return print_status(points, root)
    if args.cost:
        print(rebuild_cost(root).describe())
        return 0
    if args.verify:
        return verify(points, root)
    if args.dry_run and not args.rescore:
        raise ConfigError("--dry-run goes with --rescore", fix="add --rescore (or --status to list without training)")
    check_clean_tree(root, args.allow_dirty or args.dry_run)  # a ConfigError: one line, exit 2 (before any work)
    if args.rescore:
        return rescore(root, runner.command_as_typed([str(SCRIPT), *argv]), dry_run=args.dry_run, only=args.only,
                       approaches=args.approach)
    todo: list[Point] = []
    for point, c in zip(points, currencies(points, root)):
        if not args.force and c.current:
            print(f"== {name_of(point)}: current, kept", file=sys.stderr)
        elif point.spec.task in info.approach(point.spec.approach).gpu_tasks and not gpu and not args.quick:
            print(f"== {name_of(point)}: needs a GPU, none found: record kept as made "
                  "(benchmarks/train_segmenters.py on a GPU, or --allow-cpu)", file=sys.stderr)
        else:
            todo.append(point)
    lines = _Lines(root)
    if todo:  # checked above: these run whatever their records say
        run_sweep(todo, root, engine="local", force=True, progress=lines, allow_dirty=args.allow_dirty,
                  command=runner.command_as_typed([str(SCRIPT), *argv]))
    failures = lines.failures
    if not (args.no_extras or args.quick):
        for script, extra_args in stale_extras(root, args.force).items():
            path = REPO_ROOT / "benchmarks" / script
            if extra_args is None:
                print(f"== {script}: its reports are current, kept", file=sys.stderr)
            elif path.exists():
                cmd = [sys.executable, str(path), *extra_args]
                print(f"== {' '.join(cmd)}", file=sys.stderr)
                env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
                if args.allow_dirty:  # the scripts' sweeps make the same check: carry the escape to them
                    env[ALLOW_DIRTY_ENV] = "1"
                if subprocess.call(cmd, env=env) != 0:
                    failures.append(script)
    render_all(root)
    print(f"dashboard: {root / 'README.md'}", file=sys.stderr)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0
