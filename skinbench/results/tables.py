"""Comparison tables (markdown + CSV) rendered from result records only.

One table per (task, dataset[, target]); every approach the registry lists for the task gets a row,
so a missing result (weights unavailable, skipped, never run) is visible rather than silently absent.

Metrics computed here at render time from a record's stored per-image predictions (so committed
records show them without retraining; nothing new is stored in the records):

* every classification table has a second table, ``Table.clinical`` (:class:`ClinicalTable`, written
  as ``<slug>__clinical.md|csv``): calibration (ECE on equal-mass bins, Brier) and, binary only, the
  operating points (specificity at 80% / 95% sensitivity, sensitivity at 80% specificity, the ISIC 2024
  partial AUC above 80% TPR), from :func:`skinbench.metrics.calibration.clinical_scores`;
* a segmentation table gains ``hd95_mean`` and ``assd_mean`` columns when one of its records stores
  per-image boundary distances (``predictions["surface"]``, written by runs made since they were
  added), and ``hd95_norm_mean`` (HD95 over the truth-mask diagonal, comparable across test sets of
  other mask sizes: :mod:`skinbench.metrics.surface`) when one also stores the truth-mask shapes
  (``predictions["mask_shape"]``); a table whose records have neither renders as before. Records of
  scoring version 2 hold these numbers in their metrics (scored with the others); older ones are
  summarised here by the same function, :func:`skinbench.scoring.surface_metrics`. A segmentation table
  whose records score images without the target adds ``false_alarm_images`` / ``false_alarm_area``, and
  its header states the per-image rule (:func:`skinbench.results.headers.per_image_convention`).

Both use the record's own bootstrap settings (``n_boot`` of its run key, its seed), so their CIs draw
the same resamples as the record's stored metrics.

Sweep tables (:class:`SweepTable`, ``<root>/tables/sweeps/``): a sweep's grid points are filed under
``<root>/sweeps/<name>/<point>/runs/`` (a record's path does not name its parameters), which the main
tables never read; one table per sweep and (task, dataset, target) shows one row per point with the
parameters that differ between its rows. ``render_all(..., sweeps=True)`` writes them (CLI ``sweep``
and ``table``).
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

from tabulate import tabulate

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.metrics.calibration import (
    CLINICAL_METRICS_BINARY,
    CLINICAL_METRICS_MULTICLASS,
    DEFAULT_BINS,
    clinical_scores,
)
from skinbench.metrics.classification import DECISION_THRESHOLD
from skinbench.metrics.segmentation import FALSE_ALARM_METRICS
from skinbench.results.currency import RESCORED_INPUT, data_drift, version_drift
from skinbench.results.headers import (
    CROSS,
    cross_table_header,
    header_tail,
    is_cross,
    per_image_convention,
    positive_class,
    table_header,
)
from skinbench.results.records import FLOAT_DECIMALS, RunRecord
from skinbench.scoring import surface_metrics as score_surface

#: metrics shown per kind of task (all of them stay in the records)
SHOWN_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc", "ap"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "auc_macro", "ap_macro"),
    "segmentation": ("jaccard_mean", "dice_mean", "thresholded_jaccard", "jaccard_set", "dice_set",
                     "precision_set", "recall_set"),
}
#: a binary cross-dataset table also shows specificity: out of domain the operating point moves while AUC
#: can hold, and sensitivity alone hides which way (recall is the sensitivity at the decision threshold)
CROSS_BINARY_SHOWN = ("specificity",)
FAMILY_ORDER = ("baseline", "classical", "deep")
MISSING = "—"
#: marks a row with a record made from uncommitted code (the table's footnote says which)
DIRTY_MARK = "†"
#: boundary-distance columns a segmentation table adds when a record stores ``predictions["surface"]``
SURFACE_SHOWN = ("hd95_mean", "assd_mean")
#: the normalised HD95 column, added when a shown record also stores its truth masks' shapes
SURFACE_NORM = "hd95_norm_mean"
#: column headings of the calibration / operating-point table (the CSV keeps the metric names)
CLINICAL_LABELS = {"ece": "ece", "brier": "brier", "spec_at_sens80": "spec@sens80",
                   "spec_at_sens95": "spec@sens95", "sens_at_spec80": "sens@spec80",
                   "pauc_above_tpr80": "pAUC>80%TPR"}
#: columns of the compact terminal table per kind of table (the primary metric is moved first)
TERMINAL_METRICS = {
    "binary": ("ap", "auc", "balanced_accuracy", "accuracy", "recall"),
    # a cross-dataset table: sensitivity and specificity at the decision threshold come right after the
    # primary metric (out of domain they move while AUC holds), and stay when --ci keeps three columns
    "cross-binary": ("ap", "recall", "specificity", "auc", "balanced_accuracy"),
    "multiclass": ("balanced_accuracy", "accuracy", "f1_macro", "auc_macro"),
    "segmentation": ("jaccard_mean", "dice_mean", "thresholded_jaccard", "jaccard_set"),
    # a classification table's `<slug>__clinical` table (calibration, operating points; binary has all)
    "clinical": ("ece", "brier", "spec_at_sens80", "spec_at_sens95", "sens_at_spec80", "pauc_above_tpr80"),
}
#: short terminal headings of metrics
TERMINAL_SHORT = {"balanced_accuracy": "bal_acc", "accuracy": "acc", "thresholded_jaccard": "thr_jacc",
                  "jaccard_mean": "jacc", "dice_mean": "dice", "jaccard_set": "jacc_set", "f1_macro": "f1_m",
                  "auc_macro": "auc_m", "recall": "sens", "specificity": "spec", "spec_at_sens80": "spec@sens80",
                  "spec_at_sens95": "spec@sens95", "sens_at_spec80": "sens@spec80", "pauc_above_tpr80": "pauc80"}
#: characters of a row's note on the terminal (the markdown keeps it whole)
NOTE_WIDTH = 40


def fmt_value(value: float | None, ci: list | tuple | None = None) -> str:
    """``0.802 [0.761, 0.842]``; ``n/a`` for an undefined value (e.g. AUC with one class)."""
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    return f"{seconds:.1f}" if seconds < 100 else f"{seconds:.0f}"


def metric_kind(task: str, records: list[RunRecord]) -> str:
    """``binary``, ``multiclass`` or ``segmentation`` for a group of records of one task."""
    if info.task(task).kind == "segmentation":
        return "segmentation"
    for r in records:
        if r.class_names:
            return "multiclass" if len(r.class_names) > 2 else "binary"
        if "auc_macro" in r.metrics and "auc" not in r.metrics:
            return "multiclass"
    return "binary"


@dataclass
class _TaskTable:
    """What every table is of: a task's rows on one dataset (and target), in its kind's metrics."""

    task: str
    dataset: str
    target: str | None
    kind: str
    header: str
    metrics: tuple[str, ...]

    @property
    def primary(self) -> str:
        return info.task(self.task).primary_metric

    @property
    def _parts(self) -> tuple[str, ...]:
        """(task, dataset, target) without the empty ones: what slugs and titles name."""
        return tuple(p for p in (self.task, self.dataset, self.target) if p)


@dataclass
class Table(_TaskTable):
    """One comparison table: the rows as shown (markdown) and as numbers (CSV)."""

    #: approach name -> record (ok or skipped) for the rows that have one: its first seed
    records: dict[str, RunRecord] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    #: approach name -> every ok record of that row, one per seed (seed order)
    seed_records: dict[str, list[RunRecord]] = field(default_factory=dict)

    @property
    def multi_seed(self) -> bool:
        return any(len(v) > 1 for v in self.seed_records.values())

    def seed_summary(self, name: str) -> tuple[float, float, int] | None:
        """(mean, sd, n) of the primary metric over the row's seeds; None with fewer than two."""
        values = [r.value(self.primary) for r in self.seed_records.get(name, [])]
        values = [v for v in values if v is not None]
        if len(values) < 2:
            return None

        return statistics.fmean(values), statistics.stdev(values), len(values)

    @property
    def slug(self) -> str:
        return "__".join(self._parts)

    @property
    def title(self) -> str:
        if is_cross(self.dataset):  # <train>__on__<test>: a cross-dataset table, titled so
            train, test = self.dataset.split(CROSS, 1)
            return " / ".join(p for p in (self.task, f"cross-dataset: trained on {train}, tested on {test}",
                                          self.target) if p)
        return " / ".join(self._parts)

    def dirty_seeds(self, name: str) -> list[int | None]:
        """The seeds of the row's records made from uncommitted code (``RunRecord.dirty``), a skipped
        record's included: the row is marked :data:`DIRTY_MARK` and the table's footnote names them."""
        recs = list(self.seed_records.get(name, []))
        first = self.records.get(name)
        if first is not None and first not in recs:
            recs.insert(0, first)
        return [r.seed for r in recs if r.dirty]

    def dirty_footnote(self) -> str:
        """The footnote under a table with rows marked :data:`DIRTY_MARK` ("" when none is)."""
        marked = [(row["approach"], self.dirty_seeds(row["approach"])) for row in self.rows]
        marked = [(name, seeds) for name, seeds in marked if seeds]
        if not marked:
            return ""
        names = ", ".join(f"{name} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
                          for name, seeds in marked)
        return (f"{DIRTY_MARK} Made from a tree with uncommitted code changes (`versions.git_commit` ends in "
                f"`+dirty`), so the code behind the numbers cannot be traced to a commit: {names}. Regenerate "
                f"them from a clean commit.")

    def markdown_rows(self) -> list[list[str]]:
        out = []
        for row in self.rows:
            cells = _metric_cells(row, self.metrics)
            if self.dirty_seeds(row["approach"]):
                cells[0] += f" {DIRTY_MARK}"
            if self.multi_seed:
                summary = self.seed_summary(row["approach"])
                cells.append(f"{summary[0]:.3f} ± {summary[1]:.3f} (n={summary[2]})" if summary
                             else "one seed" if row["status"] == "ok" else MISSING)
            cells += [MISSING if row["n_test"] is None else str(row["n_test"]),
                      MISSING if row["seed"] is None else str(row["seed"]),
                      fmt_seconds(row["fit_s"]), row["note"]]
            out.append(cells)
        return out

    def columns(self) -> list[str]:
        seeds = [f"{self.primary} over seeds (mean ± sd)"] if self.multi_seed else []
        return ["approach", "family", *self.metrics, *seeds, "n_test", "seed", "fit s", "note"]

    def markdown(self, heading: str = "###") -> str:
        footnote = self.dirty_footnote()
        return _markdown(self, heading) + (f"\n{footnote}\n" if footnote else "")

    def csv(self) -> str:
        seed_fields = [f"{self.primary}_seed_mean", f"{self.primary}_seed_sd", "n_seeds"] if self.multi_seed else []
        rows = [{**row, **dict(zip(seed_fields, self.seed_summary(row["approach"]) or ()))} for row in self.rows]
        return _csv(self.metrics, [*seed_fields, "n_test", "seed", "fit_s", "note"], rows)

    @property
    def positive(self) -> str | None:
        """The class a binary table's precision, recall, AUC and AP are about (its header says it too)."""
        return positive_class(self.dataset, [r for rs in self.seed_records.values() for r in rs])

    def to_terminal(self, ci: bool = False, ran_only: bool = False) -> str:
        """The compact terminal table (:func:`terminal_table`), from this table's own rows."""
        cross = self.kind == "binary" and is_cross(self.dataset) and "specificity" in self.metrics
        return terminal_table(self, "cross-binary" if cross else self.kind, info.task(self.task).primary_metric,
                              self.positive, ci=ci, ran_only=ran_only, timed=True)

    @cached_property
    def clinical(self) -> "ClinicalTable | None":
        """The calibration / operating-point table of a classification table (None for segmentation),
        scored on first use from the rows' stored predictions."""
        if self.kind == "segmentation":
            return None
        return build_clinical(self)


