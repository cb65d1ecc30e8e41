"""Result records (JSON), comparison tables, plots, ISIC submission files and the dashboard.

Import the sub-modules directly (``from skinbench.results.records import write_record``); this package
imports nothing heavy so that ``records`` stays cheap for the runner.
"""

from __future__ import annotations

import os
from pathlib import Path


def render_all(root: str | os.PathLike | None = None, task: str | None = None) -> list[Path]:
    """Tables, plots and (for all tasks) the ``README.md`` dashboard from the records under ``root``."""
    from skinbench.results.dashboard import render_dashboard
    from skinbench.results.tables import render_tables

    written = render_tables(root, task=task)
    if task is None:
        written.append(render_dashboard(root, tables_rendered=True))
    return written
