"""Per-subgroup scores of committed records and re-scoring on a subset of their test images.

Everything here is computed from a record's stored per-image predictions (no retraining):

* :func:`subgroup_rows` / :func:`write_subgroup_report`: the task's primary metric per HAM10000
  subgroup (sex, age band, body site, diagnosis method ``dx_type``) with bootstrap CIs, subgroup sizes
  and the best-worst gap, for every approach of a task (``benchmarks/subgroups.py`` writes
  ``results/subgroups/<task>.md|csv|png``). Groups under ``MIN_SIZE`` images are reported as "too few"
  (:func:`skinbench.metrics.subgroups.subgroup_scores`).
* :func:`primary_on_subset`: the primary metric of a record with some test images left out (the
  duplicates report: with and without the test images that duplicate a training image).

The metric is the one the record's table ranks by (``info.task(...).primary_metric``), from the same
batch functions as the record's own metrics (``classification_scores_batch`` on the stored scores,
``score_counts_batch`` on the stored confusion counts), so the whole-set value equals the table's.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.metrics.classification import classification_scores_batch, predict_labels
from skinbench.metrics.segmentation import score_counts_batch
from skinbench.metrics.subgroups import MIN_SIZE, subgroup_scores
from skinbench.results.plots import plt, save_figure
from skinbench.results.records import RunRecord
from skinbench.results.tables import FAMILY_ORDER

__all__ = [
    "SUBGROUP_TASKS",
    "SUBGROUP_FIELDS",
    "primary_batch_fn",
    "primary_on_subset",
    "first_seed_records",
    "first_seed_per_target",
    "subgroup_rows",
    "gap_rows",
    "subgroup_markdown",
    "plot_subgroups",
    "write_subgroup_report",
]

#: tasks scored on HAM10000, whose metadata gives the subgroups
SUBGROUP_TASKS = ("task2", "task4")
#: metadata columns grouped by (``age_band`` from ``age``; see ``metrics.subgroups.AGE_BANDS``)
SUBGROUP_FIELDS = ("sex", "age_band", "localization", "dx_type")
FIELD_TITLES = {"sex": "Sex", "age_band": "Age band (years)", "localization": "Body site (localization)",
                "dx_type": "Diagnosis method (dx_type)"}


def _on_used_columns(fn: Callable[..., dict], *arrays: np.ndarray) -> Callable[[np.ndarray], dict]:
    """``fn(*arrays, weights)`` evaluated on the images with a non-zero weight in some row only.

    Images of weight 0 add nothing to a weighted confusion matrix or rank statistic, so the result is
    the same; a subgroup's weights are zero outside it, which makes its bootstrap cost its own size.
    """
    def batch(weights: np.ndarray) -> dict:
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        cols = np.flatnonzero(w.any(axis=0))
        return fn(*(a[cols] for a in arrays), w[:, cols])

    return batch


#: primary metrics that depend on the predicted labels only (scored by ``_label_metric_batch``)
LABEL_METRICS = ("accuracy", "balanced_accuracy")


def _label_metric_batch(y: np.ndarray, pred: np.ndarray, n_classes: int, weights: np.ndarray) -> dict:
    """``accuracy`` and ``balanced_accuracy`` exactly as ``classification_scores_batch`` computes them
    (balanced accuracy: mean recall over the classes present in the resample), without the rank
    metrics it also computes: a tenth of the cost, which makes a subgroup report take seconds.
    ``tests/test_subgroups_report.py`` holds the two equal."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    truth = np.eye(n_classes)[y]  # (n, k)
    support = w @ truth
    hits = w @ (truth * (pred == y)[:, None])
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(present, hits / np.where(present, support, 1.0), 0.0)
        total = support.sum(axis=1)
        n_present = present.sum(axis=1)
        return {"accuracy": np.where(total > 0, hits.sum(axis=1) / np.where(total > 0, total, 1.0), np.nan),
                "balanced_accuracy": np.where(n_present > 0, recall.sum(axis=1) / np.maximum(n_present, 1),
                                              np.nan)}


