"""The command line end to end on synthetic data: records, tables, clear one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skinbench import info
from skinbench.cli import main
from skinbench.results.paired import compare
from skinbench.results.records import RunRecord


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


# ------------------------------------------------------------------ issue 13: bad input met at the CLI

import os  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from helpers_generic import edit_labels, first, generic_copy, line_of  # noqa: E402

from skinbench.paths import cache_dir  # noqa: E402


def _one_error_line(err: str) -> str:
    """The CLI's single error line (nothing else before it: no run started, no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("skinbench: error:") or ": error: " in lines[0], err
    return lines[0]


def _generic_run(capsys, folder: Path, tmp_path: Path, task: str = "task1", approach: str = "majority",
                 *extra: str) -> tuple[int, str]:
    rc = main(["run", task, "-a", approach, "--dataset", "generic", "--data-root", str(folder),
               "--results", str(tmp_path / "results"), "--n-boot", "20", *extra])
    return rc, capsys.readouterr().err


def test_cli_label_typo_on_a_test_row(tmp_path, synthetic_dataset, capsys):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    table = edit_labels(folder, lambda t: None)
    victim = first(table, "test", "malignant")
    edit_labels(folder, lambda t: t.assign(label=t["label"].where(t["image_id"] != victim, "malignamt")))
    rc, err = _generic_run(capsys, folder, tmp_path)
    line = _one_error_line(err)
    assert rc == 2 and f"labels.csv: line {line_of(table, victim)}: label 'malignamt'" in line
    assert "valid labels: benign, malignant" in line
    assert not (tmp_path / "results").exists()


def test_cli_ambiguous_positive_class_then_declared(tmp_path, synthetic_dataset, capsys):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    edit_labels(folder, lambda t: t.assign(label=t["label"].map({"benign": "other", "malignant": "melanoma"})))
    rc, err = _generic_run(capsys, folder, tmp_path)
    assert rc == 2 and "do not say which class is positive" in _one_error_line(err) and "--positive" in err
    rc, err = _generic_run(capsys, folder, tmp_path, "task1", "majority", "--positive", "melanoma")
    assert rc == 0, err
    record = json.loads(next((tmp_path / "results" / "runs").rglob("majority.json")).read_text())
    assert record["extras"]["class_names"] == ["other", "melanoma"]  # class 1 = the declared positive one


def test_cli_mask_of_another_size_names_the_mask(tmp_path, synthetic_dataset, capsys):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    victim = folder / "masks" / f"{first(edit_labels(folder, lambda t: None), 'test')}_lesion.png"
    cv2.imwrite(str(victim), np.zeros((100, 100), np.uint8))
    rc, err = _generic_run(capsys, folder, tmp_path, "task4", "all-background")
    line = _one_error_line(err)
    assert rc == 2 and f"{victim.name}: mask is 100x100 but its image" in line and "aspect" in line


def test_cli_missing_mask_is_an_error_before_any_work(tmp_path, synthetic_dataset, capsys):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    gone = first(edit_labels(folder, lambda t: None), "test")
    (folder / "masks" / f"{gone}_lesion.png").unlink()
    rc, err = _generic_run(capsys, folder, tmp_path, "task4", "all-background")
    assert rc == 2 and f"have no lesion mask file (first: {gone})" in _one_error_line(err)


def test_cli_unreadable_test_image_found_before_fitting(tmp_path, synthetic_dataset, capsys):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    zero = folder / "images" / f"{first(edit_labels(folder, lambda t: None), 'test')}.png"
    zero.write_bytes(b"")
    rc, err = _generic_run(capsys, folder, tmp_path, "task1", "bovw", "-p", "n_words=10")
    line = _one_error_line(err)  # the "== task1 / bovw" line of a started run would be a second line
    assert rc == 2 and f"{zero.name}: image file is empty (0 bytes)" in line


