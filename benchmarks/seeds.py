"""Seeds 0, 1, 2 of every row whose single run costs under 10 minutes on 2 CPU cores, as one sweep.

A sweep definition (skinbench.sweep): seed 0 of each row is the record regenerate.py keeps; seeds 1 and 2
land beside it as ``<approach>[__<target>]__seed<k>.json``, and tables show the mean ± sd over seeds next to
seed 0's CI. Current points are skipped, so a rerun only fills what is missing or stale. About 40 minutes
from an empty cache (most of it MobileNetV2 features of the 8011 HAM10000 training images x 5 views).

    python benchmarks/seeds.py [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import sweep  # noqa: E402
from skinbench.paths import committed_results_dir  # noqa: E402

SEEDS = [0, 1, 2]
#: rows under 10 minutes here; the deep segmenters and the task2 dense/colour BoVW rows are one seed
ROWS = {
    "task1": ["majority", "stratified", "bovw", "bovw-sift-chi2", "bovw-dense", "bovw-color", "bovw-sift-color",
              "transfer-mobilenetv2", "transfer-mobilenetv2-logreg"],
    "task2": ["majority", "stratified", "bovw", "bovw-sift-chi2", "transfer-mobilenetv2",
              "transfer-mobilenetv2-logreg"],
    "task3": ["all-background", "all-foreground", "classical-dots"],
    "task4": ["all-background", "all-foreground", "ellipse", "classical-seg"],
}


def points() -> list[sweep.Point]:
    return [p for task, approaches in ROWS.items()
            for p in sweep.SweepConfig([task], approaches, seeds=SEEDS).points()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sweep.add_engine_options(parser, workers=2)
    args = parser.parse_args(argv)
    summary = sweep.run_sweep(points(), committed_results_dir(), command="python benchmarks/seeds.py",
                              **sweep.engine_options(args))
    print("\n".join(summary.lines()))
    return 0 if summary.ok else 1

if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "seeds")
