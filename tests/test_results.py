"""Result records, tables, plots, ISIC submission files and the dashboard, from hand-made records."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from scripts import load_script
from skinbench import info
from skinbench.environment import environment
from skinbench.results import records as rec
from skinbench.results import submission, tables
from skinbench.results.render import render_all

DIGEST = "ab12cd34ef56" + "0" * 52


# ----------------------------------------------------------------------------- record factory

def _metric(value: float, width: float = 0.05) -> dict:
    return {"value": value, "ci": [max(0.0, value - width), min(1.0, value + width)]}


def make_record(task: str, approach: str, *, dataset: str = "synthetic", target: str | None = None,
                n: int = 40, seed: int = 0, quality: float = 1.0, n_classes: int = 2,
                status: str = "ok", reason: str | None = None) -> rec.RunRecord:
    """A plausible record as the runner writes it; ``quality`` 0 = random scores, 1 = strong signal."""
    rng = np.random.default_rng(abs(hash((approach, seed))) % 2**32)
    ids = [f"ISIC_{k:07d}" for k in range(n)]
    info_t = info.task(task)
    family = info.APPROACHES[approach].family if approach in info.APPROACHES else "classical"
    r: dict = {"task": task, "dataset": dataset, "target": target, "approach": approach, "family": family,
               "title": approach, "params": {}, "seed": seed, "status": status,
               "split": {"name": "fixed", "n_train": 3 * n, "n_test": n, "manifest_digest": DIGEST},
               "timings": {"fit_s": 1.5 + quality, "predict_s": 0.25, "evaluate_s": 0.25, "peak_rss_mb": 812.0,
                           "images_per_s_predict": 160.0},
               "created": "2024-01-01T00:00:00", "command": "pytest"}
    r.update(environment())
    if status != "ok":
        return rec.RunRecord(**r, reason=reason or "")
    if info_t.kind == "classification":
        y = np.arange(n) % n_classes
        logits = rng.normal(size=(n, n_classes)) + quality * 3 * np.eye(n_classes)[y]
        proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        pred = proba.argmax(1)
        cm = np.zeros((n_classes, n_classes), dtype=np.int64)
        np.add.at(cm, (y, pred), 1)
        acc = float((pred == y).mean())
        names = ["benign", "malignant"] if n_classes == 2 else list(info.HAM_CLASSES[:n_classes])
        if n_classes == 2:
            metrics = {"accuracy": _metric(acc), "balanced_accuracy": _metric(acc), "precision": _metric(acc),
                       "recall": _metric(acc), "specificity": _metric(acc), "f1": _metric(acc),
                       "auc": _metric(roc_auc_score(y, proba[:, 1])),
                       "ap": _metric(average_precision_score(y, proba[:, 1]))}
        else:
            metrics = {"accuracy": _metric(acc), "balanced_accuracy": _metric(acc), "f1_macro": _metric(acc),
                       "auc_macro": {"value": None, "ci": None}, "ap_macro": _metric(acc)}
        r.update(metrics=metrics, extras={"confusion_matrix": cm, "class_names": names, "per_class": {}},
                 predictions={"image_id": ids, "y_true": y, "scores": proba.astype(np.float32)})
    else:
        area = 1000
        tp = rng.integers(0, area, size=n)
        tp = (tp * quality).astype(np.int64)
        fp = rng.integers(0, 300, size=n)
        fn = area - tp
        tn = 10_000 - tp - fp - fn
        counts = np.stack([tp, fp, fn, tn], axis=1)
        jac = tp / (tp + fp + fn)
        r.update(metrics={"jaccard_mean": _metric(float(jac.mean())), "dice_mean": _metric(0.5),
                          "thresholded_jaccard": _metric(0.3), "jaccard_set": _metric(0.4),
                          "dice_set": _metric(0.5), "precision_set": _metric(0.6), "recall_set": _metric(0.7)},
                 extras={}, predictions={"image_id": ids, "counts": counts})
    return rec.RunRecord(**r)


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "results"


def write_all(root: Path, records: list[rec.RunRecord]) -> None:
    for r in records:
        rec.write_record(r, rec.path_of(r, root))


def task1_records() -> list[rec.RunRecord]:
    return [*(make_record("task1", name, quality=0.0) for name in info.baselines_for("task1")),
            make_record("task1", "bovw", quality=0.6),
            make_record("task1", "transfer-mobilenetv2", quality=1.2),
            make_record("task1", "transfer-vgg16", status="skipped",
                        reason="VGG16 ImageNet weights not found in KERAS_HOME")]


# ----------------------------------------------------------------------------- records

def test_record_path_layout(root):
    assert rec.record_path("task3", "isic2018_task2", "unet", "globules", root=root) == \
        root / "runs" / "task3" / "isic2018_task2" / "unet__globules.json"
    assert rec.record_path("task1", "synthetic", "bovw", root=root).name == "bovw.json"


def test_record_path_defaults_to_results_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SKINBENCH_RESULTS", str(tmp_path))
    assert rec.record_path("task1", "synthetic", "bovw") == tmp_path.resolve() / "runs/task1/synthetic/bovw.json"


def test_write_and_load_round_trip_converts_numpy(root):
    r = make_record("task1", "bovw")
    r.params = {"k": np.int64(300), "c": np.float32(1 / 3), "bad": float("nan"), "path": Path("/x")}
    path = rec.write_record(r, rec.record_path("task1", "synthetic", "bovw", root=root))
    text = path.read_text()
    assert text.index('"approach"') < text.index('"task"')  # sorted keys
    loaded = rec.load_records(root)
    assert len(loaded) == 1
    got = loaded[0]
    assert got.schema == rec.SCHEMA
    assert got.params == {"k": 300, "c": 0.333333, "bad": None, "path": "/x"}
    assert got.extras["confusion_matrix"] == r.extras["confusion_matrix"].tolist()
    assert rec.load_records(root, task="task2") == []
    assert len(rec.load_records(root, task="task1", dataset="synthetic")) == 1


def test_write_record_default_path_uses_results_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SKINBENCH_RESULTS", str(tmp_path))
    path = rec.write_record(make_record("task3", "unet", target="streaks"))
    assert path == tmp_path.resolve() / "runs/task3/synthetic/unet__streaks.json"
    assert rec.load_records()[0].target == "streaks"


def test_failed_serialisation_leaves_no_partial_file(root):
    path = rec.record_path("task1", "synthetic", "bovw", root=root)
    good = make_record("task1", "bovw")
    rec.write_record(good, path)
    before = path.read_bytes()
    bad = replace(good, params={"estimator": object()})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        rec.write_record(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["bovw.json"]  # no temp file left
    other = rec.record_path("task1", "synthetic", "prior", root=root)
    with pytest.raises(TypeError):
        rec.write_record(replace(bad, approach="prior"), other)
    assert not other.exists()


def test_corrupt_record_is_skipped_with_warning(root):
    write_all(root, [make_record("task1", "bovw")])
    bad = rec.record_path("task1", "synthetic", "prior", root=root)
    bad.write_text('{"task": "task1", "dataset": "synth')  # truncated
    not_record = rec.record_path("task1", "synthetic", "majority", root=root)
    not_record.write_text("[1, 2]")
    with pytest.warns(UserWarning) as caught:
        loaded = rec.load_records(root)
    assert [r.approach for r in loaded] == ["bovw"]
    messages = " ".join(str(w.message) for w in caught)
    assert str(bad) in messages and str(not_record) in messages


def test_per_image_jaccard_follows_official_empty_convention():
    r = rec.RunRecord("task4", "synthetic", "x", predictions={
        "image_id": ["a", "b", "c"], "counts": [[5, 5, 0, 90], [0, 0, 0, 100], [0, 3, 2, 95]]})
    ids, jac = r.per_image_jaccard()
    assert ids.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(jac, [0.5, 1.0, 0.0])


def test_prediction_arrays_expands_binary_scores():
    r = rec.RunRecord("task1", "synthetic", "x",
                      predictions={"image_id": ["a", "b"], "y_true": ["malignant", "benign"], "scores": [0.9, 0.2]},
                      extras={"class_names": ["benign", "malignant"]})
    ids, y, scores = r.prediction_arrays()
    assert y.tolist() == [1, 0]
    np.testing.assert_allclose(scores, [[0.1, 0.9], [0.8, 0.2]])


def test_environment_reports_versions_without_importing_tensorflow():
    code = ("import sys, json; from skinbench.environment import environment; e = environment(); "
            "assert 'tensorflow' not in sys.modules, 'imported TF'; print(json.dumps(e))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["versions"]["numpy"] == np.__version__
    assert env["versions"]["python"].count(".") == 2
    assert env["machine"]["cores"] >= 1 and isinstance(env["machine"]["gpus"], list)


# ----------------------------------------------------------------------------- tables

def _md_table(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[:1] + lines[2:]]


def test_tables_have_baselines_skipped_and_missing_rows_and_csv_agrees(root):
    write_all(root, task1_records())
    written = render_all(root, plots=False)
    md_path = root / "tables" / "task1__synthetic.md"
    csv_path = root / "tables" / "task1__synthetic.csv"
    assert {md_path, csv_path} <= set(written)
    md = md_path.read_text()
    assert "generated" in md and "n_train 120" in md and "ab12cd34ef56" in md
    rows = _md_table(md)
    header, body = rows[0], rows[1:]
    assert header[:2] == ["approach", "family"] and "auc" in header and "ap" in header
    names = [row[0] for row in body]
    # baselines first, then classical, then deep; every registry approach of task1 present
    assert set(names) == set(info.approaches_for("task1"))
    fams = [row[1] for row in body]
    assert fams == sorted(fams, key=tables.FAMILY_ORDER.index)
    by_name = {row[0]: dict(zip(header, row)) for row in body}
    assert "VGG16 ImageNet weights not found" in by_name["transfer-vgg16"]["note"]
    assert by_name["transfer-vgg16"]["note"].startswith("skipped:")
    assert by_name["majority"]["accuracy"].count("[") == 1

    with open(csv_path, newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["approach"] for r in csv_rows] == names
    for row in csv_rows:
        md_row = by_name[row["approach"]]
        for m in tables.SHOWN_METRICS["binary"]:
            if row["status"] == "ok":
                expected = tables.fmt_value(float(row[m]), (float(row[f"{m}_lo"]), float(row[f"{m}_hi"])))
            else:
                expected = tables.MISSING
            assert md_row[m] == expected
        assert md_row["note"] == row["note"]
        assert md_row["n_test"] == (row["n_test"] or tables.MISSING)


def test_unrecorded_approach_row_says_what_it_needs(root):
    write_all(root, [make_record("task1", "majority")])
    table = tables.build_tables(rec.load_records(root))[0]
    notes = {row["approach"]: row["note"] for row in table.rows}
    from skinbench import info

    assert notes["transfer-vgg16"] == f"not run: needs {info.approach('transfer-vgg16').needs}"
    assert notes["bovw"].startswith("not run (python -m skinbench run task1 --approach bovw")


def test_a_missing_rows_note_is_about_its_own_task(root, monkeypatch):
    """An approach that needs a GPU on task2 only (as the end-to-end fine-tuning once did): its task1 row must
    not say so."""
    from skinbench.cli import main

    name = "transfer-mobilenetv2-finetune"
    monkeypatch.setitem(info.APPROACHES, name, dataclasses.replace(info.APPROACHES[name], gpu_tasks=("task2",)))
    write_all(root, [make_record("task1", "majority"), make_record("task2", "majority", n_classes=7, n=28)])
    assert main(["table", "--results", str(root)]) == 0
    notes = {t.task: {row["approach"]: row["note"] for row in t.rows}
             for t in tables.build_tables(rec.load_records(root))}
    assert notes["task1"][name] == f"not run (python -m skinbench run task1 --approach {name} --dataset synthetic)"
    assert notes["task2"][name] == "not run: needs a GPU for practical run times"
    task1_md = (root / "tables" / "task1__synthetic.md").read_text()
    task2_md = (root / "tables" / "task2__synthetic.md").read_text()
    assert "GPU" not in task1_md.split(f"| {name}")[1].split("\n")[0]
    assert "needs a GPU for practical run times" in task2_md.split(f"| {name}")[1].split("\n")[0]
    # the approach list names the task the GPU is for; the VGG16 weights are needed on every task
    assert info.approach(name).needs_for(None) == "a GPU for practical run times on task2"
    assert info.approach("transfer-vgg16").needs_for("task1") == info.approach("transfer-vgg16").needs


def test_not_run_note_names_dataset_target_and_subset_of_its_row(root):
    """A task3 attribute row of a single-target approach is made only by a run with --target, on the
    table's dataset; a subset table's rows at its size."""
    r = make_record("task3", "mobilenet-unet-5attr", target="pigment_network", dataset="isic2018_task2")
    default = make_record("task3", "mobilenet-unet-5attr", target="pigment_network", dataset="isic2018_task2_all")
    write_all(root, [r, default])
    notes = {(t.dataset, row["approach"]): row["note"] for t in tables.build_tables(rec.load_records(root))
             for row in t.rows}
    assert notes[("isic2018_task2", "unet")] == ("not run (python -m skinbench run task3 --approach unet --dataset "
                                                 "isic2018_task2 --target pigment_network)")
    assert notes[("isic2018_task2_all", "classical-dots")] == ("not run (python -m skinbench run task3 --approach "
                                                               "classical-dots --target pigment_network)")
    assert tables.run_command("task1", "bovw", "isic2016_task3", None, 200) == \
        "python -m skinbench run task1 --approach bovw --limit 200"


def test_cache_note_says_what_was_cached_and_that_the_rest_ran():
    r = make_record("task1", "bovw")
    r.timings["cache"] = {"local_features": {"hits": 900, "misses": 0}, "other": {"hits": 0, "misses": 3}}
    assert tables._cache_note(r) == ("fit s leaves out cached work (local_features 900 of 900 found cached); the "
                                     "rest of the fit ran")
    r.timings["cache"] = {"local_features": {"hits": 0, "misses": 900}}
    assert tables._cache_note(r) == ""


def test_sweep_summaries_say_beside_the_seconds_what_was_found_cached():
    """A sweep summary's seconds are the point's fit, which leaves out work found in the cache: the row
    says which (the BoVW sweep's 4.5 s per point were descriptors found cached, not a cheap SVM)."""
    bovw_sweep = load_script("bovw_sweep")
    r = make_record("task1", "bovw")
    r.timings["cache"] = {"local_features": {"hits": 1079, "misses": 0}, "vocabulary": {"hits": 1, "misses": 0}}
    assert bovw_sweep.row(r, kernel="rbf", K=30)["cached"] == "local_features 1079 of 1079, vocabulary 1 of 1"
    r.timings["cache"] = {}
    assert bovw_sweep.row(r, kernel="rbf", K=30)["cached"] == ""


def test_not_run_command_makes_exactly_that_row(tmp_path):
    """Run the command a "not run" note suggests (synthetic data): it makes that row and no other."""
    import shlex

    from skinbench import cli

    out = tmp_path / "out"
    assert cli.main(["run", "task3", "-a", "all-background", "--dataset", "synthetic", "--target", "streaks",
                     "--limit", "12", "--n-boot", "20", "--results", str(out)]) == 0
    table = next(t for t in tables.build_tables(rec.load_records(out)) if t.target == "streaks")
    note = next(row["note"] for row in table.rows if row["approach"] == "classical-dots")
    assert note == ("not run (python -m skinbench run task3 --approach classical-dots --dataset synthetic --target "
                    "streaks --limit 12)")
    argv = shlex.split(note[len("not run ("):-1])
    assert argv[:3] == ["python", "-m", "skinbench"]
    assert cli.main([*argv[3:], "--n-boot", "20", "--results", str(out)]) == 0
    made = {(r.approach, r.target) for r in rec.load_records(out)}
    assert ("classical-dots", "streaks") in made and {t for _, t in made} == {"streaks"}  # (baselines beside it)
    table = next(t for t in tables.build_tables(rec.load_records(out)) if t.target == "streaks")
    assert next(row for row in table.rows if row["approach"] == "classical-dots")["status"] == "ok"


def test_multiclass_and_segmentation_tables_pick_their_metrics(root):
    write_all(root, [make_record("task2", "majority", n_classes=7, n=28),
                     make_record("task4", "ellipse", target="lesion"),
                     make_record("task3", "all-background", target="globules"),
                     make_record("task3", "unet", target="streaks")])
    built = {t.slug: t for t in tables.build_tables(rec.load_records(root))}
    assert set(built) == {"task2__synthetic", "task3__synthetic__globules", "task3__synthetic__streaks",
                          "task4__synthetic__lesion"}
    assert built["task2__synthetic"].metrics == tables.SHOWN_METRICS["multiclass"]
    cells = dict(zip(built["task2__synthetic"].columns(), built["task2__synthetic"].markdown_rows()[0]))
    assert cells["auc_macro"] == "n/a"  # undefined value shown, not a crash
    assert built["task4__synthetic__lesion"].metrics == tables.SHOWN_METRICS["segmentation"]
    from skinbench import info

    rows = {r["approach"]: r for r in built["task3__synthetic__streaks"].rows}
    assert list(rows) == info.approaches_for("task3")  # every registered approach, in registry order
    assert rows["unet"]["status"] == "ok" and rows["mobilenet-unet"]["status"] == "missing"


def test_untargeted_skip_fills_every_target_table_and_costs_exclude_non_durations(root):
    from skinbench.results.dashboard import cost_table

    write_all(root, [make_record("task3", "all-background", target="globules"),
                     make_record("task3", "all-background", target="streaks"),
                     make_record("task3", "unet", status="skipped", reason="TensorFlow missing")])
    built = tables.build_tables(rec.load_records(root))
    assert [t.slug for t in built] == ["task3__synthetic__globules", "task3__synthetic__streaks"]
    for t in built:
        notes = {row["approach"]: row["note"] for row in t.rows}
        assert notes["unet"] == "skipped: TensorFlow missing"
    cost = cost_table(built[0])
    assert "all-background" in cost and "unet" not in cost
    row = [c.strip() for c in cost.splitlines()[2].strip("|").split("|")]
    assert row == ["all-background", "2.5", "0.2", "0.2", "3.0", "812"]  # total = fit + predict + evaluate


def test_fmt_value():
    assert tables.fmt_value(0.8021, [0.7612, 0.8419]) == "0.802 [0.761, 0.842]"
    assert tables.fmt_value(0.5, None) == "0.500"
    assert tables.fmt_value(None, None) == "n/a"


# ----------------------------------------------------------------------------- plots

def test_render_tables_writes_plots(root):
    write_all(root, task1_records() + [make_record("task2", "bovw", n_classes=7, n=28),
                                       make_record("task4", "ellipse", target="lesion"),
                                       make_record("task4", "unet", target="lesion", quality=0.5)])
    written = render_all(root)
    pngs = {p.name for p in written if p.suffix == ".png"}
    assert {"task1__synthetic__curves.png", "task1__synthetic__bovw__confusion.png",
            "task2__synthetic__per_class_recall.png", "task2__synthetic__curves.png",
            "task4__synthetic__lesion__jaccard.png"} <= pngs
    assert "task1__synthetic__transfer-vgg16__confusion.png" not in pngs  # skipped record: no plot
    for name in pngs:
        img = cv2.imread(str(root / "plots" / name))
        assert img is not None and img.shape[0] > 100 and img.std() > 0
    assert "../plots/task1__synthetic__curves.png" in (root / "tables" / "task1__synthetic.md").read_text()


def test_plot_overlays(tmp_path):
    from skinbench.results.plots import plot_overlays

    img = np.zeros((40, 60, 3), np.uint8)
    truth = np.zeros((40, 60), bool)
    truth[10:30, 15:45] = True
    pred = np.roll(truth, 5, axis=1)
    path = plot_overlays([img, img], [truth, truth], [pred, np.zeros_like(pred)], ["a", "b"],
                         tmp_path / "ov.png")
    bgr = cv2.imread(str(path)).astype(int)
    red = (bgr[..., 2] > 200) & (bgr[..., 1] < 80) & (bgr[..., 0] < 80)
    lime = (bgr[..., 1] > 200) & (bgr[..., 2] < 80) & (bgr[..., 0] < 80)
    assert red.sum() > 50 and lime.sum() > 50  # both contours drawn


# ----------------------------------------------------------------------------- submission

@pytest.fixture
def scorer_pandas_shim(monkeypatch):
    """isic-challenge-scoring 5.6 calls DataFrame.applymap, removed in pandas 3 (renamed .map)."""
    if not hasattr(pd.DataFrame, "applymap"):
        monkeypatch.setattr(pd.DataFrame, "applymap", pd.DataFrame.map, raising=False)


def test_task1_submission_loads_and_scores_in_official_scorer(tmp_path, scorer_pandas_shim):
    from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
    from isic_challenge_scoring.load_csv import parse_csv

    r = make_record("task1", "bovw", quality=0.5)
    ids, y, scores = r.prediction_arrays()
    files = submission.write_record_submission(r, tmp_path)
    names = sorted(p.name for p in files)
    assert names == ["task1__synthetic__bovw_isic2016_part3.csv", "task1__synthetic__bovw_scorer.csv"]

    legacy = pd.read_csv(tmp_path / "task1__synthetic__bovw_isic2016_part3.csv", header=None)
    assert legacy.shape == (len(ids), 2) and legacy[0].tolist() == ids.tolist()
    np.testing.assert_allclose(legacy[1], scores[:, 1], atol=1e-6)

    pred_csv = tmp_path / "task1__synthetic__bovw_scorer.csv"
    parsed = parse_csv(io.StringIO(pred_csv.read_text()), pd.Index(["benign", "malignant"]))
    np.testing.assert_allclose(parsed.loc[ids, "malignant"], scores[:, 1], atol=1e-6)
    truth_csv = submission.write_truth_csv(tmp_path / "truth.csv", ids, y, ["benign", "malignant"])
    score = ClassificationScore.from_file(truth_csv, pred_csv, ClassificationMetric.AUC)
    assert score.per_category.loc["malignant", "auc"] == pytest.approx(roc_auc_score(y, scores[:, 1]), abs=1e-5)


def test_task2_submission_uses_isic2018_columns(tmp_path, scorer_pandas_shim):
    from isic_challenge_scoring.load_csv import parse_csv

    r = make_record("task2", "bovw", n_classes=7, n=28)
    ids, y, scores = r.prediction_arrays()
    files = submission.write_record_submission(r, tmp_path)
    official = [p for p in files if p.name.endswith("_isic2018_task3.csv")][0]
    assert official.read_text().splitlines()[0] == "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
    parsed = parse_csv(io.StringIO(official.read_text()), pd.Index(list(submission.ISIC2018_TASK3_COLUMNS)))
    names = r.class_names
    np.testing.assert_allclose(parsed.loc[ids, "MEL"], scores[:, names.index("mel")], atol=1e-6)
    np.testing.assert_allclose(parsed.loc[ids, "AKIEC"], scores[:, names.index("akiec")], atol=1e-6)
    with pytest.raises(Exception, match="seven HAM10000 classes"):
        submission.write_isic2018_task3_csv(tmp_path / "x.csv", ids, scores[:, :2], ["benign", "malignant"])


def test_mask_pngs_score_in_official_scorer(tmp_path):
    from isic_challenge_scoring import task2 as scorer_task2
    from isic_challenge_scoring.segmentation import SegmentationScore

    rng = np.random.default_rng(0)
    truth_dir, pred_dir, attr_truth, attr_pred = (tmp_path / d for d in ("t", "p", "at", "ap"))
    counts, ids = [], []
    for k in range(3):
        image_id = f"ISIC_{k:07d}"
        truth = np.zeros((30, 40), bool)
        truth[5:25, 8 + k:30] = True
        prob = rng.random((30, 40)).astype(np.float32) * 0.4 + truth * 0.5  # probability map
        pred = prob > 0.5
        submission.write_mask_png(truth_dir, image_id, truth, "lesion")
        path = submission.write_mask_png(pred_dir, image_id, prob, "lesion")
        assert path.name == f"{image_id}_segmentation.png"
        submission.write_mask_png(attr_truth, image_id, truth, "globules")
        assert submission.write_mask_png(attr_pred, image_id, pred, "globules").name == \
            f"{image_id}_attribute_globules.png"
        counts.append([(truth & pred).sum(), (~truth & pred).sum(), (truth & ~pred).sum(), (~truth & ~pred).sum()])
        ids.append(image_id)
    png = cv2.imread(str(pred_dir / "ISIC_0000000_segmentation.png"), cv2.IMREAD_UNCHANGED)
    assert png.ndim == 2 and set(np.unique(png)) <= {0, 255}
    score = SegmentationScore.from_dir(truth_dir, pred_dir)
    _, jac = rec.RunRecord("task4", "t", "x", predictions={"image_id": ids, "counts": counts}).per_image_jaccard()
    assert score.macro_average["jaccard"] == pytest.approx(jac.mean())
    attr = scorer_task2.score(attr_truth, attr_pred)
    assert set(attr) >= {"globules", "overall"}


# ----------------------------------------------------------------------------- dashboard

def test_dashboard(root):
    write_all(root, task1_records() + [make_record("task4", "ellipse", target="lesion", quality=0.3),
                                       make_record("task4", "classical-seg", target="lesion", quality=0.6),
                                       make_record("task4", "unet", target="lesion", quality=0.9)])
    render_all(root)
    path = root / "README.md"
    text = path.read_text()
    assert "Generated file: do not edit" in "\n".join(text.splitlines()[:4])
    for needle in ("## task1:", "## task4:", *info.baselines_for("task1"), "ellipse", "ab12cd34ef56", "numpy",
                   np.__version__, "Wall-clock cost", "plots/task1__synthetic__curves.png",
                   "tables/task4__synthetic__lesion.csv", "## Significance", "cores"):
        assert needle in text, needle
    assert (root / "tables" / "task1__synthetic.md").exists()
    try:
        from skinbench.metrics import significance  # noqa: F401
    except ImportError:
        assert "significance unavailable" in text
    else:
        assert "McNemar" in text and "DeLong" in text and "paired bootstrap" in text
        sig = text.split("## Significance")[1]
        assert "bovw" in sig and "transfer-mobilenetv2" in sig and "classical-seg" in sig
    assert render_all(root).paths[-1] == path


def test_dashboard_tests_every_deep_row_against_the_best_classical(root):
    pytest.importorskip("scipy")  # skip on the third-party package; a broken skinbench module must fail
    from skinbench.metrics import significance  # noqa: F401
    fpn = make_record("task4", "fpn", target="lesion", quality=0.8)
    fpn.extras["fit"] = {"training": {"epochs": 10, "train_images": 7200, "seconds": 1079.0, "images_per_s": 66.7}}
    write_all(root, [make_record("task4", "classical-seg", target="lesion", quality=0.6),
                     make_record("task4", "unet", target="lesion", quality=0.9), fpn])
    render_all(root)
    text = (root / "README.md").read_text()
    cells = [[c.strip() for c in line.split("|")] for line in text.splitlines() if line.startswith("| fpn ")]
    assert "training img/s" in text and any({"10", "1079", "66.7"} <= set(row) for row in cells)
    sig = text.split("## Significance")[1].split("\n## ")[0]
    deep_lines = [line for line in sig.splitlines() if "classical-seg (" in line]
    assert {"unet", "fpn"} == {a for line in deep_lines for a in ("unet", "fpn") if f"| {a} (" in line}
    assert "Holm p" in sig


def test_dashboard_reports_the_isic2018_score_of_approaches_scored_on_all_five_attributes(root):
    from skinbench.metrics.evaluate import evaluate_pooled_targets

    five = [make_record("task3", a, target=t, quality=q) for a, q in (("mobilenet-unet-5attr", 0.8),
                                                                       ("all-background", 0.0))
            for t in info.ISIC2018_ATTRIBUTES]
    write_all(root, five + [make_record("task3", "classical-dots", target="globules", quality=0.3)])
    render_all(root)
    section = (root / "README.md").read_text().split("### ISIC 2018 Task 2 score")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| synthetic")]
    assert [line.split("|")[2].strip() for line in rows] == ["all-background", "mobilenet-unet-5attr"]
    ours = [r for r in five if r.approach == "mobilenet-unet-5attr"]
    expected = evaluate_pooled_targets([r.counts() for r in ours], n_boot=0)["metrics"]["jaccard_pooled"]["value"]
    assert f"**{expected:.3f}**" in rows[1] and "0.473" in section


def test_holm_adjustment():
    from skinbench.results.paired import holm

    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_paired_tests_holm_family_leaves_out_pairs_that_could_not_be_tested():
    """A pair whose true labels disagree says why in its row and does not count in the Holm family, so the
    other tests' adjusted p-values are those of the pairs actually tested."""
    pytest.importorskip("scipy")
    from skinbench.results.paired import PairedTests, compare, fmt_p, holm

    a = make_record("task1", "bovw", quality=0.6)
    b = make_record("task1", "transfer-mobilenetv2", quality=1.2)
    broken = make_record("task1", "transfer-mobilenetv2-logreg", quality=1.0)
    broken.predictions = dict(broken.predictions, y_true=1 - np.asarray(broken.predictions["y_true"]))
    tests = PairedTests()
    tests.test(["t", "a vs b"], a, b, "binary", "auc")
    tests.test(["t", "a vs broken"], a, broken, "binary", "auc")
    tests.untested(["t", "no row", "", "", "", ""])
    rows = tests.rows()
    p = [t["p_value"] for t in compare(a, b, "binary")]
    assert [r[:2] for r in rows] == [["t", "a vs b"]] * len(p) + [["t", "a vs broken"], ["t", "no row"]]
    assert [r[-1] for r in rows[:len(p)]] == [fmt_p(q) for q in holm(p)]  # a family of len(p), not more
    assert "cannot pair predictions" in rows[len(p)][3] and rows[len(p)][-1] == "" and rows[-1][-1] == ""
    assert {len(r) for r in rows} == {7}


def test_dashboard_comparison_pairs_by_image_id():
    pytest.importorskip("scipy")
    from skinbench.metrics import significance as sig
    from skinbench.results.paired import compare

    a = make_record("task1", "bovw", quality=0.6)
    b = make_record("task1", "transfer-mobilenetv2", quality=1.2)
    order = np.arange(len(b.predictions["image_id"]))[::-1]  # same images, another order
    b.predictions = {k: np.asarray(v)[order] for k, v in b.predictions.items()}
    got = compare(a, b, "binary")
    _, y, sa = a.prediction_arrays()
    _, _, sb = b.prediction_arrays()
    sb = sb[np.argsort(order)]
    expected = sig.mcnemar((sa[:, 1] > 0.5) == y, (sb[:, 1] > 0.5) == y)["p_value"]
    assert got[0]["n"] == len(y) and got[0]["p_value"] == pytest.approx(expected)
    assert got[1]["p_value"] == pytest.approx(sig.delong(y, sa[:, 1], sb[:, 1])["p_value"])
    seg_a = make_record("task4", "classical-seg", target="lesion", quality=0.3)
    seg_b = make_record("task4", "unet", target="lesion", quality=0.9)
    seg_b.predictions = {k: np.asarray(v)[::-1] for k, v in seg_b.predictions.items()}
    (row,) = compare(seg_a, seg_b, "segmentation")
    ja, jb = seg_a.per_image_jaccard()[1], seg_b.per_image_jaccard()[1][::-1]
    assert row["p_value"] == pytest.approx(sig.paired_bootstrap(ja, jb, n_boot=1000, seed=0)["p_value"])
    assert f"{(ja - jb).mean():+.3f}" in row["effect"]


@pytest.mark.realdata
def test_isic2016_csv_matches_official_ground_truth_layout(shared_data, tmp_path):
    """Our 2016 Part 3 file has the layout of the official test ground truth (no header, id,float)."""
    truth_path = shared_data / "isic2016_task3" / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"
    truth = pd.read_csv(truth_path, header=None, names=["image", "malignant"])
    path = submission.write_isic2016_task3_csv(tmp_path / "sub.csv", truth["image"], np.zeros(len(truth)))
    ours = pd.read_csv(path, header=None, names=["image", "malignant"])
    assert ours["image"].tolist() == truth["image"].tolist()
    assert ours["malignant"].dtype == truth["malignant"].dtype == np.float64
    # all-benign on the official test set: accuracy 304/379 (the known baseline)
    assert ((ours["malignant"] > 0.5) == (truth["malignant"] > 0.5)).sum() == 304


def test_dashboard_tests_the_pooled_metric_when_it_is_primary():
    """task3 is ranked by jaccard_set: its significance row resamples images and recomputes the pooled value."""
    from skinbench.metrics.segmentation import segmentation_scores
    from skinbench.metrics.significance import paired_bootstrap_pooled
    from skinbench.results.paired import compare

    a = make_record("task3", "classical-dots", target="globules", quality=0.3)
    b = make_record("task3", "mobilenet-unet", target="globules", quality=0.9)
    b.predictions = {k: np.asarray(v)[::-1] for k, v in b.predictions.items()}  # pairing is by image id
    rows = compare(a, b, "segmentation", "jaccard_set")
    assert [r["test"] for r in rows] == ["paired bootstrap, jaccard_set",
                                         "paired bootstrap, per-image Jaccard (images with the target)"]
    ca = a.counts()
    cb = b.counts()[::-1]
    diff = segmentation_scores(ca)["jaccard_set"] - segmentation_scores(cb)["jaccard_set"]
    assert f"{diff:+.3f}" in rows[0]["effect"]
    res = paired_bootstrap_pooled(ca, cb, "jaccard_set")
    assert res["ci"][0] <= diff <= res["ci"][1] and rows[0]["p_value"] == pytest.approx(res["p_value"])
    same = paired_bootstrap_pooled(ca, ca, "jaccard_set")
    assert same["difference"] == 0.0 and same["p_value"] == 1.0  # no difference: no evidence


def test_several_seeds_show_mean_and_sd_beside_the_first_seeds_ci(root):
    import statistics

    seeds = [make_record("task1", "bovw", seed=k, quality=0.3 + 0.2 * k) for k in range(3)]
    write_all(root, [make_record("task1", "majority"), *seeds])
    assert {p.name for p in (root / "runs/task1/synthetic").iterdir()} == \
        {"majority.json", "bovw.json", "bovw__seed1.json", "bovw__seed2.json"}
    (table,) = tables.build_tables(rec.load_records(root))
    assert table.multi_seed and "Over seeds" in table.header
    cells = dict(zip(table.columns(), next(r for r in table.markdown_rows() if r[0] == "bovw")))
    values = [r.value("ap") for r in seeds]
    assert cells["ap over seeds (mean ± sd)"] == \
        f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f} (n=3)"
    assert cells["seed"] == "0" and cells["ap"].startswith(f"{seeds[0].value('ap'):.3f} [")
    majority = dict(zip(table.columns(), next(r for r in table.markdown_rows() if r[0] == "majority")))
    assert majority["ap over seeds (mean ± sd)"] == "one seed"
    row = next(r for r in csv.DictReader(io.StringIO(table.csv())) if r["approach"] == "bovw")
    assert float(row["n_seeds"]) == 3 and float(row["ap_seed_mean"]) == pytest.approx(statistics.fmean(values))


def test_overlay_names_keep_seeds_apart():
    from skinbench.results.plots import overlay_name, overlay_path

    assert overlay_name("task4", "ham10000", "ellipse", "lesion") == "overlay_task4_ham10000_ellipse__lesion.png"
    r = make_record("task4", "ellipse", target="lesion", seed=2)
    assert overlay_path("R", r).name == "overlay_task4_synthetic_ellipse__lesion__seed2.png"


def test_binary_table_header_names_the_positive_class(root):
    write_all(root, [make_record("task1", "majority")])
    (table,) = tables.build_tables(rec.load_records(root))
    assert "Positive class: malignant." in table.header  # the registry's, for records that do not say
    r = make_record("task1", "bovw", dataset="generic-mine-0123abcd")
    r.extras["positive_class"] = "melanoma"
    r.extras["class_names"] = ["other", "melanoma"]
    write_all(root, [r])
    generic = next(t for t in tables.build_tables(rec.load_records(root)) if t.dataset.startswith("generic"))
    assert "Positive class: melanoma." in generic.header
