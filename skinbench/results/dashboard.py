"""``results/README.md``: the generated comparison dashboard (tables, costs, significance, environment).

Everything comes from the records through :mod:`skinbench.results.tables`; nothing is computed twice.
Under each classification table: its calibration / operating-point table (``Table.clinical``) and the
reliability diagram. At the end, links to the analyses written beside the tables when they exist
(``subgroups/``: HAM10000 subgroups by ``benchmarks/subgroups.py``; ``data_hygiene/``: duplicates).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tabulate import tabulate

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.environment import lock_digest
from skinbench.metrics.evaluate import evaluate_pooled_targets
from skinbench.results import ensembles
from skinbench.results.contributed import contributed_section
from skinbench.results.costs import cost_sentence, cpu_cells, cpu_fit_seconds
from skinbench.results.currency import made_by_older_code
from skinbench.results.paired import PairedTests, paired_indices, paired_seeds
from skinbench.results.plots import overlay_name
from skinbench.results.records import RunRecord, distinct
from skinbench.results.selection import choose
from skinbench.results.tables import FAMILY_ORDER, MISSING, Table, contributed_by, fmt_seconds, fmt_value, is_cross

#: families in table order (the provenance section lists approaches so)
FAMILY_RANK = {f: i for i, f in enumerate(FAMILY_ORDER)}


def _family(record: RunRecord) -> str:
    return record.registered_family or "other"


def deep_rows(table: Table) -> list[RunRecord]:
    """The table's deep records that have its primary metric, best first."""
    metric = info.task(table.task).primary_metric
    recs = [r for r in table.records.values() if r.ok and _family(r) == "deep" and r.value(metric) is not None
            and not contributed_by(r)]
    return sorted(recs, key=lambda r: -r.value(metric))


def _seeded(r: RunRecord, metric: str) -> str:
    return f"{r.approach} ({r.value(metric):.3f}, seed {r.seed or 0})"


