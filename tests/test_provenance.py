"""Run keys, declared versions, currency and the golden check (issue: refactors must not force retraining).

The golden file pins the numbers of the deterministic approaches on the synthetic data under their run
keys. A change that moves one of those numbers without bumping a declared version fails here; after a
deliberate bump, re-record with ``SKINBENCH_UPDATE_GOLDEN=1 python -m pytest tests/test_provenance.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from skinbench import info, provenance, runner
from skinbench.errors import ConfigError
from skinbench.results import currency
from skinbench.provenance import RunSpec
from skinbench.results.records import (
    SCHEMA,
    RunRecord,
    load_records,
    read_record,
    record_path,
    rescored_record,
    write_record,
)

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "deterministic_synthetic.json"
SCHEMA1_RECORD = Path(__file__).parent / "golden" / "record_schema1_task1_majority.json"
#: deterministic approaches (no TensorFlow): their numbers on the synthetic data must not move silently
GOLDEN_RUNS = [
    ("task1", "majority", {}), ("task1", "stratified", {}), ("task1", "bovw", {"n_words": 20, "image_size": 96}),
    ("task4", "all-foreground", {}), ("task4", "ellipse", {}), ("task4", "classical-seg", {}),
    ("task3", "classical-dots", {"n_tune": 10}),
]
N_IMAGES, LIMIT = 48, 24


def _run_golden(root: Path) -> dict[str, dict]:
    out = {}
    for task, approach, params in GOLDEN_RUNS:
        spec = RunSpec(task, approach, "synthetic", params=params, limit=LIMIT, n_boot=50)
        for path in runner.execute(spec, results_root=root, dataset_kwargs={"n_images": N_IMAGES}):
            r = RunRecord.from_file(path)
            out[path.stem if r.target else f"{task}/{approach}"] = {
                "run_key": r.run_key, "metrics": {m: r.value(m) for m in sorted(r.metrics)}}
    return out


def updating_golden() -> bool:
    """Whether this run re-records the golden file: only by hand, never under CI (``CI=true``), where a
    leftover ``SKINBENCH_UPDATE_GOLDEN`` would make the check pass whatever moved."""
    if not os.environ.get("SKINBENCH_UPDATE_GOLDEN"):
        return False
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail("SKINBENCH_UPDATE_GOLDEN is set under CI: the golden numbers are re-recorded by hand only "
                    "(unset it; see this module's docstring)")
    return True


@pytest.mark.slow
def test_golden_numbers_move_only_with_a_version_bump(tmp_path):
    update = updating_golden()  # before the slow part: a refused update fails at once
    got = _run_golden(tmp_path)
    if update:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    problems = []
    for name, now in got.items():
        then = golden.get(name)
        if then is None or then["run_key"] != now["run_key"]:
            problems.append(f"{name}: run key changed (a version or input was changed on purpose?): re-record "
                            f"with SKINBENCH_UPDATE_GOLDEN=1")
            continue
        moved = {m: (then["metrics"].get(m), v) for m, v in now["metrics"].items()
                 if v != pytest.approx(then["metrics"].get(m), abs=1e-6)}
        if moved:
            problems.append(f"{name}: numbers moved under the same run key {moved}: bump the estimator's "
                            f"algorithm_version (or data.READ_VERSION / metrics.METRICS_VERSION / "
                            f"scoring.SCORING_VERSION)")
    assert not problems, "\n".join(problems)


def _spec_and_digest():
    from skinbench.data import load_dataset

    ds = load_dataset("synthetic", n_images=N_IMAGES)
    return RunSpec("task1", "majority", "synthetic", limit=LIMIT, n_boot=50), ds.manifest_digest


def test_key_ignores_source_text_but_provenance_keeps_it(tmp_path):
    """A comment added to shared numeric code changes the code digest, never the run key."""
    code = ("import json; from skinbench import provenance as p; s = p.RunSpec('task1', 'majority', 'synthetic');"
            "print(json.dumps([p.run_key(p.key_inputs(s, 'd')), p.code_digest('majority')]))")
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "skinbench", copy / "skinbench", ignore=shutil.ignore_patterns("__pycache__"))

    def key_and_digest() -> list[str]:
        env = {**os.environ, "PYTHONPATH": str(copy)}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=copy,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    before = key_and_digest()
    metrics_file = copy / "skinbench" / "metrics" / "classification.py"
    metrics_file.write_text(metrics_file.read_text() + "\n# a refactor that changes no number\n")
    after = key_and_digest()
    assert after[0] == before[0]  # record stays current
    assert after[1] != before[1]  # ...and provenance still tells the code apart


def test_a_version_bump_makes_exactly_the_dependent_records_stale(tmp_path, monkeypatch):
    spec, digest = _spec_and_digest()
    runner.execute(spec, results_root=tmp_path, dataset_kwargs={"n_images": N_IMAGES})
    other = replace(spec, approach="all-foreground", task="task4")
    runner.execute(other, results_root=tmp_path, dataset_kwargs={"n_images": N_IMAGES})
    assert currency.check(spec, tmp_path, digest).current
    from skinbench.approaches.baselines import DummyPathClassifier

    monkeypatch.setattr(DummyPathClassifier, "algorithm_version", 7)
    stale = currency.check(spec, tmp_path, digest)
    assert stale.status == "stale" and stale.reasons == ["versions.estimator: 1 -> 7"]
    assert currency.check(other, tmp_path, digest).current  # the segmenter did not change
    monkeypatch.setattr("skinbench.metrics.METRICS_VERSION", 2)  # a shared contract: every record
    assert currency.check(other, tmp_path, digest).reasons == ["lesion: versions.metrics: 1 -> 2"]


def test_stale_reasons_name_params_and_data(tmp_path):
    spec, digest = _spec_and_digest()
    runner.execute(spec, results_root=tmp_path, dataset_kwargs={"n_images": N_IMAGES})
    changed = currency.check(replace(spec, params={"strategy": "uniform"}), tmp_path, "other-digest")
    assert changed.status == "stale"
    assert 'params.strategy: "prior" -> "uniform"' in changed.reasons
    assert any(r.startswith("data manifest changed") for r in changed.reasons)
    missing = currency.check(replace(spec, approach="stratified"), tmp_path, digest)
    assert missing.status == "missing" and "no record at" in missing.reasons[0]


def test_schema1_record_is_read_and_rekeyed_when_it_was_current(tmp_path):
    """Today's committed records (schema 1) load; one current at the legacy commit stays current."""
    r = RunRecord.from_file(SCHEMA1_RECORD)
    assert json.loads(SCHEMA1_RECORD.read_text())["schema"] == 1 and r.schema == SCHEMA
    assert r.key_inputs["versions"] == provenance.LEGACY_VERSIONS and r.code_digest
    assert r.ok and r.value("accuracy") == pytest.approx(304 / 379, abs=1e-6)
    path = record_path("task1", "isic2016_task3", "majority", root=tmp_path)
    path.parent.mkdir(parents=True)
    shutil.copy(SCHEMA1_RECORD, path)
    spec = RunSpec("task1", "majority")
    # current at the legacy commit, so stale today only by the scoring version (2: scores as stored), which
    # a re-scoring from its stored predictions fixes without refitting (regenerate.py --rescore)
    stale = currency.check(spec, tmp_path, r.split["manifest_digest"])
    assert stale.status == "stale" and stale.reasons == ["versions.runner: 1 -> 2"]
    assert currency.rescore_blockers(r) == []
    write_record(rescored_record(r, "test", "abc"), path)
    assert currency.check(spec, tmp_path, r.split["manifest_digest"]).current
    again = RunRecord.from_file(path)
    assert again.rescored["from_scoring_version"] == 1 and again.versions == r.versions
    assert again.value("accuracy") == r.value("accuracy")
    # a schema 1 record whose key was not current at the legacy commit has no key: stale, and says why
    data = json.loads(SCHEMA1_RECORD.read_text())
    path.write_text(json.dumps(dict(data, run_key="0" * 20)))
    c = currency.check(spec, tmp_path, r.split["manifest_digest"])
    assert c.status == "stale" and "not declared equivalent" in c.reasons[0]


