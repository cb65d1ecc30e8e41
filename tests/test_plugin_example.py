"""The example plugin as a user installs it (pip, entry point), run through run, sweep, smoke and table; and the
notebook example. Both run in subprocesses, offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers_plugins import WORKTREE, cli

EXAMPLE = WORKTREE / "examples" / "skinbench-plugin-example"
ORIGIN = "skinbench-plugin-example 0.1.0"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install`` of the example into a target folder (no network, no build isolation)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name  # a copy: the build leaves build/ and egg-info behind
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(source)], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        pytest.skip(f"pip cannot build the example offline here: {done.stderr.strip().splitlines()[-1:]}")
    assert list(target.glob("skinbench_plugin_example-0.1.0.dist-info/entry_points.txt"))
    return target


@pytest.mark.slow
def test_example_plugin_run_sweep_smoke_table(installed, tmp_path):
    res = tmp_path / "res"
    listed = cli("list", "colorhist-logreg", path=[installed])
    assert listed.returncode == 0 and f"plugin: {ORIGIN}" in listed.stdout and "bins" in listed.stdout
    ran = cli("run", "task1", "-a", "colorhist-logreg", "-a", "bovw", "-p", "n_words=20", "-p", "image_size=96",
              "--dataset", "synthetic", "--n-boot", "100", "--results", str(res), path=[installed])
    assert ran.returncode == 0, ran.stderr
    swept = cli("sweep", "task1", "-a", "colorhist-logreg", "-g", "bins=4,16", "--workers", "1", "--dataset",
                "synthetic", "--n-boot", "50", "--results", str(res), path=[installed])
    assert swept.returncode == 0, swept.stderr
    smoke = cli("smoke", "--task", "task1", "-a", "colorhist-logreg", "--workers", "0", path=[installed])
    assert smoke.returncode == 0, smoke.stderr
    table = cli("table", "--results", str(res), path=[installed])
    assert table.returncode == 0, table.stderr

    rows = pd.read_csv(res / "tables/task1__synthetic.csv").set_index("approach")
    assert {"majority", "stratified", "bovw", "colorhist-logreg"} <= set(rows.index)  # beside the suite's rows
    assert rows.loc["colorhist-logreg", "note"] == f"plugin: {ORIGIN}"
    assert rows.loc["colorhist-logreg", "family"] == "classical" and 0 <= rows.loc["colorhist-logreg", "ap"] <= 1
    assert not isinstance(rows.loc["bovw", "note"], str) or "plugin" not in rows.loc["bovw", "note"]
    assert (res / "plots/task1__synthetic__colorhist-logreg__confusion.png").is_file()  # plots follow
    sweep_table = (res / "tables/sweeps/sweep__task1__synthetic.md").read_text()
    assert "bins=4" in sweep_table and "bins=16" in sweep_table
    dashboard = (res / "README.md").read_text()
    own, contributed = dashboard.split("## Significance: contributed approaches vs the suite")
    assert "colorhist-logreg" not in own.split("## Significance: best classical")[1]  # the suite's tests unchanged
    lines = [l for l in contributed.splitlines() if l.startswith("| task1 / synthetic")]
    assert any("best classical: bovw" in l and "McNemar" in l for l in lines)
    assert any("best classical: bovw" in l and "DeLong" in l for l in lines)
    assert any("baseline: " in l for l in lines) and all(ORIGIN in l for l in lines)  # best, or each candidate

    own_tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                               capture_output=True, text=True, timeout=300, cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKTREE), str(installed)])})
    assert own_tests.returncode == 0 and "2 passed" in own_tests.stdout, own_tests.stdout + own_tests.stderr


@pytest.mark.slow
def test_notebook_example_runs_and_plots(tmp_path):
    done = subprocess.run([sys.executable, str(WORKTREE / "examples/notebook_example.py"), "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(WORKTREE), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "notebook_primary_metric.png").stat().st_size > 1000
    assert "color-histogram-classifier" in done.stdout and "(ad hoc)" in done.stdout
    assert "bovw" in done.stdout and "majority" in done.stdout
