"""Learning-curve reports (issue 32): the primary metric against the number of training images, per
task, from the fraction records alone; and the crossover, where the best deep row starts to beat the
best classical one.

Records: a fraction point's record lives under ``<root>/learning_curves/<task>/fraction=<f>/runs/`` and
names its fraction and subset digest in ``split`` (see :mod:`skinbench.sweep.curves`); the 100 % point
of a row and seed is the suite's ordinary record under ``<root>/runs/``. Nothing is retrained here.

The crossover rule (:func:`crossover`, :func:`crossover_fraction`):

* Which rows: the best classical and the best deep row are chosen once per task, before any fraction is
  compared, by the mean over seeds of their 100 % records' primary metric (the suite's own full-data
  rows). No test score of a smaller fraction enters the choice. (The 100 % rows are themselves scored on
  the test split: the choice is the one the main tables already show, not a tuned one.)
* At each fraction, the seeds both rows have are paired: the effect is the mean over seeds of
  (deep - classical) on the whole official test split, and its two-sided p-value and CI come from one
  bootstrap over test images shared by every seed (:func:`skinbench.metrics.significance.paired_bootstrap_batch`).
* The p-values of all fractions are adjusted together (Holm); the crossover is the smallest fraction at
  which the deep row is ahead with an adjusted p below ``alpha``. None: no crossover within the data we
  hold (the deep row never beats the classical one significantly, or it has no records yet).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tabulate import tabulate

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.metrics.significance import paired_bootstrap_batch
from skinbench.results.paired import fmt_p, holm
from skinbench.results.plots import plt, save_figure
from skinbench.results.records import RunRecord, read_record, record_path
from skinbench.results.subgroups_report import primary_batch_fn

__all__ = ["FOLDER", "CurvePoint", "FractionTest", "Crossover", "curve_points", "summary_rows", "best_rows",
           "crossover", "crossover_fraction", "plot_curve", "report_markdown", "write_reports"]

#: where the fraction records and the reports live, under the results root
FOLDER = "learning_curves"
#: the families a crossover compares
FAMILIES = ("classical", "deep")


@dataclass(frozen=True)
class CurvePoint:
    """One record of a learning curve: a row trained on one fraction with one seed."""

    approach: str
    family: str
    fraction: float
    seed: int
    n_train: int
    value: float | None
    record: RunRecord = field(repr=False, compare=False)


def _point(record: RunRecord, fraction: float) -> CurvePoint:
    metric = info.task(record.task).primary_metric
    return CurvePoint(record.approach, record.registered_family or "other", float(fraction), int(record.seed or 0),
                      int((record.split or {}).get("n_train") or 0), record.value(metric), record)


def curve_points(root: str | os.PathLike, task: str) -> list[CurvePoint]:
    """Every finished record of ``task``'s curve under ``root``: the fraction records, and for each row and
    seed that has one, its 100 % record (the ordinary one) when it exists."""
    root = Path(root)
    out: list[CurvePoint] = []
    rows: set[tuple[str, str, str | None, int]] = set()
    for path in sorted((root / FOLDER / task).glob("fraction=*/runs/*/*/*.json")):
        record = read_record(path)
        fraction = (record.split or {}).get("fraction") if record is not None else None
        if record is None or not record.ok or record.task != task or fraction is None:
            continue
        out.append(_point(record, fraction))
        rows.add((record.approach, record.dataset, record.target, int(record.seed or 0)))
    for approach, dataset, target, seed in sorted(rows, key=str):
        path = record_path(task, dataset, approach, target, root=root, seed=seed)
        record = read_record(path) if path.exists() else None
        if record is not None and record.ok:
            out.append(_point(record, 1.0))
    return out


def _by(points: Sequence[CurvePoint], approach: str, fraction: float) -> dict[int, CurvePoint]:
    return {p.seed: p for p in points if p.approach == approach and p.fraction == fraction}


def summary_rows(points: Sequence[CurvePoint]) -> list[dict]:
    """One row per (row, fraction): training images, seeds, and the metric's mean, sd, min and max over
    seeds (None where no seed has a value)."""
    rows = []
    for approach in dict.fromkeys(p.approach for p in points):
        for fraction in sorted({p.fraction for p in points if p.approach == approach}):
            group = list(_by(points, approach, fraction).values())
            values = np.array([p.value for p in group if p.value is not None], dtype=float)
            rows.append({"approach": approach, "family": group[0].family, "fraction": fraction,
                         "n_train": int(round(np.mean([p.n_train for p in group]))), "seeds": len(group),
                         "mean": float(values.mean()) if values.size else None,
                         "sd": float(values.std(ddof=1)) if values.size > 1 else None,
                         "min": float(values.min()) if values.size else None,
                         "max": float(values.max()) if values.size else None})
    return rows


def best_rows(points: Sequence[CurvePoint]) -> dict[str, str | None]:
    """{family: approach}: the row of each family with the highest mean over seeds at 100 % (None: the
    family has no 100 % record). Chosen on the full-data rows, never on a smaller fraction's scores."""
    full = [r for r in summary_rows(points) if r["fraction"] == 1.0 and r["mean"] is not None]
    return {fam: max((r for r in full if r["family"] == fam), key=lambda r: r["mean"], default={}).get("approach")
            for fam in FAMILIES}


