"""Notebook-style example: your own approach beside the suite's rows, from Python, then a plot.

Each ``# %%`` cell runs as it is in Jupyter (VS Code and jupytext read the markers); as a script::

    PYTHONPATH=examples/skinbench-plugin-example/src python examples/notebook_example.py --results out

It runs the example plugin's estimator (colour histograms + logistic regression, family classical) with
the trivial baselines and the classical BoVW row on the synthetic data (no download), on the same split,
metrics and bootstrap CIs, then loads every record as one tidy DataFrame (``skinbench.load_results``)
and plots the primary metric with its 95% CI. ``pip install -e examples/skinbench-plugin-example``
instead registers it by entry point as ``colorhist-logreg``; the class is then found under that name.
"""

# %%
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a file, not a window (in Jupyter drop this line to see the figure inline)
import matplotlib.pyplot as plt  # noqa: E402

import skinbench  # noqa: E402

try:
    from skinbench_plugin_example.colorhist import ColorHistogramClassifier
except ImportError:  # run from a checkout without installing the example: its source folder
    sys.path.insert(0, str(Path(__file__).resolve().parent / "skinbench-plugin-example" / "src"))
    from skinbench_plugin_example.colorhist import ColorHistogramClassifier

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--results", help="results folder (default: a temporary one)")
args, _ = parser.parse_known_args()  # parse_known_args: Jupyter passes its own arguments
results = Path(args.results or tempfile.mkdtemp(prefix="skinbench-notebook-"))
TASK = "task1"

# %% the suite's rows and yours, same data and split (n_boot kept small: seconds, not minutes)
common = {"dataset": "synthetic", "results": results, "n_boot": 200}
for name in ("majority", "stratified"):
    skinbench.run(TASK, name, **common)
skinbench.run(TASK, "bovw", params={"n_words": 50, "C_grid": [1.0, 10.0, 100.0], "image_size": 96}, **common)
mine = skinbench.run(TASK, ColorHistogramClassifier(bins=8), family="classical", **common)
print(repr(mine))  # in Jupyter, `mine` alone shows a table of its metrics with CIs

# %% one tidy table: one row per record x metric
df = skinbench.load_results(results)
primary = df[df.primary & (df.task == TASK)].sort_values("value")
print(primary[["approach", "family", "origin", "metric", "value", "ci_low", "ci_high", "fit_s"]].to_string(index=False))

# %% the primary metric with its 95% bootstrap CI, contributed rows marked
fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(primary)))
colours = ["tab:orange" if o != "skinbench" else "tab:blue" for o in primary.origin]
ax.barh(primary.approach, primary.value, color=colours,
        xerr=[primary.value - primary.ci_low, primary.ci_high - primary.value], capsize=3)
ax.set_xlabel(f"{primary.metric.iloc[0]} (95% bootstrap CI); orange: contributed")
ax.set_title(f"{TASK} on synthetic data")
fig.tight_layout()
figure = results / "notebook_primary_metric.png"
fig.savefig(figure, dpi=100)
print(f"figure: {figure}")
