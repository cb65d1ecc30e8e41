"""Issue 17 in the results: calibration / operating-point tables, boundary columns, subgroup and
duplicate reports, all scored from the records' stored per-image predictions."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinbench import info
from skinbench.results import records as rec
from skinbench.results import tables
from skinbench.results.render import render_all
from test_results import _md_table, make_record, task1_records, write_all

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "results"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _with_surface(r: rec.RunRecord, seed: int = 0) -> rec.RunRecord:
    """A segmentation record as the runner now writes it: per-image [hd95, assd] beside the counts."""
    rng = np.random.default_rng(seed)
    n = len(r.predictions["image_id"])
    hd95 = rng.uniform(1, 40, n).round(3)
    r.predictions["surface"] = np.stack([hd95, (hd95 / 3).round(3)], axis=1).tolist()
    return r


# ----------------------------------------------------------------------------- calibration tables

def test_clinical_table_per_classification_table_rescored_from_predictions(root):
    from skinbench.metrics.calibration import CLINICAL_METRICS_BINARY, clinical_scores

    write_all(root, task1_records() + [make_record("task2", "bovw", n_classes=7, n=28)])
    written = render_all(root)
    md = root / "tables" / "task1__synthetic__clinical.md"
    csv_path = root / "tables" / "task1__synthetic__clinical.csv"
    assert {md, csv_path, root / "tables" / "task2__synthetic__clinical.csv"} <= set(written)
    rows = {r["approach"]: r for r in _csv_rows(csv_path)}
    assert set(rows) == set(info.approaches_for("task1"))  # every row, baselines included
    bovw = next(r for r in rec.load_records(root) if r.approach == "bovw")
    _, y, p = bovw.prediction_arrays()
    expected = clinical_scores(y, p, n_boot=1000, seed=0)  # the record's own bootstrap settings
    for m in CLINICAL_METRICS_BINARY:
        assert float(rows["bovw"][m]) == pytest.approx(expected[m]["value"], abs=1e-6), m
        assert float(rows["bovw"][f"{m}_lo"]) == pytest.approx(expected[m]["ci"][0], abs=1e-6), m
    assert rows["bovw"]["ece_bins"] == "10"
    assert rows["majority"]["status"] == "ok" and rows["majority"]["brier"] != ""
    assert rows["transfer-vgg16"]["status"] == "skipped" and rows["transfer-vgg16"]["ece"] == ""

    text = md.read_text()
    header, *body = _md_table(text)
    assert header[:8] == ["approach", "family", "ece (10 bins)", "brier", "spec@sens80", "spec@sens95",
                          "sens@spec80", "pAUC>80%TPR"]
    cells = {row[0]: dict(zip(header, row)) for row in body}
    assert cells["bovw"]["spec@sens95"] == tables.fmt_value(expected["spec_at_sens95"]["value"],
                                                            expected["spec_at_sens95"]["ci"])
    assert cells["transfer-vgg16"]["brier"] == tables.MISSING
    assert "Positive class: `malignant`" in text and "equal-mass" in text
    assert "../plots/task1__synthetic__reliability.png" in text

    multi = {r["approach"]: r for r in _csv_rows(root / "tables" / "task2__synthetic__clinical.csv")}
    assert "spec_at_sens80" not in multi["bovw"] and multi["bovw"]["ece"] != ""
    # the main tables and their plot links are as before: nothing of this is added to them
    main_md = (root / "tables" / "task1__synthetic.md").read_text()
    assert "ece" not in main_md and "reliability" not in main_md
    assert "ece" not in (root / "tables" / "task1__synthetic.csv").read_text().splitlines()[0]


def test_reliability_diagram_and_dashboard_section(root):
    import cv2

    write_all(root, task1_records() + [make_record("task4", "ellipse", target="lesion")])
    written = render_all(root)
    png = root / "plots" / "task1__synthetic__reliability.png"
    assert png in written
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.std() > 0
    readme = (root / "README.md").read_text()
    section = readme.split("#### Calibration and operating points: task1 / synthetic")[1].split("## task4")[0]
    assert readme.index("### task1 / synthetic") < readme.index("#### Calibration and operating points")
    assert "plots/task1__synthetic__reliability.png" in section
    assert "tables/task1__synthetic__clinical.csv" in section and "spec@sens80" in section
    assert "Calibration and operating points: task4" not in readme  # segmentation has none


def test_reliability_plot_uses_the_curve_of_each_record(tmp_path):
    from skinbench.metrics.calibration import reliability_curve
    from skinbench.results.plots import plot_reliability

    records = [make_record("task1", "bovw", quality=0.6), make_record("task1", "majority", quality=0.0)]
    assert plot_reliability(records, tmp_path / "r.png", "t").exists()
    _, y, p = records[0].prediction_arrays()
    assert reliability_curve(y, p)["ece"] is not None
    bad = make_record("task1", "stratified")
    bad.predictions = {}
    assert plot_reliability([bad], tmp_path / "none.png") is None


def test_render_with_task_scores_each_record_once(root, monkeypatch):
    calls = []
    real = tables.clinical_metrics
    monkeypatch.setattr(tables, "clinical_metrics", lambda r, n_bins=None: calls.append(r.approach) or real(r, n_bins))
    write_all(root, [make_record("task1", "bovw"), make_record("task2", "bovw", n_classes=7, n=28)])
    render_all(root, task="task1", dashboard=True)
    assert sorted(calls) == ["bovw", "bovw"]  # task1 and task2 once each, although the dashboard shows both


# ----------------------------------------------------------------------------- boundary columns

def test_segmentation_table_adds_boundary_columns_only_with_stored_distances(root):
    from skinbench.metrics.evaluate import evaluate_surface

    old = [make_record("task4", "ellipse", target="lesion"), make_record("task4", "unet", target="lesion")]
    write_all(root, old)
    render_all(root)
    before = {p.name: p.read_bytes() for p in (root / "tables").iterdir()}
    (table,) = tables.build_tables(rec.load_records(root))
    assert table.metrics == tables.SHOWN_METRICS["segmentation"] and "hd95" not in table.header

    new = _with_surface(make_record("task4", "classical-seg", target="lesion", quality=0.6))
    write_all(root, [new])
    render_all(root)
    (table,) = tables.build_tables(rec.load_records(root))
    assert table.metrics == tables.SHOWN_METRICS["segmentation"] + ("hd95_mean", "assd_mean")
    rows = {r["approach"]: r for r in _csv_rows(root / "tables" / "task4__synthetic__lesion.csv")}
    expected = evaluate_surface(new.predictions["surface"], new.predictions["counts"], n_boot=1000, seed=0)["metrics"]
    for m in ("hd95_mean", "assd_mean"):
        assert float(rows["classical-seg"][m]) == pytest.approx(expected[m]["value"], abs=1e-6)
        assert float(rows["classical-seg"][f"{m}_hi"]) == pytest.approx(expected[m]["ci"][1], abs=1e-6)
    hd95 = np.asarray(new.predictions["surface"])[:, 0]
    assert float(rows["classical-seg"]["hd95_mean"]) == pytest.approx(hd95.mean())
    assert rows["ellipse"]["hd95_mean"] == ""  # made before the distances were stored
    header, *body = _md_table((root / "tables" / "task4__synthetic__lesion.md").read_text())
    cells = {row[0]: dict(zip(header, row)) for row in body}
    assert cells["ellipse"]["hd95_mean"] == tables.MISSING and cells["ellipse"]["jaccard_mean"] != tables.MISSING
    assert cells["classical-seg"]["assd_mean"].count("[") == 1
    assert "Hausdorff" in table.header
    # the same records without the new one render byte for byte as before
    (rec.path_of(new, root)).unlink()
    render_all(root)
    assert {p.name: p.read_bytes() for p in (root / "tables").iterdir()} == before


def test_normalised_hd95_column_only_with_stored_mask_shapes(root):
    """hd95_norm_mean (hd95 over each truth mask's diagonal) is scored at render time from a record's
    stored shapes; a record with distances but no shapes shows it as absent, its other values unchanged."""
    old = _with_surface(make_record("task4", "ellipse", target="lesion"))
    new = _with_surface(make_record("task4", "classical-seg", target="lesion", quality=0.6), seed=1)
    n = len(new.predictions["image_id"])
    new.predictions["mask_shape"] = [[30 + 10 * (i % 3), 40] for i in range(n)]
    write_all(root, [old])
    render_all(root)
    without = _csv_rows(root / "tables" / "task4__synthetic__lesion.csv")
    (table,) = tables.build_tables(rec.load_records(root))
    assert "hd95_norm_mean" not in table.metrics
    write_all(root, [new])
    render_all(root)
    (table,) = tables.build_tables(rec.load_records(root))
    assert table.metrics[-3:] == ("hd95_mean", "assd_mean", "hd95_norm_mean") and "diagonal of the truth" in table.header
    rows = {r["approach"]: r for r in _csv_rows(root / "tables" / "task4__synthetic__lesion.csv")}
    hd95 = np.asarray(new.predictions["surface"])[:, 0]
    diag = np.hypot(*np.asarray(new.predictions["mask_shape"], dtype=float).T)
    assert float(rows["classical-seg"]["hd95_norm_mean"]) == pytest.approx((hd95 / diag).mean(), abs=1e-6)
    lo, hi = float(rows["classical-seg"]["hd95_norm_mean_lo"]), float(rows["classical-seg"]["hd95_norm_mean_hi"])
    assert lo <= (hd95 / diag).mean() <= hi
    assert rows["ellipse"]["hd95_norm_mean"] == ""
    assert {k: v for k, v in rows["ellipse"].items() if k in without[0]} == {
        k: v for k, v in {r["approach"]: r for r in without}["ellipse"].items()}
    header, *body = _md_table((root / "tables" / "task4__synthetic__lesion.md").read_text())
    cells = {row[0]: dict(zip(header, row)) for row in body}
    assert cells["ellipse"]["hd95_norm_mean"] == tables.MISSING and cells["ellipse"]["hd95_mean"] != tables.MISSING


def test_cli_run_stores_mask_shapes_and_shows_the_normalised_hd95(tmp_path):
    from skinbench.cli import main
    from skinbench.data import load_dataset
    from skinbench.data.images import read_mask

    out = tmp_path / "r"
    assert main(["run", "task4", "-a", "ellipse", "--dataset", "synthetic", "--limit", "10", "--n-boot", "20",
                 "--results", str(out)]) == 0
    (r,) = [x for x in rec.load_records(out, task="task4") if x.approach == "ellipse"]
    masks = dict(zip(load_dataset("synthetic").frame["image_id"], load_dataset("synthetic").frame["mask_lesion"]))
    shapes = [list(read_mask(masks[i]).shape) for i in r.predictions["image_id"]]
    assert r.predictions["mask_shape"] == shapes
    hd95 = np.asarray(r.predictions["surface"])[:, 0]
    expected = np.mean(hd95 / np.hypot(*np.asarray(shapes, dtype=float).T))
    rows = {x["approach"]: x for x in _csv_rows(out / "tables" / "task4__synthetic__lesion.csv")}
    assert float(rows["ellipse"]["hd95_norm_mean"]) == pytest.approx(expected, abs=1e-6)
    assert 0 < expected < 1


def test_evaluate_surface_hand_case():
    from skinbench.metrics.evaluate import evaluate_surface

    out = evaluate_surface([[2.0, 1.0], [4.0, 3.0]], [[5, 0, 0, 5], [0, 0, 3, 7]], n_boot=50, seed=0)["metrics"]
    assert out["hd95_mean"]["value"] == 3.0 and out["assd_mean"]["value"] == 2.0
    assert out["surface_one_empty"]["value"] == 0.5  # image 2: truth there, prediction empty
    lo, hi = out["hd95_mean"]["ci"]
    assert 2.0 <= lo <= hi <= 4.0
    assert evaluate_surface([[1.0, 1.0]], None, n_boot=0)["metrics"]["surface_one_empty"]["value"] is None


def test_runner_stores_per_image_boundary_distances(tmp_path):
    from skinbench import runner
    from skinbench.data import load_dataset
    from skinbench.data.images import read_mask
    from skinbench.metrics.surface import surface_distances

    (path,) = runner.run("task4", "all-background", dataset="synthetic", n_boot=20, limit=10, results_root=tmp_path)
    r = rec.RunRecord.from_file(path)
    surface = np.asarray(r.predictions["surface"])
    assert surface.shape == (len(r.predictions["image_id"]), 2)
    masks = dict(zip(load_dataset("synthetic").frame["image_id"], load_dataset("synthetic").frame["mask_lesion"]))
    for image_id, got in zip(r.predictions["image_id"], surface):
        truth = read_mask(masks[image_id])
        expected = surface_distances(truth, np.zeros_like(truth))  # all-background predicts nothing
        np.testing.assert_allclose(got, np.round(expected, 3))
        diagonal = math.hypot(*truth.shape)  # one mask empty: the image diagonal; both empty: 0
        assert got[0] == (pytest.approx(diagonal, abs=1e-3) if truth.any() else 0.0)
    render_all(tmp_path)
    assert "hd95_mean" in (tmp_path / "tables" / "task4__synthetic__lesion.csv").read_text().splitlines()[0]


# ----------------------------------------------------------------------------- terminal tables

def test_run_prints_the_clinical_table(tmp_path, capsys):
    from skinbench.cli import main

    assert main(["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Calibration and operating points: task1 / synthetic" in out
    block = out.split("Calibration and operating points: task1 / synthetic")[1]
    for column in ("ece", "brier", "spec@sens80", "spec@sens95", "sens@spec80", "pauc80"):
        assert column in block, column
    (table,) = render_all(tmp_path, task="task1").tables
    text = table.clinical.to_terminal()
    assert text in out  # what `run` printed, from the table object
    assert "primary" not in text.splitlines()[0]  # the task's primary metric is not in this table


def test_data_verify_duplicates_flag(monkeypatch, capsys):
    import skinbench.data.verify as verify_mod
    from skinbench.cli import main

    seen = {}

    class Report:
        usable = True

        def __str__(self):
            return "report"

    def fake_verify(name, root=None, manifest_dir=None, duplicates=False):
        seen.update(name=name, duplicates=duplicates)
        return Report()

    monkeypatch.setattr(verify_mod, "verify", fake_verify)
    assert main(["data", "verify", "ham10000", "--duplicates"]) == 0
    assert seen == {"name": "ham10000", "duplicates": True}
    assert main(["data", "verify", "ham10000"]) == 0 and seen["duplicates"] is False


# ----------------------------------------------------------------------------- subgroups

def _ham_like(n: int = 90, n_classes: int = 7, seed: int = 1) -> tuple[rec.RunRecord, pd.DataFrame]:
    r = make_record("task2", "transfer-mobilenetv2", n_classes=n_classes, n=n, quality=0.5)
    rng = np.random.default_rng(seed)
    ids = r.predictions["image_id"]
    meta = pd.DataFrame({"sex": rng.choice(["male", "female"], n, p=[0.55, 0.45]),
                         "age_band": rng.choice(["<30", "30-44", "45-59", "75+"], n, p=[0.1, 0.4, 0.4, 0.1]),
                         "localization": rng.choice(["back", "face", "acral"], n, p=[0.5, 0.45, 0.05]),
                         "dx_type": rng.choice(["histo", "follow_up"], n)}, index=pd.Index(ids, name="image_id"))
    return r, meta


def test_label_metric_batch_equals_classification_scores_batch():
    from skinbench.metrics.classification import classification_scores_batch, predict_labels
    from skinbench.results.subgroups_report import _label_metric_batch

    r, _ = _ham_like(60)
    _, y, p = r.prediction_arrays()
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, size=(40, y.size)).astype(float)
    w[:5, y == 0] = 0  # resamples without class 0
    w[5] = 0
    w[5, 3] = 2  # one image drawn twice
    fast = _label_metric_batch(y, predict_labels(p), p.shape[1], w)
    ref = classification_scores_batch(y, p, w)
    for m in ("accuracy", "balanced_accuracy"):
        np.testing.assert_allclose(fast[m], ref[m], equal_nan=True)


def test_subgroup_report_matches_subgroup_scores_and_says_too_few(tmp_path):
    from skinbench.metrics.classification import classification_scores_batch
    from skinbench.metrics.subgroups import subgroup_scores
    from skinbench.results.subgroups_report import subgroup_rows, write_subgroup_report

    r, meta = _ham_like()
    _, y, p = r.prediction_arrays()
    rows, gaps = subgroup_rows([r], meta, n_boot=200)
    ref = subgroup_scores(meta["localization"].tolist(), "balanced_accuracy",
                          batch_fn=partial(classification_scores_batch, y, p), n_boot=200, seed=0)
    got = rows[rows["field"] == "localization"].set_index("group")
    for g in ref["subgroups"]:
        assert got.loc[g["group"], "n"] == g["n"] and got.loc[g["group"], "status"] == g["status"]
        if g["value"] is not None:
            assert got.loc[g["group"], "value"] == pytest.approx(g["value"])
            assert got.loc[g["group"], "ci_lo"] == pytest.approx(g["ci"][0])
    assert got.loc["acral", "status"] == "too few"
    gap = gaps[gaps["field"] == "localization"].iloc[0]
    assert gap["gap"] == pytest.approx(ref["gap"]["value"]) and gap["best"] == ref["gap"]["best"]

    written = write_subgroup_report("task2", [r], meta, tmp_path,
                                    {"command": "python benchmarks/subgroups.py", "data": "meta.csv",
                                     "versions": "numpy 2"})
    assert [p.name for p in written] == ["task2.md", "task2.csv", "task2.png"]
    md = (tmp_path / "task2.md").read_text()
    for needle in ("python benchmarks/subgroups.py", "meta.csv", "numpy 2", "## Body site", "too few",
                   "## Best-worst gap", "balanced_accuracy", "| acral "):
        assert needle in md, needle
    frame = pd.read_csv(tmp_path / "task2.csv")
    assert {"field", "group", "n", "status", "value", "ci_lo", "ci_hi", "gap"} <= set(frame.columns)


def test_primary_on_subset_leaves_images_out():
    from skinbench.metrics.classification import classification_scores
    from skinbench.metrics.segmentation import segmentation_scores
    from skinbench.results.subgroups_report import primary_on_subset

    r = make_record("task1", "bovw", quality=0.4)
    ids, y, p = r.prediction_arrays()
    res = primary_on_subset(r, [ids[0], ids[3], "not-a-test-image"])
    keep = np.ones(len(ids), bool)
    keep[[0, 3]] = False
    assert res["metric"] == "ap" and res["n_kept"] == len(ids) - 2 and res["left_out"] == [ids[0], ids[3]]
    assert res["value"] == pytest.approx(classification_scores(y, p)["ap"])
    assert res["value_kept"] == pytest.approx(classification_scores(y[keep], p[keep])["ap"])
    seg = make_record("task4", "ellipse", target="lesion")
    res = primary_on_subset(seg, [seg.predictions["image_id"][1]])
    counts = seg.counts()
    assert res["value_kept"] == pytest.approx(segmentation_scores(np.delete(counts, 1, axis=0))["jaccard_mean"])


def test_subgroups_script_end_to_end(root, tmp_path, monkeypatch):
    from skinbench.metrics.subgroups import HAM10000_FIELDS

    r, meta = _ham_like()
    r.dataset = "ham10000"
    seg = make_record("task4", "ellipse", target="lesion", n=90, dataset="ham10000")
    later_seed = make_record("task2", "transfer-mobilenetv2", n_classes=7, n=90, seed=1, dataset="ham10000")
    write_all(root, [r, seg, later_seed, make_record("task2", "majority", n_classes=7, n=90, dataset="ham10000")])
    data = tmp_path / "data"
    (data / "ham10000").mkdir(parents=True)
    raw = pd.DataFrame({"lesion_id": "HAM_1", "image_id": meta.index, "dx": "nv",
                        "dx_type": meta["dx_type"], "age": np.where(meta["age_band"] == "<30", 20, 50),
                        "sex": meta["sex"], "localization": meta["localization"]})
    raw.to_csv(data / "ham10000" / "HAM10000_metadata.csv", index=False)
    assert set(HAM10000_FIELDS) <= set(raw.columns)
    script = _load_script("subgroups")
    assert script.main(["--results", str(root), "--data-root", str(data), "--n-boot", "50"]) == 0
    for name in ("task2.md", "task2.csv", "task2.png", "task4.md", "task4.csv", "task4.png"):
        assert (root / "subgroups" / name).exists(), name
    md = (root / "subgroups" / "task2.md").read_text()
    data_line = next(line for line in md.splitlines() if line.startswith("- **Data**"))
    assert "`$SKINBENCH_DATA/ham10000/HAM10000_metadata.csv`" in data_line and str(tmp_path) not in data_line
    header = next(line for line in md.splitlines() if line.startswith("| group"))
    assert header.count("transfer-mobilenetv2") == 1 and header.index("majority") < header.index("transfer")
    csv_rows = pd.read_csv(root / "subgroups" / "task2.csv")
    assert set(csv_rows["approach"]) == {"majority", "transfer-mobilenetv2"}  # first seed of each
    render_all(root)
    readme = (root / "README.md").read_text()
    assert "## Further analyses" in readme and "subgroups/task2.md" in readme and "subgroups/task4.md" in readme


# ----------------------------------------------------------------------------- duplicates report

def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_duplicates_report_states_the_policy_and_the_effect(root):
    report = _load_script("duplicates_report")
    r = make_record("task1", "bovw", quality=0.4)
    ids = r.predictions["image_id"]
    write_all(root, [r, make_record("task1", "majority")])
    frame = pd.DataFrame([
        {"dataset": "synthetic", "id_a": ids[2], "id_b": "train_x", "kind": "exact-file", "split_a": "test",
         "split_b": "train", "crosses_split": True},
        {"dataset": "synthetic", "id_a": "train_y", "id_b": ids[5], "kind": "near", "split_a": "train",
         "split_b": "test", "crosses_split": True},
        {"dataset": "synthetic", "id_a": "train_y", "id_b": "train_z", "kind": "near", "split_a": "train",
         "split_b": "train", "crosses_split": False},
    ])
    assert report.crossing_test_ids(frame) == {"synthetic": [ids[2], ids[5]]}
    rows = report.effect_rows(frame, root)
    assert [x["approach"] for x in rows] == ["majority", "bovw"]  # table order
    bovw = rows[1]
    from skinbench.metrics.classification import classification_scores

    _, y, p = r.prediction_arrays()
    keep = ~np.isin(ids, [ids[2], ids[5]])
    assert bovw["n_without"] == len(ids) - 2
    assert bovw["value_without"] == pytest.approx(classification_scores(y[keep], p[keep])["ap"])
    assert bovw["delta"] == pytest.approx(bovw["value_without"] - bovw["value"])
    text = "\n".join(report.effect_markdown(frame, rows))
    assert "keep the official split as published" in text and ids[2] in text
    assert f"{bovw['value_without']:.4f}" in text
    none = frame[~frame["crosses_split"]]
    assert "No pair crosses a split" in "\n".join(report.effect_markdown(none, []))


def test_duplicates_effect_has_a_row_per_target_of_each_approach(root):
    """task3 records are one per target: each is re-scored (not only the first target of an approach)."""
    report = _load_script("duplicates_report")
    recs = [make_record("task3", a, target=t, dataset="isic2018_task2_all") for a in ("unet", "all-background")
            for t in ("streaks", "globules")]
    write_all(root, recs)
    ids = recs[0].predictions["image_id"]
    rows = report.effect_rows_for({"isic2018_task2_all": [ids[1]]}, root)
    assert [(r["target"], r["approach"]) for r in rows] == [("globules", "all-background"), ("globules", "unet"),
                                                           ("streaks", "all-background"), ("streaks", "unet")]
    from skinbench.results import derived as dv

    read = dv.key_inputs(dv.derived("data_hygiene/duplicates"), root)["records"]
    assert "runs/task3/isic2018_task2_all/unet__streaks.json" in read and len(read) == 4


def test_duplicates_report_rules_task3_and_probable_same_lesion_sections(root, monkeypatch):
    """The hygiene report measures the near rules on known copies, says what a rebuilt task3 manifest would
    exclude (and the command), and re-scores records without the probable same-lesion test images."""
    report = _load_script("duplicates_report")
    r = make_record("task1", "bovw", quality=0.4)
    ids = r.predictions["image_id"]
    write_all(root, [r])
    frame = pd.DataFrame([
        {"dataset": "isic2018_task2_all", "id_a": "ISIC_0000165", "id_b": "ISIC_0014788", "kind": "near",
         "distance": 2, "similarity": 0.81, "structure": 0.96, "split_a": "test", "split_b": "train",
         "label_a": "", "label_b": "", "lesion_a": "a", "lesion_b": "b", "crosses_split": True, "same_lesion": False},
        {"dataset": "isic2018_task2_all", "id_a": "ISIC_0000179", "id_b": "ISIC_0014765", "kind": "near",
         "distance": 2, "similarity": 0.74, "structure": 0.97, "split_a": "train", "split_b": "train",
         "label_a": "", "label_b": "", "lesion_a": "c", "lesion_b": "d", "crosses_split": False, "same_lesion": False},
    ])
    known = [{"dataset": "isic2018_task2_all", "test": "ISIC_0000165", "train": "ISIC_0014788", "distance": 2,
              "similarity": 0.81, "structure": 0.96, "old_rule": "no", "found": "yes"}]
    summaries = [{"dataset": "isic2018_task2_all", "known": known, "closest": [], "splits": {}},
                 {"dataset": "synthetic", "known": [], "closest": [], "splits": {ids[4]: "test", "t9": "train"}}]
    rules = "\n".join(report.rules_markdown(frame, summaries))
    assert "Found: 1 of 1 (the detail test alone: 0 of 1)" in rules and "ISIC_0014765" in rules
    task3 = "\n".join(report.task3_markdown(frame, summaries))
    assert "keeps 1 training images that copy a test image" in task3 and "ISIC_0014788" in task3
    assert "python benchmarks/build_manifests.py --force isic2018_task2_all" in task3
    rebuilt = "\n".join(report.task3_markdown(frame.assign(crosses_split=False), summaries))  # after the rebuild
    assert "excludes every training copy of a test image the rules find" in rebuilt
    assert "| ISIC_0014788 | near copy of test image ISIC_0000165" in rebuilt  # read from the committed index
    monkeypatch.setattr(report, "PROBABLE_SAME_LESION", {"synthetic": ((ids[4], "t9"), ("absent_test", "t9"))})
    lines, rows = report.probable_markdown(summaries, root)
    text = "\n".join(lines)
    assert "| synthetic | absent_test | absent |" in text  # listed, but not left out: not a test image here
    assert [x["approach"] for x in rows] == ["bovw"] and rows[0]["left_out"] == ids[4]
    from skinbench.metrics.classification import classification_scores

    _, y, p = r.prediction_arrays()
    keep = np.asarray(ids) != ids[4]
    assert rows[0]["value_without"] == pytest.approx(classification_scores(y[keep], p[keep])["ap"])
    assert f"{rows[0]['value_without']:.4f}" in text


@pytest.mark.realdata
def test_subgroup_metadata_covers_committed_task2_records(shared_data):
    """The committed HAM10000 records' test images all have metadata (the report needs no guessing)."""
    from skinbench.metrics.subgroups import load_ham10000_metadata

    path = REPO / "results" / "runs" / "task2" / "ham10000" / "majority.json"
    ids = json.loads(path.read_text())["predictions"]["image_id"]
    meta = load_ham10000_metadata(shared_data / "ham10000" / "HAM10000_metadata.csv", ids)
    assert len(meta) == len(ids) and set(meta["age_band"]) <= {"<30", "30-44", "45-59", "60-74", "75+", "unknown"}