def clinical_metrics(r: RunRecord, n_bins: int | None = None) -> dict[str, dict]:
    """``{name: {"value", "ci"}}`` calibration and operating points of a classification record,
    re-scored from its stored predictions with its own bootstrap settings (``clinical_scores``)."""
    _, y, scores = r.prediction_arrays()
    return clinical_scores(y, scores, n_boot=r.n_boot, seed=r.seed or 0,
                           n_bins=n_bins or DEFAULT_BINS)


def has_surface(r: RunRecord) -> bool:
    return r.ok and (bool(r.predictions.get("surface")) or "hd95_mean" in r.metrics)


def has_false_alarms(r: RunRecord) -> bool:
    """The record scores images without the target apart (``false_alarm_*``: the scorer adds them when the
    test set has such images)."""
    return r.ok and any(m in r.metrics for m in FALSE_ALARM_METRICS)


def has_mask_shapes(r: RunRecord) -> bool:
    """The record stores its truth masks' shapes beside the distances (what ``hd95_norm_mean`` needs)."""
    return has_surface(r) and (bool(r.predictions.get("mask_shape")) or SURFACE_NORM in r.metrics)


def surface_metrics(r: RunRecord) -> dict[str, dict]:
    """``{name: {"value", "ci"}}`` boundary metrics of a segmentation record: those it stores (scored with
    its other numbers since scoring version 2), else scored now from its stored per-image ``surface``
    distances by the scorer's one rule (:func:`skinbench.scoring.surface_metrics`); ``hd95_norm_mean``
    only with the truth-mask shapes (else its row shows the value as absent, not n/a)."""
    if "hd95_mean" in r.metrics:
        return {}  # read from the record itself
    return score_surface(r.counts(), r.predictions["surface"], r.predictions.get("mask_shape"), r.n_boot,
                         r.seed or 0)


