"""The equal-cost view (issue 32): what each point of a table's primary metric costs to train and to run.

Why: a classical row that trains in 3 minutes and a deep row that trains in 55 are not the same offer to a
user on a laptop. Per table, from the records alone:

* :func:`cost_points`: one point per approach (its first seed): primary metric with its CI, training cost
  (CPU seconds, user + system of the process and its children, where the record has them, ``timings.cpu``;
  else the fit's wall seconds, marked as such: records made before CPU time was recorded keep their keys
  and numbers) and inference milliseconds per image (``timings.predict_ms_per_image``; else the predict
  wall seconds over the test images, marked);
* :func:`pareto_front`: the rows no other row beats on both cost and metric;
* :func:`plot_costs`: metric vs cost, log x, classical and deep in two colours, the front drawn;
* :func:`cost_sentence`: "the cheapest row within the best row's CI trains in N s".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skinbench.results.plots import plt, save_figure
from skinbench.results.records import RunRecord
from skinbench.results.tables import MISSING, Table, contributed_by, is_cross

__all__ = ["CostPoint", "cpu_fit_seconds", "cpu_predict_seconds", "ms_per_image", "cost_points", "pareto_front",
           "plot_costs", "render_cost_plots", "cost_sentence", "cpu_cells", "COLOURS"]

#: family -> plot colour (classical and deep in two colours; baselines grey)
COLOURS = {"classical": "tab:orange", "deep": "tab:blue", "baseline": "tab:gray"}


def _cpu(record: RunRecord, part: str) -> float | None:
    cpu = record.timings.get("cpu")
    value = cpu.get(part) if isinstance(cpu, dict) else None
    return None if value is None else float(value)


def cpu_fit_seconds(record: RunRecord) -> float | None:
    """Training CPU seconds (user + sys, with children) as the runner recorded them; None before it did."""
    return _cpu(record, "fit_s")


def cpu_predict_seconds(record: RunRecord) -> float | None:
    return _cpu(record, "predict_s")


def ms_per_image(record: RunRecord) -> tuple[float | None, bool]:
    """(inference wall ms per test image, recorded): the recorded value, else predict seconds over the
    test images (False: derived from an older record's totals)."""
    value = record.timings.get("predict_ms_per_image")
    if value is not None:
        return float(value), True
    seconds, n = record.timings.get("predict_s"), record.split.get("n_test")
    if seconds is None or not n:
        return None, False
    return 1000.0 * float(seconds) / int(n), False


@dataclass(frozen=True)
class CostPoint:
    """One approach of a table in the equal-cost view."""

    approach: str
    family: str
    value: float
    lo: float | None
    hi: float | None
    train_cost: float | None
    train_is_cpu: bool  # False: the fit's wall seconds (no CPU time recorded)
    infer_ms: float | None
    infer_recorded: bool
    #: the fit found some of its work cached (features, activations, stages): its cost is a lower bound
    partial: bool = False

    @property
    def label(self) -> str:
        return self.approach + ("*" if self.partial else "")


def cost_points(table: Table) -> list[CostPoint]:
    """The table's ok suite rows with its primary metric (first seed; contributed rows have their own section)."""
    metric = table.primary
    out = []
    for row in table.rows:
        r = table.records.get(row["approach"])
        if r is None or not r.ok or r.value(metric) is None or contributed_by(r):
            continue
        cpu = cpu_fit_seconds(r)
        ms, recorded = ms_per_image(r)
        lo, hi = r.ci(metric)
        out.append(CostPoint(r.approach, row["family"], float(r.value(metric)), lo, hi,
                             cpu if cpu is not None else r.fit_seconds, cpu is not None, ms, recorded,
                             bool(r.cache_hit_fraction)))
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, value) points no other point dominates (cost <= and value >=, one strictly:
    lower cost is better, higher value is better), in increasing cost. Points with a None are left out."""
    idx = [i for i, (c, v) in enumerate(points) if c is not None and v is not None]
    front = []
    for i in idx:
        ci, vi = points[i]
        dominated = any((points[j][0] <= ci and points[j][1] >= vi) and (points[j][0] < ci or points[j][1] > vi)
                        for j in idx if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def plot_costs(points: Sequence[CostPoint], metric: str, which: str, path: str | os.PathLike,
               title: str = "") -> Path | None:
    """Primary metric (CI bars) vs training cost (``which="train"``) or inference ms/image (``"infer"``),
    log x, one point per approach, the Pareto front drawn; hollow markers: wall-clock fallbacks."""
    cost = [(p.train_cost if which == "train" else p.infer_ms) for p in points]
    shown = [(p, c) for p, c in zip(points, cost) if c is not None and c > 0]
    if len(shown) < 1:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for family in sorted({p.family for p, _ in shown}):
        for measured in (True, False):
            group = [(p, c) for p, c in shown if p.family == family
                     and (p.train_is_cpu if which == "train" else p.infer_recorded) == measured]
            if not group:
                continue
            colour = COLOURS.get(family, "tab:green")
            xs, ys = [c for _, c in group], [p.value for p, _ in group]
            err = [[max(0.0, p.value - p.lo) if p.lo is not None else 0.0 for p, _ in group],
                   [max(0.0, p.hi - p.value) if p.hi is not None else 0.0 for p, _ in group]]
            fallback = " (fit wall s)" if which == "train" else " (predict wall s / image)"
            label = family + ("" if measured else fallback)
            ax.errorbar(xs, ys, yerr=err, fmt="o", color=colour, mfc=colour if measured else "white",
                        capsize=2, label=label, alpha=0.9)
            for p, c in group:
                ax.annotate(p.label if which == "train" else p.approach, (c, p.value), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
    rows = [(p, c) for p, c in shown if p.family != "baseline"]  # the floor is drawn, the front is the rows'
    front = pareto_front([(c, p.value) for p, c in rows])
    if len(front) > 1:
        ax.plot([rows[i][1] for i in front], [rows[i][0].value for i in front], "--", color="black",
                linewidth=0.8, label="Pareto front (classical and deep)")
    ax.set_xscale("log")
    if which == "train":
        cpu = {p.train_is_cpu for p, _ in shown}
        ax.set_xlabel("training CPU seconds (user + sys)" if cpu == {True} else
                      "training seconds: fit wall clock (no CPU time recorded)" if cpu == {False} else
                      "training cost: CPU seconds (filled), fit wall seconds where not recorded (hollow)")
    else:
        ax.set_xlabel("inference ms per image (wall)")
    ax.set_ylabel(metric)
    if which == "train" and any(p.partial for p, _ in shown):
        title += "\n* the fit found cached work (features, stages): its cost leaves that out"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, Path(path))


def render_cost_plots(tables: Sequence[Table], root: str | os.PathLike) -> dict[str, list[Path]]:
    """The two cost plots of every in-dataset table, ``{<slug>__cost: [train png, inference png]}``."""
    out_dir = Path(root) / "plots"
    written: dict[str, list[Path]] = {}
    for table in tables:
        if is_cross(table.dataset):
            continue
        points = cost_points(table)
        files = [plot_costs(points, table.primary, which, out_dir / f"{table.slug}__cost_{which}.png", table.title)
                 for which in ("train", "infer")]
        files = [f for f in files if f is not None]
        if files:
            written[f"{table.slug}__cost"] = files
    return written


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def cost_sentence(table: Table) -> str:
    """One sentence from the records: the best row by the primary metric, and the cheapest row to train
    whose value lies within the best row's CI (with what that saves)."""
    points = [p for p in cost_points(table) if p.family != "baseline" and p.train_cost is not None]
    if not points:
        return ""
    metric = table.primary
    best = max(points, key=lambda p: (p.value, -(p.train_cost or 0.0)))
    unit = lambda p: "CPU s" if p.train_is_cpu else "s (fit wall clock; no CPU time recorded)"  # noqa: E731
    text = (f"{table.title}: the best row, {best.label} ({metric} {best.value:.3f}"
            + (f" [{best.lo:.3f}, {best.hi:.3f}]" if best.lo is not None and best.hi is not None else "")
            + f"), trains in {_seconds(best.train_cost)} {unit(best)}")
    if best.lo is None:
        return text + "; it has no CI to compare the others with."
    within = [p for p in points if p.value >= best.lo]
    cheapest = min(within, key=lambda p: (p.train_cost, -p.value))
    if cheapest.approach == best.approach:
        return text + "; no cheaper row lies within its CI."
    ratio = best.train_cost / cheapest.train_cost if cheapest.train_cost else float("inf")
    infer = f", predicts in {cheapest.infer_ms:.1f} ms/image" if cheapest.infer_ms is not None else ""
    note = (" (* the fit found cached work, which its cost leaves out: a lower bound)"
            if best.partial or cheapest.partial else "")
    return (text + f"; the cheapest row within its CI, {cheapest.label} ({cheapest.family}, {metric} "
            f"{cheapest.value:.3f}), trains in {_seconds(cheapest.train_cost)} {unit(cheapest)}{infer}"
            + (f" ({ratio:.0f}x less)" if ratio >= 2 and cheapest.train_is_cpu == best.train_is_cpu else "") + note
            + ".")


def cpu_cells(record: RunRecord) -> list[str]:
    """The cost table's CPU columns of one record ("-" where it predates them)."""
    fit, predict = cpu_fit_seconds(record), cpu_predict_seconds(record)
    ms = record.timings.get("predict_ms_per_image")
    return [MISSING if fit is None else _seconds(fit), MISSING if predict is None else _seconds(predict),
            MISSING if ms is None else f"{float(ms):.1f}"]

