"""Result records (JSON), comparison tables, plots, ISIC submission files and the dashboard.

Import the sub-modules directly (``from skinbench.results.records import write_record``); this package
imports nothing heavy so that ``records`` stays cheap for the runner. ``render.render_all`` is the one
entry point that renders tables, plots and the dashboard from the records.
"""