@dataclass
class FractionTest:
    """Best deep against best classical at one fraction, paired over the seeds both have."""

    fraction: float
    seeds: list[int]
    n_images: int = 0
    difference: float | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    p_holm: float | None = None
    note: str = ""


@dataclass
class Crossover:
    """A task's crossover: the rows compared, each fraction's test, and the answer (None: none)."""

    task: str
    metric: str
    classical: str | None
    deep: str | None
    tests: list[FractionTest]
    fraction: float | None
    alpha: float


def crossover_fraction(tests: Sequence[FractionTest], alpha: float = 0.05) -> float | None:
    """The smallest fraction whose deep-minus-classical difference is positive with a Holm-adjusted p-value
    (over all the fractions tested) below ``alpha``; None when there is none. Sets each test's ``p_holm``."""
    for test, adjusted in zip(tests, holm([t.p_value for t in tests])):
        test.p_holm = adjusted
    wins = [t.fraction for t in tests
            if t.difference is not None and t.difference > 0 and t.p_holm is not None and t.p_holm < alpha]
    return min(wins, default=None)


def _aligned(record: RunRecord, order: dict[str, int]):
    """The record's primary metric as a function of image weights given in ``order``'s image order."""
    ids, metric, batch_fn = primary_batch_fn(record)
    if set(ids.tolist()) != set(order):
        raise ValueError(f"{record.approach} seed {record.seed} predicted other test images")
    perm = np.array([order[i] for i in ids], dtype=int)
    return lambda w: np.asarray(batch_fn(np.atleast_2d(w)[:, perm])[metric], dtype=float)


def crossover(points: Sequence[CurvePoint], task: str, n_boot: int = 1000, seed: int = 0,
              alpha: float = 0.05) -> Crossover:
    """The crossover of ``task``'s curve (see the module docstring for the rule)."""
    metric = info.task(task).primary_metric
    best = best_rows(points)
    classical, deep = best["classical"], best["deep"]
    tests: list[FractionTest] = []
    if classical and deep:
        for fraction in sorted({p.fraction for p in points}):
            a, b = _by(points, deep, fraction), _by(points, classical, fraction)
            seeds = sorted(set(a) & set(b))
            test = FractionTest(fraction, seeds)
            tests.append(test)
            if not seeds:
                test.note = "no seed of both rows"
                continue
            ids, _, _ = primary_batch_fn(a[seeds[0]].record)
            order = {i: k for k, i in enumerate(ids.tolist())}
            try:
                pairs = [(_aligned(a[s].record, order), _aligned(b[s].record, order)) for s in seeds]
            except ValueError as err:
                test.note = f"cannot pair: {err}"
                continue
            res = paired_bootstrap_batch(pairs, len(order), n_boot=n_boot, seed=seed, alpha=alpha)
            test.n_images, test.difference, test.p_value = len(order), res["difference"], res["p_value"]
            test.ci = (res["ci"][0], res["ci"][1])
    return Crossover(task, metric, classical, deep, tests, crossover_fraction(tests, alpha), alpha)


# ------------------------------------------------------------------ outputs

_COLOURS = {"classical": ("#1f77b4", "#17becf", "#2ca02c"), "deep": ("#d62728", "#ff7f0e", "#9467bd", "#8c564b")}


