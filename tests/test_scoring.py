"""One scorer, one record builder (issue 29): a run, a cross-dataset run and `skinbench score` of the same
predictions give records with the same metric fields and the same numbers, stamped alike; the per-image
segmentation loop exists once (skinbench/scoring.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from skinbench import crossdata, runner
from skinbench.metrics.evaluate import evaluate_surface
from skinbench.provenance import RunSpec
from skinbench.results.records import RunRecord
from skinbench.score import score

REPO = Path(__file__).resolve().parents[1]
TINY = {"n_images": 48}
#: what every finished record is stamped with (skinbench.results.records.build_record)
STAMPS = ("versions", "machine", "created", "command", "run_key", "key_inputs")


def _three(task: str, approach: str, tmp_path: Path) -> tuple[RunRecord, RunRecord, RunRecord]:
    """The runner's record, the record of `score` on the submission it wrote, and a cross-dataset record of
    the same model on the same test images (the synthetic test split named as a foreign test set)."""
    spec = RunSpec(task, approach, "synthetic", 0, {}, None, None, 100)
    own = RunRecord.from_file(runner.execute(spec, results_root=tmp_path / "run", predictions_dir=tmp_path / "pred",
                                             dataset_kwargs=TINY)[0])
    source = next((tmp_path / "pred").glob("*_scorer.csv")) if task == "task1" else tmp_path / "pred"
    external = RunRecord.from_file(score(task, source, dataset="synthetic", dataset_kwargs=TINY, n_boot=100,
                                         results_root=tmp_path / "score")[0])
    test = crossdata.load_test_set("synthetic", task, split="test", **TINY)
    cross = RunRecord.from_file(crossdata.cross_evaluate(spec, test, results_root=tmp_path / "cross",
                                                         dataset_kwargs=TINY,
                                                         store=crossdata.ModelStore(tmp_path / "models")))
    return own, external, cross


@pytest.mark.parametrize("task, approach", [("task1", "stratified"), ("task4", "ellipse")])
def test_run_cross_and_score_records_of_the_same_predictions_agree(tmp_path, task, approach):
    own, external, cross = _three(task, approach, tmp_path)
    assert external.family == "external" and cross.extras["overlap"]["excluded"] == 0
    assert own.predictions["image_id"] == external.predictions["image_id"] == cross.predictions["image_id"]
    assert set(own.metrics) == set(external.metrics) == set(cross.metrics)
    for name in own.metrics:
        assert external.metrics[name] == pytest.approx(own.metrics[name]), name
        assert cross.metrics[name] == pytest.approx(own.metrics[name]), name
    assert set(own.predictions) == set(external.predictions) == set(cross.predictions)
    scored = {k for k in own.extras if k != "fit"}  # what the scorer puts there (confusion matrix, classes, ...)
    assert scored <= set(external.extras) and scored <= set(cross.extras)
    for key in scored:
        assert external.extras[key] == own.extras[key] == cross.extras[key], key
    assert set(cross.timings) == set(own.timings) and "cache" in cross.timings and "evaluate_s" in cross.timings
    assert set(cross.params) == set(own.params) and ("fit" in own.extras) == ("fit" in cross.extras)
    for record in (own, external, cross):
        assert all(getattr(record, k) for k in STAMPS), record.approach
        assert "peak_rss_mb" in record.timings and record.status == "ok"
    if task == "task4":  # boundary distances for an external mask folder too (it had none before issue 29)
        assert external.predictions["surface"] == own.predictions["surface"] == cross.predictions["surface"]


def test_cli_score_of_a_mask_folder_has_hd95_and_assd(tmp_path, capsys):
    from skinbench import cli

    common = ["--dataset", "synthetic", "--n-boot", "20"]
    assert cli.main(["run", "task4", "-a", "ellipse", *common, "--results", str(tmp_path / "run"),
                     "--predictions", str(tmp_path / "pred")]) == 0
    assert cli.main(["score", "task4", str(tmp_path / "pred"), *common, "--name", "mine",
                     "--results", str(tmp_path / "score")]) == 0
    capsys.readouterr()
    own = RunRecord.from_file(tmp_path / "run" / "runs" / "task4" / "synthetic" / "ellipse__lesion.json")
    external = RunRecord.from_file(tmp_path / "score" / "runs" / "task4" / "synthetic" / "mine__lesion.json")
    assert external.predictions["surface"] == own.predictions["surface"]
    surface = evaluate_surface(external.predictions["surface"], external.counts(), n_boot=0)["metrics"]
    assert surface["hd95_mean"]["value"] > 0 and surface["assd_mean"]["value"] > 0
    assert cli.main(["table", "task4", "--results", str(tmp_path / "score")]) == 0
    md = (tmp_path / "score" / "tables" / "task4__synthetic__lesion.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| mine"))
    header = next(line for line in md.splitlines() if "hd95_mean" in line and line.startswith("|"))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["hd95_mean"] not in ("", "—")


def test_the_scoring_loop_exists_once():
    """Only skinbench/scoring.py turns masks into counts and distances and evaluates predictions; the
    runner, cross-dataset runs, `score` and sweeps call it (git grep over the package and benchmarks)."""
    pattern = r"confusion_counts\(|surface_distances\(|evaluate_segmentation\(|evaluate_classification\("
    done = subprocess.run(["git", "grep", "-nE", pattern, "--", "skinbench", "benchmarks"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    callers = {line.split(":", 1)[0] for line in done.stdout.splitlines()
               if not re.match(r"\s*(#|def )", line.split(":", 2)[2])}
    assert {c for c in callers if not c.startswith("skinbench/metrics/")} == {"skinbench/scoring.py"}
    paths = ["skinbench/runner.py", "skinbench/crossdata.py", "skinbench/score.py",
             *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "skinbench" / "sweep").glob("*.py"))]
    for path in paths:
        text = (REPO / path).read_text()
        assert "score_mask(" not in text and "threshold_map(" not in text, path
