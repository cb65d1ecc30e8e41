"""Comparison tables (markdown + CSV) rendered from result records only.

One table per (task, dataset[, target]); every approach the registry lists for the task gets a row,
so a missing result (weights unavailable, skipped, never run) is visible rather than silently absent.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.paths import results_dir
from skinbench.results.records import distinct, is_ok, load_records

#: metrics shown per kind of task (all of them stay in the records)
SHOWN_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc", "ap"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "auc_macro", "ap_macro"),
    "segmentation": ("jaccard_mean", "dice_mean", "thresholded_jaccard", "jaccard_set", "dice_set",
                     "precision_set", "recall_set"),
}
FAMILY_ORDER = ("baseline", "classical", "deep")
MISSING = "—"


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


def fit_seconds(record: dict) -> float | None:
    timings = record.get("timings") or {}
    for key in ("fit_s", "fit", "fit_seconds"):
        if timings.get(key) is not None:
            return float(timings[key])
    return None


def second_keys(timings: dict) -> list[str]:
    """Timing entries that are durations (``*_s``); others (``peak_rss_mb``, rates) are not summed."""
    return [k for k, v in timings.items() if k.endswith("_s") and isinstance(v, (int, float))]


def total_seconds(record: dict) -> float | None:
    """Wall-clock cost of a run: its ``total_s``, else the sum of its ``*_s`` parts."""
    timings = record.get("timings") or {}
    if timings.get("total_s") is not None:
        return float(timings["total_s"])
    keys = second_keys(timings)
    return sum(float(timings[k]) for k in keys) if keys else None


def metric_kind(task: str, records: list[dict]) -> str:
    """``binary``, ``multiclass`` or ``segmentation`` for a group of records of one task."""
    if info.task(task).kind == "segmentation":
        return "segmentation"
    for r in records:
        names = (r.get("extras") or {}).get("class_names")
        if names:
            return "multiclass" if len(names) > 2 else "binary"
        if "auc_macro" in (r.get("metrics") or {}) and "auc" not in r["metrics"]:
            return "multiclass"
    return "binary"


@dataclass
class Table:
    """One comparison table: the rows as shown (markdown) and as numbers (CSV)."""

    task: str
    dataset: str
    target: str | None
    kind: str
    header: str
    metrics: tuple[str, ...]
    #: approach name -> record (ok, skipped or failed) for the rows that have one
    records: dict[str, dict] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return "__".join(p for p in (self.task, self.dataset, self.target) if p)

    @property
    def title(self) -> str:
        return " / ".join(p for p in (self.task, self.dataset, self.target) if p)

    def markdown_rows(self) -> list[list[str]]:
        out = []
        for row in self.rows:
            cells = [row["approach"], row["family"]]
            cells += [MISSING if row["status"] != "ok" else fmt_value(row[m], (row[f"{m}_lo"], row[f"{m}_hi"]))
                      for m in self.metrics]
            cells += [MISSING if row["n_test"] is None else str(row["n_test"]),
                      MISSING if row["seed"] is None else str(row["seed"]),
                      fmt_seconds(row["fit_s"]), row["note"]]
            out.append(cells)
        return out

    def columns(self) -> list[str]:
        return ["approach", "family", *self.metrics, "n_test", "seed", "fit s", "note"]

    def markdown(self, heading: str = "###") -> str:
        body = tabulate(self.markdown_rows(), headers=self.columns(), tablefmt="github", disable_numparse=True)
        return f"{heading} {self.title}\n\n{self.header}\n\n{body}\n"

    def csv(self) -> str:
        buf = io.StringIO()
        fields = ["approach", "family", "status"]
        for m in self.metrics:
            fields += [m, f"{m}_lo", f"{m}_hi"]
        fields += ["n_test", "seed", "fit_s", "note"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
        return buf.getvalue()


def _group_key(r: dict) -> tuple[str, str, str]:
    return (r["task"], r["dataset"], r.get("target") or "")


def _row_from_record(name: str, family: str, r: dict | None, metrics: tuple[str, ...], task: str) -> dict:
    row: dict = {"approach": name, "family": family, "n_test": None, "seed": None, "fit_s": None}
    for m in metrics:
        row[m] = row[f"{m}_lo"] = row[f"{m}_hi"] = None
    if r is None:
        needs = info.APPROACHES[name].needs if name in info.APPROACHES else ""
        row.update(status="missing", note=f"not run: needs {needs}" if needs else
                   f"not run (python -m skinbench run {task} --approach {name})")
        return row
    status = r.get("status", "ok")
    row.update(status=status, n_test=(r.get("split") or {}).get("n_test"), seed=r.get("seed"),
               fit_s=fit_seconds(r))
    if status != "ok":
        row["note"] = f"{status}: {r.get('reason') or 'no reason recorded'}"
        return row
    checkpoint = (r.get("params") or {}).get("checkpoint")
    row["note"] = (f"weights trained elsewhere ({os.path.basename(str(checkpoint))}, by `{r.get('command', '?')}`); "
                   "fit s = loading" if checkpoint else "")
    for m in metrics:
        entry = (r.get("metrics") or {}).get(m)
        if isinstance(entry, dict):
            ci = entry.get("ci") or (None, None)
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = entry.get("value"), ci[0], ci[1]
        elif isinstance(entry, (int, float)):
            row[m] = entry
    return row


def _header(task: str, dataset: str, ok: list[dict], all_records: list[dict]) -> str:
    t = info.task(task)
    splits = distinct(ok or all_records, "split")
    parts = [f"{t.title}."]
    if splits:
        s = splits[0]
        parts.append(f"Split: {s.get('name', 'fixed')} train/test, n_train {s.get('n_train', '?')}, "
                     f"n_test {s.get('n_test', '?')}, manifest `{str(s.get('manifest_digest', '?'))[:12]}`.")
        digests = {str(x.get("manifest_digest")) for x in splits}
        if len(digests) > 1:
            parts.append(f"**Warning: records disagree on the data split ({len(digests)} manifest digests); "
                         f"rerun the older ones.**")
    limits = sorted({r["limit"] for r in ok if r.get("limit")})
    if limits:
        parts.append(f"**Subset run** (at most {', '.join(map(str, limits))} images per split): not comparable "
                     f"with full-data numbers.")
    parts.append(f"Primary metric: {t.primary_metric}. Values: estimate [95% bootstrap CI over test images].")
    if t.reference and dataset == t.default_dataset:
        parts.append(f"Published reference: {t.reference}.")
    return " ".join(parts)


def _groups(records: list[dict], task: str | None) -> dict[tuple[str, str, str], list[dict]]:
    """Records by (task, dataset, target). A skipped record without a target (the approach could not
    run at all) belongs to every target table of its task and dataset."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    untargeted = []
    for r in records:
        if (task is not None and r["task"] != task) or r["task"] not in info.TASKS:
            continue
        if not r.get("target") and info.TASKS[r["task"]].targets:
            untargeted.append(r)
        else:
            groups.setdefault(_group_key(r), []).append(r)
    for r in untargeted:
        keys = [k for k in groups if k[:2] == (r["task"], r["dataset"])]
        keys = keys or [(r["task"], r["dataset"], t) for t in info.TASKS[r["task"]].targets]
        for key in keys:
            if not any(x["approach"] == r["approach"] for x in groups.get(key, [])):
                groups.setdefault(key, []).append(r)
    return groups