def primary_batch_fn(record: RunRecord) -> tuple[np.ndarray, str, Callable[[np.ndarray], dict]]:
    """``(image_ids, metric, batch_fn)``: the task's primary metric over a record's test images as a
    ``bootstrap_ci_batch``-style function of image weights (B, n)."""
    metric = info.task(record.task).primary_metric
    if info.task(record.task).kind == "segmentation":
        ids = np.asarray(record.predictions["image_id"], dtype=str)
        return ids, metric, _on_used_columns(score_counts_batch, record.counts())

    ids, y, scores = record.prediction_arrays()
    if metric in LABEL_METRICS:
        k = scores.shape[1]
        return ids, metric, _on_used_columns(lambda yy, pp, w: _label_metric_batch(yy, pp, k, w), y,
                                             predict_labels(scores))
    return ids, metric, _on_used_columns(classification_scores_batch, y, scores)


def _value(batch_fn: Callable, metric: str, weights: np.ndarray) -> float | None:
    v = float(np.asarray(batch_fn(weights[None, :])[metric])[0])
    return v if math.isfinite(v) else None


def primary_on_subset(record: RunRecord, leave_out: Sequence[str]) -> dict:
    """The primary metric of ``record`` on all its test images and without the ids in ``leave_out``:
    ``{"metric", "n", "value", "n_kept", "value_kept", "left_out": [ids present]}`` (values None
    where undefined)."""
    ids, metric, batch_fn = primary_batch_fn(record)
    drop = np.isin(ids, list(leave_out))
    return {"metric": metric, "n": int(ids.size), "value": _value(batch_fn, metric, np.ones(ids.size)),
            "n_kept": int((~drop).sum()), "value_kept": _value(batch_fn, metric, (~drop).astype(np.float64)),
            "left_out": ids[drop].tolist()}


def first_seed_records(records: Sequence[RunRecord], task: str, dataset: str = "ham10000") -> list[RunRecord]:
    """The ok records of ``task`` on ``dataset``, the first seed of each approach, in table order
    (baselines, classical, deep; registry order within a family)."""
    chosen: dict[str, RunRecord] = {}
    for r in sorted(records, key=lambda r: r.seed or 0):
        if r.ok and r.task == task and r.dataset == dataset and r.approach not in chosen:
            chosen[r.approach] = r
    registered = info.approaches_for(task) if task in info.TASKS else []
    order = {f: i for i, f in enumerate(FAMILY_ORDER)}

    def key(r: RunRecord) -> tuple:
        fam = r.registered_family
        pos = registered.index(r.approach) if r.approach in registered else len(registered)
        return order.get(fam, len(order)), pos, r.approach

    return sorted(chosen.values(), key=key)


def first_seed_per_target(records: Sequence[RunRecord], task: str, dataset: str) -> list[RunRecord]:
    """:func:`first_seed_records` of each target in turn (the task's targets first, then the others): a
    segmentation approach has one record per target, and each is its own row."""
    targets = {r.target or "" for r in records if r.task == task}
    known = list(info.task(task).known_targets()) if task in info.TASKS else []
    order = [t for t in known if t in targets] + sorted(targets - set(known))
    return [r for t in order for r in first_seed_records([r for r in records if (r.target or "") == t], task, dataset)]