def test_cli_one_class_training_set_names_label_and_file(tmp_path, synthetic_dataset, capsys):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    edit_labels(folder, lambda t: t.assign(label=t["label"].where(t["split"] == "test", "benign")))
    rc, err = _generic_run(capsys, folder, tmp_path, "task1", "bovw")
    line = _one_error_line(err)
    assert rc == 2 and "labels.csv: the training split holds one class only: 'benign'" in line
    assert "got [0]" not in line


@pytest.mark.realdata
def test_cli_ham10000_missing_mask(tmp_path, shared_data, capsys):
    """The real HAM10000 (linked, not copied) with one mask file gone: task4 stops before any work and
    `data verify` reports the mask."""
    src = shared_data / "ham10000"
    folder = tmp_path / "ham10000"
    (folder / "masks").mkdir(parents=True)
    for name in ("HAM10000_metadata.csv", "images"):
        (folder / name).symlink_to(src / name)
    gone = "ISIC_0024306"
    for entry in os.scandir(src / "masks"):
        if entry.name != f"{gone}_segmentation.png":
            (folder / "masks" / entry.name).symlink_to(entry.path)
    rc = main(["run", "task4", "-a", "all-background", "--data-root", str(tmp_path), "--results",
               str(tmp_path / "results")])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2 and f"1 image(s) have no lesion mask file (first: {gone})" in line
    assert "data verify ham10000" in line
    assert main(["data", "verify", "ham10000", "--data-root", str(tmp_path)]) == 1
    assert f"missing lesion masks: 1 ({gone})" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["run", "task1", "-a", "bovw", "-p", "n_words=abc"], "-p n_words=abc: parameter n_words of approach 'bovw' "
                                                           "takes an integer, not 'abc' Fix: e.g. -p n_words=300"),
    (["run", "task4", "-a", "unet", "-p", "epochs=abc"], "parameter epochs of approach 'unet' takes an integer"),
    (["run", "task3", "-a", "classical-dots", "-p", "n_tune=abc"], "parameter n_tune of approach 'classical-dots' "
                                                                    "takes an integer, not 'abc' Fix: e.g. -p n_tune=400"),
    (["run", "task1", "-a", "bovw", "-p", "vocab_size=500"], "has no parameter 'vocab_size' Fix: did you mean n_words?"),
    (["run", "task1", "-a", "majority", "-p", "novalue"], "Fix: write e.g. -p strategy=prior"),
    # a value outside the set the estimator declares (its _allowed, read from source)
    (["run", "task4", "-a", "unet", "-p", "tta=sideways"], "-p tta=sideways: parameter tta of approach 'unet' "
                                                            "takes one of none, flips, auto, not 'sideways' Fix: e.g. -p tta=none"),
    (["run", "task4", "-a", "unet", "-p", "loss=dicee"], "takes one of dice, jaccard, bce, wbce, focal, tversky, "
                                                          "focal_tversky, bce_dice, not 'dicee' Fix: did you mean dice?"),
    (["run", "task4", "-a", "mobilenet-unet", "-p", "select_by=val_auc"], "takes one of val_loss, val_jaccard"),
    (["run", "task1", "-a", "bovw", "-p", "detector=orb"], "parameter detector of approach 'bovw' takes one of sift, dense"),
    (["run", "task1", "-a", "transfer-mobilenetv2-ft-top", "-p", "tta=flip"], "Fix: did you mean flips?"),
    (["run", "task1", "-a", "majority", "-p", "strategy=constant"], "takes one of most_frequent, prior, stratified"),
    # one estimator per transfer algorithm: a parameter of another algorithm is no parameter of this one
    (["run", "task1", "-a", "transfer-mobilenetv2", "-p", "cut=block_13"],
     "approach 'transfer-mobilenetv2' has no parameter 'cut'"),
    (["run", "task1", "-a", "transfer-mobilenetv2-ft-top", "-p", "head_solver=logreg"],
     "approach 'transfer-mobilenetv2-ft-top' has no parameter 'head_solver'"),
    (["run", "task1", "-a", "transfer-mobilenetv2-finetune", "-p", "mode=partial"], "has no parameter 'mode'"),
])
def test_cli_param_errors_before_any_work(argv, needle, capsys):
    before = sorted(p.name for p in cache_dir().glob("*")) if cache_dir().is_dir() else []
    assert main([*argv, "--dataset", "synthetic"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert needle in line
    after = sorted(p.name for p in cache_dir().glob("*")) if cache_dir().is_dir() else []
    assert after == before, "a rejected parameter must not leave cache folders"


@pytest.mark.parametrize("value, needle", [("-5", "must be at least 1"), ("0", "must be at least 1"),
                                           ("ten", "expected a whole number")])
def test_cli_limit_is_checked_by_argparse_in_one_line(value, needle):
    proc = _run_cli("run", "task1", "-a", "majority", "--limit", value)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "argument --limit" in line and needle in line


def test_cli_list_approach_shows_parameters_defaults_and_task_values(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")  # pytest-xdist workers set 80, where `list` wraps the type column
    assert main(["list", "mobilenet-unet"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("finetune_epochs"))
    registered = info.approach("mobilenet-unet").task_params
    per_task = [str(registered[t]["finetune_epochs"]) for t in ("task3", "task4")]
    assert row.split()[1:] == ["an", "integer", "0", *per_task, "0"]  # type, default, task3, task4, smoke
    assert per_task[0] != per_task[1]  # the two columns are told apart
    assert "task3 value" in out and "task4 value" in out
    # a parameter with declared values lists them (the estimator's _allowed, read from source)
    row = next(line for line in out.splitlines() if line.startswith("tta"))
    assert "one of none, flips, auto" in row


def test_cli_run_prints_a_compact_table_and_writes_to_the_user_folder(tmp_path, monkeypatch, capsys):
    from skinbench.paths import REPO_ROOT

    monkeypatch.delenv("SKINBENCH_RESULTS")
    monkeypatch.chdir(tmp_path)
    committed = REPO_ROOT / "results" / "tables"
    before = {p: p.stat().st_mtime_ns for p in committed.glob("*")} if committed.is_dir() else {}
    assert main(["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "skinbench-results" / "runs" / "task1").is_dir()
    assert ({p: p.stat().st_mtime_ns for p in committed.glob("*")} if committed.is_dir() else {}) == before
    assert "<!--" not in out and "ap*" in out and "majority" in out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert main(["table", "task1", "--ci"]) == 0
    out = capsys.readouterr().out
    assert "[" in out and "<!--" not in out


def test_cli_record_command_is_the_command_as_typed(tmp_path):
    assert main(["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20",
                 "--results", str(tmp_path)]) == 0
    record = json.loads(next(tmp_path.rglob("majority.json")).read_text())
    assert record["command"].startswith("python -m skinbench run task1 -a majority --dataset synthetic")


def test_smoke_and_demo_remove_their_temporary_folders(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["smoke", "--task", "task1", "-a", "majority"]) == 0
    assert not list(tmp_path.glob("skinbench-smoke-*"))
    assert main(["demo", "--task", "task1", "--n-images", "40"]) == 0
    assert not list(tmp_path.glob("skinbench-demo-*"))


@pytest.mark.slow
def test_demo_bovw_beats_the_baselines(tmp_path):
    """The demo's task1 comparison is sensible: BoVW is not a constant predictor and beats both baselines."""
    assert main(["demo", "--task", "task1", "--results", str(tmp_path)]) == 0
    runs = tmp_path / "runs" / "task1"
    value = {name: {m: json.loads(next(runs.rglob(f"{name}.json")).read_text())["metrics"][m]["value"]
                    for m in ("accuracy", "balanced_accuracy", "auc")} for name in ("majority", "stratified", "bovw")}
    assert value["bovw"]["balanced_accuracy"] > max(value["majority"]["balanced_accuracy"],
                                                    value["stratified"]["balanced_accuracy"]) + 0.15
    assert value["bovw"]["accuracy"] > value["majority"]["accuracy"]
    assert value["bovw"]["auc"] > 0.75


def test_cli_run_adds_the_baselines_beside_a_row_in_a_fresh_folder(tmp_path, capsys):
    """A newcomer's first run shows the trivial baselines, not "not run" rows; a second run reuses them."""
    args = ["run", "task4", "-a", "classical-seg", "--dataset", "synthetic", "--n-boot", "20", "--limit", "24",
            "--results", str(tmp_path)]
    assert main(args) == 0
    folder = tmp_path / "runs" / "task4" / "synthetic"
    assert {p.name for p in folder.iterdir()} == {"classical-seg__lesion.json", "all-background__lesion.json",
                                                  "all-foreground__lesion.json", "ellipse__lesion.json"}
    table = (tmp_path / "tables" / "task4__synthetic__lesion.md").read_text()
    assert "not run" not in table.split("| ellipse")[1].split("\n")[0]
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    capsys.readouterr()
    assert main(args) == 0
    assert "(baseline, beside every row)" not in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != "classical-seg__lesion.json"} == \
        {p: t for p, t in before.items() if p.name != "classical-seg__lesion.json"}


def test_cli_refuses_a_declared_value_before_loading_any_data(tmp_path, capsys):
    """`run -p tta=sideways` is refused from the declaration alone: the data root does not even exist,
    so an error about data would mean data was looked at first."""
    rc = main(["run", "task4", "-a", "unet", "-p", "tta=sideways", "--data-root", str(tmp_path / "nowhere"),
               "--results", str(tmp_path / "r")])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "tta=sideways" in line and "one of none, flips, auto" in line
    assert not (tmp_path / "r").exists()


def test_task3_predicting_nothing_wins_no_column(tmp_path):
    """Issue 31: most images lack an attribute, and an empty prediction is "perfect" on them. Per-image
    columns are means over the images whose truth holds the target, the others get false-alarm columns,
    precision is undefined when nothing is predicted, and the table header says so; the significance test
    of per-image Jaccard uses only the images with the target."""
    assert main(["run", "task3", "-a", "all-background", "-a", "classical-dots", "--dataset", "synthetic",
                 "--results", str(tmp_path), "--n-boot", "20"]) == 0
    for target in ("globules", "streaks"):
        runs = tmp_path / "runs/task3/synthetic"
        empty = RunRecord.from_file(runs / f"all-background__{target}.json")
        dots = RunRecord.from_file(runs / f"classical-dots__{target}.json")
        counts = empty.counts()
        held = counts[:, 0] + counts[:, 2] > 0
        assert 0 < held.sum() < len(held)  # the synthetic test set has images without the attribute
        assert empty.extras["images_with_target"] == int(held.sum())
        for m in ("jaccard_mean", "dice_mean", "thresholded_jaccard", "sensitivity_mean"):
            assert empty.value(m) == 0.0, m  # no image without the target counts (old rule: > 0.5 here)
        assert dots.value("jaccard_mean") > empty.value("jaccard_mean")
        assert empty.value("precision_set") is None  # nothing predicted: undefined, not the best 1.0
        assert empty.value("hd95_mean") > dots.value("hd95_mean")  # the image diagonal on every image it misses
        assert empty.value("false_alarm_images") == 0.0 and empty.value("false_alarm_area") == 0.0
        fp = counts[~held][:, 1]
        assert dots.value("false_alarm_images") == pytest.approx(
            float(np.mean(dots.counts()[~held][:, 1] > 0)), abs=1e-6) and fp.sum() == 0
        rows = compare(dots, empty, "segmentation", "jaccard_set")
        assert [r["n"] for r in rows] == [len(held), int(held.sum())]
        table = (tmp_path / f"tables/task3__synthetic__{target}.md").read_text()
        assert f"means over the test images whose truth holds the target ({held.sum()} of {len(held)}" in table
        assert "| false_alarm_images" in table and "precision_set is n/a" in table
