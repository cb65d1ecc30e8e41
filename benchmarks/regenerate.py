"""Regenerate every committed result under results/ from the real data, in one command.

    python benchmarks/regenerate.py            # everything (hours on 2 CPU cores; caches make reruns cheap)
    python benchmarks/regenerate.py --quick    # a 200-image subset per split, into results/quick/
    python benchmarks/regenerate.py --only task1 --only task4 --force
    python benchmarks/regenerate.py --status   # current / stale (and why) / missing, in seconds, no training
    python benchmarks/regenerate.py --verify --only task4 --approach ellipse   # same key, same numbers?
    python benchmarks/regenerate.py --rescore [--dry-run]   # after a scoring change: re-score, no retraining

A run is skipped when its record already holds the same run key (task, approach, data manifest, seed,
params and the declared algorithm versions: see skinbench/provenance.py); estimators cache their expensive work by content,
so a rerun after an interruption resumes. Approaches the registry marks as needing a GPU on a task
(``gpu_tasks``: none today) are not retrained on a machine without one: their
records stay as made (each names its command and commit); ``--allow-cpu`` trains them anyway.
Approaches that cannot run here (ImageNet weights not available offline) get a record that says why. The extra benchmarks (sweeps, performance) run after the records, then the tables,
plots and the dashboard results/README.md are rendered from the records alone. The derived reports
(``results/subgroups/``, ``results/data_hygiene/``, the fusion and seed-ensemble rows of ``results/ensembles/``) are keyed on the records and manifests they read
(skinbench/results/derived.py): ``--status`` lists them after the records, and their scripts rerun only when
one is stale or missing (or with ``--force``).

``--rescore`` scores every record whose run key differs from today's only by the scoring version
(skinbench.scoring.SCORING_VERSION) again from its stored predictions, with its own n_boot and seed, keeping
the fit's provenance and adding a ``rescored`` field; it prints old -> new of the primary metric per record,
refuses (and leaves) a record stale for any other reason, refuses a dirty tree, and re-renders the tables.
The derived reports keyed on the records' run keys are stale afterwards: run ``python benchmarks/subgroups.py``
and ``python benchmarks/duplicates_report.py``.

The logic is :mod:`skinbench.sweep.regenerate` (importable, tested): the registered records are the points
of one in-process sweep, through the same point executor and currency check as `run`, `smoke` and `sweep`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench.sweep.regenerate import main  # noqa: E402

if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "regenerate")
