"""``results/README.md``: the generated comparison dashboard (tables, costs, significance, environment).

Everything comes from the records through :mod:`skinbench.results.tables`; nothing is computed twice.
Under each classification table: its calibration / operating-point table (``Table.clinical``) and the
reliability diagram. At the end, links to the analyses written beside the tables when they exist
(``subgroups/``: HAM10000 subgroups by ``benchmarks/subgroups.py``; ``data_hygiene/``: duplicates).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tabulate import tabulate

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.metrics import significance
from skinbench.metrics.classification import predict_labels
from skinbench.metrics.evaluate import evaluate_pooled_targets
from skinbench.results.currency import made_by_older_code
from skinbench.results.plots import overlay_name
from skinbench.results.records import RunRecord, distinct
from skinbench.results.tables import MISSING, Table, fmt_seconds
from skinbench.scoring import mean_over


def _family(record: RunRecord) -> str:
    name = record.approach
    return info.APPROACHES[name].family if name in info.APPROACHES else record.family or "other"


def best_of(table: Table, family: str) -> RunRecord | None:
    """The family's suite record (contributed rows have their own section) with the highest primary metric
    in this table (None if it has none)."""
    from skinbench.results.tables import contributed_by

    metric = info.task(table.task).primary_metric
    candidates = [r for r in table.records.values()
                  if r.ok and _family(r) == family and r.value(metric) is not None and not contributed_by(r)]
    return max(candidates, key=lambda r: r.value(metric), default=None)


def _paired(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a and b of the image ids both predicted, in a's order."""
    pos_b = {i: k for k, i in enumerate(ids_b)}
    ia = np.array([k for k, i in enumerate(ids_a) if i in pos_b], dtype=int)
    ib = np.array([pos_b[ids_a[k]] for k in ia], dtype=int)
    return ia, ib


