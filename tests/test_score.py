"""`skinbench score`: a submission written by the suite scores exactly as the suite scored it; every kind
of bad file gets its one clear error."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_plugins import cli

from skinbench import runner
from skinbench.errors import DataError
from skinbench.provenance import RunSpec
from skinbench.results.records import RunRecord, dumps
from skinbench.score import score

TINY = {"n_images": 48}
#: what a task1 run on the synthetic set names its submission files (issue #30: after the dataset used)
STEM = "task1__synthetic__stratified"


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


@pytest.mark.parametrize("name", [f"{STEM}_scorer.csv", f"{STEM}_isic2016_part3.csv"])
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
    (lambda rows: ["image,benign,other"] + [r + ",0.5" for r in rows[1:]], "other .*name no class"),
    (lambda rows: ["image,score"] + [r.rsplit(",", 1)[0] for r in rows[1:]], "score .*name no class"),
    (lambda rows: ["image,malignant,malignant"] + rows[1:], "appears twice"),
    (lambda rows: rows[:1] + [rows[1] + ",0.5"] + rows[2:], "4 values for 3 columns"),
    (lambda rows: [r.replace(",", ";") for r in rows], "separated by semicolons"),
    (lambda rows: ["filename,benign,malignant"] + rows[1:], "neither a header"),
    (lambda rows: rows[:1] + [" " + rows[1]] + [rows[1]] + rows[2:], "has a second row"),  # equal once stripped
])
def test_bad_classification_files_get_one_clear_error(task1_submission, tmp_path, mutate, message):
    _, pred = task1_submission
    rows = (pred / f"{STEM}_scorer.csv").read_text().splitlines()
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
    assert cli.main(["score", "task1", str(pred / f"{STEM}_scorer.csv"), "--dataset", "synthetic",
                     "--results", str(tmp_path)]) == 2
    assert "test image(s) have no prediction" in capsys.readouterr().err


def test_cli_score_prints_the_metric_beside_the_baseline(tmp_path, capsys):
    from skinbench import cli

    spec = RunSpec("task1", "stratified", "synthetic", 0, {}, None, None, 50)
    runner.execute(spec, results_root=tmp_path / "internal", predictions_dir=tmp_path / "pred")
    assert cli.main(["score", "task1", str(tmp_path / "pred" / f"{STEM}_scorer.csv"), "--dataset", "synthetic",
                     "--results", str(tmp_path / "r"), "--n-boot", "50", "--name", "theirs"]) == 0
    out = capsys.readouterr().out
    assert "theirs: ap " in out and "baseline majority: ap" in out
    assert len(list((tmp_path / "r" / "runs").rglob("theirs.json"))) == 1


# ---------------------------------------------------------------------- issue #30: columns by meaning, one CSV reader

@pytest.fixture(scope="module")
def generic_task1(tmp_path_factory):
    """A generic-layout copy of a 48-image synthetic set, its test split, and informative malignant scores."""
    from skinbench.data import generic, synthetic

    from helpers_generic import generic_copy

    src = tmp_path_factory.mktemp("syn")
    synthetic.generate(src, n_images=48, seed=0)
    folder = generic_copy(src, tmp_path_factory.mktemp("g") / "data")
    test = generic.load(folder).split("test")
    rng = np.random.default_rng(0)
    p = np.clip(0.55 * test.y + 0.2 + rng.normal(0, 0.2, len(test)), 0, 1).round(6)
    return folder, [str(i) for i in test.ids], p


def _score_cli(folder: Path, csv_path: Path, results: Path, capsys, name: str = "theirs") -> tuple[int, str, RunRecord | None]:
    """`python -m skinbench score task1 CSV --dataset generic --data-root FOLDER` as a user types it."""
    from skinbench import cli

    rc = cli.main(["score", "task1", str(csv_path), "--dataset", "generic", "--data-root", str(folder),
                   "--results", str(results), "--n-boot", "20", "--name", name])
    err = capsys.readouterr().err
    found = list(results.rglob(f"{name}.json"))
    return rc, err, RunRecord.from_file(found[0]) if rc == 0 and found else None


def _lines(header: str | None, ids, columns) -> str:
    rows = [",".join([i, *(f"{c[k]:.6f}" for c in columns)]) for k, i in enumerate(ids)]
    return "\n".join(([header] if header else []) + rows) + "\n"


def _forms(p: np.ndarray) -> dict[str, tuple[str | None, list]]:
    """Header and columns of each accepted way to hand in the same malignant probabilities ``p``."""
    zero = np.zeros_like(p)
    return {"malignant": ("image,malignant", [p]),
            "benign": ("image,benign", [1 - p]),  # issue #30: scored AP 0.116 (read as malignant) for 0.700
            "both": ("image_id,Benign,Malignant", [1 - p, p]),
            "probability": ("image,probability", [p]),
            "isic2016-headerless": (None, [p]),
            "isic2017": ("image_id,melanoma,seborrheic_keratosis", [p, (1 - p) / 2]),
            "isic2018": ("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC", [p, 1 - p, zero, zero, zero, zero, zero])}


NOTES = {"benign": "1 - benign", "isic2017": "'melanoma' (ISIC diagnosis mel) read as the malignant",
         "isic2018": "'MEL' (ISIC diagnosis mel) read as the malignant"}


@pytest.mark.parametrize("form", list(_forms(np.zeros(1))))
def test_cli_score_reads_columns_by_meaning(generic_task1, tmp_path, capsys, form):
    folder, ids, p = generic_task1
    header, columns = _forms(p)[form]
    ref = tmp_path / "ref.csv"
    ref.write_text(_lines("image,malignant", ids, [p]))
    rc, _, reference = _score_cli(folder, ref, tmp_path / "r0", capsys, "reference")
    assert rc == 0 and reference.value("ap") > reference.extras["baselines"]["majority"]["ap"] + 0.2
    sub = tmp_path / "sub.csv"
    sub.write_text(_lines(header, ids, columns))
    rc, err, record = _score_cli(folder, sub, tmp_path / "r", capsys)
    assert rc == 0, err
    for metric in ("ap", "auc", "accuracy", "balanced_accuracy"):
        assert record.value(metric) == pytest.approx(reference.value(metric), abs=1e-6), metric
    said = [line for line in err.splitlines() if "read as" in line or "1 - " in line]
    if form in NOTES:  # a column read other than as its name says: one line says how
        assert len(said) == 1 and NOTES[form] in said[0] and "sub.csv" in said[0]
    else:
        assert not said


def test_cli_score_unknown_header_names_the_accepted_ones(generic_task1, tmp_path, capsys):
    folder, ids, p = generic_task1
    sub = tmp_path / "sub.csv"
    sub.write_text(_lines("image,prediction", ids, [p]))  # was read as the malignant score, whatever it held
    rc, err, _ = _score_cli(folder, sub, tmp_path / "r", capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "sub.csv" in err
    for accepted in ("image,benign,malignant", "image,malignant", "image,benign (scored as malignant = 1 - benign)",
                     "image,probability", "image_id,melanoma,seborrheic_keratosis", "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC",
                     "no header"):
        assert accepted in err, accepted


def test_cli_score_reads_a_bom_and_spaced_ids_as_labels_csv_does(generic_task1, tmp_path, capsys):
    """Excel's "CSV UTF-8" (a byte-order mark) and ids with spaces: labels.csv and the submission are
    read alike (one reader), the spaces said once per file with their count."""
    from helpers_generic import generic_copy

    src, ids, p = generic_task1
    folder = generic_copy(src, tmp_path / "data")
    labels = (folder / "labels.csv").read_text().splitlines()
    labels[1] = " " + labels[1].replace(",", " ,", 1)  # " img_xxx ,benign,..."
    (folder / "labels.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(labels).encode() + b"\r\n")
    text = _lines("image,malignant", ids, [p]).splitlines()
    text[1], text[2] = " " + text[1], text[2].replace(",", "  ,", 1)
    for name, header in (("bom.csv", True), ("bom_headerless.csv", False)):
        sub = tmp_path / name
        sub.write_bytes(b"\xef\xbb\xbf" + "\n".join(text if header else text[1:]).encode() + b"\n")
        rc, err, record = _score_cli(folder, sub, tmp_path / f"r_{name}", capsys)
        assert rc == 0, err  # was: "line 1: malignant score 'malignant' is not a number"
        assert record.split["n_test"] == len(ids)
        spaced = [line for line in err.splitlines() if "spaces" in line]
        assert any(f"{name}: 2 image id(s) have spaces" in line for line in spaced), err
        if header:  # the labels' line is said once per process: with the first score
            assert any("labels.csv: 1 image id(s) have spaces" in line and "line 2" in line for line in spaced)


@pytest.mark.parametrize("encode, message", [
    (lambda text: text.encode("utf-16"), "UTF-16"),
    (lambda text: text.replace("image", "imagé").encode("latin-1"), "not UTF-8"),
])
def test_cli_score_refuses_what_it_cannot_read_as_labels_csv_is_refused(generic_task1, tmp_path, capsys,
                                                                        encode, message):
    from helpers_generic import generic_copy

    src, ids, p = generic_task1
    sub = tmp_path / "sub.csv"
    sub.write_bytes(encode(_lines("image,malignant", ids, [p])))
    rc, err, _ = _score_cli(src, sub, tmp_path / "r", capsys)
    assert rc == 2 and message in err and "sub.csv" in err and "CSV UTF-8" in err
    folder = generic_copy(src, tmp_path / "data")
    (folder / "labels.csv").write_bytes(encode((folder / "labels.csv").read_text()))
    rc, err, _ = _score_cli(folder, tmp_path / "sub.csv", tmp_path / "r2", capsys)
    assert rc == 2 and message in err and "labels.csv" in err and "CSV UTF-8" in err


def test_cli_predict_names_files_after_the_dataset_used(generic_task1, tmp_path, capsys):
    """Predictions on a user's folder are not an ISIC 2016 submission: the file names say which data."""
    from skinbench import cli

    folder, _, _ = generic_task1
    out = tmp_path / "out"
    assert cli.main(["predict", "task1", "-a", "stratified", "--dataset", "generic", "--data-root", str(folder),
                     "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and all(n.startswith("task1__generic-data-") for n in names), names
    assert names[0].endswith("__stratified_isic2016_part3.csv") and names[1].endswith("__stratified_scorer.csv")
    capsys.readouterr()
    rc, err, record = _score_cli(folder, out / names[0], tmp_path / "r", capsys)  # and it scores as it is
    assert rc == 0, err


def test_score_of_a_runs_exported_predictions_gives_the_records_numbers(tmp_path):
    """Issue 31: a run's submission file (what `run --predictions` exports), scored by `skinbench score`, gives
    exactly the record's numbers, and so does re-scoring the record's own stored predictions. The scores tie
    at the sixth decimal the record keeps (helpers_scores.NearTieClassifier), so numbers computed before that
    rounding (AUC, AP and their CIs) could not be reproduced from what is stored."""
    tests = Path(__file__).resolve().parent
    res, pred = tmp_path / "res", tmp_path / "pred"
    common = ["--dataset", "synthetic", "--n-boot", "200"]
    done = cli("run", "task1", "-a", "helpers_scores:NearTieClassifier", "--family", "classical", *common,
               "--results", str(res), "--predictions", str(pred), path=[tests])
    assert done.returncode == 0, done.stderr
    record = RunRecord.from_file(res / "runs" / "task1" / "synthetic" / "near-tie-classifier.json")
    exported = next(pred.glob("*_scorer.csv"))
    done = cli("score", "task1", str(exported), *common, "--results", str(tmp_path / "ext"), "--name", "again")
    assert done.returncode == 0, done.stderr
    external = RunRecord.from_file(tmp_path / "ext" / "runs" / "task1" / "synthetic" / "again.json")
    assert external.metrics == record.metrics  # every value and CI bound, exactly as stored
    assert external.predictions["scores"] == record.predictions["scores"]
    again = RunRecord.from_dict(json.loads(dumps(replace(record, **record.scored()))))
    assert again.metrics == record.metrics