def test_committed_records_all_load_as_the_record_type():
    records = load_records(REPO / "results")
    assert records and all(isinstance(r, RunRecord) for r in records)
    assert {r.task for r in records} == {"task1", "task2", "task3", "task4"}


def test_fit_seconds_say_when_work_was_found_in_the_cache(tmp_path):
    """A rerun whose features come from the cache records it, and the table says so beside "fit s"."""
    from skinbench.results.render import render_all

    spec = RunSpec("task1", "bovw", "synthetic", params={"n_words": 20, "image_size": 96}, limit=LIMIT, n_boot=20)
    first = RunRecord.from_file(runner.execute(spec, results_root=tmp_path / "a",
                                               dataset_kwargs={"n_images": N_IMAGES})[0])
    second = RunRecord.from_file(runner.execute(spec, results_root=tmp_path / "b",
                                                dataset_kwargs={"n_images": N_IMAGES})[0])
    assert first.timings["cache"]["local_features"]["hits"] + first.timings["cache"]["local_features"]["misses"] > 0
    assert second.cache_hit_fraction == 1.0 and second.value("ap") == first.value("ap")
    render_all(tmp_path / "b", plots=False)
    found = second.timings["cache"]["local_features"]["hits"]
    text = (tmp_path / "b" / "tables" / "task1__synthetic.md").read_text()
    assert f"fit s leaves out cached work (local_features {found} of {found} found cached); the rest of the fit ran" \
        in text and "not done" not in text


