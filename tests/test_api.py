"""The Python API (skinbench.run / score / load_results / RunRecord in a notebook), issue 34."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import skinbench
from helpers_plugins import TINY_CLASSIFIER, WORKTREE, restore_registry
from skinbench.errors import ConfigError, SkinbenchError

SYN = {"dataset": "synthetic", "n_boot": 30}


@pytest.fixture(autouse=True)
def _suite_registry_after():
    yield from restore_registry()


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    """The test classifier as an importable module (a notebook's class would live in __main__ or a file)."""
    (tmp_path / "apimod.py").write_text(textwrap.dedent(TINY_CLASSIFIER))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("apimod")
    yield module.MeanColourClassifier
    sys.modules.pop("apimod", None)


def test_import_skinbench_stays_cheap():
    code = ("import sys, skinbench; assert callable(skinbench.run) and callable(skinbench.load_results); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=WORKTREE,
                         env={"PYTHONPATH": str(WORKTREE), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_run_a_name_a_class_and_an_instance(tmp_path, tiny):
    res = tmp_path / "res"
    by_name = skinbench.run("task1", "majority", results=res, **SYN)
    assert isinstance(by_name, skinbench.RunRecord) and by_name.approach == "majority"
    with pytest.raises(ConfigError, match="family"):
        skinbench.run("task1", tiny, results=res, **SYN)
    by_class = skinbench.run("task1", tiny, family="classical", results=res, **SYN)
    assert by_class.approach == "mean-colour-classifier" and by_class.origin.endswith("(ad hoc)")
    assert by_class.key_inputs["versions"]["estimator"] == 3
    inst = skinbench.run("task1", tiny(C=0.05, size=8), family="classical", seed=1, results=res, **SYN)
    assert inst.params["C"] == 0.05 and inst.params["size"] == 8 and inst.seed == 1
    assert inst.params["random_state"] == 1  # the runner's seed, not the instance's
    assert (res / "runs/task1/synthetic/mean-colour-classifier__seed1.json").is_file()
    with pytest.raises(ConfigError, match="has no parameter 'nope'"):
        skinbench.run("task1", tiny, family="classical", params={"nope": 1}, results=res, **SYN)
    with pytest.raises(ConfigError, match="neither a registered name"):
        skinbench.run("task1", object(), results=res, **SYN)
    segs = skinbench.run("task3", "all-background", results=res, **SYN)
    assert [r.target for r in segs] == ["globules", "streaks"]


def test_record_shows_a_compact_summary(tmp_path):
    rec = skinbench.run("task1", "stratified", results=tmp_path, **SYN)
    text = repr(rec)
    assert text.startswith("<RunRecord task1 / synthetic / stratified (seed 0): ap ") and len(text) < 150
    html = rec._repr_html_()
    assert "<table>" in html and "balanced_accuracy" in html and "fit_s" in html
    assert html.index(">ap<") < html.index(">accuracy<")  # the primary metric first


def test_load_results_is_tidy(tmp_path, tiny):
    res = tmp_path / "res"
    skinbench.run("task1", "majority", results=res, **SYN)
    skinbench.run("task1", tiny, family="classical", results=res, **SYN)
    skinbench.run("task4", "all-background", results=res, **SYN)
    df = skinbench.load_results(res)
    for column in ("value", "ci_low", "ci_high", "seed", "family", "origin", "task", "dataset", "test_set",
                   "approach", "target", "metric", "fit_s", "predict_s", "peak_rss_mb", "run_key", "git_commit",
                   "created", "primary"):
        assert column in df.columns, column
    ap = df[(df.task == "task1") & (df.metric == "ap")].set_index("approach")
    assert set(ap.index) == {"majority", "mean-colour-classifier"}
    assert ap.loc["majority", "origin"] == "skinbench"
    assert ap.loc["mean-colour-classifier", "origin"].endswith("(ad hoc)")
    assert bool(ap.loc["majority", "primary"]) and ap.loc["majority", "ci_low"] <= ap.loc["majority", "value"]
    seg = df[(df.task == "task4") & (df.metric == "jaccard_mean")]
    assert list(seg.target) == ["lesion"] and list(seg.test_set) == ["synthetic"]
    rec = skinbench.RunRecord.from_file(res / "runs/task1/synthetic/majority.json")
    assert len(df[(df.task == "task1") & (df.approach == "majority")]) == len(rec.metrics)
    row = df[(df.task == "task1") & (df.approach == "majority")].iloc[0]  # the costs a user plots
    assert row.fit_cpu_s == rec.timings["cpu"]["fit_s"] and row.predict_cpu_s == rec.timings["cpu"]["predict_s"]
    assert row.predict_ms_per_image == rec.timings["predict_ms_per_image"] > 0
    with pytest.raises(ConfigError, match="no results folder"):
        skinbench.load_results(tmp_path / "nowhere")


def test_score_a_dataframe_as_a_file_would_be(tmp_path):
    from skinbench.data import synthetic

    test = synthetic.load().split("test")
    frame = pd.DataFrame({"image_id": test.ids, "malignant": np.where(test.y == 1, 0.9, 0.2)})
    rec = skinbench.score("task1", frame, name="mine", dataset="synthetic", results=tmp_path, n_boot=30)
    assert rec.family == "external" and rec.value("auc") == 1.0
    bad = frame.assign(malignant=frame.malignant.where(frame.index > 0, np.nan))
    with pytest.raises(SkinbenchError, match="NaN"):
        skinbench.score("task1", bad, name="bad", dataset="synthetic", results=tmp_path, n_boot=30)