def significance_section(tables: list[Table]) -> str:
    """Markdown: the classical row chosen without test data (:func:`skinbench.results.selection.choose`; both
    top candidates where their CIs overlap) against every deep row of each table, paired by image id."""
    rows = []
    chosen: list[str] = []
    for table in tables:
        metric = info.task(table.task).primary_metric
        choice = choose([r for rs in table.seed_records.values() for r in rs], table.task, "classical")
        classicals, deeps = list(choice.contenders), deep_rows(table)
        if not classicals or not deeps:
            missing = " and ".join(f for f, r in (("classical", classicals), ("deep", deeps)) if not r)
            rows.append([table.title, metric, MISSING, MISSING, MISSING, MISSING, f"no {missing} result yet", "", "", ""])
            continue
        chosen.append(f"- {table.title}: {choice.how}.")
        tests = PairedTests()
        for classical in classicals:
            for deep in deeps:
                tests.test([table.title, metric, _seeded(classical, metric), _seeded(deep, metric),
                            paired_seeds(classical, deep)], classical, deep, table.kind, metric)
        rows += tests.rows()
    if not rows:
        return ""
    body = tabulate(rows, headers=["table", "primary metric", "classical row", "deep row", "seeds paired", "paired images",
                                   "test", "effect (classical vs deep)", "p-value", "Holm p"],
                    tablefmt="github", disable_numparse=True)
    how = ("How each table's classical row was chosen, without the test set (the validation score its fit "
           "recorded, else the mean over at least 3 seeds; where the runner-up's test CI overlaps, both are "
           "tested):\n\n" + "\n".join(chosen) + "\n\n") if chosen else ""
    return ("## Significance: best classical (chosen without test data) vs every deep row\n\n"
            "Each test pairs the two records named on the test images both predicted (paired by image id), one "
            "seed per row, named in `seeds paired` (classical vs deep): the first seed, whose values and CIs the "
            "tables show; a table's over-seed column (mean ± sd of the primary metric across seeds) is not what "
            "these tests compare. Two-sided p-values; `Holm p` adjusts them for the number of tests in the same "
            "table (Holm-Bonferroni), both classical candidates included.\n\n" + how + body + "\n")


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
            ia, ib = paired_indices(ids, own_ids)
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
    """Wall-clock seconds per approach (every ``*_s`` timing the records hold), total and peak memory; CPU seconds
    and inference ms/image once a shown record has them (older ones show a dash)."""
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
    with_cpu = any(cpu_fit_seconds(r) is not None for r in recs)  # CPU columns once a record has them
    for r, training in zip(recs, trainings):
        rss = r.timings.get("peak_rss_mb")
        row = [r.approach, *(fmt_seconds(r.timings.get(k)) for k in keys), fmt_seconds(r.total_seconds),
               *(cpu_cells(r) if with_cpu else []), MISSING if rss is None else f"{rss:.0f}"]
        if any(trainings):  # a deep segmenter's training as its epochs logged it (also when found cached)
            rate = training.get("images_per_s")
            row += [str(training.get("epochs", MISSING)), fmt_seconds(training.get("seconds")),
                    MISSING if rate is None else f"{rate:.1f}"]
        rows.append(row)
    headers = ["approach", *(k.removesuffix("_s") + " s" for k in keys), "total s",
               *(["fit CPU s", "predict CPU s", "ms/image"] if with_cpu else []), "peak RSS MB"]
    if any(trainings):
        headers += ["training epochs", "training s", "training img/s"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def equal_cost_section(table: Table, plot_files: dict[str, list[Path]]) -> str:
    """Markdown: the table's equal-cost plots (``<slug>__cost``) and its generated sentence."""
    if is_cross(table.dataset):  # the fit is the in-dataset table's; only inference differs
        return ""
    plots = plot_files.get(f"{table.slug}__cost", [])
    sentence = cost_sentence(table)
    if not plots and not sentence:
        return ""
    links = ", ".join(f"[{p.stem.removeprefix(table.slug + '__').replace('_', ' ')}](plots/{p.name})" for p in plots)
    return ("Equal cost: " + (sentence + " " if sentence else "")
            + (f"Plots ({table.primary} with its CI against training CPU seconds and inference ms per image, log x, "
               "one point per approach, the Pareto front of the classical and deep rows dashed; hollow markers: "
               "wall-clock seconds of records made before CPU time was recorded; * the fit found cached work, so "
               "its cost is a lower bound; prediction may find test features cached too, e.g. a frozen "
               f"backbone's, so a tiny ms/image can leave the backbone out): {links}" if links else "") + "\n")


def _derived_tests(derived: list[RunRecord], table: Table) -> list[list[str]]:
    """Each derived row against each parent (paired by image id), Holm over the table's tests."""
    metric = table.primary
    tests = PairedTests()
    for d in derived:
        for parent in d.extras.get("parents", []):
            rec = next((r for r in table.seed_records.get(parent["approach"], []) if (r.seed or 0) == parent["seed"]),
                       None)
            if rec is None or (parent.get("seed") and d.extras.get("derived") == "seed-ensemble"):
                continue  # a seed ensemble is tested against its first seed, the row its table shows
            tests.test([f"{d.approach} ({d.value(metric):.3f})", _seeded(rec, metric)], d, rec, table.kind, metric)
    return tests.rows()


def _task_table(tables: list[Table], task: str) -> Table | None:
    dataset = info.task(task).default_dataset
    return next((t for t in tables if t.task == task and t.dataset == dataset), None)


def _gallery_link(root: Path, task: str) -> str:
    """A link to the hard-case gallery ``benchmarks/fusion.py`` drew for ``task``, where it exists."""
    gallery = root / ensembles.FOLDER / f"{task}_hard_cases.png"
    if not gallery.is_file():
        return ""
    outlines = " (true outlines; records keep no predicted masks)" if info.task(task).kind != "classification" else ""
    return f"Gallery{outlines}: [{gallery.name}]({ensembles.FOLDER}/{gallery.name}).\n"


def families_section(root: Path, tables: list[Table]) -> str:
    """Markdown: per classification task, the late-fusion and seed-ensemble rows (``benchmarks/fusion.py``,
    with their currency and paired tests against their parents), the agreement of the classical and deep
    rows chosen without test data and the hard cases; task4's hard cases; all from stored predictions."""
    parts: list[str] = []
    for task in ensembles.TASKS:
        table = _task_table(tables, task)
        if table is None:
            continue
        metric = table.primary
        out = [f"### {table.title}\n"]
        made = [r for r in ensembles.load_ensembles(root, task) if r.ok]
        stale = ensembles.stale_reasons(root, task)
        if stale:
            out.append(("**Stale derived rows**" if made else "Derived rows not made yet") + " ("
                       + "; ".join(stale[:6]) + (f"; +{len(stale) - 6} more" if len(stale) > 6 else "")
                       + f"): rerun `python benchmarks/fusion.py --tasks {task}`.\n")
        if made:
            rows = [[r.approach, r.title, fmt_value(r.value(metric), r.metrics.get(metric, {}).get("ci")),
                     str(r.split.get("n_test")),
                     ", ".join(f"{p['approach']} seed {p['seed']} (key {str(p['run_key'])[:10]})"
                               for p in r.extras.get("parents", []))] for r in made]
            out.append(tabulate(rows, headers=["derived row", "what", metric, "n_test", "parents (run key)"],
                                tablefmt="github", disable_numparse=True) + "\n")
            tests = _derived_tests(made, table)
            if tests:
                out.append(tabulate(tests, headers=["derived row", "parent", "paired images", "test", "effect",
                                                    "p-value", "Holm p"], tablefmt="github",
                                    disable_numparse=True) + "\n")
        records = [r for rs in table.seed_records.values() for r in rs]
        out += ensembles.complementarity_sections(task, records, heading="####", k=8,
                                                  gallery=_gallery_link(root, task))
        parts.append("\n".join(out))
    for task in ensembles.SEG_TASKS:
        seg = _task_table(tables, task)
        if seg is None:
            continue
        records = [r for rs in seg.seed_records.values() for r in rs]
        out = [f"### {seg.title}\n\nNo fusion or seed-ensemble rows: segmentation records keep per-image counts, "
               f"not probability maps. Right = per-image Jaccard >= {ensembles.HARD_JACCARD}.\n"]
        out += ensembles.complementarity_sections(task, records, heading="####", k=8,
                                                  gallery=_gallery_link(root, task))
        parts.append("\n".join(out))
    if not parts:
        return ""
    return ("## Classical and deep together: fusion, seed ensembles, agreement, hard cases\n\n"
            f"Late fusion: {ensembles.FUSION_WEIGHT} x the classical row's stored probabilities + "
            f"{1 - ensembles.FUSION_WEIGHT} x the deep row's (weight fixed in advance), each row chosen without "
            f"test data; seed ensembles: the mean of a row's first {ensembles.SEED_ENSEMBLE} seeds. Both are scored "
            "by the one scorer (CIs: the parents' bootstrap resamples) and tested against their parents; "
            "`python benchmarks/fusion.py` makes them from the records and `regenerate.py --status` says when a "
            "parent changed. Everything here is computed from the records' stored predictions.\n\n"
            + "\n".join(parts))


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


def scaling_section(root: Path) -> str:
    """Markdown: how each family scales with training data, per task with a learning curve: the crossover
    sentence and the figure (from ``<root>/learning_curves/<task>.json``, which
    ``benchmarks/learning_curves.py`` writes beside its report; nothing is re-tested here)."""
    folder = root / "learning_curves"
    answers = sorted(p for p in folder.glob("task*.json") if re.fullmatch(r"task\d+\.json", p.name)) \
        if folder.is_dir() else []
    parts = []
    for path in answers:
        answer = json.loads(path.read_text())
        task = answer["task"]
        figure = f"\n![learning curve: {task}](learning_curves/{answer['figure']})\n" if answer.get("figure") else ""
        parts.append(f"### {task}: {info.task(task).title}\n\n{answer['sentence']} "
                     f"Report, table and tests: [learning_curves/{task}.md](learning_curves/{task}.md).\n{figure}")
    if not parts:
        return ""
    return ("## How each family scales with training data (learning curves)\n\n"
            "The primary metric on the whole test split against the number of training images: nested, "
            "class-stratified, lesion-aware fractions of the training split (5-100 %), three seeds (subset paths), "
            "mean and range over seeds. The crossover is the smallest fraction at which the best deep row beats the "
            "best classical one (both chosen by their 100 % records' mean over seeds), paired bootstrap, Holm over "
            "fractions (`python benchmarks/learning_curves.py`).\n\n" + "\n".join(parts))


def analyses_section(root: Path) -> str:
    """Links to the reports of :data:`ANALYSES` that exist (subgroups, data hygiene; the learning curves have
    a section of their own, :func:`scaling_section`)."""
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
        out.append(f"- **Machine**: {machine.get('cpu', '?')} (ISA {machine.get('isa') or 'unknown'}), "
                   f"{machine.get('cores', '?')} cores, {machine.get('memory_gb', '?')} GiB RAM, GPU: {gpus}; "
                   f"{machine.get('platform', '')} ({len(users)} runs)")
    return "\n".join(out) + "\n"


def _lock_name(digest: str | None, today: str | None) -> str:
    if not digest:
        return "none recorded"
    return f"`{digest}`" + (" (today's)" if digest == today else "")


def provenance_section(records: list[RunRecord]) -> str:
    """Markdown: per approach, how its rows reproduce (``RunRecord.reproduces``: the class and tolerance
    ``benchmarks/regenerate.py --verify`` applies), the machines' CPU and instruction set, which lock file
    (``versions.lock``, the digest of ``constraints.txt``) made its records, and how many came from
    uncommitted code (``+dirty``)."""
    today = lock_digest()
    by_approach: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.ok:
            by_approach.setdefault(r.approach, []).append(r)
    rows = []
    for name in sorted(by_approach, key=lambda n: (FAMILY_RANK.get(_family(by_approach[n][0]), 9), n)):
        recs = by_approach[name]
        rule = recs[0].reproduces()
        kind = rule["class"] if rule else "not stated"
        if rule and rule["class"] != "bitwise":
            kind += f" (tolerance {rule['tolerance']:g})"
        cpus = sorted({f"{r.machine.get('cpu', '?')} / {r.isa}" for r in recs})
        locks: dict[str, int] = {}
        for r in recs:
            lock = _lock_name((r.versions or {}).get("lock"), today)
            locks[lock] = locks.get(lock, 0) + 1
        dirty = sum(r.dirty for r in recs)
        rows.append([name, kind, str(len(recs)), "; ".join(cpus),
                     "; ".join(f"{k} ({n})" for k, n in sorted(locks.items())), str(dirty) if dirty else ""])
    if not rows:
        return ""
    body = tabulate(rows, headers=["approach", "reproduces", "records", "CPU / ISA", "lock (records)",
                                   "uncommitted code"], tablefmt="github", disable_numparse=True)
    return ("## Provenance and reproducibility\n\n"
            "How each approach's records reproduce, as its estimator declares it (`reproducibility`; "
            "`python benchmarks/regenerate.py --verify` applies it): **bitwise** rows rerun to identical numbers on "
            "any machine; **bitwise-same-cpu** rows (TensorFlow's CPU kernels differ by instruction set) rerun "
            "identically on the same CPU and ISA and otherwise within the stated tolerance (absolute, on every "
            "metric and CI bound). `lock`: the digest of the `constraints.txt` whose pinned versions made the "
            f"records (today's: {_lock_name(today, None)}; none recorded: made before the lock was shipped, their "
            "versions are in the table below). `uncommitted code`: records whose `versions.git_commit` ends "
            "in `+dirty` (marked † in the tables).\n\n" + body + "\n")


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
                cpu = ("; CPU seconds (user + system of the process and its children) and inference wall ms per "
                       f"test image where the record has them ({MISSING}: made before they were recorded)"
                       if "fit CPU s" in cost else "")
                parts.append(f"Wall-clock cost (seconds, on the machine below){cpu}:\n\n{cost}")
            equal_cost = equal_cost_section(table, plot_files)
            if equal_cost:
                parts.append(equal_cost)
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
    together = families_section(root, tables)
    if together:
        parts.append(together)
    scaling = scaling_section(root)
    if scaling:
        parts.append(scaling)
    sig = significance_section(tables)
    if sig:
        parts.append(sig)
    contributed = contributed_section(tables)
    if contributed:
        parts.append(contributed)
    analyses = analyses_section(root)
    if analyses:
        parts.append(analyses)
    provenance = provenance_section(records)
    if provenance:
        parts.append(provenance)
    if records:
        parts.append(_env_section(records))
    path = root / "README.md"
    atomic_write_bytes(path, ("\n".join(parts).rstrip() + "\n").encode())
    return path
