"""The one rendering entry point: records -> tables (markdown, CSV), plots and the dashboard.

The CLI (`table`, `run`, `demo`, `smoke`) and benchmarks/regenerate.py all call :func:`render_all`, so
every file under ``results/`` other than the records is made once, by one path, from the records alone.
That includes what is scored at render time from the records' stored predictions (each classification
table's calibration / operating-point table and reliability diagram, a segmentation table's boundary
distances): see :mod:`skinbench.results.tables`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from skinbench.paths import results_dir
from skinbench.results.costs import render_cost_plots
from skinbench.results.dashboard import render_dashboard
from skinbench.results.plots import render_plots
from skinbench.results.records import load_records
from skinbench.results.tables import (SweepTable, Table, build_sweep_tables, build_tables, load_sweep_records,
                                     write_sweep_tables, write_tables)


@dataclass
class Rendered:
    """What :func:`render_all` made: the files written (iterating gives them) and the tables they were
    written from, so a caller prints a table (``Table.to_terminal``) without reading the files back."""

    root: Path
    paths: list[Path] = field(default_factory=list)
    #: the rendered tables (a task's only, when one was asked), in the order their files were written
    tables: list[Table] = field(default_factory=list)
    sweep_tables: list[SweepTable] = field(default_factory=list)

    def __iter__(self) -> Iterator[Path]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def render_all(root: str | os.PathLike | None = None, task: str | None = None, plots: bool = True,
               dashboard: bool | None = None, sweeps: bool = False) -> Rendered:
    """Render everything under ``root`` from ``<root>/runs``; returns the files written and their tables.

    ``task``: only that task's tables and plots. ``dashboard`` (default: when all tasks are rendered)
    also writes ``<root>/README.md``. ``sweeps``: also the sweep tables of the grid points under
    ``<root>/sweeps/`` (``<root>/tables/sweeps/``; the CLI's ``sweep`` and ``table`` ask for them; the
    committed results' sweeps have their own summaries from ``benchmarks/``).
    """
    root = Path(root) if root is not None else results_dir()
    records = load_records(root)
    with_dashboard = dashboard if dashboard is not None else task is None
    # one build: the dashboard's tables are the same objects, so nothing is re-scored for it
    all_tables = build_tables(records, None if with_dashboard else task)
    tables = all_tables if task is None else [t for t in all_tables if t.task == task]
    plot_files: dict[str, list[Path]] = {}
    if plots:
        plot_files = render_plots(tables, root)
        if with_dashboard:  # the equal-cost view: plots the dashboard links (no table file links them)
            plot_files.update(render_cost_plots(tables, root))
    written = write_tables(tables, root, plot_files)
    if with_dashboard:
        written.append(render_dashboard(root, records, all_tables, plot_files))
    sweep_tables = build_sweep_tables(load_sweep_records(root, task)) if sweeps else []
    written += write_sweep_tables(sweep_tables, root)
    return Rendered(root, written, tables, sweep_tables)
