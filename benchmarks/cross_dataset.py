"""Cross-dataset table: task1 approaches fitted on ISIC 2016 Part 3, scored on HAM10000's test split.

    python benchmarks/cross_dataset.py                          # the committed table (results/)
    python benchmarks/cross_dataset.py --limit 100 --results /tmp/cross   # a quick check (~3 min)

* Training: the official ISIC 2016 Part 3 train split (900 images, 727 benign / 173 malignant),
  re-encoded with the short side at most 384 px.
* Test: the HAM10000 lesion-aware TEST split of ``data_manifests/ham10000.csv`` (2004 images, 200x150;
  the same images as the task2/task4 tables), relabelled for task1 with the mapping
  ``melanoma-vs-rest`` (``skinbench/data/isic_csv.py``): mel -> malignant, every other diagnosis (nv,
  bkl, bcc, akiec, df, vasc) -> benign. ISIC 2016 was a melanoma-detection challenge and its Part 3
  labels are read as melanoma vs the rest; BCC and AKIEC therefore count as benign here, and a model
  that calls them malignant is counted wrong (the default task1 mapping would drop them instead).
* Overlap between the training and the test images (same id or same file sha256) is excluded and
  counted in each record (``extras.overlap``); the input geometry of both sides (``extras.geometry``)
  and the scored images per diagnosis go into the record and the table header.
* Approaches: the baselines, SIFT BoVW + SVM, and the MobileNetV2 feature heads (logistic regression
  and the keras head; both reuse one cache of backbone features, 5 views per training image).

Records: ``<results>/runs/task1/isic2016_task3__on__ham10000-test/<approach>.json``; then every table,
plot and the dashboard are rendered (``render_all``). Fitted models are kept by run key in
``<cache>/models`` (a rerun, or a further test set, costs prediction only). The logic is in
:mod:`skinbench.crossdata`. Cost on 2 CPU cores: printed at the end (wall and CPU seconds).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

TASK = "task1"
TRAIN = "isic2016_task3"
TEST = "ham10000"
MAPPING = "melanoma-vs-rest"
APPROACHES = ("majority", "stratified", "bovw", "transfer-mobilenetv2-logreg", "transfer-mobilenetv2")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approaches", nargs="+", default=list(APPROACHES), metavar="NAME",
                        help=f"task1 approaches (default: {' '.join(APPROACHES)})")
    parser.add_argument("--limit", type=int, help="at most N training and N test images (a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    parser.add_argument("--data-root", help="data root (default: $SKINBENCH_DATA or ../shared/data)")
    parser.add_argument("--results", help="results folder (default: the repository's results/)")
    args = parser.parse_args(argv)

    from skinbench import crossdata, info, quiet
    from skinbench.errors import SkinbenchError
    from skinbench.paths import committed_results_dir
    from skinbench.results.render import render_all

    quiet.install()
    root = Path(args.results).resolve() if args.results else committed_results_dir()
    start, cpu = time.perf_counter(), _cpu_seconds()
    try:
        for name in args.approaches:
            info.approach(name)
        test = crossdata.load_test_set(TEST, TASK, split="test", mapping=MAPPING, data_root=args.data_root)
        _, failures = crossdata.run_cross(TASK, args.approaches, test, dataset=TRAIN, seeds=[args.seed],
                                          limit=args.limit, n_boot=args.n_boot, data_root=args.data_root,
                                          results_root=root, log=lambda line: print(line, file=sys.stderr))
        written = render_all(root)
    except SkinbenchError as err:
        print(f"cross_dataset: {err}", file=sys.stderr)
        return 2
    tables = [p for p in written if p.suffix == ".md" and "__on__" in p.name and p.parent.name == "tables"]
    for path in tables:
        print(f"table: {path}", file=sys.stderr)
    print(f"cross_dataset: {time.perf_counter() - start:.0f} s wall, {_cpu_seconds() - cpu:.0f} s CPU "
          f"({os.cpu_count()} cores); {len(failures)} failed" + "".join(f"\n  {f}" for f in failures),
          file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