def plot_curve(points: Sequence[CurvePoint], task: str, path: str | os.PathLike) -> Path | None:
    """Primary metric against training images (log x): the mean over seeds per row, the range over
    seeds as a band; classical rows in blues and greens, deep rows in reds and purples."""
    rows = [r for r in summary_rows(points) if r["mean"] is not None]
    if not rows:
        return None
    metric = info.task(task).primary_metric
    fig, ax = plt.subplots(figsize=(7, 4.5))
    used: dict[str, int] = {}
    for approach in dict.fromkeys(r["approach"] for r in rows):
        mine = sorted((r for r in rows if r["approach"] == approach), key=lambda r: r["n_train"])
        family = mine[0]["family"]
        palette = _COLOURS.get(family, ("#7f7f7f",))
        colour = palette[used.get(family, 0) % len(palette)]
        used[family] = used.get(family, 0) + 1
        x = [r["n_train"] for r in mine]
        ax.plot(x, [r["mean"] for r in mine], marker="o", color=colour,
                linestyle="-" if family == "deep" else "--", label=f"{approach} ({family})")
        ax.fill_between(x, [r["min"] for r in mine], [r["max"] for r in mine], color=colour, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel(f"{metric} (test split)")
    ax.set_title(f"{task}: {info.task(task).title}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def crossover_sentence(result: Crossover, points: Sequence[CurvePoint]) -> str:
    """The answer in one sentence (the dashboard's and the closing note's)."""
    if not (result.classical and result.deep):
        missing = " and ".join(f for f in FAMILIES if not (result.classical if f == "classical" else result.deep))
        return f"No crossover can be tested yet: no 100 % {missing} record of this curve."
    if result.fraction is None:
        return (f"No crossover within the data we hold: {result.deep} never beats {result.classical} on "
                f"{result.metric} with a Holm-adjusted p below {result.alpha} at any fraction tested.")
    n = next((r["n_train"] for r in summary_rows(points)
              if r["approach"] == result.deep and r["fraction"] == result.fraction), None)
    test = next(t for t in result.tests if t.fraction == result.fraction)
    smallest = min(t.fraction for t in result.tests)
    first = "already at the smallest fraction tested, " if result.fraction == smallest else ""
    return (f"Crossover at {_pct(result.fraction)} of the training split ({first}about {n} training images): "
            f"{result.deep} beats {result.classical} on {result.metric} by {test.difference:+.3f} (mean over "
            f"{len(test.seeds)} seeds, Holm p {fmt_p(test.p_holm, '—')}).")


def report_markdown(task: str, points: Sequence[CurvePoint], result: Crossover, image: str | None) -> str:
    """The task's report: how the curve was made, the figure, the table and the crossover."""
    rows = summary_rows(points)
    n_test = max((int((p.record.split or {}).get("n_test") or 0) for p in points), default=0)
    seeds = sorted({p.seed for p in points})
    plural = "s" if len(seeds) > 1 else ""
    out = ["<!-- generated by `python benchmarks/learning_curves.py` (skinbench/results/learning_curves.py); "
           "do not edit -->",
           f"# Learning curve: {task}, {info.task(task).title}\n",
           f"`{result.metric}` on the whole official test split ({n_test} images) against the number of training "
           "images. Each fraction is a nested, class-stratified, lesion-aware subset of the training split "
           f"(each smaller one inside the larger); seed{plural} {', '.join(map(str, seeds))}: {len(seeds)} subset "
           f"path{plural} (and model seed{plural}). The lines are means over seeds, the bands the range over seeds. "
           "100 % is each row's ordinary record.\n"]
    if image:
        out.append(f"![learning curve]({image})\n")
    out.append(tabulate([[r["approach"], r["family"], _pct(r["fraction"]), r["n_train"], r["seeds"], _fmt(r["mean"]),
                          _fmt(r["sd"]), _fmt(r["min"]), _fmt(r["max"])] for r in rows],
                        headers=["row", "family", "fraction", "training images", "seeds", "mean", "sd", "min",
                                 "max"], tablefmt="github", disable_numparse=True))
    out.append("\n## Crossover\n")
    out.append(f"Rows compared: best classical `{result.classical or '—'}` and best deep `{result.deep or '—'}`, "
               "each the highest mean over seeds of its family's 100 % records (chosen once, before any "
               "fraction is compared; no smaller fraction's test score enters the choice). At each fraction: "
               "mean over the seeds both rows have of (deep − classical), a two-sided paired bootstrap over "
               "the test images (one resample for every seed), Holm-adjusted over the fractions.\n")
    if result.tests:
        out.append(tabulate([[_pct(t.fraction), len(t.seeds), t.n_images or "—",
                              "—" if t.difference is None else f"{t.difference:+.3f}",
                              "—" if t.ci is None else f"[{t.ci[0]:+.3f}, {t.ci[1]:+.3f}]", fmt_p(t.p_value, "—"),
                              fmt_p(t.p_holm, "—"), t.note] for t in result.tests],
                            headers=["fraction", "seeds", "test images", "Δ deep − classical", "95% CI", "p",
                                     "Holm p", "note"], tablefmt="github", disable_numparse=True))
        out.append("")
    out.append(f"**{crossover_sentence(result, points)}**\n")
    return "\n".join(out) + "\n"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["approach", "family", "fraction", "n_train", "seeds", "mean", "sd", "min", "max"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})
    return buf.getvalue()


def write_reports(root: str | os.PathLike, tasks: Sequence[str] | None = None, n_boot: int = 1000) -> list[Path]:
    """``<root>/learning_curves/<task>.md|csv|json|png`` for every task with curve records (the json: the
    crossover and its sentence, which the dashboard shows); the files written."""
    root = Path(root)
    folder = root / FOLDER
    written: list[Path] = []
    known = sorted(p.name for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"task\d+", p.name)) \
        if folder.is_dir() else []
    for task in tasks or known:
        points = curve_points(root, task)
        if not points:
            continue
        figure = plot_curve(points, task, folder / f"{task}.png")
        result = crossover(points, task, n_boot=n_boot)
        text = report_markdown(task, points, result, figure.name if figure else None)
        answer = {"task": task, "metric": result.metric, "classical": result.classical, "deep": result.deep,
                  "crossover_fraction": result.fraction, "sentence": crossover_sentence(result, points),
                  "figure": figure.name if figure else None}  # what the dashboard shows, without re-testing
        for suffix, data in ((".md", text), (".csv", _csv(summary_rows(points))),
                             (".json", json.dumps(answer, indent=1) + "\n")):
            atomic_write_bytes(folder / f"{task}{suffix}", data.encode())
            written.append(folder / f"{task}{suffix}")
        if figure:
            written.append(figure)
    return written