@dataclass
class ClinicalTable:
    """Calibration and operating points of one classification table's rows (same approaches, same
    order), scored at render time from the records' stored per-image predictions."""

    table: Table
    metrics: tuple[str, ...]
    n_bins: int
    rows: list[dict] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return f"{self.table.slug}__clinical"

    @property
    def title(self) -> str:
        return f"Calibration and operating points: {self.table.title}"

    @property
    def header(self) -> str:
        t = self.table
        binary = t.kind == "binary"
        names = next((r.class_names for r in t.records.values() if r.ok and r.class_names), [])
        parts = [f"{info.task(t.task).title}; computed when rendering from each record's stored per-image "
                 f"predictions (no retraining, nothing stored)."]
        if binary:
            positive = f" `{names[1]}`" if len(names) == 2 else ""
            parts.append(f"Positive class:{positive}. ECE: expected calibration error of the "
                         f"positive-class probability over {self.n_bins} equal-mass bins; Brier: mean squared "
                         f"error of that probability (both lower is better).")
            parts.append("spec@sens80 / spec@sens95: the best specificity among thresholds that reach 80% / 95% "
                         "sensitivity; sens@spec80: the best sensitivity among thresholds with at least 80% "
                         "specificity; pAUC>80%TPR: the ISIC 2024 partial AUC, the ROC area above 80% TPR "
                         "(range 0 to 0.2, random ranking 0.02).")
        else:
            parts.append(f"ECE: expected calibration error of the top-class confidence against whether the top "
                         f"class is right, over {self.n_bins} equal-mass bins; Brier: mean over images and the "
                         f"{len(names) or 'K'} classes of the squared error of the probabilities (both lower "
                         f"is better). Operating points are binary-only.")
        parts.append("A constant prediction at the class frequencies (the majority and stratified baselines) is "
                     "calibrated by construction: its near-zero ECE says nothing about ranking, read ECE beside "
                     "AUC.")
        parts.append("Values: estimate [95% bootstrap CI over test images, the record's own resamples]. "
                     "Definitions: `skinbench/metrics/calibration.py`, `skinbench/metrics/operating_points.py`.")
        return " ".join(parts)

    def columns(self) -> list[str]:
        heads = [f"ece ({self.n_bins} bins)" if m == "ece" else CLINICAL_LABELS.get(m, m) for m in self.metrics]
        return ["approach", "family", *heads, "n_test", "seed", "note"]

    def markdown_rows(self) -> list[list[str]]:
        return [_metric_cells(row, self.metrics) + [MISSING if row["n_test"] is None else str(row["n_test"]),
                                                    MISSING if row["seed"] is None else str(row["seed"]), row["note"]]
                for row in self.rows]

    def markdown(self, heading: str = "###") -> str:
        return _markdown(self, heading)

    def csv(self) -> str:
        return _csv(self.metrics, ["ece_bins", "n_test", "seed", "note"], self.rows)

    @property
    def positive(self) -> str | None:
        """The class whose probability ECE and Brier score (binary only; its header says it too)."""
        names = next((r.class_names for r in self.table.records.values() if r.ok and r.class_names), [])
        return names[1] if self.table.kind == "binary" and len(names) == 2 else None

    def to_terminal(self, ci: bool = False, ran_only: bool = False) -> str:
        """The compact terminal table (:func:`terminal_table`): the rows with numbers (the main table
        already lists the others)."""
        return terminal_table(self, "clinical", "", self.positive, ci=ci, ran_only=ran_only, timed=False)


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word boundary and marked "…" (a word is cut
    only when it alone is wider): a note stays readable, never ends mid-word."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    head = text[:width]  # one character more than is kept: a cut right before a space is a boundary
    cut = head.rfind(" ")
    kept = (head[:cut] if cut > 0 else head[:width - 1]).rstrip(" ,;:-(")
    return kept + "…"


