"""HAM10000 subgroups: the primary metric of the committed task2 and task4 records per sex, age band,
body site and diagnosis method, with CIs, sizes and the best-worst gap (no retraining).

    python benchmarks/subgroups.py [--data-root DIR] [--results DIR] [--tasks task2 task4] [--n-boot 1000]

Reads ``<results>/runs/<task>/ham10000/*.json`` and ``<data root>/ham10000/HAM10000_metadata.csv``;
writes ``<results>/subgroups/<task>.md|csv|png`` and ``<task>.md.key.json``, the key of the records and data
it read (:mod:`skinbench.results.derived`: ``regenerate.py --status`` says when it is stale). The logic is in
:mod:`skinbench.results.subgroups_report`; the dashboard links the reports when they exist.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`


def main(argv: list[str] | None = None) -> int:
    from skinbench.results.subgroups_report import SUBGROUP_TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="data root (default: $SKINBENCH_DATA or ../shared/data)")
    parser.add_argument("--results", help="results folder (default: the repository's results/)")
    parser.add_argument("--tasks", nargs="+", default=list(SUBGROUP_TASKS), choices=SUBGROUP_TASKS)
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per group")
    args = parser.parse_args(argv)

    from skinbench.errors import SkinbenchError
    from skinbench.metrics.subgroups import load_ham10000_metadata
    from skinbench.environment import environment
    from skinbench.paths import committed_results_dir, data_root, portable
    from skinbench.results.derived import derived, write_key
    from skinbench.results.records import load_records
    from skinbench.results.subgroups_report import first_seed_records, write_subgroup_report

    root = Path(args.results) if args.results else committed_results_dir()
    meta_path = data_root(args.data_root) / "ham10000" / "HAM10000_metadata.csv"
    env = environment()
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    command = " ".join(["python benchmarks/subgroups.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        for task in args.tasks:
            start = time.perf_counter()
            records = first_seed_records(load_records(root, task=task, dataset="ham10000"), task)
            if not records:
                print(f"{task}: no ok records under {root / 'runs' / task / 'ham10000'}; skipped", file=sys.stderr)
                continue
            ids = sorted({i for r in records for i in r.predictions["image_id"]})
            metadata = load_ham10000_metadata(meta_path, ids)
            written = write_subgroup_report(task, records, metadata, root / "subgroups",
                                            {"command": command, "data": portable(meta_path, args.data_root),
                                             "versions": versions},
                                            n_boot=args.n_boot)
            written.append(write_key(derived(f"subgroups/{task}"), root, {"n_boot": args.n_boot}))
            print(f"{task}: {len(records)} records in {time.perf_counter() - start:.1f} s -> "
                  + ", ".join(str(p) for p in written), file=sys.stderr)
    except SkinbenchError as err:
        print(f"subgroups: {err}", file=sys.stderr)
        return 2
    print("the dashboard links the reports once rendered (`python -m skinbench table`)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
