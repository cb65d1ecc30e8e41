"""Comparisons chosen without test data, the equal-cost view, late fusion and seed ensembles (issues 31-33),
on hand-made records and the synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from skinbench.cli import main
from skinbench.results import derived as dv
from skinbench.results import ensembles
from skinbench.results import records as rec
from skinbench.results.costs import cost_sentence, pareto_front
from skinbench.results.render import render_all
from skinbench.results.selection import choose
from skinbench.results.tables import build_tables
from scripts import load_script
from test_results import make_record, write_all

TASK1 = "isic2016_task3"  # task1's default dataset: the derived rows are made for it


def _fusion_script():
    return load_script("fusion")


def _record(approach: str, test_ap: float, *, val_ap: float | None = None, seed: int = 0, quality: float = 1.0,
            width: float = 0.05, dataset: str = TASK1) -> rec.RunRecord:
    r = make_record("task1", approach, dataset=dataset, seed=seed, quality=quality)
    r.metrics["ap"] = {"value": test_ap, "ci": [test_ap - width, test_ap + width]}
    r.run_key = f"key-{approach}-{seed}"
    if val_ap is not None:
        r.extras["fit"] = {"val_scores": {"ap": val_ap}, "n_val": 20}
    return r


# ----------------------------------------------------------------------------- (1) selection


def test_the_row_with_the_best_test_metric_but_a_worse_validation_score_is_not_chosen(tmp_path):
    lucky = _record("bovw-color", 0.90, val_ap=0.60, width=0.01)  # best on test, worse on validation
    honest = _record("bovw-sift-color", 0.70, val_ap=0.80, width=0.01)
    deep = _record("transfer-mobilenetv2-ft-all", 0.80, val_ap=0.85)
    choice = choose([lucky, honest, deep], "task1", "classical")
    assert choice.approach == "bovw-sift-color" and choice.basis == "validation"
    assert [r.approach for r in choice.contenders] == ["bovw-sift-color"]  # CIs apart: one row tested
    assert "validation ap" in choice.how
    # where a user meets it: the dashboard's comparison pairs the validation-chosen row and says so
    write_all(tmp_path, [lucky, honest, deep])
    assert main(["table", "--results", str(tmp_path)]) == 0
    sig = (tmp_path / "README.md").read_text().split("## Significance: best classical")[1].split("\n## ")[0]
    rows = [line for line in sig.splitlines() if line.startswith("| task1")]
    assert rows and all("| bovw-sift-color (0.700, seed 0)" in line for line in rows)
    assert not any("bovw-color (" in line for line in rows)
    assert "bovw-sift-color: best validation ap recorded by the fit (0.800)" in sig


def test_contributed_rows_are_tested_against_the_suite_row_chosen_without_test_data():
    from skinbench.results.contributed import comparisons

    plugin = _record("my-plugin", 0.75)
    plugin.origin = "my-package 0.1"
    lucky, honest = _record("bovw-color", 0.90, val_ap=0.60, width=0.01), _record("bovw-sift-color", 0.70, val_ap=0.80)
    table = next(t for t in build_tables([plugin, lucky, honest]) if t.task == "task1")
    suite_rows = {row[4] for row in comparisons(table)}
    assert "best classical: bovw-sift-color (0.700)" in suite_rows
    assert not any("bovw-color (" in cell for cell in suite_rows)


def test_without_validation_the_mean_over_three_seeds_chooses_and_overlapping_cis_test_both():
    # seed 0 of bovw is the best single test value, but over three seeds bovw-color is better
    recs = [_record("bovw", ap, seed=s) for s, ap in enumerate((0.75, 0.50, 0.50))]
    recs += [_record("bovw-color", ap, seed=s) for s, ap in enumerate((0.70, 0.65, 0.66))]
    choice = choose(recs, "task1", "classical")
    assert choice.basis == "seed-mean" and choice.approach == "bovw-color"
    assert [r.approach for r in choice.contenders] == ["bovw-color", "bovw"]  # CIs overlap: both tested
    assert all(r.seed == 0 for r in choice.contenders) and "over 3 seeds" in choice.how
    # one seed each and no validation score: nothing crowned, every candidate tested
    single = choose([_record("bovw", 0.75), _record("bovw-color", 0.70)], "task1", "classical")
    assert single.record is None and single.basis == "none"
    assert {r.approach for r in single.contenders} == {"bovw", "bovw-color"}


# ----------------------------------------------------------------------------- (2) costs


def test_pareto_front():
    points = [(10.0, 0.70), (1.0, 0.60), (100.0, 0.72), (50.0, 0.65), (1.0, 0.55), (5.0, 0.60), (None, 0.9)]
    # (50, .65) is beaten by (10, .70); (1, .55) and (5, .60) by (1, .60); None is left out
    assert pareto_front(points) == [1, 0, 2]
    assert pareto_front([(2.0, 0.5), (2.0, 0.5)]) == [0, 1]  # equal points dominate neither
    assert pareto_front([]) == []


def test_runs_record_cpu_seconds_and_the_dashboard_shows_costs(tmp_path):
    assert main(["run", "task1", "-a", "majority", "-a", "stratified", "--dataset", "synthetic", "--n-boot", "20",
                 "--results", str(tmp_path)]) == 0
    runs = tmp_path / "runs" / "task1" / "synthetic"
    timings = json.loads((runs / "stratified.json").read_text())["timings"]
    assert timings["cpu"]["fit_s"] >= 0 and timings["cpu"]["predict_s"] >= 0
    assert timings["cpu"]["fit_s"] + timings["cpu"]["predict_s"] < 60  # seconds of this process, not a clock
    n_test = json.loads((runs / "stratified.json").read_text())["split"]["n_test"]
    expected = 1000 * timings["predict_s"] / n_test
    assert timings["predict_ms_per_image"] == pytest.approx(expected, rel=1e-3, abs=1e-4)  # both rounded
    # an older record without them: shown as missing, summed nowhere, no version moved
    old = rec.RunRecord.from_file(runs / "majority.json")
    del old.timings["cpu"], old.timings["predict_ms_per_image"]
    rec.write_record(old, runs / "majority.json")
    assert old.total_seconds == pytest.approx(sum(old.timings[k] for k in ("fit_s", "predict_s", "evaluate_s")))
    assert main(["table", "--results", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if "fit CPU s" in line)  # the cost table's header
    col = [c.strip() for c in lines[start].split("|")].index("fit CPU s")
    cost_rows = [line for line in lines[start + 2:] if line.startswith("|")][:3]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")] for line in cost_rows}
    assert cells["majority"][col] == "—" and cells["stratified"][col] != "—"
    assert (tmp_path / "plots" / "task1__synthetic__cost_train.png").is_file()
    assert (tmp_path / "plots" / "task1__synthetic__cost_infer.png").is_file()
    assert "[cost train](plots/task1__synthetic__cost_train.png)" in text  # baselines only: no sentence


def test_cost_sentence_names_the_cheapest_row_within_the_best_rows_ci():
    best = _record("transfer-mobilenetv2-ft-all", 0.80, width=0.10)
    best.timings["cpu"] = {"fit_s": 3000.0, "predict_s": 30.0}
    close = _record("bovw", 0.75)
    close.timings["cpu"] = {"fit_s": 100.0, "predict_s": 3.0}
    far = _record("bovw-color", 0.50)
    far.timings["cpu"] = {"fit_s": 1.0, "predict_s": 3.0}
    table = next(t for t in build_tables([best, close, far]) if t.task == "task1")
    sentence = cost_sentence(table)
    assert "the best row, transfer-mobilenetv2-ft-all (ap 0.800 [0.700, 0.900]), trains in 3000 CPU s" in sentence
    assert "the cheapest row within its CI, bovw (classical, ap 0.750), trains in 100 CPU s" in sentence
    assert "(30x less)" in sentence and "bovw-color" not in sentence


# ----------------------------------------------------------------------------- (3) fusion and seed ensembles


@pytest.fixture
def task1_root(tmp_path) -> Path:
    root = tmp_path / "results"
    records = [_record("bovw-color", 0.60, val_ap=0.70, quality=0.6),
               _record("bovw-sift-color", 0.65, val_ap=0.60, quality=0.5),
               _record("transfer-mobilenetv2-ft-all", 0.70, val_ap=0.80, quality=1.0),
               *(_record("transfer-mobilenetv2", 0.6, seed=s, quality=0.8) for s in range(3)),
               _record("majority", 0.2, quality=0.0)]
    write_all(root, records)
    return root


def _make(root: Path, tmp_path: Path) -> int:
    return _fusion_script().main(["--results", str(root), "--tasks", "task1", "--data-root", str(tmp_path / "none")])


def test_fusion_record_names_its_parents_and_goes_stale_when_a_parent_is_rerun(task1_root, tmp_path, capsys):
    root = task1_root
    d = dv.derived("ensembles/task1")
    assert dv.check(d, root).status == "missing"
    assert _fusion_script().main(["--results", str(root), "--data-root", str(tmp_path / "none")]) == 0  # both tasks
    assert dv.check(dv.derived("ensembles/task2"), root).current  # no task2 records: a report that says so
    fusion = rec.RunRecord.from_file(root / "ensembles/runs/task1" / TASK1 / "late-fusion.json")
    assert [(p["approach"], p["run_key"]) for p in fusion.extras["parents"]] == \
        [("bovw-color", "key-bovw-color-0"), ("transfer-mobilenetv2-ft-all", "key-transfer-mobilenetv2-ft-all-0")]
    # the mean of the two stored probabilities, scored like any row
    a = rec.RunRecord.from_file(rec.record_path("task1", TASK1, "bovw-color", root=root)).prediction_arrays()
    b = rec.RunRecord.from_file(rec.record_path("task1", TASK1, "transfer-mobilenetv2-ft-all", root=root)
                                ).prediction_arrays()
    ids, y, scores = fusion.prediction_arrays()
    assert list(ids) == list(a[0]) and np.allclose(scores, 0.5 * a[2] + 0.5 * b[2], atol=2e-6)
    assert fusion.ci("ap")[0] is not None and fusion.run_key
    assert dv.check(d, root).current and ensembles.stale_reasons(root, "task1") == []
    assert "majority+seeds" not in {r.approach for r in ensembles.load_ensembles(root, "task1")}  # no baselines
    # the deep parent rerun under another key: the artefact and its record are stale, and say why
    path = rec.record_path("task1", TASK1, "transfer-mobilenetv2-ft-all", root=root)
    parent = rec.RunRecord.from_file(path)
    parent.run_key = "key-rerun"
    rec.write_record(parent, path)
    status = dv.check(d, root)
    assert status.status == "stale" and any("records rerun" in r for r in status.reasons)
    assert any("parent transfer-mobilenetv2-ft-all seed 0 rerun" in r for r in ensembles.stale_reasons(root, "task1"))
    from skinbench.sweep import regenerate

    assert regenerate.stale_extras(root, force=False)["fusion.py"] == ["--tasks", "task1"]
    assert main(["table", "--results", str(root)]) == 0
    dashboard = (root / "README.md").read_text()
    assert "**Stale derived rows**" in dashboard and "late-fusion" in dashboard
    # a candidate's new validation score changes the chosen parent: stale too
    assert _make(root, tmp_path) == 0 and dv.check(d, root).current
    path = rec.record_path("task1", TASK1, "bovw-sift-color", root=root)
    other = rec.RunRecord.from_file(path)
    other.extras["fit"] = {"val_scores": {"ap": 0.9}}
    rec.write_record(other, path)
    assert dv.check(d, root).status == "stale"
    assert any("parents now bovw-sift-color seed 0" in r for r in ensembles.stale_reasons(root, "task1"))


def test_seed_ensemble_is_scored_on_the_mean_of_three_seeds(task1_root, tmp_path):
    assert _make(task1_root, tmp_path) == 0
    ens = rec.RunRecord.from_file(task1_root / "ensembles/runs/task1" / TASK1 / "transfer-mobilenetv2+seeds.json")
    seeds = [rec.RunRecord.from_file(rec.record_path("task1", TASK1, "transfer-mobilenetv2", root=task1_root, seed=s))
             for s in range(3)]
    mean = np.mean([s.prediction_arrays()[2] for s in seeds], axis=0)
    ids, y, scores = ens.prediction_arrays()
    assert np.allclose(scores, mean, atol=2e-6)
    assert ens.value("ap") == pytest.approx(average_precision_score(y, mean[:, 1]), abs=1e-5)
    assert [p["seed"] for p in ens.extras["parents"]] == [0, 1, 2]
    assert ens.key_inputs["parents"][2]["run_key"] == "key-transfer-mobilenetv2-2"
    # a rerun with the same parents keeps the records as made (no churn of creation times in the repository)
    kept = task1_root / "ensembles/runs/task1" / TASK1 / "transfer-mobilenetv2+seeds.json"
    before, written_at = kept.read_bytes(), kept.stat().st_mtime_ns
    assert _make(task1_root, tmp_path) == 0
    # not rewritten at all (bytes alone can match when both runs stamp the same second)
    assert kept.read_bytes() == before and kept.stat().st_mtime_ns == written_at
    # the scorer holds unrounded numbers; the record stores them rounded: unchanged means unchanged as stored
    fresh = rec.RunRecord.from_file(kept)
    fresh.metrics["ap"]["value"] += 1e-9
    assert ensembles._unchanged(fresh, kept)
    fresh.metrics["ap"]["value"] += 1e-3
    assert not ensembles._unchanged(fresh, kept)
    render_all(task1_root)
    dashboard = (task1_root / "README.md").read_text()
    section = dashboard.split("## Classical and deep together")[1].split("\n## ")[0]
    assert "transfer-mobilenetv2+seeds" in section and "McNemar" in section and "Hard cases" in section
    assert "bovw-color right" in section  # the 2x2 table of the chosen rows


def test_task4_agreement_and_hard_cases_with_their_gallery_from_the_records(tmp_path):
    """Segmentation: no derived rows, but the 2x2 table of the chosen segmenters (right = Jaccard >= 0.65),
    the hard cases and a gallery drawing each image with its true outline; keyed like the other reports."""
    from PIL import Image

    from skinbench.metrics.segmentation import per_image_scores

    root = tmp_path / "results"
    records = []
    for name, quality, val in (("classical-seg", 0.7, 0.70), ("fpn", 0.95, 0.86), ("unet", 0.9, 0.80)):
        r = make_record("task4", name, target="lesion", dataset="ham10000", quality=quality)
        r.run_key = f"key-{name}"
        r.extras["fit"] = {"val_scores": {"jaccard_mean": val}, "n_val": 20}
        records.append(r)
    write_all(root, records)
    images, masks = {}, {}
    for k, image_id in enumerate(records[0].predictions["image_id"]):
        images[image_id] = str(tmp_path / f"{image_id}.png")
        masks[image_id] = str(tmp_path / f"{image_id}_mask.png")
        Image.fromarray(np.full((30, 40, 3), 10 * k % 255, np.uint8)).save(images[image_id])
        mask = np.zeros((30, 40), np.uint8)
        mask[8:22, 10:30] = 255
        Image.fromarray(mask).save(masks[image_id])

    a = ensembles.agreement(records[0], records[1])  # classical-seg vs fpn, by the Jaccard cut
    right = [per_image_scores(r.counts())["jaccard"] >= ensembles.HARD_JACCARD for r in records[:2]]
    assert (a.both_right, a.a_only, a.b_only, a.both_wrong) == (
        int((right[0] & right[1]).sum()), int((right[0] & ~right[1]).sum()), int((~right[0] & right[1]).sum()),
        int((~right[0] & ~right[1]).sum()))
    assert a.n == 40 and "Jaccard >= 0.65" in a.sentence()

    written = ensembles.write_ensembles(root, "task4", "pytest", images, masks)
    assert not ensembles.load_ensembles(root, "task4")  # no fusion of per-image counts
    report = (root / "ensembles" / "task4.md").read_text()
    assert "## Agreement of classical-seg (classical) and fpn (deep)" in report  # fpn: the best validation score
    assert "## Hard cases" in report and "![hard cases](task4_hard_cases.png)" in report
    assert (root / "ensembles" / "task4_hard_cases.png") in written
    d = dv.derived("ensembles/task4")
    dv.write_key(d, root)
    assert dv.check(d, root).current
    # a second seed of the chosen fpn moves the validation mean the report prints: stale, though no record
    # the report ranks changed
    seed1 = make_record("task4", "fpn", target="lesion", dataset="ham10000", quality=0.95, seed=1)
    seed1.extras["fit"] = {"val_scores": {"jaccard_mean": 0.84}, "n_val": 20}
    write_all(root, [seed1])
    assert "roles" in " ".join(dv.check(d, root).reasons)
    dv.write_key(d, root)
    path = rec.path_of(records[2], root)  # unet is in no pair, but the hard cases rank it: a rerun is stale
    unet = rec.RunRecord.from_file(path)
    unet.run_key = "key-rerun"
    rec.write_record(unet, path)
    assert dv.check(d, root).status == "stale"

    render_all(root)
    section = (root / "README.md").read_text().split("## Classical and deep together")[1].split("\n## ")[0]
    assert "classical-seg right" in section and "task4_hard_cases.png" in section and "true outlines" in section
    # one renderer: the dashboard's agreement table is the report's, cell for cell
    table = report.split("## Agreement of")[1].split("\n\n")[2]
    assert table.startswith("|") and table in section