def terminal_table(table: "Table | ClinicalTable", kind: str, primary: str, positive: str | None, *,
                   ci: bool = False, ran_only: bool = False, timed: bool = True) -> str:
    """A terminal-width table from a table's rows: the approach, a few key metrics
    (:data:`TERMINAL_METRICS` of ``kind``) with the task's ``primary`` metric first (marked ``*``),
    n_test, fit seconds (``timed``) and a shortened note; the title line names the primary metric, the
    positive class and n_test. No header paragraph (the markdown has it); ``ci`` adds the 95% CIs (of
    three metrics); ``ran_only`` leaves out the rows of approaches that were not run (the demo)."""
    rows = table.rows
    if kind == "clinical":  # a secondary table: rows without numbers are already listed in the main one
        rows = [r for r in rows if r.get("status", "ok") == "ok"]
    elif ran_only:
        rows = [r for r in rows if r.get("status", "ok") != "missing"]
    metrics = [m for m in TERMINAL_METRICS[kind] if m in table.metrics]
    if primary in table.metrics:
        metrics = [primary] + [m for m in metrics if m != primary]
    if ci:
        metrics = metrics[:3]  # a CI triples a cell's width: the primary metric and two more

    def cell(row: dict, m: str) -> str:
        if row.get("status", "ok") != "ok" or row.get(m) is None:
            return MISSING if row.get("status", "ok") != "ok" else "n/a"
        text = f"{float(row[m]):.3f}"
        if ci and row.get(f"{m}_lo") is not None and row.get(f"{m}_hi") is not None:
            text += f" [{float(row[f'{m}_lo']):.2f},{float(row[f'{m}_hi']):.2f}]"
        return text

    def note(text: str) -> str:
        text = " ".join(text.split())
        if text.startswith("not run (python -m skinbench"):
            return "not run"
        return shorten(text, NOTE_WIDTH)

    def seconds(value: float | None) -> str:
        if value is None:
            return MISSING
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"

    n_tests = {str(r["n_test"]) for r in rows if r.get("n_test") is not None}
    per_row = len(n_tests) > 1  # records of different subsets: show n_test per row, else once in the title
    noted = any(r.get("note") for r in rows)
    headers = (["approach"] + [TERMINAL_SHORT.get(m, m) + ("*" if m == primary else "") for m in metrics]
               + (["n_test"] if per_row else []) + (["fit s"] if timed else []) + (["note"] if noted else []))
    body = [[r.get("approach", "")] + [cell(r, m) for m in metrics]
            + ([MISSING if r.get("n_test") is None else str(r["n_test"])] if per_row else [])
            + ([seconds(r.get("fit_s"))] if timed else []) + ([note(r.get("note") or "")] if noted else [])
            for r in rows]
    extras = [f"* primary: {primary}"] if primary else []
    if positive:
        extras.append(f"positive class: {positive}")
    if kind == "cross-binary":
        extras.append(f"sens/spec at p > {DECISION_THRESHOLD:g}")
    if len(n_tests) == 1:
        extras.append(f"n_test {next(iter(n_tests))}")
    return f"{table.title}  ({'; '.join(extras)})\n" + tabulate(body, headers=headers, tablefmt="simple",
                                                               disable_numparse=True) + "\n"


def _metric_cells(row: dict, metrics: tuple[str, ...]) -> list[str]:
    """approach, family, then each metric as ``value [lo, hi]`` (a dash for a row without that number)."""
    return [row["approach"], row["family"]] + [
        MISSING if row["status"] != "ok" or m in row.get("absent", ())
        else fmt_value(row[m], (row[f"{m}_lo"], row[f"{m}_hi"])) for m in metrics]


def _markdown(table: "Table | ClinicalTable", heading: str) -> str:
    body = tabulate(table.markdown_rows(), headers=table.columns(), tablefmt="github", disable_numparse=True)
    return f"{heading} {table.title}\n\n{table.header}\n\n{body}\n"