def test_unreadable_record_is_none_with_a_warning(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": 99, "task": "task1", "dataset": "d", "approach": "a"}')
    with pytest.warns(UserWarning, match="newer than this skinbench"):
        assert read_record(bad) is None


@pytest.mark.realdata
def test_committed_baseline_records_reproduce_on_the_real_data(shared_data, capsys):
    """The cheap end of `regenerate.py --verify`: same key, same numbers, on the committed records."""
    from skinbench.sweep import regenerate

    points = regenerate.registered_points(["task1", "task2"], approaches=["majority", "stratified"],
                                          datasets=[info.task(t).default_dataset for t in ("task1", "task2")])
    assert regenerate.verify(points, REPO / "results") == 0
    out = capsys.readouterr().out
    assert out.count(": same\n") == 4 and "differs" not in out


def test_regenerate_refuses_to_write_records_from_uncommitted_code(monkeypatch, capsys):
    from skinbench.sweep import regenerate

    monkeypatch.setattr("skinbench.environment.code_is_dirty", lambda: True)
    monkeypatch.delenv("SKINBENCH_ALLOW_DIRTY")
    with pytest.raises(ConfigError, match="Fix: commit first"):  # run_script: one line, exit 2
        regenerate.main(["--only", "task1", "--approach", "majority", "--no-extras"])


def test_regenerate_plans_each_task_on_its_default_dataset_and_variants():
    from skinbench.sweep import registered_points

    runs = [(p.spec.task, p.spec.approach, p.spec.dataset) for p in registered_points(["task3", "task4"])]
    assert ("task3", "classical-dots", "isic2018_task2_all") in runs and ("task3", "unet", "isic2018_task2") in runs
    assert {d for t, _, d in runs if t == "task4"} == {"ham10000"}
    # the variant's records live beside the default's, under their own dataset folder
    spec = RunSpec("task3", "all-background", dataset="isic2018_task2")
    assert spec.targets() == info.ISIC2018_ATTRIBUTES and RunSpec("task3", "unet").targets() == ("globules", "streaks")


def test_command_is_recorded_as_typed():
    assert runner.command_as_typed([str(REPO / "skinbench" / "__main__.py"), "run", "task1", "-p", "a=b c"]) == \
        "python -m skinbench run task1 -p 'a=b c'"
    assert runner.command_as_typed([str(REPO / "benchmarks" / "regenerate.py"), "--quick"]) == \
        "python benchmarks/regenerate.py --quick"


@pytest.mark.slow
def test_a_reused_segmenter_fit_is_recorded_as_found_not_done(tmp_path):
    spec = RunSpec("task4", "unet", "synthetic", params={"input_size": 32, "epochs": 2, "batch_size": 8},
                   limit=LIMIT, n_boot=20)
    first, second = (RunRecord.from_file(runner.execute(spec, results_root=tmp_path / name,
                                                        dataset_kwargs={"n_images": N_IMAGES})[0])
                     for name in ("a", "b"))
    assert first.timings["cache"]["segmenter_epochs"]["misses"] >= 1
    assert second.timings["cache"]["segmenter_epochs"] == {"hits": first.timings["cache"]["segmenter_epochs"]["misses"],
                                                           "misses": 0}
    assert second.value("jaccard_mean") == first.value("jaccard_mean")


def test_tables_mark_rows_made_by_older_algorithm_versions(tmp_path, monkeypatch):
    """A stale row says so in the table itself (not only in `regenerate.py --status`), with the rerun command."""
    from skinbench.approaches.baselines import DummyPathClassifier
    from skinbench.results.tables import build_tables

    spec, _ = _spec_and_digest()
    runner.execute(spec, results_root=tmp_path, dataset_kwargs={"n_images": N_IMAGES})
    note = {r["approach"]: r["note"] for r in build_tables(load_records(tmp_path))[0].rows}["majority"]
    assert "stale" not in note
    monkeypatch.setattr(DummyPathClassifier, "algorithm_version", 3)
    note = {r["approach"]: r["note"] for r in build_tables(load_records(tmp_path))[0].rows}["majority"]
    assert note.startswith("**stale** (versions.estimator: 1 -> 3)")
    assert "regenerate.py --only task1 --approach majority" in note


def test_rows_and_sweep_points_trained_on_an_earlier_manifest_are_marked_stale(tmp_path, monkeypatch, capsys):
    """A rebuilt manifest (issue 31: the task3 training set lost five copies of test images) makes every record
    trained on the old split stale in the table and in `regenerate.py --status`'s sweep lines, read from the
    records alone: a sweep's grid points were not listed anywhere before."""
    from skinbench.results.tables import build_tables
    from skinbench.sweep.regenerate import print_sweep_status

    spec, digest = _spec_and_digest()
    runner.execute(spec, results_root=tmp_path, dataset_kwargs={"n_images": N_IMAGES})
    runner.execute(spec, results_root=tmp_path / "sweeps" / "demo" / "point", dataset_kwargs={"n_images": N_IMAGES})
    monkeypatch.setattr(currency, "read_index", lambda: {"synthetic": {"digest": digest}})
    assert "stale" not in {r["approach"]: r["note"] for r in build_tables(load_records(tmp_path))[0].rows}["majority"]
    assert print_sweep_status(tmp_path) == 0 and "current  sweep demo: 1 current" in capsys.readouterr().out
    monkeypatch.setattr(currency, "read_index", lambda: {"synthetic": {"digest": "f" * 16}})
    note = {r["approach"]: r["note"] for r in build_tables(load_records(tmp_path))[0].rows}["majority"]
    assert note.startswith(f"**stale** (data manifest changed ({digest[:12]} -> ffffffffffff)): trained on an "
                           "earlier data manifest, rerun `python benchmarks/regenerate.py --only task1 --approach majority")
    assert print_sweep_status(tmp_path) == 1
    out = capsys.readouterr().out
    assert "stale    sweep demo: 1 stale" in out and "data manifest changed" in out


@pytest.mark.parametrize("ci, refused", [("true", True), ("1", True), ("", False), ("false", False)])
def test_golden_update_is_refused_under_ci(monkeypatch, ci, refused):
    """A leftover SKINBENCH_UPDATE_GOLDEN must not rewrite the golden file in CI (the check would pass
    whatever moved): under CI=true the golden test fails instead of re-recording."""
    monkeypatch.setenv("SKINBENCH_UPDATE_GOLDEN", "1")
    monkeypatch.setenv("CI", ci)
    if refused:
        with pytest.raises(pytest.fail.Exception, match="set under CI"):
            updating_golden()
    else:
        assert updating_golden() is True
    monkeypatch.delenv("SKINBENCH_UPDATE_GOLDEN")
    assert updating_golden() is False


def test_committed_transfer_records_keep_their_keys_after_the_split_into_three_estimators():
    """TransferClassifier(mode=...) became three estimators: the run keys of the committed transfer
    records still come out identical (provenance.ESTIMATOR_RENAMES, KEY_PARAMS), so none went stale."""
    records = [r for r in load_records(REPO / "results") if r.approach.startswith("transfer-") and r.run_key
               and r.key_inputs]
    assert {r.approach for r in records} >= {"transfer-mobilenetv2", "transfer-mobilenetv2-ft-top",
                                             "transfer-mobilenetv2-ft-all", "transfer-mobilenetv2-logreg"}
    for r in records:
        spec = RunSpec(r.task, r.approach, r.key_inputs["dataset"], r.seed, limit=r.limit,
                       n_boot=r.key_inputs["n_boot"])
        inputs = provenance.key_inputs(spec, r.key_inputs["manifest_digest"])
        # a cross-dataset record (crossdata.run) adds its test data to the training run's inputs
        inputs.update({k: r.key_inputs[k] for k in ("test_dataset", "test_manifest_digest", "cross_dataset")
                       if k in r.key_inputs})
        assert inputs == r.key_inputs, r.approach
        assert provenance.run_key(inputs) == r.run_key, r.approach
    # the registry names the new classes; keys hash the name the records were made under
    for name in ("transfer-mobilenetv2", "transfer-mobilenetv2-ft-top", "transfer-mobilenetv2-finetune"):
        assert info.approach(name).estimator in provenance.ESTIMATOR_RENAMES
        assert "mode" not in info.approach(name).params
