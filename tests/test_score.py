"""`skinbench score`: a submission written by the suite scores exactly as the suite scored it; every kind
of bad file gets its one clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinbench import runner
from skinbench.errors import DataError
from skinbench.provenance import RunSpec
from skinbench.results.records import RunRecord
from skinbench.score import score

TINY = {"n_images": 48}


@pytest.fixture(scope="module")
def task1_submission(tmp_path_factory):
    """A runner record of task1 (stratified, synthetic) and the ISIC submission files it wrote."""
    folder = tmp_path_factory.mktemp("sub1")
    spec = RunSpec("task1", "stratified", "synthetic", 0, {}, None, None, 200)
    record = runner.execute(spec, results_root=folder / "results", predictions_dir=folder / "pred",
                            dataset_kwargs=TINY)[0]
    return RunRecord.from_file(record), folder / "pred"


def _score1(path, tmp_path, **kw):
    return RunRecord.from_file(score("task1", path, dataset="synthetic", dataset_kwargs=TINY, n_boot=200,
                                     results_root=tmp_path, **kw)[0])


@pytest.mark.parametrize("name", ["task1_scorer.csv", "task1_isic2016_part3.csv"])
def test_classification_submission_scores_as_the_suite(task1_submission, tmp_path, name):
    internal, pred = task1_submission
    external = _score1(pred / name, tmp_path)
    assert external.family == "external" and external.ok and external.extras["external"] is True
    for metric in ("accuracy", "auc", "ap", "f1"):
        assert external.value(metric) == pytest.approx(internal.value(metric), abs=1e-6)
        assert external.ci(metric) == pytest.approx(internal.ci(metric), abs=1e-6)
    assert "majority" in external.extras["baselines"]
    assert external.approach == f"external-{Path(name).stem}"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sub.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda rows: rows[:1] + rows[2:], "have no prediction"),
    (lambda rows: rows + ["not_a_test_image,0.5,0.5"], "not in the test split"),
    (lambda rows: rows + [rows[1]], "has a second row"),
    (lambda rows: rows[:1] + [rows[1].rsplit(",", 1)[0] + ",nan"] + rows[2:], "NaN"),
    (lambda rows: rows[:1] + [rows[1].rsplit(",", 1)[0] + ",1.5"] + rows[2:], r"outside \[0, 1\]"),
    (lambda rows: rows[:1] + [rows[1].rsplit(",", 1)[0] + ",abc"] + rows[2:], "not a number"),
    (lambda rows: ["image,benign,other"] + rows[1:], "no column for class"),
])
def test_bad_classification_files_get_one_clear_error(task1_submission, tmp_path, mutate, message):
    _, pred = task1_submission
    rows = (pred / "task1_scorer.csv").read_text().splitlines()
    path = _write(tmp_path, "\n".join(mutate(rows)) + "\n")
    with pytest.raises(DataError, match=message) as err:
        _score1(path, tmp_path)
    assert "\n" not in str(err.value) and "sub.csv" in str(err.value)


@pytest.fixture(scope="module")
def task4_submission(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sub4")
    spec = RunSpec("task4", "ellipse", "synthetic", 0, {}, None, None, 200)
    record = runner.execute(spec, results_root=folder / "results", predictions_dir=folder / "pred",
                            dataset_kwargs=TINY)[0]
    return RunRecord.from_file(record), folder / "pred"


def test_mask_folder_scores_as_the_suite(task4_submission, tmp_path):
    internal, pred = task4_submission
    paths = score("task4", pred, dataset="synthetic", dataset_kwargs=TINY, n_boot=200, results_root=tmp_path,
                  name="my-model")
    external = RunRecord.from_file(paths[0])
    assert external.target == "lesion" and external.approach == "my-model" and external.family == "external"
    assert external.predictions["counts"] == internal.predictions["counts"]
    assert external.value("jaccard_mean") == pytest.approx(internal.value("jaccard_mean"))
    assert set(external.extras["baselines"]) == {"all-background", "all-foreground"}


def test_bad_mask_folders_get_one_clear_error(task4_submission, tmp_path):
    _, pred = task4_submission
    folder = tmp_path / "masks"
    shutil.copytree(pred, folder)
    files = sorted(folder.glob("*.png"))
    kw = dict(dataset="synthetic", dataset_kwargs=TINY, n_boot=20, results_root=tmp_path / "r")
    cv2.imwrite(str(files[0]), np.zeros((7, 9), np.uint8))
    with pytest.raises(DataError, match="mask is 9x7 but its truth mask is 128x96 .aspect ratios differ"):
        score("task4", folder, **kw)
    files[0].unlink()
    with pytest.raises(DataError, match="have no predicted lesion mask"):
        score("task4", folder, **kw)
    shutil.copy(files[1], files[0])
    shutil.copy(files[1], folder / "not_in_test_segmentation.png")
    with pytest.raises(DataError, match="not in the test split"):
        score("task4", folder, **kw)


def test_cli_score(task1_submission, tmp_path, capsys):
    from skinbench import cli

    _, pred = task1_submission
    # the CLI scores the default synthetic set (120 images): these 48-image predictions do not fit it
    assert cli.main(["score", "task1", str(pred / "task1_scorer.csv"), "--dataset", "synthetic",
                     "--results", str(tmp_path)]) == 2
    assert "test image(s) have no prediction" in capsys.readouterr().err


def test_cli_score_prints_the_metric_beside_the_baseline(tmp_path, capsys):
    from skinbench import cli

    spec = RunSpec("task1", "stratified", "synthetic", 0, {}, None, None, 50)
    runner.execute(spec, results_root=tmp_path / "internal", predictions_dir=tmp_path / "pred")
    assert cli.main(["score", "task1", str(tmp_path / "pred" / "task1_scorer.csv"), "--dataset", "synthetic",
                     "--results", str(tmp_path / "r"), "--n-boot", "50", "--name", "theirs"]) == 0
    out = capsys.readouterr().out
    assert "theirs: ap " in out and "baseline majority: ap" in out
    assert len(list((tmp_path / "r" / "runs").rglob("theirs.json"))) == 1