def _csv(metrics: tuple[str, ...], tail: list[str], rows: list[dict]) -> str:
    """approach, family, status, each metric with its CI bounds, then ``tail``; None as an empty cell."""
    buf = io.StringIO()
    fields = ["approach", "family", "status", *(f for m in metrics for f in (m, f"{m}_lo", f"{m}_hi")), *tail]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    return buf.getvalue()


def _round(x: float | None) -> float | None:
    """As records store floats (``records.FLOAT_DECIMALS``), so derived CSV cells look like stored ones."""
    return None if x is None else round(float(x), FLOAT_DECIMALS)


def build_clinical(table: Table) -> ClinicalTable:
    """The :class:`ClinicalTable` of a classification table: one row per row of ``table``."""
    metrics = CLINICAL_METRICS_BINARY if table.kind == "binary" else CLINICAL_METRICS_MULTICLASS
    clinical = ClinicalTable(table, metrics, DEFAULT_BINS)
    for main in table.rows:
        row = {k: main[k] for k in ("approach", "family", "status", "n_test", "seed")}
        row.update({f"{m}{s}": None for m in metrics for s in ("", "_lo", "_hi")}, ece_bins=None)
        row["note"] = {"ok": "", "missing": "not run"}.get(main["status"], f"{main['status']} (see the main table)")
        r = table.records.get(main["approach"])
        if main["status"] == "ok" and r is not None:
            try:
                scores = clinical_metrics(r, clinical.n_bins)
            except (KeyError, ValueError, TypeError, IndexError) as err:
                row.update(status="no predictions", note=f"cannot re-score the stored predictions: {err}")
            else:
                for m in metrics:
                    entry = scores.get(m) or {}
                    row[m] = _round(entry.get("value"))
                    row[f"{m}_lo"], row[f"{m}_hi"] = (_round(x) for x in entry.get("ci") or (None, None))
                row["ece_bins"] = (scores.get("ece") or {}).get("n_bins")
        clinical.rows.append(row)
    return clinical


def _group_key(r: RunRecord) -> tuple[str, str, str]:
    return (r.task, r.dataset, r.target or "")


def _cache_note(r: RunRecord) -> str:
    """Say which of the fit's work was found in the cache (:meth:`RunRecord.cache_found`), so a small
    "fit s" is not read as cheap, and that the rest ran."""
    found = r.cache_found()
    return f"fit s leaves out cached work ({found} found cached); the rest of the fit ran" if found else ""


def _dataset_args(task: str, dataset: str | None) -> list[str]:
    """``["--dataset", dataset]`` when ``dataset`` is not ``task``'s default (a command that remakes the row)."""
    return ["--dataset", dataset] if dataset and task in info.TASKS and dataset != info.task(task).default_dataset \
        else []


def _staleness(r: RunRecord) -> tuple[list[str], str]:
    """Why ``r`` is stale, read from the record alone (its versions and its data manifest against today's),
    and what made it so, as a stale note words it."""
    moved_data = data_drift(r)
    return (version_drift(r) + moved_data,
            "trained on an earlier data manifest" if moved_data else "made by older algorithm versions")


def run_command(task: str, approach: str, dataset: str | None = None, target: str | None = None,
                limit: int | None = None) -> str:
    """The command that makes exactly the row (task, dataset, target) of ``approach``: the dataset when it
    is not the task's default, the target of a segmentation row (a plain run scores only the approach's
    own targets: ``info.segmentation_targets``), the subset size of a subset table."""
    parts = ["python -m skinbench run", task, "--approach", approach, *_dataset_args(task, dataset)]
    if target:
        parts += ["--target", target]
    if limit:
        parts += ["--limit", str(limit)]
    return " ".join(parts)


def contributed_by(r: RunRecord) -> str:
    """A contributed row's "package version" (its record's, else the registry's); "" for the suite's own."""
    if r.origin:
        return r.origin
    a = info.APPROACHES.get(r.approach)
    return a.origin if a is not None and a.contributed else ""


def _row_from_record(name: str, family: str, r: RunRecord | None, metrics: tuple[str, ...], task: str,
                     derived: dict[str, dict] | None = None, command: str = "") -> dict:
    """One table row; ``command``: what makes the row when it has no record (default: the plain run)."""
    row: dict = {"approach": name, "family": family, "n_test": None, "seed": None, "fit_s": None}
    for m in metrics:
        row[m] = row[f"{m}_lo"] = row[f"{m}_hi"] = None
    if r is None:
        needs = info.APPROACHES[name].needs_for(task) if name in info.APPROACHES else ""
        row.update(status="missing", note=f"not run: needs {needs}" if needs else
                   f"not run ({command or run_command(task, name)})")
        return row
    row.update(status=r.status, n_test=r.split.get("n_test"), seed=r.seed, fit_s=r.fit_seconds)
    if not r.ok:
        row["note"] = f"{r.status}: {r.reason or 'no reason recorded'}"
        if contributed_by(r):
            row["note"] = f"plugin: {contributed_by(r)}; {row['note']}"
        return row
    checkpoint = r.params.get("checkpoint")
    row["note"] = (f"weights trained elsewhere ({os.path.basename(str(checkpoint))}, by `{r.command or '?'}`); "
                   "fit s = loading" if checkpoint else _cache_note(r))
    contributed = contributed_by(r)
    if contributed:  # a reader tells the suite's rows from contributed ones
        row["note"] = f"plugin: {contributed}" + (f"; {row['note']}" if row["note"] else "")
    drift, made = _staleness(r)
    if drift:
        scoring_only = all(d.startswith(RESCORED_INPUT + ":") for d in drift)  # re-scored without refitting
        fix = ("scored by an older scoring version, re-score it: `python benchmarks/regenerate.py --rescore`"
               if scoring_only else f"{made}, rerun `"
               + " ".join(["python benchmarks/regenerate.py --only", task, "--approach", name,
                           *_dataset_args(task, r.dataset)]) + "`")
        row["note"] = f"**stale** ({'; '.join(drift)}): {fix}" + (f"; {row['note']}" if row["note"] else "")
    for m in metrics:
        row[m] = r.value(m)
        row[f"{m}_lo"], row[f"{m}_hi"] = r.ci(m)
    if derived is not None:  # metrics scored at render time from the stored predictions
        absent = [m for m in metrics if m not in r.metrics and m not in derived]
        for m, entry in derived.items():
            if m in metrics:
                row[m] = _round(entry.get("value"))
                row[f"{m}_lo"], row[f"{m}_hi"] = (_round(x) for x in entry.get("ci") or (None, None))
        if absent:
            row["absent"] = tuple(absent)
    return row


