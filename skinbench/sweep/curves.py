"""The learning-curve definition (issue 32): which rows train on which nested fractions of each task's
training split, with which seeds, as sweep points on the one orchestrator.

Data only, as :mod:`skinbench.sweep.points` is: ``benchmarks/learning_curves.py`` runs :func:`points`
(in-process or on Dask) and renders :mod:`skinbench.results.learning_curves`; ``regenerate.py --status``
lists the same points' records. A fraction point lands in ``learning_curves/<task>/fraction=<f>/`` under
the results root, with its fraction and subset digest in its run key; the 100 % point of a row and seed
is the suite's ordinary record (``runs/<task>/<dataset>/<approach>[__seed<k>].json``), so the seeds
``benchmarks/seeds.py`` already keeps are reused, not retrained.

Rows (the cheapest strong ones of each family on 2 cores; see the committed records' fit times):

* task1 / task2: classical ``bovw`` (the reference recipe) and ``bovw-sift-color`` (DoG RootSIFT +
  colour words: within the CIs of the strongest classical row on both tasks, and the cheapest colour
  variant on task2, whose descriptors cost 967 s against ``bovw-color``'s 2209 s); deep
  ``transfer-mobilenetv2-logreg`` and ``transfer-mobilenetv2`` (frozen ImageNet features, head only),
  and on task1 ``transfer-mobilenetv2-ft-top`` (top blocks fine-tuned on cached activations). Left out
  of the 4-hour budget on 2 cores: ft-top on task2 (its head and top stages take about 10 min per seed at
  100 %: about 70 min for its curve, which would take the definition to about 5 h) and the end-to-end
  row (503 s per task1 fit).
* task4: ``classical-seg`` against ``fpn`` (frozen MobileNetV2 encoder). Its schedule scales with the
  subset as every Keras segmenter's does: ``epochs`` passes over the training images, an epoch being
  ``ceil(n_fit / batch_size)`` steps (``seg_data.PairBatches``), so a 5 % subset gets 5 % of the steps
  and each image the same number of visits (no parameter added: the schedule is already per image).
"""

from __future__ import annotations

from typing import Sequence

from skinbench.sweep.points import Point, SweepConfig

#: the sweep's name: its points land in ``<results>/learning_curves/<task>/fraction=<f>/``
NAME = "learning_curves"
FRACTIONS = [0.05, 0.1, 0.25, 0.5, 1.0]
SEEDS = [0, 1, 2]
ROWS: dict[str, list[str]] = {
    "task1": ["bovw", "bovw-sift-color", "transfer-mobilenetv2-logreg", "transfer-mobilenetv2",
              "transfer-mobilenetv2-ft-top"],
    "task2": ["bovw", "bovw-sift-color", "transfer-mobilenetv2-logreg", "transfer-mobilenetv2"],
    "task4": ["classical-seg", "fpn"],
}


def points(tasks: Sequence[str] | None = None, *, rows: dict[str, list[str]] | None = None,
           fractions: Sequence[float] | None = None, seeds: Sequence[int] | None = None,
           dataset: str | None = None, limit: int | None = None) -> list[Point]:
    """Every point of the definition (or of the ``tasks`` / ``rows`` / ``fractions`` / ``seeds`` asked)."""
    rows = rows or ROWS
    return [p for task, approaches in rows.items() if not tasks or task in tasks
            for p in SweepConfig([task], list(approaches), seeds=list(seeds or SEEDS), dataset=dataset, limit=limit,
                                 fractions=list(fractions or FRACTIONS), name=NAME).points()]
