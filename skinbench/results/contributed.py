"""The dashboard's section for contributed (plugin) rows: each against the suite's baseline, classical and
deep rows.

The suite's own significance section (best classical vs every deep row) leaves contributed rows out, so
installing a plugin never changes it; here every contributed record is tested, with the same paired tests
(:func:`skinbench.results.paired.compare`: McNemar and DeLong, or paired bootstraps of Jaccard) against
the suite row of each family chosen without test data (:mod:`skinbench.results.selection`; baseline: is it
better than the trivial floor?), Holm-adjusted within its table.
"""

from __future__ import annotations

from tabulate import tabulate

from skinbench import info
from skinbench.results.paired import PairedTests
from skinbench.results.records import RunRecord
from skinbench.results.selection import choose
from skinbench.results.tables import MISSING, Table, contributed_by

HEADERS = ["table", "primary metric", "contributed row", "origin", "suite row", "paired images", "test",
           "effect (contributed vs suite)", "p-value", "Holm p"]


def contributed_rows(table: Table) -> list[RunRecord]:
    """The table's ok contributed records with its primary metric, best first."""
    metric = info.task(table.task).primary_metric
    recs = [r for r in table.records.values() if r.ok and contributed_by(r) and r.value(metric) is not None]
    return sorted(recs, key=lambda r: -r.value(metric))


def comparisons(table: Table) -> list[list[str]]:
    """One row per (contributed record, suite row of a family, test), with Holm-adjusted p-values. Each
    family's row is chosen without test data (:func:`skinbench.results.selection.choose`: both top
    candidates where their CIs overlap, every candidate where nothing could be chosen)."""
    metric = info.task(table.task).primary_metric
    records = [r for rs in table.seed_records.values() for r in rs]
    suite = {family: choose(records, table.task, family) for family in ("baseline", "classical", "deep")}
    tests = PairedTests()
    for rec in contributed_rows(table):
        mine = f"{rec.approach} ({rec.value(metric):.3f})"
        for family, choice in suite.items():
            if not choice.contenders:
                tests.untested([table.title, metric, mine, contributed_by(rec), f"no suite {family} result yet",
                                MISSING, "", "", ""])
                continue
            for best in choice.contenders:
                label = "best" if best is choice.record else "runner-up" if choice.record is not None else "candidate"
                other = f"{label} {family}: {best.approach} ({best.value(metric):.3f})"
                tests.test([table.title, metric, mine, contributed_by(rec), other], rec, best, table.kind, metric)
    return tests.rows()


def contributed_section(tables: list[Table]) -> str:
    """Markdown for the dashboard ("" when no table has a contributed row)."""
    rows = [row for table in tables for row in comparisons(table)]
    if not rows:
        return ""
    body = tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True)
    return ("## Significance: contributed approaches vs the suite\n\n"
            "Each plugin's record against the suite's baseline, classical and deep row chosen without test data (the "
            "validation score the fit recorded, else the mean over >= 3 seeds; both top candidates where their CIs "
            "overlap), on the test images both predicted (paired by image id), with the tests of the section "
            "above. Two-sided p-values; `Holm p` adjusts for the tests in the same table.\n\n" + body + "\n")