def _groups(records: list[RunRecord], task: str | None) -> dict[tuple[str, str, str], list[RunRecord]]:
    """Records by (task, dataset, target). A skipped record without a target (the approach could not
    run at all) belongs to every target table of its task and dataset."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    untargeted = []
    for r in records:
        if (task is not None and r.task != task) or r.task not in info.TASKS:
            continue
        if not r.target and info.TASKS[r.task].targets:
            untargeted.append(r)
        else:
            groups.setdefault(_group_key(r), []).append(r)
    for r in untargeted:
        keys = [k for k in groups if k[:2] == (r.task, r.dataset)]
        keys = keys or [(r.task, r.dataset, t) for t in info.TASKS[r.task].targets]
        for key in keys:
            if not any(x.approach == r.approach for x in groups.get(key, [])):
                groups.setdefault(key, []).append(r)
    return groups


def _derived(r: RunRecord | None) -> dict[str, dict]:
    """Boundary metrics of an ok segmentation record that stores them; {} otherwise."""
    return surface_metrics(r) if r is not None and has_surface(r) else {}


def build_tables(records: list[RunRecord], task: str | None = None) -> list[Table]:
    """Tables for every (task, dataset, target) that has at least one record."""
    tables = []
    groups = sorted(_groups(records, task).items(), key=lambda kv: (kv[0][0], is_cross(kv[0][1]), kv[0]))
    for (tname, dname, target), recs in groups:  # a task's cross-dataset tables after its own
        kind = metric_kind(tname, [r for r in recs if r.ok] or recs)
        metrics = SHOWN_METRICS[kind] + (CROSS_BINARY_SHOWN if is_cross(dname) and kind == "binary" else ())
        by_seed: dict[str, list[RunRecord]] = {}
        for r in sorted(recs, key=lambda r: r.seed or 0):
            by_seed.setdefault(r.approach, []).append(r)
        by_name = {n: rs[0] for n, rs in by_seed.items()}
        # boundary columns only when a shown record stores the per-image distances
        surface = kind == "segmentation" and any(has_surface(r) for r in by_name.values())
        if surface:
            metrics = metrics + SURFACE_SHOWN
            if any(has_mask_shapes(r) for r in by_name.values()):
                metrics = metrics + (SURFACE_NORM,)
        false_alarms = kind == "segmentation" and any(has_false_alarms(r) for r in by_name.values())
        if false_alarms:  # a test set with images without the target (a sparse attribute)
            metrics = metrics + FALSE_ALARM_METRICS
        ok = [r for r in recs if r.ok]
        if is_cross(dname):  # train and test data, overlap excluded, label mapping, input geometry
            header_of = cross_table_header
        else:
            header_of = table_header
        header = header_of(tname, dname, ok, recs)
        table = Table(tname, dname, target or None, kind, header, metrics, by_name,
                      seed_records={n: [r for r in rs if r.ok] for n, rs in by_seed.items()})
        if kind == "segmentation":
            table.header += " " + per_image_convention([r for r in by_name.values() if r.ok], false_alarms)
        if surface:
            table.header += (" hd95_mean / assd_mean: mean per-image 95th-percentile Hausdorff distance / average "
                             "symmetric surface distance between the mask boundaries, in pixels of the truth "
                             "mask (lower is better; an empty prediction scores the image diagonal), from "
                             "the distances a record stores (runs made before they were stored show "
                             f"{MISSING}).")
            if SURFACE_NORM in metrics:
                table.header += (f" {SURFACE_NORM}: mean per-image hd95 divided by the diagonal of the truth "
                                 "mask, sqrt(H^2 + W^2) (a one-empty image scores 1), comparable across test sets "
                                 "with other mask sizes (runs made before the mask shapes were stored show "
                                 f"{MISSING}).")
        if table.multi_seed:
            table.header += (f" Over seeds: mean ± sd of {table.primary} across the seeds run (n); every other "
                             f"value and its CI is the first seed's (the `seed` column).")
        registered = info.approaches_for(tname, suite_only=True)  # contributed rows: only those run
        if is_cross(dname):  # rows for the approaches run on this pair only
            registered = [n for n in registered if n in by_name]
        names = registered + sorted(n for n in by_name if n not in registered)
        fam = {n: (info.APPROACHES[n].family if n in info.APPROACHES else by_name[n].family or "other")
               for n in names}
        order = {f: i for i, f in enumerate(FAMILY_ORDER)}
        names.sort(key=lambda n: order.get(fam[n], len(order)))  # stable: registry order within a family
        limits = {r.limit for r in recs}
        limit = limits.pop() if len(limits) == 1 else None  # a subset table: its missing rows at that size
        table.rows = [_row_from_record(n, fam[n], by_name.get(n), metrics, tname,
                                       _derived(by_name.get(n)) if surface else None,
                                       run_command(tname, n, dname, target or None, limit)) for n in names]
        tables.append(table)
    return tables


def write_tables(tables: list[Table], root: str | os.PathLike,
                 plot_files: dict[str, list[Path]] | None = None) -> list[Path]:
    """Write ``<root>/tables/<slug>.md|.csv`` for each table (linking its plots), and beside each
    classification table its calibration / operating-point table ``<slug>__clinical.md|.csv`` (linking
    ``plot_files[<slug>__clinical]``, the reliability diagram); returns the files.

    Called by :func:`skinbench.results.render.render_all`, the one rendering entry point.
    """
    root = Path(root)
    written: list[Path] = []
    for table in tables:
        written.extend(_write_one(root, table.slug, table.markdown(heading="#"), table.csv(),
                                  (plot_files or {}).get(table.slug, [])))
        clinical = table.clinical
        if clinical is not None:
            written.extend(_write_one(root, clinical.slug, clinical.markdown(heading="#"), clinical.csv(),
                                      (plot_files or {}).get(clinical.slug, [])))
    return written


def _write_one(root: Path, slug: str, md: str, csv_text: str, links: list[Path]) -> list[Path]:
    if links:
        md += "\nPlots: " + ", ".join(f"[{p.stem}](../plots/{p.name})" for p in links) + "\n"
    md = "<!-- generated by `python -m skinbench table` from results/runs; do not edit -->\n" + md
    out = []
    for suffix, text in ((".md", md), (".csv", csv_text)):
        path = root / "tables" / f"{slug}{suffix}"
        atomic_write_bytes(path, text.encode())
        out.append(path)
    return out + list(links)


# ------------------------------------------------------------------------------------------ sweep tables
#: where a sweep files its grid points under a results root (``sweep.SweepConfig.out``'s default
#: ``sweeps/<name>/<k=v,...>/``, each point's records in its own ``runs/``)
SWEEPS_DIR = "sweeps"
#: metrics a sweep table's markdown shows beside the primary one (value only; the CSV keeps every
#: shown metric with its CI)
SWEEP_SECONDARY = {"binary": ("auc", "balanced_accuracy", "f1"), "multiclass": ("accuracy", "f1_macro", "auc_macro"),
                   "segmentation": ("dice_mean", "thresholded_jaccard", "jaccard_set")}


@dataclass
class SweepPoint:
    """One record of a sweep's grid point: the sweep's name, the point's folder below it, the record."""

    sweep: str
    point: str
    record: RunRecord