def build_tables(records: list[dict], task: str | None = None) -> list[Table]:
    """Tables for every (task, dataset, target) that has at least one record."""
    tables = []
    for (tname, dname, target), recs in sorted(_groups(records, task).items()):
        kind = metric_kind(tname, [r for r in recs if is_ok(r)] or recs)
        metrics = SHOWN_METRICS[kind]
        by_name = {r["approach"]: r for r in recs}
        ok = [r for r in recs if is_ok(r)]
        table = Table(tname, dname, target or None, kind, _header(tname, dname, ok, recs), metrics, by_name)
        registered = info.approaches_for(tname)
        names = registered + sorted(n for n in by_name if n not in registered)
        fam = {n: (info.APPROACHES[n].family if n in info.APPROACHES else by_name[n].get("family", "other"))
               for n in names}
        order = {f: i for i, f in enumerate(FAMILY_ORDER)}
        names.sort(key=lambda n: order.get(fam[n], len(order)))  # stable: registry order within a family
        table.rows = [_row_from_record(n, fam[n], by_name.get(n), metrics, tname) for n in names]
        tables.append(table)
    return tables


def render_tables(root: str | os.PathLike | None = None, task: str | None = None,
                  plots: bool = True) -> list[Path]:
    """Write ``<root>/tables/<task>__<dataset>[__<target>].md|.csv`` (and the plots) from the records.

    Returns every file written. Records are read from ``<root>/runs`` only.
    """
    root = Path(root) if root is not None else results_dir()
    records = load_records(root, task=task)
    tables = build_tables(records, task)
    plot_files: dict[str, list[Path]] = {}
    if plots:
        from skinbench.results.plots import render_plots

        plot_files = render_plots(tables, root)
    written: list[Path] = []
    for table in tables:
        md = table.markdown(heading="#")
        links = plot_files.get(table.slug, [])
        if links:
            md += "\nPlots: " + ", ".join(f"[{p.stem}](../plots/{p.name})" for p in links) + "\n"
        md = ("<!-- generated by `python -m skinbench table` from results/runs; do not edit -->\n" + md)
        for suffix, text in ((".md", md), (".csv", table.csv())):
            path = root / "tables" / f"{table.slug}{suffix}"
            atomic_write_bytes(path, text.encode())
            written.append(path)
        written.extend(links)
    return written