def compare(a: RunRecord, b: RunRecord, kind: str, metric: str = "") -> list[dict]:
    """Paired tests of record ``a`` against ``b`` on the test images both predicted.

    Classification: McNemar on correctness (accuracy), DeLong on AUC when binary.
    Segmentation: paired bootstrap of the pooled primary metric when it is one (``jaccard_set``: how ISIC
    scored globules and streaks), and of the per-image Jaccard difference (a - b) over the images whose
    truth holds the target only (none over images without it).
    """
    rows: list[dict] = []
    if kind == "segmentation":
        ids_a, jac_a = a.per_image_jaccard()
        ids_b, jac_b = b.per_image_jaccard()
        ia, ib = _paired(ids_a, ids_b)
        if metric.endswith("_set"):
            res = significance.paired_bootstrap_pooled(a.counts()[ia], b.counts()[ib], metric)
            lo, hi = res["ci"]
            rows.append({"test": f"paired bootstrap, {metric}", "n": len(ia),
                         "effect": f"Δ {metric} {res['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                         "p_value": res["p_value"]})
        # per-image Jaccard only on the images whose truth holds the target (the scorer's mean_over): on
        # the others an empty prediction is "perfect", which would make a test of predicting nothing
        held = mean_over(a.counts()[ia])
        ia, ib = ia[held], ib[held]
        if len(ia):
            res = significance.paired_bootstrap(jac_a[ia], jac_b[ib], n_boot=1000, seed=0)
            diff, (lo, hi) = res["difference"], res["ci"]
            rows.append({"test": "paired bootstrap, per-image Jaccard (images with the target)", "n": len(ia),
                         "effect": f"Δ mean Jaccard {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                         "p_value": res.get("p_value")})
        return rows
    ids_a, y_a, s_a = a.prediction_arrays()
    ids_b, y_b, s_b = b.prediction_arrays()
    ia, ib = _paired(ids_a, ids_b)
    y = y_a[ia]
    if not np.array_equal(y, y_b[ib]):
        raise ValueError(f"{a.approach} and {b.approach} disagree on the true labels of shared images")
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


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None): a table tests many deep rows at once."""
    known = sorted((p, k) for k, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, k) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[k] = running
    return adjusted


def deep_rows(table: Table) -> list[RunRecord]:
    """The table's deep records that have its primary metric, best first."""
    metric = info.task(table.task).primary_metric
    from skinbench.results.tables import contributed_by

    recs = [r for r in table.records.values() if r.ok and _family(r) == "deep" and r.value(metric) is not None
            and not contributed_by(r)]
    return sorted(recs, key=lambda r: -r.value(metric))


def significance_section(tables: list[Table]) -> str:
    """Markdown: the best classical row against every deep row of each table, paired by image id."""
    rows = []
    for table in tables:
        metric = info.task(table.task).primary_metric
        classical, deeps = best_of(table, "classical"), deep_rows(table)
        if classical is None or not deeps:
            missing = " and ".join(f for f, r in (("classical", classical), ("deep", deeps)) if not r)
            rows.append([table.title, metric, classical and classical.approach or MISSING,
                         MISSING, MISSING, f"no {missing} result yet", "", "", ""])
            continue
        base = f"{classical.approach} ({classical.value(metric):.3f})"
        table_rows: list[list[str]] = []
        p_values: list[float | None] = []
        for deep in deeps:
            name = f"{deep.approach} ({deep.value(metric):.3f})"
            try:
                tests = compare(classical, deep, table.kind, metric)
            except ImportError:
                table_rows.append([table.title, metric, base, name, MISSING,
                                   "skinbench.metrics.significance unavailable", "", ""])
                p_values.append(None)
                continue
            except (KeyError, ValueError) as err:
                table_rows.append([table.title, metric, base, name, MISSING, f"cannot pair predictions: {err}", "", ""])
                p_values.append(None)
                continue
            for t in tests:
                table_rows.append([table.title, metric, base, name, str(t["n"]), t["test"], t["effect"],
                                   _fmt_p(t["p_value"])])
                p_values.append(t["p_value"])
        rows += [r + [_fmt_p(p) if p is not None else ""] for r, p in zip(table_rows, holm(p_values))]
    if not rows:
        return ""
    body = tabulate(rows, headers=["table", "primary metric", "best classical", "deep row", "paired images",
                                   "test", "effect (classical vs deep)", "p-value", "Holm p"],
                    tablefmt="github", disable_numparse=True)
    return ("## Significance: best classical vs every deep row\n\n"
            "The best classical record by the task's primary metric against each deep record, on the test "
            "images both predicted (paired by image id). Two-sided p-values; `Holm p` adjusts them for the "
            "number of tests in the same table (Holm-Bonferroni).\n\n" + body + "\n")


def isic2018_score_section(records: list[RunRecord], task: str = "task3") -> str:
    """Markdown: the ISIC 2018 Task 2 score (five attributes pooled) of every approach with a current record
    of each attribute on the same test images, per dataset, beside its per-attribute pooled Jaccard."""
    attributes = info.ISIC2018_ATTRIBUTES
    by_run: dict[tuple[str, str], dict[str, RunRecord]] = {}
    for r in records:
        if r.task == task and r.ok and r.target in attributes and r.seed == 0 and not r.limit:
            by_run.setdefault((r.dataset, r.approach), {})[r.target] = r
    rows = []
    for (dataset, approach), recs in sorted(by_run.items()):
        if set(recs) != set(attributes):
            continue
        ids = recs[attributes[0]].per_image_jaccard()[0]
        aligned = []
        for a in attributes:
            own_ids = recs[a].per_image_jaccard()[0]
            ia, ib = _paired(ids, own_ids)
            if len(ia) != len(ids):
                aligned = []
                break
            aligned.append(recs[a].counts()[ib])
        if not aligned:
            continue
        m = evaluate_pooled_targets(aligned, n_boot=1000, seed=0)["metrics"]["jaccard_pooled"]
        ci = f" [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]" if m["ci"] else ""
        rows.append([dataset, approach, _family(recs[attributes[0]]),
                     *(f"{recs[a].value('jaccard_set'):.3f}" for a in attributes), f"**{m['value']:.3f}**{ci}",
                     str(len(ids))])
    if not rows:
        return ""
    body = tabulate(rows, headers=["dataset", "approach", "family", *attributes, "ISIC 2018 score", "n_test"],
                    tablefmt="github", disable_numparse=True)
    return ("### ISIC 2018 Task 2 score (five attributes pooled)\n\n"
            "The challenge's score (its scorer's `overall`): Jaccard of every (attribute, image) confusion "
            "matrix pooled after dividing each by its pixel count; per attribute, the same pooled over images "
            "(`jaccard_set`). CI: 95% bootstrap over test images, each with its five attributes. Only "
            "approaches scored on all five attributes appear. The 2018 leaderboard's best was 0.473 on the "
            "challenge's own test set; ours is the 339 ISIC 2016 test images, so the numbers are not "
            "comparable one to one.\n\n" + body + "\n")


def cost_table(table: Table) -> str:
    """Wall-clock seconds per approach (every ``*_s`` timing the records hold), total and peak memory."""
    recs = [table.records[row["approach"]] for row in table.rows
            if row["approach"] in table.records and table.records[row["approach"]].ok]
    keys: list[str] = []
    for r in recs:
        keys += [k for k in r.second_keys() if k not in keys]
    if not recs or not keys:
        return ""
    first = ("fit_s", "predict_s", "evaluate_s")
    keys.sort(key=lambda k: (first.index(k) if k in first else len(first), k))
    rows = []
    trainings = [((r.extras or {}).get("fit") or {}).get("training") or {} for r in recs]
    for r, training in zip(recs, trainings):
        rss = r.timings.get("peak_rss_mb")
        row = [r.approach, *(fmt_seconds(r.timings.get(k)) for k in keys), fmt_seconds(r.total_seconds),
               MISSING if rss is None else f"{rss:.0f}"]
        if any(trainings):  # a deep segmenter's training as its epochs logged it (also when found cached)
            rate = training.get("images_per_s")
            row += [str(training.get("epochs", MISSING)), fmt_seconds(training.get("seconds")),
                    MISSING if rate is None else f"{rate:.1f}"]
        rows.append(row)
    headers = ["approach", *(k.removesuffix("_s") + " s" for k in keys), "total s", "peak RSS MB"]
    if any(trainings):
        headers += ["training epochs", "training s", "training img/s"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def overlay_links(plots_dir: Path, table: Table) -> list[tuple[str, Path]]:
    """(label, file) of the overlay figures the runner wrote for this table's segmenters."""
    if table.kind != "segmentation":
        return []
    paths = ((name, plots_dir / overlay_name(table.task, table.dataset, name, table.target))
             for name in table.records)
    return [(f"overlay {name}", path) for name, path in paths if path.exists()]


def equivalence_note(table: Table) -> str:
    """Name the rows made by older code that was declared equivalent (same algorithm versions)."""
    names = [row["approach"] for row in table.rows
             if row["approach"] in table.records and table.records[row["approach"]].ok
             and made_by_older_code(table.records[row["approach"]])]
    if not names:
        return ""
    return (f"Made by older code declared equivalent (same declared algorithm versions; each record keeps "
            f"its commit and code digest): {', '.join(names)}.\n")


def clinical_section(table: Table, plot_files: dict[str, list[Path]]) -> str:
    """Markdown of a classification table's calibration / operating-point table with its links."""
    clinical = table.clinical
    if clinical is None:
        return ""
    out = [clinical.markdown(heading="####")]
    plots = plot_files.get(clinical.slug, [])
    if plots:
        out.append("Plots: " + ", ".join(f"[{p.stem.removeprefix(table.slug + '__')}](plots/{p.name})"
                                         for p in sorted(plots)) + "\n")
    out.append(f"Tables: [markdown](tables/{clinical.slug}.md), [CSV](tables/{clinical.slug}.csv)\n")
    return "\n".join(out)


#: analyses written by scripts beside the tables: (folder, title, what); linked when they exist
ANALYSES = (
    ("subgroups", "Subgroups (HAM10000)", "the primary metric per sex, age band, body site and diagnosis "
     "method, with CIs, sizes and the best-worst gap (`python benchmarks/subgroups.py`)"),
    ("data_hygiene", "Data hygiene", "exact and near-duplicate images, the pairs crossing the train/test split "
     "and the effect on the primary metric of leaving them out (`python benchmarks/duplicates_report.py`)"),
)


def analyses_section(root: Path) -> str:
    """Links to the reports under ``<root>/subgroups`` and ``<root>/data_hygiene`` that exist."""
    items = []
    for folder, title, what in ANALYSES:
        reports = sorted((root / folder).glob("*.md")) if (root / folder).is_dir() else []
        if reports:
            links = ", ".join(f"[{p.stem}]({folder}/{p.name})" for p in reports)
            items.append(f"- **{title}**: {links}. {what[0].upper() + what[1:]}.")
    return "## Further analyses\n\n" + "\n".join(items) + "\n" if items else ""


def _env_section(records: list[RunRecord]) -> str:
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
        users = sorted({f"{r.task}/{r.approach}" for r in records if r.machine == machine})
        gpus = ", ".join(machine.get("gpus") or []) or "none"
        out.append(f"- **Machine**: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
                   f"{machine.get('memory_gb', '?')} GiB RAM, GPU: {gpus}; {machine.get('platform', '')} "
                   f"({len(users)} runs)")
    return "\n".join(out) + "\n"


def render_dashboard(root: str | os.PathLike, records: list[RunRecord], tables: list[Table],
                     plot_files: dict[str, list[Path]]) -> Path:
    """Write ``<root>/README.md`` from the records, their tables and plots (see ``render.render_all``)."""
    root = Path(root)
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
            note = equivalence_note(table)
            if note:
                parts.append(note)
            cost = cost_table(table)
            if cost:
                parts.append(f"Wall-clock cost (seconds, on the machine below):\n\n{cost}")
            plots = [(p.stem.removeprefix(table.slug + "__").replace("__", " "), p)
                     for p in sorted(plot_files.get(table.slug, []))] + overlay_links(plots_dir, table)
            if plots:
                parts.append("Plots: " + ", ".join(f"[{label}](plots/{p.name})" for label, p in plots) + "\n")
            parts.append(f"Tables: [markdown](tables/{table.slug}.md), [CSV](tables/{table.slug}.csv)\n")
            clinical = clinical_section(table, plot_files)
            if clinical:
                parts.append(clinical)
        if tinfo.more_targets:
            pooled = isic2018_score_section(records, tname)
            if pooled:
                parts.append(pooled)
    sig = significance_section(tables)
    if sig:
        parts.append(sig)
    from skinbench.results.contributed import contributed_section

    contributed = contributed_section(tables)
    if contributed:
        parts.append(contributed)
    analyses = analyses_section(root)
    if analyses:
        parts.append(analyses)
    if records:
        parts.append(_env_section(records))
    path = root / "README.md"
    atomic_write_bytes(path, ("\n".join(parts).rstrip() + "\n").encode())
    return path
