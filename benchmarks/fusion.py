"""Late fusion and seed ensembles from the committed records' stored probabilities (no retraining), with the
complementarity table and the hard-case gallery of task1 and task2; task4's agreement table and hard cases
(its gallery draws the true lesion outlines).

    python benchmarks/fusion.py [--results DIR] [--data-root DIR] [--tasks task1 task2 task4]

Reads ``<results>/runs/<task>/<default dataset>/*.json``; writes ``<results>/ensembles/<task>.md``, the derived
records under ``<results>/ensembles/runs/`` and, when the data is present, ``<task>_hard_cases.png`` (the test
images come from the data root; without it the hard cases are listed only), then ``<task>.md.key.json``: the
key of the parent records it read (:mod:`skinbench.results.derived`; ``regenerate.py --status`` says when it
is stale). The logic is :mod:`skinbench.results.ensembles`; the dashboard shows the rows once rendered.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`


def main(argv: list[str] | None = None) -> int:
    from skinbench.results.ensembles import REPORT_TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", help="results folder (default: the repository's results/)")
    parser.add_argument("--data-root", help="data root for the gallery's images (default: $SKINBENCH_DATA or "
                                            "../shared/data)")
    parser.add_argument("--tasks", nargs="+", default=list(REPORT_TASKS), choices=REPORT_TASKS)
    args = parser.parse_args(argv)

    from skinbench import info
    from skinbench.data import load_for_task
    from skinbench.errors import DataError, SkinbenchError
    from skinbench.paths import committed_results_dir
    from skinbench.results.derived import derived, write_key
    from skinbench.results.ensembles import write_ensembles

    root = Path(args.results) if args.results else committed_results_dir()
    command = " ".join(["python benchmarks/fusion.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        for task in args.tasks:
            start = time.perf_counter()
            images = masks = None
            try:
                test = load_for_task(task, info.task(task).default_dataset, args.data_root).split("test")
                images = dict(zip(test.ids, test.paths))
                if info.task(task).kind == "segmentation":  # the gallery draws the true outlines
                    masks = dict(zip(test.ids, test.masks(info.task(task).targets[0], missing="empty")))
            except DataError as err:
                print(f"{task}: no gallery images ({err}); the hard cases are listed only", file=sys.stderr)
            written = write_ensembles(root, task, command, images, masks)
            written.append(write_key(derived(f"ensembles/{task}"), root))
            print(f"{task}: {len(written) - 2} files in {time.perf_counter() - start:.1f} s -> "
                  + ", ".join(str(p) for p in written), file=sys.stderr)
    except SkinbenchError as err:
        print(f"fusion: {err}", file=sys.stderr)
        return 2
    print("the dashboard shows them once rendered (`python -m skinbench table`)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