def load_sweep_records(root: str | os.PathLike, task: str | None = None) -> list[SweepPoint]:
    """Every record under ``<root>/sweeps/<name>/<point>/runs/`` (optionally one task), sorted by path.

    Grid points are filed there because a record's path does not name its parameters; the main tables
    (``<root>/runs``) never show them, so :func:`build_sweep_tables` does."""
    from skinbench.results.records import read_record

    base = Path(root) / SWEEPS_DIR
    out: list[SweepPoint] = []
    for path in sorted(base.glob("*/**/runs/*/*/*.json")):
        runs = path.parents[2]
        if runs.name != "runs" or (task is not None and path.parents[1].name != task):
            continue
        name, *point = runs.parent.relative_to(base).parts
        record = read_record(path)
        if record is not None:
            out.append(SweepPoint(name, "/".join(point) or ".", record))
    return out


def sweep_file_name(sweep: str) -> str:
    """A sweep's name as its tables' file names start (``<name>__<task>__...``)."""
    return "".join(c if c.isalnum() or c in "._=+-" else "-" for c in sweep)


def _point_params(r: RunRecord) -> dict:
    """The parameters a record ran with (its run key's merged params; a record without a key: its own)."""
    return dict((r.key_inputs or {}).get("params") or r.params or {})


def _param_text(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))


def _sort_value(value: object) -> tuple:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return (1, _param_text(value))
    return (0, float(value))


