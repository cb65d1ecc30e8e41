"""Learning curves (issue 32): classical and deep rows trained on 5, 10, 25, 50 and 100 % of each task's
training split (nested, stratified, lesion-aware subsets; seeds 0, 1, 2 = three subset paths), scored on
the whole official test split, as one sweep; then the plot, table and crossover per task.

    python benchmarks/learning_curves.py [--tasks task1 task2 task4] [--workers 2] [--status] [--report-only]

The definition (rows, fractions, seeds) is :mod:`skinbench.sweep.curves` (``regenerate.py --status`` lists
the same records); fraction records land in ``results/learning_curves/<task>/fraction=<f>/runs/``, the
100 % points are the ordinary records in ``results/runs/`` (seeds ``benchmarks/seeds.py`` keeps are
reused). Current points are skipped, so an interrupted run resumes; per-image features, descriptors,
activations and segmenter inputs are cached by content, so a fraction never recomputes what the full set
cached. Reports: ``results/learning_curves/<task>.md|csv|json|png`` (:mod:`skinbench.results.learning_curves`),
shown in the dashboard's learning-curve section once rendered (the json: the crossover it prints).

Cost on 2 cores (Intel Xeon), estimated from one measured point and the committed records' fit and
predict times: about 3.75 h from an empty cache (task1 40 min, task2 70 min, task4 2 h: the FPN's 12
fraction fits and its 100 % seeds 1 and 2 are most of it), about 3 h with the descriptors, features and
segmenter inputs the committed records left in the cache (features and activations are drawn with
``view_seed``, not the run's seed, so all seeds share them). Measured: task1 bovw at 5 %, seed 1, empty
cache: 51 s for the point (fit 26 s on 45 images, predicting the 379 test images 25 s, their SIFT
descriptors computed once for every later point). The largest single point is about 10 min (the FPN at 50 %).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import sweep  # noqa: E402
from skinbench.errors import ConfigError  # noqa: E402
from skinbench.paths import committed_results_dir  # noqa: E402
from skinbench.sweep import curves  # noqa: E402

#: the rows, fractions and seeds (kept in the package: regenerate.py --status lists the same points)
ROWS, FRACTIONS, SEEDS = curves.ROWS, curves.FRACTIONS, curves.SEEDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(ROWS), default=sorted(ROWS))
    parser.add_argument("--approach", action="append", help="only these rows")
    parser.add_argument("--fractions", nargs="+", type=float, help="only these fractions (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: 0 1 2)")
    parser.add_argument("--limit", type=int, help="at most N train and test images (a scratch measurement: its "
                                                  "records land in --results)")
    parser.add_argument("--results", help="results folder (default: the repository's results/)")
    parser.add_argument("--status", action="store_true", help="list current / missing points; train nothing")
    parser.add_argument("--report-only", action="store_true", help="only render the reports from the records")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the crossover test")
    sweep.add_engine_options(parser, workers=1)
    args = parser.parse_args(argv)

    from skinbench.results.derived import derived, write_key
    from skinbench.results.learning_curves import write_reports
    from skinbench.sweep.regenerate import print_curve_status

    if args.limit and not args.results:  # its 100 % points would overwrite the committed full-data records
        raise ConfigError("--limit makes scratch records", fix="pass --results DIR (a scratch folder) with --limit")
    root = Path(args.results) if args.results else committed_results_dir()
    rows = {t: [a for a in ROWS[t] if not args.approach or a in args.approach] for t in args.tasks}
    points = curves.points(args.tasks, rows=rows, fractions=args.fractions, seeds=args.seeds, limit=args.limit)
    if args.status:
        return print_curve_status(points, root)
    if not args.report_only:
        command = " ".join(["python benchmarks/learning_curves.py", *(sys.argv[1:] if argv is None else argv)])
        summary = sweep.run_sweep(points, root, command=command, **sweep.engine_options(args))
        print("\n".join(summary.lines()), file=sys.stderr)
        if not summary.ok:
            return 1
    written = write_reports(root, args.tasks, n_boot=args.n_boot)
    for task in sorted({p.stem for p in written if p.suffix == ".md"}):  # keyed: regenerate.py --status
        written.append(write_key(derived(f"{curves.NAME}/{task}"), root, {"n_boot": args.n_boot}))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    print("the dashboard links the reports once rendered (`python -m skinbench table`)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "learning_curves")
