"""The command line end to end on synthetic data: records, tables, clear one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skinbench.cli import main


def _run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skinbench", *args], capture_output=True, text=True, timeout=300)


def test_list_names_every_task_and_approach(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("task1", "task4", "bovw", "ynet", "synthetic", "ham10000"):
        assert name in out


@pytest.mark.parametrize("argv, needle", [
    (["run", "task9", "--approach", "majority"], "unknown task 'task9'"),
    (["run", "task1", "--approach", "nope"], "unknown approach 'nope'"),
    (["run", "task1", "--approach", "ellipse"], "does not do task1"),
    (["run", "task1", "--approach", "majority", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["run", "task1", "--approach", "majority", "-p", "novalue"], "is not KEY=VALUE"),
])
def test_user_errors_are_one_line_exit_2(argv, needle):
    proc = _run_cli(*argv)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_data_root_names_expected_files(tmp_path):
    proc = _run_cli("run", "task1", "--approach", "majority", "--data-root", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "ISBI2016_ISIC_Part3_Training_GroundTruth.csv" in proc.stderr


def test_unknown_hyper_parameter_is_rejected(tmp_path):
    rc = main(["run", "task1", "--approach", "majority", "--dataset", "synthetic", "-p", "bogus=1",
               "--results", str(tmp_path)])
    assert rc == 2
    assert not list(tmp_path.rglob("*.json")), "a failed run must not leave a record"


def test_run_writes_record_and_table(tmp_path, capsys):
    rc = main(["run", "task1", "--approach", "majority", "--approach", "stratified", "--dataset", "synthetic",
               "--results", str(tmp_path), "--n-boot", "50"])
    assert rc == 0
    record = json.loads((tmp_path / "runs/task1/synthetic/majority.json").read_text())
    assert record["status"] == "ok" and record["task"] == "task1"
    y_true = record["predictions"]["y_true"]
    majority = max(set(y_true), key=y_true.count)  # the test majority may differ from the train majority
    acc = record["metrics"]["accuracy"]["value"]
    assert acc in {y_true.count(c) / len(y_true) for c in set(y_true)}
    assert record["metrics"]["recall"]["value"] in (0.0, 1.0)  # constant prediction
    assert record["split"]["n_test"] == len(y_true) and majority in (0, 1)
    out = capsys.readouterr().out
    assert "majority" in out and "stratified" in out


def test_segmentation_run_scores_every_target(tmp_path):
    rc = main(["run", "task3", "--approach", "all-background", "--dataset", "synthetic",
               "--results", str(tmp_path), "--n-boot", "20"])
    assert rc == 0
    for target in ("globules", "streaks"):
        record = json.loads((tmp_path / f"runs/task3/synthetic/all-background__{target}.json").read_text())
        # nothing predicted: pooled foreground Jaccard is 0 and recall is 0
        assert record["metrics"]["jaccard_set"]["value"] == 0.0
        assert record["metrics"]["recall_set"]["value"] == 0.0


def test_ellipse_beats_empty_on_lesions(tmp_path):
    assert main(["run", "task4", "-a", "ellipse", "-a", "all-background", "--dataset", "synthetic",
                 "--results", str(tmp_path), "--n-boot", "20"]) == 0
    runs = tmp_path / "runs/task4/synthetic"
    ellipse = json.loads((runs / "ellipse__lesion.json").read_text())["metrics"]["jaccard_mean"]["value"]
    empty = json.loads((runs / "all-background__lesion.json").read_text())["metrics"]["jaccard_mean"]["value"]
    assert ellipse > empty + 0.1


def test_predict_writes_isic_masks(tmp_path):
    out = tmp_path / "preds"
    assert main(["predict", "task4", "-a", "ellipse", "--dataset", "synthetic", "--out", str(out)]) == 0
    pngs = sorted(out.glob("*_segmentation.png"))
    assert pngs, "no ISIC-layout mask written"


def test_table_without_records_is_a_clear_error(tmp_path):
    proc = _run_cli("table", "--results", str(tmp_path))
    assert proc.returncode == 2 and "no records" in proc.stderr