@dataclass
class SweepTable(_TaskTable):
    """One table per sweep and (task, dataset, target): one row per grid point and seed, with the point's
    folder, approach, seed, the parameters that differ between its rows, and the task's metrics."""

    sweep: str = field(kw_only=True)
    #: parameter columns: those whose value differs between the rows (the grid's axes)
    params: tuple[str, ...] = field(kw_only=True)
    rows: list[dict] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return "__".join(p for p in (sweep_file_name(self.sweep), *self._parts) if p)

    @property
    def title(self) -> str:
        return f"sweep {self.sweep}: " + " / ".join(self._parts)

    @property
    def shown(self) -> tuple[str, ...]:
        """The markdown's metrics: the primary one (with its CI) first, then a few values."""
        return (self.primary, *(m for m in SWEEP_SECONDARY[self.kind] if m != self.primary and m in self.metrics))

    def columns(self) -> list[str]:
        metrics = [m + ("*" if m == self.primary else "") for m in self.shown]
        return ["point", "approach", "seed", *self.params, *metrics, "n_test", "fit s", "note"]

    def markdown_rows(self) -> list[list[str]]:
        out = []
        for row in self.rows:
            ok = row["status"] == "ok"
            metrics = [MISSING if not ok else fmt_value(row[m], (row[f"{m}_lo"], row[f"{m}_hi"]) if m == self.primary
                                                         else None) for m in self.shown]
            params = [row["params"].get(p, "") for p in self.params]
            n_test = MISSING if row["n_test"] is None else str(row["n_test"])
            point = row["point"] + (f" {DIRTY_MARK}" if row.get("dirty") else "")
            out.append([point, row["approach"], str(row["seed"]), *params, *metrics, n_test,
                        fmt_seconds(row["fit_s"]), row["note"]])
        return out

    def markdown(self, heading: str = "###") -> str:
        dirty = sum(bool(row.get("dirty")) for row in self.rows)
        footnote = (f"\n{DIRTY_MARK} Made from a tree with uncommitted code changes (`versions.git_commit` ends in "
                    f"`+dirty`; {dirty} of {len(self.rows)} rows), so the code behind those numbers cannot be "
                    f"traced to a commit. Rerun them from a clean commit.\n") if dirty else ""
        return _markdown(self, heading) + footnote

    def to_terminal(self) -> str:
        """What the terminal shows of a sweep table: its markdown (one row per grid point with its
        parameters, which the main tables do not show)."""
        return self.markdown(heading="#")

    def csv(self) -> str:
        buf = io.StringIO()
        fields = ["point", "approach", "seed", "status", *self.params,
                  *(f for m in self.metrics for f in (m, f"{m}_lo", f"{m}_hi")), "n_test", "fit_s", "note"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            cells = {**row, **row["params"]}
            writer.writerow({k: "" if cells.get(k) is None else cells.get(k) for k in fields})
        return buf.getvalue()


def build_sweep_tables(points: list[SweepPoint]) -> list[SweepTable]:
    """:class:`SweepTable` s of the records :func:`load_sweep_records` found, one row per record."""
    groups: dict[tuple[str, str, str, str], list[SweepPoint]] = {}
    for p in points:
        if p.record.task in info.TASKS:
            groups.setdefault((p.sweep, *_group_key(p.record)), []).append(p)
    tables = []
    for (name, tname, dname, target), members in sorted(groups.items()):
        records = [p.record for p in members]
        ok = [r for r in records if r.ok]
        kind = metric_kind(tname, ok or records)
        params = {id(p): _point_params(p.record) for p in members}
        keys = sorted({k for ps in params.values() for k in ps})
        varying = tuple(k for k in keys if len({_param_text(ps.get(k)) if k in ps else None
                                                for ps in params.values()}) > 1)
        header = " ".join([f"Sweep `{name}`: one row per grid point (its records in "
                           f"`{SWEEPS_DIR}/{name}/<point>/runs/`)"
                           f"{'; parameters: those that differ between the rows' if varying else ''}.",
                           *header_tail(tname, dname, ok)])
        table = SweepTable(tname, dname, target or None, kind, header, SHOWN_METRICS[kind], sweep=name,
                           params=varying)
        members.sort(key=lambda p: (p.record.approach, tuple(_sort_value(params[id(p)].get(k)) for k in varying),
                                    p.record.seed or 0, p.point))
        for p in members:
            family = info.APPROACHES[p.record.approach].family if p.record.approach in info.APPROACHES else ""
            row = _row_from_record(p.record.approach, family, p.record, table.metrics, tname)
            drift, made = _staleness(p.record)
            if drift:  # a sweep's point is remade by its sweep, not by regenerate.py
                row["note"] = f"**stale** ({'; '.join(drift)}): {made}, rerun `{p.record.command or 'the sweep'}`"
            row.update(point=p.point, seed=p.record.seed or 0, dirty=p.record.dirty,
                       params={k: _param_text(params[id(p)][k]) for k in varying if k in params[id(p)]})
            table.rows.append(row)
        tables.append(table)
    return tables


def write_sweep_tables(tables: list[SweepTable], root: str | os.PathLike) -> list[Path]:
    """Write ``<root>/tables/sweeps/<sweep>__<task>__<dataset>[__<target>].md|.csv``; returns the files."""
    out = []
    for table in tables:
        md = ("<!-- generated by `python -m skinbench table` from results/sweeps; do not edit -->\n"
              + table.markdown(heading="#"))
        for suffix, text in ((".md", md), (".csv", table.csv())):
            path = Path(root) / "tables" / SWEEPS_DIR / f"{table.slug}{suffix}"
            atomic_write_bytes(path, text.encode())
            out.append(path)
    return out


def print_sweep_tables(tables: Sequence[SweepTable], root: str | os.PathLike, sweep: str | None = None) -> None:
    """Print rendered sweep ``tables`` (``sweep``: only that sweep's), and where their files are under
    ``root``."""
    shown = [t for t in tables if sweep is None or sweep_file_name(t.sweep) == sweep_file_name(sweep)]
    for table in shown:
        print(table.to_terminal())
    if shown:
        print(f"sweep tables (markdown, CSV): {Path(root) / 'tables' / SWEEPS_DIR}", file=sys.stderr)
