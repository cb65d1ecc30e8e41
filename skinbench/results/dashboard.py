"""``results/README.md``: the generated comparison dashboard (tables, costs, significance, environment).

Everything comes from the records through :mod:`skinbench.results.tables`; nothing is computed twice.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tabulate import tabulate

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.paths import results_dir
from skinbench.results.records import distinct, is_ok, load_records, per_image_jaccard, prediction_arrays
from skinbench.results.tables import (MISSING, Table, build_tables, fmt_seconds, render_tables, second_keys,
                                      total_seconds)


def _family(record: dict) -> str:
    name = record["approach"]
    return info.APPROACHES[name].family if name in info.APPROACHES else record.get("family", "other")


def _primary(record: dict, metric: str) -> float | None:
    entry = (record.get("metrics") or {}).get(metric)
    return entry.get("value") if isinstance(entry, dict) else entry


def best_of(table: Table, family: str) -> dict | None:
    """The family's record with the highest primary metric in this table (None if it has none)."""
    metric = info.task(table.task).primary_metric
    candidates = [r for r in table.records.values()
                  if is_ok(r) and _family(r) == family and _primary(r, metric) is not None]
    return max(candidates, key=lambda r: _primary(r, metric), default=None)


def _paired(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a and b of the image ids both predicted, in a's order."""
    pos_b = {i: k for k, i in enumerate(ids_b)}
    ia = np.array([k for k, i in enumerate(ids_a) if i in pos_b], dtype=int)
    ib = np.array([pos_b[ids_a[k]] for k in ia], dtype=int)
    return ia, ib


def compare(a: dict, b: dict, kind: str, metric: str = "") -> list[dict]:
    """Paired tests of record ``a`` against ``b`` on the test images both predicted.

    Classification: McNemar on correctness (accuracy), DeLong on AUC when binary.
    Segmentation: paired bootstrap of the per-image Jaccard difference (a - b), and of the pooled
    primary metric when it is one (``jaccard_set``: how ISIC scored globules and streaks).
    """
    from skinbench.metrics import significance
    from skinbench.metrics.classification import predict_labels

    rows: list[dict] = []
    if kind == "segmentation":
        ids_a, jac_a = per_image_jaccard(a)
        ids_b, jac_b = per_image_jaccard(b)
        ia, ib = _paired(ids_a, ids_b)
        if metric.endswith("_set"):
            counts_a, counts_b = (np.asarray(r["predictions"]["counts"], dtype=np.int64).reshape(-1, 4)
                                  for r in (a, b))
            res = significance.paired_bootstrap_pooled(counts_a[ia], counts_b[ib], metric)
            lo, hi = res["ci"]
            rows.append({"test": f"paired bootstrap, {metric}", "n": len(ia),
                         "effect": f"Δ {metric} {res['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                         "p_value": res["p_value"]})
        res = significance.paired_bootstrap(jac_a[ia], jac_b[ib], n_boot=1000, seed=0)
        diff, (lo, hi) = res.get("difference", res.get("diff")), res["ci"]
        rows.append({"test": "paired bootstrap, per-image Jaccard", "n": len(ia),
                     "effect": f"Δ mean Jaccard {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                     "p_value": res.get("p_value")})
        return rows
    ids_a, y_a, s_a = prediction_arrays(a)
    ids_b, y_b, s_b = prediction_arrays(b)
    ia, ib = _paired(ids_a, ids_b)
    y = y_a[ia]
    if not np.array_equal(y, y_b[ib]):
        raise ValueError(f"{a['approach']} and {b['approach']} disagree on the true labels of shared images")
    correct_a, correct_b = predict_labels(s_a[ia]) == y, predict_labels(s_b[ib]) == y
    res = significance.mcnemar(correct_a, correct_b)
    rows.append({"test": "McNemar, accuracy", "n": len(ia),
                 "effect": f"accuracy {correct_a.mean():.3f} vs {correct_b.mean():.3f}",
                 "p_value": res.get("p_value")})
    if s_a.shape[1] == 2 and len(np.unique(y)) == 2:
        res = significance.delong(y, s_a[ia, 1], s_b[ib, 1])
        rows.append({"test": "DeLong, ROC AUC", "n": len(ia),
                     "effect": f"AUC {res['auc_a']:.3f} vs {res['auc_b']:.3f} (z {res['z']:+.2f})",
                     "p_value": res.get("p_value")})
    return rows


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def significance_section(tables: list[Table]) -> str:
    """Markdown: best classical vs best deep per table, paired by image id."""
    rows = []
    for table in tables:
        metric = info.task(table.task).primary_metric
        classical, deep = best_of(table, "classical"), best_of(table, "deep")
        if classical is None or deep is None:
            missing = " and ".join(f for f, r in (("classical", classical), ("deep", deep)) if r is None)
            rows.append([table.title, metric, classical and classical["approach"] or MISSING,
                         deep and deep["approach"] or MISSING, MISSING, f"no {missing} result yet", "", ""])
            continue
        names = [f"{classical['approach']} ({_primary(classical, metric):.3f})",
                 f"{deep['approach']} ({_primary(deep, metric):.3f})"]
        try:
            tests = compare(classical, deep, table.kind, metric)
        except ImportError:
            rows.append([table.title, metric, *names, MISSING, "skinbench.metrics.significance unavailable", "", ""])
            continue
        except (KeyError, ValueError) as err:
            rows.append([table.title, metric, *names, MISSING, f"cannot pair predictions: {err}", "", ""])
            continue
        for t in tests:
            rows.append([table.title, metric, *names, str(t["n"]), t["test"], t["effect"], _fmt_p(t["p_value"])])
    if not rows:
        return ""
    body = tabulate(rows, headers=["table", "primary metric", "best classical", "best deep", "paired images",
                                   "test", "effect (classical vs deep)", "p-value"],
                    tablefmt="github", disable_numparse=True)
    return ("## Significance: best classical vs best deep\n\n"
            "Best of each family by the task's primary metric, on the test images both predicted "
            "(paired by image id); two-sided p-values, no correction for multiple comparisons.\n\n" + body + "\n")


def cost_table(table: Table) -> str:
    """Wall-clock seconds per approach (every ``*_s`` timing the records hold), total and peak memory."""
    recs = [table.records[row["approach"]] for row in table.rows
            if row["approach"] in table.records and is_ok(table.records[row["approach"]])]
    keys: list[str] = []
    for r in recs:
        keys += [k for k in second_keys(r.get("timings") or {}) if k not in keys and k != "total_s"]
    if not recs or not keys:
        return ""
    first = ("fit_s", "predict_s", "evaluate_s")
    keys.sort(key=lambda k: (first.index(k) if k in first else len(first), k))
    rows = []
    for r in recs:
        t = r.get("timings") or {}
        rss = t.get("peak_rss_mb")
        rows.append([r["approach"], *(fmt_seconds(t.get(k)) for k in keys), fmt_seconds(total_seconds(r)),
                     MISSING if rss is None else f"{rss:.0f}"])
    headers = ["approach", *(k.removesuffix("_s") + " s" for k in keys), "total s", "peak RSS MB"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def overlay_files(plots_dir: Path, table: Table) -> list[Path]:
    """Overlay figures the runner wrote for this table's segmenters (image | truth | prediction)."""
    if table.kind != "segmentation":
        return []
    return [p for name in table.records
            for p in sorted(plots_dir.glob(f"overlay_{table.task}_{table.dataset}_{name}__{table.target}.png"))]


def _env_section(records: list[dict]) -> str:
    out = ["## Software and machine\n"]
    versions = distinct(records, "versions")
    if versions:
        keys: list[str] = []
        for v in versions:
            keys += [k for k in v if k not in keys]
        rows = [[k, ", ".join(sorted({str(v.get(k)) for v in versions if v.get(k) is not None})) or MISSING]
                for k in keys]
        out.append(tabulate(rows, headers=["software", "version(s) used by the records"], tablefmt="github"))
        out.append("")
    for machine in distinct(records, "machine"):
        users = sorted({f"{r['task']}/{r['approach']}" for r in records if r.get("machine") == machine})
        gpus = ", ".join(machine.get("gpus") or []) or "none"
        out.append(f"- **Machine**: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
                   f"{machine.get('memory_gb', '?')} GiB RAM, GPU: {gpus}; {machine.get('platform', '')} "
                   f"({len(users)} runs)")
    return "\n".join(out) + "\n"


def _plot_label(path: Path, table: Table) -> str:
    stem = path.stem.removeprefix(table.slug + "__")
    if stem.startswith("overlay_"):
        return "overlay " + stem.removeprefix(f"overlay_{table.task}_{table.dataset}_").split("__")[0]
    return stem.replace("__", " ")


def render_dashboard(root: str | os.PathLike | None = None, tables_rendered: bool = False) -> Path:
    """Write ``<root>/README.md`` from the records (rendering the tables and plots first unless told)."""
    root = Path(root) if root is not None else results_dir()
    if not tables_rendered:
        render_tables(root)
    records = load_records(root)
    tables = build_tables(records)
    plots_dir = root / "plots"
    parts = ["<!-- generated by `python -m skinbench table` (skinbench/results/dashboard.py); do not edit -->",
             "# skinbench results dashboard\n",
             "**Generated file: do not edit.** Rendered from the JSON records under `runs/` by "
             "`python -m skinbench table`; regenerate every record with the scripts in `benchmarks/`. "
             "Every approach the registry lists for a task has a row: rows without numbers say why. "
             "Metrics: estimate [95% bootstrap confidence interval, resampling test images].\n"]
    if not tables:
        parts.append("No result records yet: run `python -m skinbench run TASK --approach NAME`.\n")
    for tname, tinfo in info.TASKS.items():
        task_tables = [t for t in tables if t.task == tname]
        if not task_tables:
            continue
        parts.append(f"## {tname}: {tinfo.title}\n")
        for table in task_tables:
            parts.append(table.markdown(heading="###"))
            cost = cost_table(table)
            if cost:
                parts.append(f"Wall-clock cost (seconds, on the machine below):\n\n{cost}")
            plots = sorted(plots_dir.glob(f"{table.slug}__*.png")) + overlay_files(plots_dir, table)
            if plots:
                parts.append("Plots: " + ", ".join(f"[{_plot_label(p, table)}](plots/{p.name})"
                                                   for p in plots) + "\n")
            parts.append(f"Tables: [markdown](tables/{table.slug}.md), [CSV](tables/{table.slug}.csv)\n")
    sig = significance_section(tables)
    if sig:
        parts.append(sig)
    if records:
        parts.append(_env_section(records))
    path = root / "README.md"
    atomic_write_bytes(path, ("\n".join(parts).rstrip() + "\n").encode())
    return path