def subgroup_rows(records: Sequence[RunRecord], metadata: pd.DataFrame, fields: Sequence[str] = SUBGROUP_FIELDS,
                  min_size: int | None = None, n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows, gaps)`` frames: per (approach, field, group) ``n, status, value, ci_lo, ci_hi``, and per
    (approach, field) the best-worst ``gap`` with its ``best`` and ``worst`` groups.

    ``metadata``: indexed by image_id, holding ``fields`` (``load_ham10000_metadata``). CIs resample
    images within a group, seeded with the record's seed.
    """
    min_size = MIN_SIZE if min_size is None else min_size
    rows, gaps = [], []
    for r in records:
        ids, metric, batch_fn = primary_batch_fn(r)
        meta = metadata.loc[ids]
        for field in fields:
            res = subgroup_scores(meta[field].tolist(), metric, batch_fn=batch_fn, min_size=min_size,
                                  n_boot=n_boot, seed=r.seed or 0)
            for g in res["subgroups"]:
                lo, hi = g["ci"] or (None, None)
                rows.append({"task": r.task, "dataset": r.dataset, "target": r.target or "", "approach": r.approach,
                             "metric": metric, "field": field, "group": str(g["group"]), "n": int(g["n"]),
                             "status": g["status"], "value": g["value"], "ci_lo": lo, "ci_hi": hi})
            gap = res["gap"] or {}
            gaps.append({"task": r.task, "approach": r.approach, "metric": metric, "field": field,
                         "gap": gap.get("value"), "best": str(gap.get("best", "")), "worst": str(gap.get("worst", ""))})
    return pd.DataFrame(rows), pd.DataFrame(gaps)


def gap_rows(gaps: pd.DataFrame) -> pd.DataFrame:
    """The gaps as one row per approach, one column per field (``0.123 (best a; worst b)``)."""
    def cell(g: pd.Series) -> str:
        if g["gap"] is None or (isinstance(g["gap"], float) and math.isnan(g["gap"])):
            return "n/a (fewer than two groups reported)"
        if g["gap"] == 0:
            return "0.000 (all groups equal)"
        return f"{g['gap']:.3f} (best {g['best']}; worst {g['worst']})"

    table: dict[str, dict[str, str]] = {}
    for _, g in gaps.iterrows():
        table.setdefault(g["approach"], {})[g["field"]] = cell(g)
    return pd.DataFrame.from_dict(table, orient="index")


def _fmt(row: pd.Series) -> str:
    if row["status"] == "too few":
        return "too few"
    if row["value"] is None or (isinstance(row["value"], float) and math.isnan(row["value"])):
        return "n/a"
    ci = "" if row["ci_lo"] is None or pd.isna(row["ci_lo"]) else f" [{row['ci_lo']:.3f}, {row['ci_hi']:.3f}]"
    return f"{row['value']:.3f}{ci}"


def _md_table(frame: pd.DataFrame, index_name: str) -> str:
    from tabulate import tabulate

    body = [[str(i), *map(str, r)] for i, r in zip(frame.index, frame.to_numpy())]
    return tabulate(body, headers=[index_name, *map(str, frame.columns)], tablefmt="github", disable_numparse=True)


def subgroup_markdown(task: str, rows: pd.DataFrame, gaps: pd.DataFrame, records: Sequence[RunRecord],
                      provenance: dict[str, str], min_size: int, n_boot: int) -> str:
    """The report: header (command, data, versions), per field a group x approach table, the gaps."""
    t = info.task(task)
    metric = t.primary_metric
    lines = [f"<!-- generated by `{provenance.get('command', 'python benchmarks/subgroups.py')}`; do not edit -->",
             f"# Subgroups: {task} / ham10000 ({t.title})", ""]
    lines += [f"- **Command**: `{provenance.get('command', '')}`",
              f"- **Data**: `{provenance.get('data', '')}` (HAM10000 metadata: sex, age, localization, dx_type); "
              f"records: `results/runs/{task}/ham10000/` (first seed of each approach)",
              f"- **Versions**: {provenance.get('versions', '')}", ""]
    n_test = sorted({int(r.split.get('n_test') or 0) for r in records})
    case_mix = ("Balanced accuracy within a group averages the recall of the classes present in it, and the "
                "class mix differs between groups (in HAM10000 every follow_up lesion is nv and every akiec, bcc "
                "and mel is histo-confirmed), so a gap mixes case mix with model behaviour. ")
    lines.append(
        f"Primary metric `{metric}` of each committed record, re-scored from its stored per-image predictions "
        f"on the test images of each subgroup (n_test {', '.join(map(str, n_test))}). Values: estimate [95% "
        f"bootstrap CI, {n_boot} resamples of the group's images]. Groups with fewer than {min_size} test images "
        f"say **too few** instead of a number. The gap is best minus worst over the groups with a number. "
        + (case_mix if metric == "balanced_accuracy" else "") + "Age bands: `skinbench.metrics.subgroups.AGE_BANDS`.")
    lines.append("")
    for field in SUBGROUP_FIELDS:
        part = rows[rows["field"] == field]
        if part.empty:
            continue
        sizes = part.drop_duplicates("group").set_index("group")["n"]
        cells = part.assign(cell=part.apply(_fmt, axis=1)).pivot(index="group", columns="approach", values="cell")
        cells = cells.loc[list(dict.fromkeys(part["group"])), list(dict.fromkeys(part["approach"]))]
        cells.insert(0, "n", sizes.loc[cells.index].astype(int).astype(str))
        lines += [f"## {FIELD_TITLES.get(field, field)}", "", _md_table(cells, "group"), ""]
    lines += ["## Best-worst gap", "", f"`{metric}` of the best minus the worst group with a number, per approach.",
              "", _md_table(gap_rows(gaps).rename(columns=FIELD_TITLES), "approach"), ""]
    return "\n".join(lines)


def plot_subgroups(task: str, rows: pd.DataFrame, path: str | os.PathLike,
                   approaches: Sequence[str] | None = None) -> Path | None:
    """One panel per field: each group's value and CI per approach (groups with "too few" images
    left out, their sizes in the tick labels)."""
    data = rows[rows["status"] == "ok"]
    if approaches is not None:
        data = data[data["approach"].isin(approaches)]
    fields = [f for f in SUBGROUP_FIELDS if (data["field"] == f).any()]
    if data.empty or not fields:
        return None
    names = list(dict.fromkeys(data["approach"]))
    widths = [max(2.5, 0.45 * data[data["field"] == f]["group"].nunique()) for f in fields]
    fig, axes = plt.subplots(1, len(fields), figsize=(sum(widths) + 2.5, 4.2), sharey=True,
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    step = 0.7 / max(len(names), 1)
    for ax, field in zip(axes[0], fields):
        part = data[data["field"] == field]
        groups = list(dict.fromkeys(part["group"]))
        for k, name in enumerate(names):
            sub = part[part["approach"] == name].set_index("group").reindex(groups)
            x = np.arange(len(groups)) + (k - (len(names) - 1) / 2) * step
            lo = (sub["value"] - sub["ci_lo"]).to_numpy(dtype=float)
            hi = (sub["ci_hi"] - sub["value"]).to_numpy(dtype=float)
            ax.errorbar(x, sub["value"].to_numpy(dtype=float), yerr=[np.nan_to_num(lo), np.nan_to_num(hi)],
                        fmt="o", ms=3, lw=0.8, capsize=1.5, label=name if ax is axes[0][0] else None)
        sizes = part.drop_duplicates("group").set_index("group")["n"]
        ax.set_xticks(range(len(groups)), [f"{g} ({sizes[g]})" for g in groups], rotation=60, ha="right",
                      fontsize=7)
        ax.set_title(FIELD_TITLES.get(field, field), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    metric = info.task(task).primary_metric
    axes[0][0].set_ylabel(f"{metric} [95% CI]")
    fig.legend(loc="upper center", ncols=min(len(names), 4), fontsize=7, bbox_to_anchor=(0.5, 1.08))
    fig.suptitle(f"{task} / ham10000: {metric} per subgroup (n images; groups < 30 left out)", fontsize=10,
                 y=1.13)
    return save_figure(fig, Path(path))


def write_subgroup_report(task: str, records: Sequence[RunRecord], metadata: pd.DataFrame,
                          out_dir: str | os.PathLike, provenance: dict[str, str], min_size: int | None = None,
                          n_boot: int = 1000) -> list[Path]:
    """Write ``<out_dir>/<task>.md``, ``.csv`` (one row per approach, field and group) and ``.png``."""
    min_size = MIN_SIZE if min_size is None else min_size
    out_dir = Path(out_dir)
    rows, gaps = subgroup_rows(records, metadata, min_size=min_size, n_boot=n_boot)
    md = subgroup_markdown(task, rows, gaps, records, provenance, min_size, n_boot)
    baselines = set(info.baselines_for(task))
    shown = [r.approach for r in records if r.approach not in baselines]
    png = plot_subgroups(task, rows, out_dir / f"{task}.png", shown or None)
    if png is not None:
        md += f"\nPlot (baselines left out): [{png.name}]({png.name})\n"
    buf = io.StringIO()
    out = rows.merge(gaps[["approach", "field", "gap", "best", "worst"]], on=["approach", "field"], how="left")
    out.to_csv(buf, index=False, lineterminator="\n", float_format="%.6g")
    written = []
    for suffix, text in ((".md", md), (".csv", buf.getvalue())):
        path = out_dir / f"{task}{suffix}"
        atomic_write_bytes(path, text.encode())
        written.append(path)
    return written + ([png] if png is not None else [])
